//! One blocked party, goroutine or plain thread, and how to wake it.
//!
//! Every blocking primitive follows the same pattern: make a [`Waiter`] for the current
//! context (`crate::sched::wait`), register it under the primitive's lock after checking the
//! condition there, then wait on it. Whoever makes the condition true takes waiters out under the same lock and
//! calls [`Waiter::notify`]. A wait ends exactly once, with a notification or a time-out,
//! decided by one CAS on `state`; so a notifier learns whether its notification was taken (and
//! can pass a permit or a value to the next waiter if not), and a spurious wakeup of the
//! goroutine or thread (a stale wake meant for an earlier wait, `std::thread::park`'s own) is
//! just another turn of the wait loop.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

// The model checker (`tests/loom`) compiles this file unchanged with loom's atomics and
// threads: it imports nothing else of the crate but `BlockKind`.
#[cfg(loom)]
use crate::shim::{
    AtomicUsize, Ordering,
    thread::{self, Thread},
};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicUsize, Ordering};
#[cfg(not(loom))]
use std::thread::{self, Thread};

use super::block_kind::BlockKind;

/// `state` while the wait is open.
const WAITING: usize = 0;
/// `state` after the deadline passed first.
const TIMED_OUT: usize = 1;
/// `state` after `notify(token)`: `NOTIFIED + token`.
const NOTIFIED: usize = 2;

/// A goroutine as the kernel sees it: something a notification makes runnable again.
/// Implemented by the scheduler for its goroutines (`crate::sched::wake`); the kernel never
/// needs to know more of them.
pub(crate) trait Wake: Send + Sync {
    /// Makes the goroutine runnable if it is parked, or has its next park return at once.
    fn wake(self: Arc<Self>);
}

/// Who waits: a goroutine, woken through its scheduler, or a plain thread, unparked.
pub(crate) enum Target {
    Goroutine(Arc<dyn Wake>),
    Thread(Thread),
}

/// A goroutine or thread blocked until [`notify`](Waiter::notify) is called or a deadline
/// passes, whichever comes first.
///
/// The kernel holds the protocol: one CAS ends the wait, and the loser learns it lost. How a
/// goroutine parks while it waits belongs to the scheduler (`crate::sched::wait`); a thread's
/// wait is here ([`wait_thread_until`](Self::wait_thread_until)).
pub(crate) struct Waiter {
    /// `WAITING`, `TIMED_OUT` or `NOTIFIED + token`; leaves `WAITING` once, by CAS. AcqRel on
    /// the CAS and Acquire on the waiter's loads: what a notifier wrote before notifying is
    /// visible to the waiter when it sees the notification.
    state: AtomicUsize,
    target: Target,
    /// What a goroutine waiting here counts as blocked on while parked (see
    /// [`BlockKind`]). Fixed at creation.
    kind: BlockKind,
}

impl Waiter {
    /// A waiter for `target`, counted as blocked on `kind` while a goroutine target is parked.
    pub(crate) fn new(target: Target, kind: BlockKind) -> Arc<Waiter> {
        Arc::new(Waiter {
            state: AtomicUsize::new(WAITING),
            target,
            kind,
        })
    }

    /// A waiter for the calling thread (which must be no goroutine that will park: see
    /// `crate::sched::wait` for the waiter of "whoever calls").
    pub(crate) fn for_thread(kind: BlockKind) -> Arc<Waiter> {
        Waiter::new(Target::Thread(thread::current()), kind)
    }

    /// What a goroutine parked on this waiter counts as blocked on.
    pub(crate) fn kind(&self) -> BlockKind {
        self.kind
    }

    /// Whether a goroutine waits here (else a thread).
    pub(crate) fn is_goroutine(&self) -> bool {
        matches!(self.target, Target::Goroutine(_))
    }

    /// Ends the wait with `token` (a `select` arm's index; 0 elsewhere) and wakes the waiter.
    /// Returns false, doing nothing, if the wait had already ended.
    pub(crate) fn notify(&self, token: usize) -> bool {
        let ended = self
            .state
            .compare_exchange(
                WAITING,
                NOTIFIED + token,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok();
        if ended {
            self.unpark();
        }
        ended
    }

    /// Ends the wait as timed out (a timer fired). Returns false if it had already ended.
    pub(crate) fn time_out(&self) -> bool {
        let ended = self.try_time_out();
        if ended {
            self.unpark();
        }
        ended
    }

    /// Ends the wait as timed out without waking anyone: for the waiter itself (its deadline
    /// passed, it is cancelled, it unwinds). Returns false if it had already ended.
    pub(crate) fn try_time_out(&self) -> bool {
        self.state
            .compare_exchange(WAITING, TIMED_OUT, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn unpark(&self) {
        match &self.target {
            Target::Goroutine(goroutine) => goroutine.clone().wake(),
            Target::Thread(thread) => {
                // The model checker's build (`tests/loom`) has no census of threads.
                #[cfg(not(loom))]
                super::census::note_wake();
                thread.unpark();
            }
        }
    }

    /// Whether the wait is still open (not notified, not timed out).
    pub(crate) fn is_waiting(&self) -> bool {
        self.state.load(Ordering::Acquire) == WAITING
    }

    /// The token of the notification that ended the wait, if one did.
    pub(crate) fn token(&self) -> Option<usize> {
        self.state.load(Ordering::Acquire).checked_sub(NOTIFIED)
    }

    /// Blocks the calling thread, the one this waiter was made for, until notified (returning
    /// the token) or until `deadline` (returning `None`). A deadline in the past still checks
    /// for a notification that already arrived.
    pub(crate) fn wait_thread_until(&self, deadline: Option<Instant>) -> Option<usize> {
        debug_assert!(!self.is_goroutine(), "a goroutine's wait parks it instead");
        // Only a wake ends a wait with no deadline: deadlock detection may count this thread
        // as asleep meanwhile.
        #[cfg(not(loom))]
        let _waiting = deadline.is_none().then(super::census::waiting);
        while self.is_waiting() {
            match deadline {
                None => thread::park(),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        // Either we time out here, or a notification won the race.
                        self.try_time_out();
                        break;
                    }
                    thread::park_timeout(deadline - now);
                }
            }
        }
        self.token()
    }
}

/// Ends a goroutine's wait as timed out if the goroutine unwinds out of it: held across the
/// scheduler's park loop.
pub(crate) struct EndOnUnwind<'a>(pub(crate) &'a Waiter);

impl Drop for EndOnUnwind<'_> {
    fn drop(&mut self) {
        self.0.try_time_out();
    }
}

/// Waiters queued on a primitive, in arrival order, each with the token to end its wait with.
/// Kept under the primitive's lock.
#[derive(Default)]
pub(crate) struct WaiterQueue {
    entries: VecDeque<(Arc<Waiter>, usize)>,
}

impl WaiterQueue {
    pub(crate) const fn new() -> WaiterQueue {
        WaiterQueue {
            entries: VecDeque::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn push(&mut self, waiter: &Arc<Waiter>, token: usize) {
        self.entries.push_back((waiter.clone(), token));
    }

    /// Removes `waiter`'s entry if it is still queued (its wait ended otherwise).
    pub(crate) fn withdraw(&mut self, waiter: &Arc<Waiter>) {
        if let Some(pos) = self
            .entries
            .iter()
            .position(|(w, _)| Arc::ptr_eq(w, waiter))
        {
            self.entries.remove(pos);
        }
    }

    /// Ends the wait of the first waiter still waiting, skipping (and dropping) those whose
    /// wait ended otherwise. Returns false if nobody was left to notify.
    pub(crate) fn notify_first(&mut self) -> bool {
        while let Some((waiter, token)) = self.entries.pop_front() {
            if waiter.notify(token) {
                return true;
            }
        }
        false
    }

    /// Takes the first entry out, keeping the queue's buffer (for the next waiter).
    #[cfg_attr(loom, allow(dead_code))] // only the I/O registrations use it; not modelled
    pub(crate) fn pop_first(&mut self) -> Option<(Arc<Waiter>, usize)> {
        self.entries.pop_front()
    }

    /// Takes every entry out, to notify them after the primitive's lock is released.
    pub(crate) fn take_all(&mut self) -> WaiterQueue {
        std::mem::take(self)
    }

    /// Ends every queued wait.
    pub(crate) fn notify_all(self) {
        for (waiter, token) in self.entries {
            waiter.notify(token);
        }
    }
}

/// On plain threads only (no runtime), so that Miri can run them.
#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::testing::{ROUNDS, Unsynced};
    use std::sync::{Barrier, mpsc};
    use std::time::Duration;

    #[test]
    fn notify_and_time_out_race_ends_the_wait_once() {
        let (mut notified, mut timed_out) = (0, 0);
        for _ in 0..ROUNDS {
            let waiter = Waiter::for_thread(BlockKind::Other);
            let start = Barrier::new(2);
            let (by_notify, by_time_out) = thread::scope(|s| {
                let notifier = s.spawn(|| {
                    start.wait();
                    waiter.notify(5)
                });
                start.wait();
                let by_time_out = waiter.time_out();
                (notifier.join().unwrap(), by_time_out)
            });
            assert!(
                by_notify != by_time_out,
                "exactly one of them ends the wait"
            );
            assert!(!waiter.is_waiting());
            if by_notify {
                assert_eq!(waiter.token(), Some(5));
                notified += 1;
            } else {
                assert_eq!(waiter.token(), None);
                timed_out += 1;
            }
            // A later attempt of either kind finds the wait ended.
            assert!(!waiter.notify(6) && !waiter.time_out());
        }
        assert_eq!(notified + timed_out, ROUNDS);
    }

    #[test]
    fn wait_until_a_deadline_times_out() {
        let waiter = Waiter::for_thread(BlockKind::Other);
        let deadline = Instant::now() + Duration::from_millis(10);
        assert_eq!(waiter.wait_thread_until(Some(deadline)), None);
        assert!(Instant::now() >= deadline);
        assert!(!waiter.is_waiting());
        assert!(
            !waiter.notify(1),
            "a notification after the time-out is refused"
        );
    }

    #[test]
    fn wait_until_a_past_deadline_still_sees_a_notification() {
        let waiter = Waiter::for_thread(BlockKind::Other);
        assert!(waiter.notify(3));
        assert_eq!(waiter.wait_thread_until(Some(Instant::now())), Some(3));
    }

    #[test]
    fn notify_wakes_a_thread_blocked_in_wait() {
        for round in 0..ROUNDS {
            let data = Unsynced::new(0);
            let (tx, rx) = mpsc::channel();
            thread::scope(|s| {
                let blocked = s.spawn(|| {
                    let waiter = Waiter::for_thread(BlockKind::Other);
                    tx.send(waiter.clone()).unwrap();
                    // Odd rounds: the notification comes before the wait.
                    if round % 2 == 1 {
                        thread::sleep(Duration::from_millis(1));
                    }
                    let token = waiter.wait_thread_until(None).unwrap();
                    // SAFETY: written before the notification, which `wait` acquired.
                    (token, unsafe { data.get() })
                });
                let waiter = rx.recv().unwrap();
                // Even rounds: the other thread blocks first.
                if round % 2 == 0 {
                    thread::sleep(Duration::from_millis(1));
                }
                // SAFETY: the waiting thread reads it only after the notification below.
                unsafe { data.set(round + 1) };
                assert!(waiter.notify(2));
                assert_eq!(blocked.join().unwrap(), (2, round + 1));
            });
        }
    }

    #[test]
    fn notify_first_skips_waits_that_ended() {
        let waiters: Vec<_> = (0..3)
            .map(|_| Waiter::for_thread(BlockKind::Other))
            .collect();
        let mut queue = WaiterQueue::new();
        for (token, waiter) in waiters.iter().enumerate() {
            queue.push(waiter, token + 10);
        }
        assert!(waiters[0].time_out());
        assert!(queue.notify_first(), "skips the timed-out waiter");
        assert_eq!(waiters[0].token(), None);
        assert_eq!(waiters[1].token(), Some(11));
        assert!(waiters[2].is_waiting());
        queue.withdraw(&waiters[2]);
        assert!(queue.is_empty());
        assert!(!queue.notify_first(), "nobody is left");
        assert!(
            waiters[2].is_waiting(),
            "a withdrawn waiter is not notified"
        );
    }

    #[test]
    fn withdraw_removes_only_that_waiter() {
        let (a, b) = (
            Waiter::for_thread(BlockKind::Other),
            Waiter::for_thread(BlockKind::Other),
        );
        let mut queue = WaiterQueue::new();
        queue.push(&a, 0);
        queue.push(&b, 1);
        queue.withdraw(&a);
        queue.withdraw(&a); // no longer queued: nothing happens
        assert!(queue.notify_first());
        assert_eq!((a.token(), b.token()), (None, Some(1)));
        assert!(queue.is_empty());
    }

    #[test]
    fn take_all_then_notify_all_ends_every_wait() {
        let waiters: Vec<_> = (0..3)
            .map(|_| Waiter::for_thread(BlockKind::Other))
            .collect();
        let mut queue = WaiterQueue::new();
        for (token, waiter) in waiters.iter().enumerate() {
            queue.push(waiter, token);
        }
        assert!(waiters[1].time_out());
        let taken = queue.take_all();
        assert!(queue.is_empty() && !taken.is_empty());
        taken.notify_all();
        let tokens: Vec<_> = waiters.iter().map(|w| w.token()).collect();
        assert_eq!(tokens, [Some(0), None, Some(2)]);
    }

    #[test]
    fn queued_threads_are_each_woken_once() {
        const THREADS: usize = 3;
        let queue = parking_lot::Mutex::new(WaiterQueue::new());
        let woken = std::sync::atomic::AtomicUsize::new(0);
        thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    let waiter = Waiter::for_thread(BlockKind::Other);
                    queue.lock().push(&waiter, 0);
                    waiter.wait_thread_until(None);
                    woken.fetch_add(1, Ordering::Relaxed);
                });
            }
            // Notify as the waiters arrive: each notification must reach a distinct one.
            let mut notified = 0;
            while notified < THREADS {
                if queue.lock().notify_first() {
                    notified += 1;
                } else {
                    thread::yield_now();
                }
            }
            assert!(queue.lock().is_empty());
        });
        assert_eq!(woken.load(Ordering::Relaxed), THREADS);
    }
}
