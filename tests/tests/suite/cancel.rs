//! `JoinHandle::cancel`: a goroutine unwinds with `Cancelled` at its next suspension point,
//! its destructors run, and its `join` returns `Err` with a payload that is not a panic's.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use scheduler::{Cancelled, JoinHandle, chan};
use scheduler_tests::{DropCounter, HANG_LIMIT, runtime, settle_parked, watchdog};

/// Joins `handle` and asserts that it was cancelled (not panicked, not finished).
fn assert_cancelled<T: std::fmt::Debug>(handle: JoinHandle<T>) {
    match handle.join() {
        Err(payload) => assert!(
            payload.is::<Cancelled>(),
            "unwound by something else: {}",
            scheduler_tests::describe_payload(&*payload)
        ),
        Ok(value) => panic!("it finished with {value:?} instead"),
    }
}

#[test]
fn a_goroutine_parked_in_recv_unwinds_and_drops_what_it_holds() {
    watchdog("cancel in recv", HANG_LIMIT, || {
        let rt = runtime(2);
        let drops = DropCounter::new();
        let (_tx, rx) = chan::bounded::<u32>(0);
        let held = drops.value(1);
        let handle = rt.spawn(move || {
            let _held = held;
            rx.recv()
        });
        settle_parked(&rt, 1, || true);
        handle.cancel();
        assert_cancelled(handle);
        assert_eq!(drops.dropped(), 1, "its destructors ran");
    });
}

#[test]
fn a_goroutine_parked_in_sleep_unwinds_long_before_it_would_wake() {
    watchdog("cancel in sleep", HANG_LIMIT, || {
        let rt = runtime(1);
        let handle = rt.spawn(|| scheduler::sleep(Duration::from_secs(3600)));
        settle_parked(&rt, 1, || true);
        handle.cancel();
        assert_cancelled(handle);
    });
}

#[test]
fn a_goroutine_that_has_not_started_never_runs() {
    watchdog("cancel before start", HANG_LIMIT, || {
        let rt = runtime(1);
        let ran = Arc::new(AtomicBool::new(false));
        let outcome = rt.block_on({
            let ran = ran.clone();
            move || {
                // Queued behind this goroutine on the only worker: it cannot start before we
                // park.
                let handle = scheduler::spawn(move || ran.store(true, Ordering::SeqCst));
                handle.cancel();
                handle.join().map_err(|payload| payload.is::<Cancelled>())
            }
        });
        assert_eq!(outcome, Err(true));
        assert!(!ran.load(Ordering::SeqCst), "a cancelled goroutine ran");
    });
}

#[test]
fn a_goroutine_in_a_checkpointing_loop_unwinds_at_its_next_yield() {
    watchdog("cancel a busy loop", HANG_LIMIT, || {
        let rt = runtime(2);
        let (started_tx, started_rx) = chan::bounded::<()>(1);
        let handle = rt.spawn(move || {
            started_tx.send(()).unwrap();
            loop {
                scheduler::yield_now();
            }
        });
        started_rx.recv().unwrap();
        handle.cancel();
        assert_cancelled(handle);
    });
}

#[test]
fn a_finished_goroutine_keeps_its_result() {
    let rt = runtime(1);
    let handle = rt.spawn(|| 42);
    while !handle.is_finished() {
        std::thread::yield_now();
    }
    handle.cancel();
    assert_eq!(handle.join().unwrap(), 42);
}

#[test]
fn a_goroutine_cancelled_after_a_receive_unwinds_at_its_next_wait() {
    watchdog("cancel after a receive", HANG_LIMIT, || {
        let rt = runtime(1);
        // A goroutine receives a value, hands it on, and blocks again: the cancellation
        // unwinds it at the second wait.
        let (tx, rx) = chan::bounded::<u32>(1);
        let (got_tx, got_rx) = chan::bounded::<u32>(1);
        let handle = rt.spawn(move || {
            let first = rx.recv().unwrap();
            got_tx.send(first).unwrap();
            rx.recv()
        });
        tx.send(7).unwrap();
        assert_eq!(got_rx.recv().unwrap(), 7);
        settle_parked(&rt, 1, || true);
        handle.cancel();
        assert_cancelled(handle);
    });
}
