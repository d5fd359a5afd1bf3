//! Contexts beyond cancellation: `CancelHandle` clones, values under typed keys (Go's
//! `context.WithValue`) inherited and shadowed, and `after_func` (Go's `context.AfterFunc`),
//! from goroutines and from plain threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use scheduler::context::{Context, ContextError, Key};
use scheduler_tests::{
    DropCounter, HANG_LIMIT, PROMPT_LIMIT, SPIN_LIMIT, runtime, spin_until, watchdog,
};

static REQUEST_ID: Key<u64> = Key::new("request id");
static USER: Key<String> = Key::new("user");
/// Same name and type as `REQUEST_ID`, yet another key.
static OTHER_ID: Key<u64> = Key::new("request id");
/// Same name as `REQUEST_ID`, another type.
static ID_TEXT: Key<&'static str> = Key::new("request id");

#[test]
fn cancel_handle_clones_cancel_through_any_and_on_the_last_drop() {
    let (ctx, handle) = Context::background().with_cancel();
    let clone = handle.clone();
    drop(handle);
    assert_eq!(ctx.err(), None, "a clone is left: still alive");
    let second = clone.clone();
    second.cancel();
    assert_eq!(
        ctx.err(),
        Some(ContextError::Canceled),
        "cancel through a clone"
    );
    drop((clone, second));

    let (ctx, handle) = Context::background().with_cancel();
    let clones: Vec<_> = (0..3).map(|_| handle.clone()).collect();
    drop(handle);
    let mut clones = clones.into_iter();
    let last = clones.next().unwrap();
    drop(clones);
    assert_eq!(ctx.err(), None);
    // The last clone dropped from another thread.
    thread::spawn(move || drop(last)).join().unwrap();
    assert_eq!(ctx.err(), Some(ContextError::Canceled));
}

#[test]
fn cancel_handle_clone_in_a_goroutine_cancels_a_waiter() {
    watchdog("clone cancels", HANG_LIMIT, || {
        runtime(2).block_on(|| {
            let (ctx, handle) = Context::background().with_cancel();
            let clone = handle.clone();
            let waiter = scheduler::spawn(move || scheduler::time::sleep_ctx(HANG_LIMIT, &ctx));
            scheduler::spawn(move || clone.cancel()).join().unwrap();
            assert_eq!(waiter.join().unwrap(), Err(ContextError::Canceled));
            drop(handle);
        });
    });
}

#[test]
fn values_are_found_through_children_and_shadowed_by_nearer_ones() {
    let root = Context::background();
    assert_eq!(root.value(&REQUEST_ID), None, "absent key");
    let a = root.with_value(&REQUEST_ID, 1);
    let (b, _cancel_b) = a.with_cancel();
    let (c, _cancel_c) = b.with_timeout(HANG_LIMIT);
    let d = c.with_value(&USER, "ana".to_owned());
    assert_eq!(
        d.value(&REQUEST_ID),
        Some(&1),
        "inherited through two scopes"
    );
    assert_eq!(d.value(&USER).map(String::as_str), Some("ana"));
    assert_eq!(c.value(&USER), None, "a parent never sees a child's value");

    let e = d.with_value(&REQUEST_ID, 2);
    assert_eq!(e.value(&REQUEST_ID), Some(&2), "the nearest value wins");
    assert_eq!(
        d.value(&REQUEST_ID),
        Some(&1),
        "shadowing changes nothing above"
    );
    assert_eq!(e.value(&USER).map(String::as_str), Some("ana"));

    // A value context shares its parent's scope: it ends with it.
    drop(_cancel_b);
    assert_eq!(e.err(), Some(ContextError::Canceled));
    assert_eq!(
        e.value(&REQUEST_ID),
        Some(&2),
        "values outlive the scope's end"
    );
}

#[test]
fn keys_of_the_same_name_or_type_are_never_confused() {
    let ctx = Context::background()
        .with_value(&REQUEST_ID, 7)
        .with_value(&ID_TEXT, "seven");
    assert_eq!(ctx.value(&REQUEST_ID), Some(&7));
    assert_eq!(ctx.value(&ID_TEXT), Some(&"seven"));
    assert_eq!(
        ctx.value(&OTHER_ID),
        None,
        "same name and type, another key"
    );
    let ctx = ctx.with_value(&OTHER_ID, 8);
    assert_eq!(
        (ctx.value(&REQUEST_ID), ctx.value(&OTHER_ID)),
        (Some(&7), Some(&8))
    );
    let shown = format!("{ctx:?}");
    assert!(shown.contains("request id"), "{shown}");
}

#[test]
fn values_travel_into_goroutines_and_threads() {
    watchdog("values in goroutines", HANG_LIMIT, || {
        let ctx = Context::background().with_value(&REQUEST_ID, 99);
        let in_thread = ctx.clone();
        let from_thread = thread::spawn(move || in_thread.value(&REQUEST_ID).copied())
            .join()
            .unwrap();
        assert_eq!(from_thread, Some(99));
        let from_goroutine = runtime(2).block_on(move || {
            let (child, _cancel) = ctx.with_cancel();
            scheduler::spawn(move || child.with_value(&USER, "bo".into()))
                .join()
                .map(|c| (c.value(&REQUEST_ID).copied(), c.value(&USER).cloned()))
                .unwrap()
        });
        assert_eq!(from_goroutine, (Some(99), Some("bo".to_owned())));
    });
}

#[test]
fn after_func_runs_once_after_cancel_in_a_goroutine() {
    watchdog("after_func", HANG_LIMIT, || {
        runtime(2).block_on(|| {
            let (ctx, cancel) = Context::background().with_cancel();
            let runs = Arc::new(AtomicUsize::new(0));
            let (tx, rx) = scheduler::chan::unbounded();
            let r = runs.clone();
            let handle = ctx.after_func(move || {
                r.fetch_add(1, Ordering::SeqCst);
                // A goroutine of the runtime: it may spawn.
                let id = scheduler::spawn(|| 5).join().unwrap();
                tx.send(id).unwrap();
            });
            assert_eq!(runs.load(Ordering::SeqCst), 0, "not before the end");
            cancel.cancel();
            cancel.cancel();
            drop(cancel);
            assert_eq!(rx.recv_timeout(PROMPT_LIMIT), Ok(5));
            assert!(rx.recv().is_err(), "the function, and its sender, are gone");
            assert_eq!(runs.load(Ordering::SeqCst), 1, "ran exactly once");
            assert!(!handle.stop(), "it had started");
        });
    });
}

#[test]
fn after_func_stopped_in_time_never_runs() {
    let drops = DropCounter::new();
    let (ctx, cancel) = Context::background().with_cancel();
    let runs = Arc::new(AtomicUsize::new(0));
    let (r, token) = (runs.clone(), drops.value(0));
    let handle = ctx.after_func(move || {
        let _token = token;
        r.fetch_add(1, Ordering::SeqCst);
    });
    assert!(handle.stop());
    assert!(!handle.stop(), "stopped already");
    assert_eq!(
        drops.dropped(),
        1,
        "the function was dropped without running"
    );
    cancel.cancel();
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}

#[test]
fn after_func_on_an_ended_context_runs_at_once_and_from_a_thread() {
    watchdog("after_func outside a runtime", HANG_LIMIT, || {
        // Registered outside a runtime: it runs on a thread of its own.
        let (ctx, cancel) = Context::background().with_cancel();
        let (tx, rx) = mpsc::channel();
        let first = tx.clone();
        ctx.after_func(move || first.send("after cancel").unwrap());
        drop(cancel); // dropping the handle ends the context too
        assert_eq!(rx.recv_timeout(PROMPT_LIMIT), Ok("after cancel"));
        ctx.after_func(move || tx.send("already ended").unwrap());
        assert_eq!(rx.recv_timeout(PROMPT_LIMIT), Ok("already ended"));

        // A deadline ends it as well, with no handle used.
        let (ctx, _keep) = Context::background().with_timeout(Duration::from_millis(10));
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        ctx.after_func(move || {
            r.fetch_add(1, Ordering::SeqCst);
        });
        spin_until("the deadline's after_func runs", SPIN_LIMIT, || {
            ran.load(Ordering::SeqCst) == 1
        });
        assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
    });
}
