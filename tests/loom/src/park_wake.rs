//! The park/wake protocol: a goroutine waiting on a [`Waiter`], its worker parking it with the
//! CAS `ACTIVE -> PARKED`, and wakers setting `NOTIFIED` or moving it out of `PARKED`; and the
//! worker's `Parker` on its own.
//!
//! What must hold: the wake is never lost (a lost one leaves the worker asleep: loom reports a
//! deadlock), and what the notifier wrote before `notify` is visible to the goroutine when its
//! wait ends (else loom reports a data race on the payload).
//!
//! Models: `goroutine.rs` and `waiter.rs` (see their docs); `sched/parker.rs` itself.

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;

use crate::block_kind::BlockKind;
use crate::check;
use crate::goroutine::{self, Goroutine, Remote, Step};
use crate::parker::Parker;
use crate::waiter::{Target, Waiter};

/// A goroutine waiting on `waiter` as every blocking call does (`Waiter::wait_until`'s
/// goroutine arm without a deadline), run by worker 0; it reads `payload` if notified.
fn wait_on(task: &Arc<Goroutine>, waiter: &std::sync::Arc<Waiter>, payload: &Arc<UnsafeCell<u32>>) {
    goroutine::run(task, || {
        if waiter.is_waiting() {
            return Step::Park;
        }
        if waiter.token() == Some(0) {
            // SAFETY: written by the notifier before `notify`; loom checks the edge.
            let value = payload.with(|p| unsafe { *p });
            assert_eq!(value, 7);
        }
        Step::Return
    });
}

/// One notifier and the worker: the notification reaches the goroutine whether it comes
/// before the goroutine checks, between its check and the park CAS, or after it parked.
#[test]
fn notify_reaches_a_goroutine_in_any_state() {
    check(|| {
        let remote = Remote::new();
        let task = Goroutine::new(&remote);
        let waiter = Waiter::new(Target::Goroutine(goroutine::waker(&task)), BlockKind::Other);
        let payload = Arc::new(UnsafeCell::new(0));

        let notifier = {
            let (waiter, payload) = (waiter.clone(), payload.clone());
            thread::spawn(move || {
                // SAFETY: the goroutine reads it only after the notification below.
                payload.with_mut(|p| unsafe { *p = 7 });
                assert!(waiter.notify(0));
            })
        };
        wait_on(&task, &waiter, &payload);
        notifier.join().unwrap();
    });
}

/// A wake meant for an earlier wait (or a cancellation) sets `NOTIFIED` first; the real
/// notification must still get through, and its payload with it. This is why a waker that
/// finds `NOTIFIED` already set still writes it (an RMW): the worker's next RMW must read
/// from the real notifier's write to acquire its payload.
#[test]
fn stale_wake_does_not_hide_a_real_one() {
    check(|| {
        let remote = Remote::new();
        let task = Goroutine::new(&remote);
        let waiter = Waiter::new(Target::Goroutine(goroutine::waker(&task)), BlockKind::Other);
        let payload = Arc::new(UnsafeCell::new(0));

        let stale = {
            let task = task.clone();
            thread::spawn(move || goroutine::unpark(&task))
        };
        let notifier = {
            let (waiter, payload) = (waiter.clone(), payload.clone());
            thread::spawn(move || {
                // SAFETY: the goroutine reads it only after the notification below.
                payload.with_mut(|p| unsafe { *p = 7 });
                assert!(waiter.notify(0));
            })
        };
        wait_on(&task, &waiter, &payload);
        stale.join().unwrap();
        notifier.join().unwrap();
    });
}

/// A timer's time-out races the notification: the wait ends exactly once, and the goroutine
/// wakes whichever wins.
#[test]
fn notify_and_time_out_end_the_wait_once() {
    check(|| {
        let remote = Remote::new();
        let task = Goroutine::new(&remote);
        let waiter = Waiter::new(Target::Goroutine(goroutine::waker(&task)), BlockKind::Other);
        let payload = Arc::new(UnsafeCell::new(0));

        let notifier = {
            let (waiter, payload) = (waiter.clone(), payload.clone());
            thread::spawn(move || {
                // SAFETY: the goroutine reads it only if the notification below wins.
                payload.with_mut(|p| unsafe { *p = 7 });
                waiter.notify(0)
            })
        };
        let timer = {
            let waiter = waiter.clone();
            thread::spawn(move || waiter.time_out())
        };
        wait_on(&task, &waiter, &payload);
        let notified = notifier.join().unwrap();
        let timed_out = timer.join().unwrap();
        assert!(notified != timed_out, "exactly one ends the wait");
        assert_eq!(waiter.token().is_some(), notified);
    });
}

/// `sched/parker.rs` alone: an unpark that comes before the park, between its CAS and its
/// sleep, or during the sleep, always ends it, and what the unparker wrote before is visible
/// after `park` returns (Release swap, Acquire CAS).
#[test]
fn parker_never_sleeps_through_an_unpark() {
    check(|| {
        let parker = Arc::new(Parker::new());
        // Relaxed on purpose: only the parker's own orderings make the store visible.
        let work = Arc::new(AtomicBool::new(false));

        let unparker = {
            let (parker, work) = (parker.clone(), work.clone());
            thread::spawn(move || {
                work.store(true, Ordering::Relaxed);
                let _ = parker.unpark();
            })
        };
        // Relaxed, as the store: the parker's Acquire is what makes it visible after a wake.
        while !work.load(Ordering::Relaxed) {
            parker.park(None, || {});
        }
        unparker.join().unwrap();
    });
}
