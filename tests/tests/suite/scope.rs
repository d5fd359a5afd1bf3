//! Scoped goroutines: they borrow from the caller's stack, and the scope returns only when
//! they all ended, whatever happens to the caller (a panic, a cancellation, a forced
//! shutdown). `block_on` borrows the same way.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use scheduler::{Cancelled, GoroutineState, WaitReason, chan};
use scheduler_tests::{
    DropCounter, HANG_LIMIT, describe_payload, runtime, settle_parked, watchdog,
};

#[test]
fn scoped_goroutines_mutate_disjoint_parts_of_a_borrowed_vec_on_two_workers() {
    watchdog("disjoint parts", HANG_LIMIT, || {
        let rt = runtime(2);
        let mut numbers: Vec<u64> = (0..1000).collect();
        let workers = rt.block_on(|| {
            let used = std::sync::Mutex::new(std::collections::BTreeSet::new());
            scheduler::scope(|s| {
                for chunk in numbers.chunks_mut(100) {
                    let used = &used;
                    s.spawn(move || {
                        for n in chunk.iter_mut() {
                            *n *= 2;
                        }
                        let worker = scheduler::goroutines()
                            .iter()
                            .find_map(|g| match g.state() {
                                GoroutineState::Running { worker } => Some(worker),
                                _ => None,
                            });
                        used.lock().unwrap().extend(worker);
                    });
                }
            });
            used.into_inner().unwrap().len()
        });
        assert!(workers >= 1);
        assert!(numbers.iter().enumerate().all(|(i, n)| *n == 2 * i as u64));
    });
}

#[test]
fn a_scoped_join_returns_a_value_that_borrows_from_the_caller() {
    let rt = runtime(2);
    let text = String::from("borrowed words here");
    let longest = rt.scope(|s| {
        let handles: Vec<_> = text.split(' ').map(|word| s.spawn(move || word)).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .max_by_key(|w| w.len())
            .unwrap()
    });
    assert_eq!(longest, "borrowed");
}

#[test]
fn a_panicking_scoped_goroutine_is_re_raised_after_the_others_end() {
    watchdog("panic re-raised after the others", HANG_LIMIT, || {
        let rt = runtime(2);
        let other_ended = AtomicBool::new(false);
        let (gate_tx, gate_rx) = chan::bounded::<()>(0);
        let outcome = std::thread::scope(|threads| {
            // Opens the gate of the slow goroutine once it waits there (the other one has
            // panicked and ended; the scope's owner is this plain thread).
            threads.spawn(|| {
                settle_parked(&rt, 1, || true);
                gate_tx.send(()).unwrap();
            });
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                rt.scope(|s| {
                    s.spawn(|| {
                        gate_rx.recv().unwrap();
                        other_ended.store(true, Ordering::SeqCst);
                    });
                    s.spawn(|| panic!("first failure"));
                });
            }))
        });
        let payload = outcome.expect_err("the scope re-raises the panic");
        assert_eq!(describe_payload(&*payload), "first failure");
        assert!(
            other_ended.load(Ordering::SeqCst),
            "the scope waited for every goroutine before it re-raised"
        );
    });
}

#[test]
fn a_panic_of_the_scope_body_waits_for_its_goroutines_first() {
    watchdog("body panic waits", HANG_LIMIT, || {
        let rt = runtime(1);
        let ended = AtomicBool::new(false);
        let (gate_tx, gate_rx) = chan::bounded::<()>(0);
        let payload = std::thread::scope(|threads| {
            threads.spawn(|| {
                // The child parks on the gate; the owner (a plain thread) blocks in the scope.
                settle_parked(&rt, 1, || true);
                gate_tx.send(()).unwrap();
            });
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                rt.scope(|s| {
                    s.spawn(|| {
                        gate_rx.recv().unwrap();
                        ended.store(true, Ordering::SeqCst);
                    });
                    panic!("the body fails");
                })
            }))
            .expect_err("the body's panic comes back")
        });
        assert_eq!(describe_payload(&*payload), "the body fails");
        assert!(ended.load(Ordering::SeqCst));
    });
}

#[test]
fn cancelling_the_owner_cancels_its_scoped_goroutines_and_waits_for_them() {
    watchdog("owner cancelled", HANG_LIMIT, || {
        let rt = runtime(2);
        let drops = DropCounter::new();
        let held = drops.value(1);
        let owner = rt.spawn(move || {
            let (_tx, rx) = chan::bounded::<u32>(0);
            let local = held;
            scheduler::scope(|s| {
                s.spawn(|| {
                    let _borrowed = &local;
                    let _ = rx.recv();
                });
                // The owner waits for its child, which waits forever.
            });
        });
        settle_parked(&rt, 2, || true);
        owner.cancel();
        let payload = owner.join().expect_err("the owner was cancelled");
        assert!(payload.is::<Cancelled>(), "{}", describe_payload(&*payload));
        assert_eq!(
            drops.dropped(),
            1,
            "the owner's frame went, after its child"
        );
    });
}

#[test]
fn a_forced_shutdown_unwinds_a_scope_and_its_goroutines() {
    watchdog("forced shutdown of a scope", HANG_LIMIT, || {
        let rt = runtime(2);
        let drops = DropCounter::new();
        let (outer, inner) = (drops.value(1), drops.value(2));
        rt.spawn(move || {
            let _outer = outer;
            scheduler::scope(|s| {
                s.spawn(move || {
                    let _inner = inner;
                    let (_tx, rx) = chan::bounded::<u32>(0);
                    let _ = rx.recv();
                });
                let (_tx, rx) = chan::bounded::<u32>(0);
                let _ = rx.recv();
            });
        });
        settle_parked(&rt, 2, || true);
        let err = rt
            .shutdown_timeout(Duration::from_millis(10))
            .expect_err("both were blocked forever");
        assert_eq!(err.remaining(), 2);
        assert_eq!(drops.dropped(), 2, "both frames were unwound");
    });
}

#[test]
fn block_on_borrows_from_the_caller() {
    let rt = runtime(2);
    let mut log = Vec::new();
    let counter = AtomicUsize::new(0);
    let answer = rt.block_on(|| {
        log.push("inside");
        scheduler::scope(|s| {
            for _ in 0..10 {
                s.spawn(|| counter.fetch_add(1, Ordering::Relaxed));
            }
        });
        42
    });
    assert_eq!(answer, 42);
    assert_eq!(log, ["inside"]);
    assert_eq!(counter.load(Ordering::Relaxed), 10);
}

#[test]
fn block_on_inside_a_goroutine_borrows_too() {
    let outer = runtime(1);
    let inner = Arc::new(runtime(1));
    let total = outer.block_on(|| {
        let values = [1, 2, 3];
        inner.block_on(|| values.iter().sum::<i32>())
    });
    assert_eq!(total, 6);
}

#[test]
fn a_goroutine_blocked_in_a_scope_shows_as_a_join_in_the_dump() {
    watchdog("scope in the dump", HANG_LIMIT, || {
        let rt = runtime(1);
        let (tx, rx) = chan::bounded::<()>(0);
        let owner = rt.spawn(move || {
            scheduler::scope(|s| {
                s.spawn(|| rx.recv().unwrap());
            })
        });
        settle_parked(&rt, 2, || true);
        let owner_state = rt
            .goroutines()
            .get(owner.id())
            .map(|g| g.state())
            .expect("the owner is live");
        assert_eq!(owner_state, GoroutineState::Blocked(WaitReason::Join));
        tx.send(()).unwrap();
        owner.join().unwrap();
    });
}

#[test]
fn a_scoped_group_borrows_bounds_its_goroutines_and_stops_at_the_first_error() {
    watchdog("scoped group", HANG_LIMIT, || {
        let rt = runtime(2);
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let cancelled_seen = AtomicUsize::new(0);
        let result = rt.scope(|s| {
            let (group, ctx) = s.group_with_context(&scheduler::context::Context::background());
            group.set_limit(Some(4));
            for i in 0..30_u32 {
                let (running, peak, cancelled_seen, ctx) =
                    (&running, &peak, &cancelled_seen, ctx.clone());
                group.go(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    let outcome = if i == 10 {
                        Err(format!("task {i} failed"))
                    } else if i > 10 {
                        // The first error cancels the context; the later ones see it.
                        let _ = ctx.done().recv();
                        cancelled_seen.fetch_add(1, Ordering::SeqCst);
                        Ok(())
                    } else {
                        Ok(())
                    };
                    running.fetch_sub(1, Ordering::SeqCst);
                    outcome
                });
            }
            group.wait()
        });
        assert_eq!(result, Err("task 10 failed".to_owned()));
        assert!(
            peak.load(Ordering::SeqCst) <= 4,
            "peak {}",
            peak.load(Ordering::SeqCst)
        );
        assert_eq!(cancelled_seen.load(Ordering::SeqCst), 19);
    });
}
