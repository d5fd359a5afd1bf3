//! Go's `sync.WaitGroup`: wait for a collection of goroutines to finish.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::waiter::Waiter;
use crate::JoinHandle;

/// A counter of outstanding work that goroutines and threads can wait on reaching zero.
///
/// [`add`](Self::add) raises the counter, [`done`](Self::done) lowers it by one, and
/// [`wait`](Self::wait) blocks until it is zero. Clones share one counter. Everything done
/// before a `done` happens-before the `wait` that it releases returns.
///
/// `wait` parks only the calling goroutine inside a runtime, and blocks the thread elsewhere,
/// so a plain thread can wait for goroutines (and the other way round). A `WaitGroup` may be
/// reused once its `wait`s have returned.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
/// let hits = Arc::new(AtomicUsize::new(0));
/// let wg = scheduler::WaitGroup::new();
/// for _ in 0..100 {
///     let hits = hits.clone();
///     wg.add(1);
///     let wg = wg.clone();
///     rt.spawn(move || {
///         hits.fetch_add(1, Ordering::Relaxed);
///         wg.done();
///     });
/// }
/// wg.wait(); // a plain thread waiting for goroutines
/// assert_eq!(hits.load(Ordering::Relaxed), 100);
/// ```
///
/// # Panics
///
/// [`done`](Self::done) panics with `scheduler: negative WaitGroup counter` when the counter
/// is already zero, as Go does.
#[derive(Clone, Default)]
pub struct WaitGroup {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Outstanding work. `done` decrements with AcqRel (Release: the worker's effects reach the
    /// waiter); waiters read it with Acquire.
    count: AtomicUsize,
    /// Blocked waiters, woken all at once when the count reaches zero. A waiter checks the
    /// count under this lock before it registers, and `done` takes this lock after the count
    /// reached zero, so no waiter can register after the final `done` looked.
    waiters: Mutex<Vec<Arc<Waiter>>>,
}

impl WaitGroup {
    /// A new group with a counter of zero.
    pub fn new() -> WaitGroup {
        WaitGroup::default()
    }

    /// Adds `n` to the counter.
    ///
    /// # Panics
    ///
    /// If the counter would overflow `usize`.
    pub fn add(&self, n: usize) {
        let prev = self.inner.count.fetch_add(n, Ordering::Relaxed);
        if prev.checked_add(n).is_none() {
            self.inner.count.fetch_sub(n, Ordering::Relaxed);
            panic!("scheduler: WaitGroup counter overflow");
        }
    }

    /// Subtracts one from the counter; at zero, wakes every waiter.
    ///
    /// # Panics
    ///
    /// `scheduler: negative WaitGroup counter` if the counter is zero (more `done`s than
    /// `add`s); the counter stays at zero.
    pub fn done(&self) {
        let prev = self
            .inner
            .count
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |c| c.checked_sub(1));
        match prev {
            Err(_) => panic!("scheduler: negative WaitGroup counter"),
            Ok(1) => {
                let waiters = std::mem::take(&mut *self.inner.waiters.lock());
                for waiter in waiters {
                    waiter.notify(0);
                }
            }
            Ok(_) => {}
        }
    }

    /// Blocks until the counter is zero. Returns at once if it is zero already.
    pub fn wait(&self) {
        if self.count() == 0 {
            return;
        }
        let waiter = Waiter::for_current();
        {
            let mut waiters = self.inner.waiters.lock();
            if self.count() == 0 {
                return;
            }
            waiters.push(waiter.clone());
        }
        waiter.wait();
    }

    /// The current counter. Only a snapshot: other goroutines may change it at any time.
    pub fn count(&self) -> usize {
        self.inner.count.load(Ordering::Acquire)
    }

    /// Go's `wg.Go(f)`: adds one, spawns `f` as a goroutine, and calls `done` when `f` returns
    /// or panics.
    ///
    /// # Panics
    ///
    /// Outside a runtime, like [`spawn`](crate::spawn).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
    /// rt.block_on(|| {
    ///     let wg = scheduler::WaitGroup::new();
    ///     for i in 0..10 {
    ///         wg.go(move || i * 2);
    ///     }
    ///     wg.wait();
    ///     assert_eq!(wg.count(), 0);
    /// });
    /// ```
    pub fn go<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let shared = crate::runtime::current_shared("WaitGroup::go");
        self.add(1);
        let guard = DoneOnDrop(self.clone());
        shared.spawn(move || {
            let _guard = guard;
            f()
        })
    }
}

/// Calls `done` when dropped, so a panicking goroutine still counts as done.
struct DoneOnDrop(WaitGroup);

impl Drop for DoneOnDrop {
    fn drop(&mut self) {
        self.0.done();
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroup")
            .field("count", &self.count())
            .finish()
    }
}
