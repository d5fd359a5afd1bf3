//! Joins bounded by a time or a context: the handle comes back when the wait ends first, and
//! a later join still gets the result, exactly once.

use std::time::{Duration, Instant};

use scheduler::chan;
use scheduler::context::{Context, ContextError};
use scheduler_tests::{HANG_LIMIT, runtime, watchdog};

#[test]
fn a_join_that_times_out_gives_the_handle_back() {
    watchdog("join_timeout", HANG_LIMIT, || {
        let rt = runtime(2);
        let (tx, rx) = chan::bounded::<u32>(0);
        let handle = rt.spawn(move || rx.recv().unwrap() + 1);
        let start = Instant::now();
        let err = handle
            .join_timeout(Duration::from_millis(20))
            .expect_err("nobody sent");
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert!(err.to_string().contains("timed out"), "{err}");
        let handle = err.into_handle();
        tx.send(41).unwrap();
        assert_eq!(handle.join().unwrap(), 42);
    });
}

#[test]
fn a_join_with_time_to_spare_returns_the_result() {
    watchdog("join_timeout in time", HANG_LIMIT, || {
        let rt = runtime(2);
        let result = rt.block_on(|| {
            let (tx, rx) = chan::bounded::<u32>(0);
            let handle = scheduler::spawn(move || rx.recv().unwrap());
            scheduler::spawn(move || tx.send(7).unwrap());
            handle.join_timeout(HANG_LIMIT)
        });
        assert_eq!(result.expect("finished in time").unwrap(), 7);
    });
}

#[test]
fn join_ctx_ends_with_the_context_and_the_goroutine_still_runs() {
    watchdog("join_ctx", HANG_LIMIT, || {
        let rt = runtime(2);
        let (ctx, cancel) = Context::background().with_cancel();
        let (tx, rx) = chan::bounded::<u32>(0);
        let handle = rt.spawn(move || rx.recv().unwrap());
        let canceller = std::thread::spawn(move || cancel.cancel());
        let err = handle.join_ctx(&ctx).expect_err("the context ended first");
        canceller.join().unwrap();
        assert_eq!(err.error(), ContextError::Canceled);
        let handle = err.into_handle();
        tx.send(5).unwrap();
        assert_eq!(handle.join().unwrap(), 5);
    });
}

#[test]
fn join_ctx_of_an_ended_context_returns_at_once() {
    let rt = runtime(1);
    let handle = rt.spawn(|| 1);
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let err = handle.join_ctx(&ctx).expect_err("ended already");
    assert_eq!(err.into_handle().join().unwrap(), 1);
}

#[test]
fn racing_timeouts_never_lose_or_duplicate_a_result() {
    watchdog("racing join timeouts", HANG_LIMIT, || {
        let rt = runtime(2);
        for round in 0..300_u32 {
            let mut handle = rt.spawn(move || {
                for _ in 0..(round % 7) {
                    scheduler::yield_now();
                }
                round
            });
            // Tiny timeouts race with the finish; each retry announces again.
            let value = loop {
                match handle.join_timeout(Duration::from_micros(u64::from(round % 5))) {
                    Ok(result) => break result.unwrap(),
                    Err(err) => handle = err.into_handle(),
                }
            };
            assert_eq!(value, round);
        }
    });
}
