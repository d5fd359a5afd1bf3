//! Deadlock detection in `block_on` (Go's "all goroutines are asleep - deadlock!").
//!
//! These scenarios run without the test harness, in a process of their own, one after
//! another, each joining every thread it starts: no other test's threads or runtimes are
//! around, so each outcome follows from the scenario alone. (`deadlock_in_tests.rs` checks the
//! rule under the default harness, beside other tests.) A scenario that hangs is killed by `alarm`, so a
//! missed deadlock fails the run instead of stalling it.

use std::panic;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use scheduler::chan;
use scheduler::{Runtime, WaitGroup};
use scheduler_tests::block_on_panic_message;

const DEADLOCK: &str = "scheduler: all goroutines are asleep - deadlock!";

/// Sets its flag when dropped: shows that a cancelled goroutine unwound.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn runtime(procs: usize) -> Runtime {
    Runtime::builder().procs(procs).build().unwrap()
}

/// The first line of a panic message: the deadlock panic goes on with the goroutine dump.
fn headline(message: &Option<String>) -> Option<&str> {
    message.as_deref().and_then(|m| m.lines().next())
}

fn main() {
    // A missed deadlock would hang: fail loudly instead.
    // SAFETY: alarm has no preconditions; its default action ends the process.
    unsafe { libc::alarm(120) };
    // The expected panics print through the default hook; keep the output readable.
    panic::set_hook(Box::new(|info| {
        if !info.to_string().contains(DEADLOCK) {
            eprintln!("{info}");
        }
    }));
    let scenarios: &[(&str, fn())] = &[
        ("receive that nobody sends", receive_that_nobody_sends),
        ("wait group never done", wait_group_never_done),
        ("cycle of goroutines", cycle_of_goroutines),
        ("timer wakes the sleeper", timer_is_not_a_deadlock),
        ("plain thread sends later", plain_thread_is_not_a_deadlock),
        ("busy runtime", finishing_work_is_not_a_deadlock),
        ("waiting for a blocking job", blocking_job_is_not_a_deadlock),
        (
            "idle blocking threads",
            deadlock_beside_idle_blocking_threads,
        ),
        (
            "detached blocking job ends",
            deadlock_once_a_detached_blocking_job_ends,
        ),
        (
            "blocking thread retires",
            deadlock_after_a_blocking_thread_retires,
        ),
        (
            "goroutine parked on a spare worker",
            deadlock_with_a_goroutine_parked_on_a_spare,
        ),
        ("spare worker retired", deadlock_after_a_spare_retires),
    ];
    for (name, scenario) in scenarios {
        scenario();
        println!("deadlock: {name} ... ok");
    }
    println!("test result: ok. {} passed; 0 failed", scenarios.len());
}

fn receive_that_nobody_sends() {
    for procs in [1, 2, 4] {
        let rt = runtime(procs);
        let unwound = Arc::new(AtomicBool::new(false));
        let flag = unwound.clone();
        let message = block_on_panic_message(&rt, move || {
            let _guard = SetOnDrop(flag);
            let (_tx, rx) = chan::bounded::<u32>(0);
            let _ = rx.recv();
        });
        assert_eq!(headline(&message), Some(DEADLOCK), "procs {procs}");
        assert!(
            unwound.load(Ordering::SeqCst),
            "the main goroutine was unwound"
        );
        assert_eq!(rt.num_goroutines(), 0);
        drop(rt);
    }
}

fn wait_group_never_done() {
    let rt = runtime(2);
    let message = block_on_panic_message(&rt, || {
        let wg = WaitGroup::new();
        wg.add(3);
        for _ in 0..2 {
            let wg = wg.clone();
            // Two of three done: the wait can never end.
            scheduler::spawn(move || wg.done());
        }
        wg.wait();
    });
    assert_eq!(headline(&message), Some(DEADLOCK));
}

fn cycle_of_goroutines() {
    let rt = runtime(3);
    let unwound = Arc::new(AtomicBool::new(false));
    let flag = unwound.clone();
    let message = block_on_panic_message(&rt, move || {
        let (a_tx, a_rx) = chan::bounded::<u32>(0);
        let (b_tx, b_rx) = chan::bounded::<u32>(0);
        // Each waits to receive before it sends: neither ever sends.
        let a = scheduler::spawn(move || {
            let _guard = SetOnDrop(flag);
            // Once `b` is cancelled, its sender is gone and this receive fails.
            if let Ok(v) = b_rx.recv() {
                let _ = a_tx.send(v);
            }
        });
        let b = scheduler::spawn(move || {
            // Once `a` is cancelled, its sender is gone and this receive fails.
            if let Ok(v) = a_rx.recv() {
                let _ = b_tx.send(v);
            }
        });
        let _ = a.join();
        let _ = b.join();
    });
    assert_eq!(headline(&message), Some(DEADLOCK));
    assert!(
        unwound.load(Ordering::SeqCst),
        "the blocked goroutine was unwound"
    );
}

fn timer_is_not_a_deadlock() {
    for procs in [1, 2] {
        let rt = runtime(procs);
        let got = rt.block_on(|| {
            let (tx, rx) = chan::bounded::<u32>(0);
            scheduler::spawn(move || {
                scheduler::time::sleep(Duration::from_millis(100));
                tx.send(7).unwrap();
            });
            // Every goroutine sleeps for 100 ms: asleep, but a timer is pending.
            rx.recv().unwrap()
        });
        assert_eq!(got, 7);
    }
}

fn plain_thread_is_not_a_deadlock() {
    let rt = runtime(2);
    let (tx, rx) = chan::bounded::<u32>(0);
    let sender = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        tx.send(11).unwrap();
    });
    // The runtime is idle for 100 ms with its only goroutine blocked, but a thread holds the
    // sender.
    let got = rt.block_on(move || rx.recv().unwrap());
    assert_eq!(got, 11);
    sender.join().unwrap();
}

fn finishing_work_is_not_a_deadlock() {
    let rt = runtime(4);
    for round in 0..200 {
        let total = rt.block_on(move || {
            let wg = WaitGroup::new();
            let (tx, rx) = chan::bounded::<u64>(4);
            for i in 0..8 {
                let tx = tx.clone();
                wg.go(move || {
                    for _ in 0..4 {
                        scheduler::yield_now();
                    }
                    tx.send(i).unwrap();
                });
            }
            drop(tx);
            let total: u64 = rx.iter().sum();
            wg.wait();
            total
        });
        assert_eq!(total, 28, "round {round}");
    }
}

fn blocking_job_is_not_a_deadlock() {
    let rt = runtime(1);
    // Every worker sleeps for good while the job runs, but the job will wake the goroutine.
    let got = rt.block_on(|| {
        scheduler::spawn_blocking(|| {
            thread::sleep(Duration::from_millis(100));
            5
        })
        .join()
        .unwrap()
    });
    assert_eq!(got, 5);
}

fn deadlock_beside_idle_blocking_threads() {
    let rt = runtime(2);
    // The pool's threads stay, idle, for their keep-alive (10 s): they wake nobody.
    let message = block_on_panic_message(&rt, || {
        let jobs: Vec<_> = (0..3)
            .map(|i| scheduler::spawn_blocking(move || i))
            .collect();
        for job in jobs {
            job.join().unwrap();
        }
        let (_tx, rx) = chan::bounded::<u32>(0);
        let _ = rx.recv();
    });
    assert_eq!(headline(&message), Some(DEADLOCK));
}

fn deadlock_once_a_detached_blocking_job_ends() {
    let rt = runtime(1);
    // The workers sleep for good while the job still runs; when it ends, nothing can wake the
    // main goroutine any more, and no worker wakes to notice: the pool thread reports it.
    let message = block_on_panic_message(&rt, || {
        drop(scheduler::spawn_blocking(|| {
            thread::sleep(Duration::from_millis(100));
        }));
        let (_tx, rx) = chan::bounded::<u32>(0);
        let _ = rx.recv();
    });
    assert_eq!(headline(&message), Some(DEADLOCK));
}

fn deadlock_after_a_blocking_thread_retires() {
    let rt = Runtime::builder()
        .procs(1)
        .blocking_keep_alive(Duration::from_millis(20))
        .build()
        .unwrap();
    let message = block_on_panic_message(&rt, || {
        scheduler::spawn_blocking(|| ()).join().unwrap();
        let (_tx, rx) = chan::bounded::<u32>(0);
        let _ = rx.recv();
    });
    assert_eq!(headline(&message), Some(DEADLOCK));
}

/// Blocks the only worker's thread until a goroutine queued behind it has run (on a spare
/// worker, the only one that can run it), then returns that goroutine's thread.
fn run_on_a_spare(f: impl FnOnce() + Send + 'static) -> thread::ThreadId {
    let (tx, rx) = std::sync::mpsc::channel();
    scheduler::spawn(move || {
        tx.send(thread::current().id()).unwrap();
        f();
    });
    let spare = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("no spare worker ran the goroutine queued behind a blocked worker");
    assert_ne!(spare, thread::current().id());
    spare
}

fn deadlock_with_a_goroutine_parked_on_a_spare() {
    // The spare stays for the goroutine it started, asleep for good like the worker: the
    // detection counts its thread among the runtime's.
    let rt = runtime(1);
    let message = block_on_panic_message(&rt, || {
        let (tx, rx) = chan::bounded::<u32>(0);
        run_on_a_spare(move || {
            let _ = rx.recv();
        });
        let (_tx2, rx2) = chan::bounded::<u32>(0);
        let _keep = tx;
        let _ = rx2.recv();
    });
    assert_eq!(headline(&message), Some(DEADLOCK));
    assert_eq!(rt.num_goroutines(), 0);
}

fn deadlock_after_a_spare_retires() {
    // The spare leaves when its goroutine is done; its thread must not count, and its leaving
    // must not be mistaken for a worker still awake.
    let rt = runtime(1);
    let message = block_on_panic_message(&rt, || {
        run_on_a_spare(|| ());
        let (_tx, rx) = chan::bounded::<u32>(0);
        let _ = rx.recv();
    });
    assert_eq!(headline(&message), Some(DEADLOCK));
}
