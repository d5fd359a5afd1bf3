//! What the scheduler's own files (`sched/idle.rs`, `sched/parker.rs`) import under
//! `cfg(loom)`: loom's atomics, a lock with parking_lot's API, and a model of the two
//! `parking_lot_core` calls the parker makes. Those files are compiled here unchanged.

pub(crate) use loom::sync::atomic::{AtomicU8, AtomicUsize, Ordering, fence};

/// The thread API `wait/waiter.rs` uses. Loom has no clock: a model's timed wait is made of
/// the waiter's own operations and a clock thread (`crate::clock`), so `park_timeout` is only
/// here for the real file to compile, and parks.
pub(crate) mod thread {
    pub(crate) use loom::thread::{Thread, current, park};

    pub(crate) fn park_timeout(_timeout: std::time::Duration) {
        park();
    }
}

/// `parking_lot::Mutex`'s API (a `lock` that cannot fail) over loom's mutex.
pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Mutex<T> {
        Mutex(loom::sync::Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
        self.0.lock().expect("no model panics while holding a lock")
    }
}

/// `parking_lot_core`'s `park` and `unpark_one`, as far as `sched/parker.rs` uses them.
///
/// The real crate keeps sleeping threads in a hash table of buckets, each a queue behind a
/// lock: `park` locks the key's bucket, calls `validate` under that lock and sleeps only if it
/// returned true (queued, after releasing the lock); `unpark_one` locks the same bucket,
/// dequeues the first thread parked on the key and wakes it. That bucket lock is what makes
/// "validate, then sleep" atomic with respect to an unpark, and it is what this model keeps:
/// one bucket for every key, a loom mutex, and a condvar to sleep on.
// The types keep the real API's shape; the parker never reads some of their parts.
#[allow(dead_code)]
pub(crate) mod parking_lot_core {
    use std::time::Instant;

    use loom::sync::{Condvar, Mutex};

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) struct ParkToken(pub(crate) usize);

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) struct UnparkToken(pub(crate) usize);

    pub(crate) const DEFAULT_PARK_TOKEN: ParkToken = ParkToken(0);
    pub(crate) const DEFAULT_UNPARK_TOKEN: UnparkToken = UnparkToken(0);

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum ParkResult {
        Unparked(UnparkToken),
        Invalid,
        TimedOut,
    }

    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub(crate) struct UnparkResult {
        pub(crate) unparked_threads: usize,
    }

    /// The one bucket: the keys of the threads asleep in it, each with a ticket.
    struct Bucket {
        queue: Mutex<Queue>,
        woken: Condvar,
    }

    #[derive(Default)]
    struct Queue {
        sleepers: Vec<(usize, u64)>,
        next_ticket: u64,
    }

    loom::lazy_static! {
        static ref BUCKET: Bucket = Bucket {
            queue: Mutex::new(Queue::default()),
            woken: Condvar::new(),
        };
    }

    /// Sleeps on `key` if `validate`, called under the bucket lock, returns true.
    ///
    /// # Safety
    /// None needed by the model; `unsafe` only to keep the real function's signature.
    pub(crate) unsafe fn park(
        key: usize,
        validate: impl FnOnce() -> bool,
        before_sleep: impl FnOnce(),
        _timed_out: impl FnOnce(usize, bool),
        _park_token: ParkToken,
        timeout: Option<Instant>,
    ) -> ParkResult {
        // Loom has no clock: the models park without a deadline.
        assert!(timeout.is_none(), "the models park without a deadline");
        let mut queue = BUCKET.queue.lock().unwrap();
        if !validate() {
            return ParkResult::Invalid;
        }
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        queue.sleepers.push((key, ticket));
        // The real call runs this after releasing the bucket lock; the parker passes a no-op.
        before_sleep();
        while queue.sleepers.iter().any(|&(_, t)| t == ticket) {
            queue = BUCKET.woken.wait(queue).unwrap();
        }
        ParkResult::Unparked(DEFAULT_UNPARK_TOKEN)
    }

    /// Wakes the first thread asleep on `key`, if any.
    ///
    /// # Safety
    /// As for [`park`].
    pub(crate) unsafe fn unpark_one(
        key: usize,
        callback: impl FnOnce(UnparkResult) -> UnparkToken,
    ) -> UnparkResult {
        let mut queue = BUCKET.queue.lock().unwrap();
        let result = match queue.sleepers.iter().position(|&(k, _)| k == key) {
            Some(pos) => {
                queue.sleepers.remove(pos);
                BUCKET.woken.notify_all();
                UnparkResult {
                    unparked_threads: 1,
                }
            }
            None => UnparkResult::default(),
        };
        callback(result);
        result
    }
}
