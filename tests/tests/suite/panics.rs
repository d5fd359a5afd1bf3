//! Panics in goroutines: returned by `join`, propagated by `block_on`, and harmless to the
//! runtime afterwards.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use scheduler::{JoinHandle, WaitGroup};
use scheduler_tests::{HANG_LIMIT, panic_message, runtime, watchdog};

#[test]
fn goroutine_panic_is_returned_by_join_with_its_payload() {
    watchdog("panic payloads", HANG_LIMIT, || {
        let rt = runtime(2);
        rt.block_on(|| {
            let static_str = scheduler::spawn(|| -> u32 { panic!("static boom") });
            let formatted = scheduler::spawn(|| -> u32 {
                let n = 42;
                panic!("formatted boom {n}")
            });
            let custom = scheduler::spawn(|| -> u32 { std::panic::panic_any(1234_u64) });
            let fine = scheduler::spawn(|| 7_u32);

            let err = static_str.join().expect_err("must panic");
            assert_eq!(err.downcast_ref::<&str>(), Some(&"static boom"));
            let err = formatted.join().expect_err("must panic");
            assert_eq!(
                err.downcast_ref::<String>().map(String::as_str),
                Some("formatted boom 42")
            );
            let err = custom.join().expect_err("must panic");
            assert_eq!(err.downcast_ref::<u64>(), Some(&1234));
            assert_eq!(fine.join().unwrap(), 7);
        });
    });
}

#[test]
fn runtime_keeps_working_after_many_goroutine_panics() {
    watchdog("panics then work", HANG_LIMIT, || {
        let rt = runtime(2);
        // Panics after a suspension too, so the unwind crosses a goroutine that parked.
        let handles: Vec<JoinHandle<()>> = (0..100)
            .map(|i| {
                rt.spawn(move || {
                    scheduler::yield_now();
                    let child = scheduler::spawn(move || i);
                    assert_eq!(child.join().unwrap(), i);
                    panic!("goroutine {i} panics after parking");
                })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            let err = h.join().expect_err("must panic");
            assert_eq!(
                panic_message(&*err),
                Some(format!("goroutine {i} panics after parking").as_str())
            );
        }
        // Both workers are still alive and run goroutines.
        let sum = rt.block_on(|| {
            let wg = WaitGroup::new();
            let hs: Vec<JoinHandle<usize>> = (0..100).map(|i| wg.go(move || i)).collect();
            wg.wait();
            hs.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
        });
        assert_eq!(sum, 4950);
    });
}

#[test]
fn main_goroutine_panic_propagates_out_of_block_on() {
    watchdog("block_on panic", HANG_LIMIT, || {
        let rt = runtime(2);
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            rt.block_on(|| -> u32 { panic!("main goroutine boom") })
        }));
        let err = result.expect_err("block_on must resume the panic");
        assert_eq!(panic_message(&*err), Some("main goroutine boom"));

        // A String payload, raised after the main goroutine parked on a join.
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            rt.block_on(|| -> u32 {
                let v = scheduler::spawn(|| 5).join().unwrap();
                panic!("after join {v}")
            })
        }));
        let err = result.expect_err("block_on must resume the panic");
        assert_eq!(
            err.downcast_ref::<String>().map(String::as_str),
            Some("after join 5")
        );

        // The runtime still works, for block_on and for spawned goroutines.
        assert_eq!(
            rt.block_on(|| scheduler::spawn(|| 40).join().unwrap() + 2),
            42
        );
        assert_eq!(rt.spawn(|| "still alive").join().unwrap(), "still alive");
    });
}

#[test]
fn panicking_goroutine_runs_its_destructors() {
    struct SetOnDrop(Arc<AtomicBool>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    watchdog("destructors on panic", HANG_LIMIT, || {
        let rt = runtime(1);
        let dropped = Arc::new(AtomicBool::new(false));
        let d = dropped.clone();
        let h = rt.spawn(move || {
            let _guard = SetOnDrop(d);
            scheduler::yield_now();
            panic!("unwinding through a guard");
        });
        assert!(h.join().is_err());
        assert!(dropped.load(Ordering::SeqCst), "the guard was not dropped");
    });
}

#[test]
fn joiner_is_woken_when_the_joined_goroutine_panics() {
    watchdog("joiner woken by a panic", HANG_LIMIT, || {
        let rt = runtime(2);
        rt.block_on(|| {
            let gate = WaitGroup::new();
            gate.add(1);
            let g = gate.clone();
            let victim = scheduler::spawn(move || -> () {
                g.wait();
                panic!("late panic");
            });
            // The joiner parks on the victim before it panics.
            let joiner = scheduler::spawn(move || victim.join());
            scheduler::yield_now();
            gate.done();
            let err = joiner.join().unwrap().expect_err("victim must panic");
            assert_eq!(panic_message(&*err), Some("late panic"));
        });
    });
}
