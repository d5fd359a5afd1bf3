//! Go's `sync.WaitGroup`: wait for a collection of goroutines to finish.

use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::context::{Context, ContextError};
use crate::goroutine::task::Origin;
use crate::sched::join_handle::JoinHandle;
use crate::sched::spawn_error::spawned_or_panic;
use crate::select::{Mode, SelectWaiter, Selectable, sealed, select_as};
use crate::wait::BlockKind;
use crate::wait::census;
use crate::wait::lock::{Locked, RawLock};
use crate::wait::waiter::{Waiter, WaiterQueue};

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
    /// Outstanding work. `done` decrements with Release (its caller's effects reach the
    /// waiter, which reads the count with Acquire); the decrement to zero happens under the
    /// `waiters` lock.
    count: AtomicUsize,
    /// Blocked waiters with their tokens, woken all at once when the count reaches zero. A
    /// waiter checks the count under this lock before it registers, and `done` takes this lock
    /// after the count reached zero, so no waiter can register after the final `done` looked.
    waiters: Locked<WaiterQueue>,
}

impl WaitGroup {
    /// A new group with a counter of zero.
    pub fn new() -> WaitGroup {
        census::note_use();
        WaitGroup::default()
    }

    /// Adds `n` to the counter.
    ///
    /// # Panics
    ///
    /// If the counter would overflow `usize`.
    #[track_caller]
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
    #[track_caller]
    pub fn done(&self) {
        if !self.try_done() {
            panic!("{NEGATIVE}");
        }
    }

    /// [`done`](Self::done), returning false instead of panicking when the counter is zero.
    fn try_done(&self) -> bool {
        // Above one, nobody can be released: a lock-free decrement. Reaching zero and taking
        // the waiters happen in one critical section, so a waiter that returns early (it saw
        // zero) and registers again after a new `add` is not released by this `done`.
        let above_one = self
            .inner
            .count
            .fetch_update(Ordering::Release, Ordering::Relaxed, |c| {
                (c > 1).then(|| c - 1)
            })
            .is_ok();
        if above_one {
            return true;
        }
        let waiters = {
            let mut waiters = self.inner.waiters.lock();
            let released =
                self.inner
                    .count
                    .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |c| c.checked_sub(1));
            match released {
                Err(_) => None,
                Ok(1) => Some(waiters.take_all()),
                Ok(_) => Some(WaiterQueue::new()),
            }
        };
        let Some(waiters) = waiters else {
            return false;
        };
        waiters.notify_all();
        true
    }

    /// Blocks until the counter is zero. Returns at once if it is zero already.
    #[track_caller]
    pub fn wait(&self) {
        if self.count() != 0 {
            let mut wait = WaitOp::new(self);
            let (mode, kind) = (Mode::Block, BlockKind::WaitGroup);
            crate::select::select_one(&mut wait, mode, kind, Location::caller());
        }
    }

    /// Blocks until the counter is zero or `ctx` ends.
    ///
    /// # Errors
    ///
    /// The context's error if it ended first (or had ended already).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use scheduler::context::{Context, ContextError};
    ///
    /// let wg = scheduler::WaitGroup::new();
    /// wg.add(1); // never done
    /// let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(10));
    /// assert_eq!(wg.wait_ctx(&ctx), Err(ContextError::DeadlineExceeded));
    /// ```
    #[track_caller]
    pub fn wait_ctx(&self, ctx: &Context) -> Result<(), ContextError> {
        if let Some(err) = ctx.err() {
            return Err(err);
        }
        let done = ctx.done();
        let mut wait = WaitOp::new(self);
        let mut cancelled = crate::chan::RecvOp::new(&done);
        match select_as(
            &mut [&mut wait, &mut cancelled],
            Mode::Block,
            BlockKind::WaitGroup,
            Location::caller(),
        ) {
            Some(0) => Ok(()),
            _ => Err(ctx.err_or_canceled()),
        }
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
    #[track_caller]
    pub fn go<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let origin = Origin::here();
        spawned_or_panic(crate::sched::current::with_shared(
            "WaitGroup::go",
            |shared| {
                self.add(1);
                let guard = DoneOnDrop(self.clone());
                shared.try_spawn(
                    move || {
                        let _guard = guard;
                        f()
                    },
                    true,
                    origin,
                )
            },
        ))
    }
}

/// Waiting for a WaitGroup's counter to reach zero, as a `select` arm.
struct WaitOp<'a> {
    group: &'a Inner,
    registered: Option<Arc<Waiter>>,
}

impl<'a> WaitOp<'a> {
    fn new(group: &'a WaitGroup) -> WaitOp<'a> {
        WaitOp {
            group: &group.inner,
            registered: None,
        }
    }
}

impl sealed::Sealed for WaitOp<'_> {}

impl Selectable for WaitOp<'_> {
    fn lock(&self) -> &RawLock {
        self.group.waiters.raw()
    }

    unsafe fn try_complete(&mut self) -> bool {
        self.group.count.load(Ordering::Acquire) == 0
    }

    unsafe fn enqueue(&mut self, waiter: &SelectWaiter, token: usize) {
        // SAFETY: the caller holds the lock; the reference ends with this statement.
        unsafe { self.group.waiters.data_mut() }.push(&waiter.0, token);
        self.registered = Some(waiter.0.clone());
    }

    unsafe fn withdraw(&mut self) {
        if let Some(waiter) = self.registered.take() {
            // SAFETY: the caller holds the lock; the reference ends with this statement.
            unsafe { self.group.waiters.data_mut() }.withdraw(&waiter);
        }
    }

    fn collect(&mut self) {
        // The final `done` took every waiter.
        self.registered = None;
    }
}

/// Calls `done` when dropped, so a panicking goroutine still counts as done.
struct DoneOnDrop(WaitGroup);

impl Drop for DoneOnDrop {
    fn drop(&mut self) {
        if !self.0.try_done() {
            if std::thread::panicking() {
                // The goroutine is unwinding a panic of its own: a second panic here would
                // abort the process. Report the misuse and let the first panic go on.
                eprintln!("{NEGATIVE} (in WaitGroup::go, while its goroutine panicked)");
            } else {
                panic!("{NEGATIVE}");
            }
        }
    }
}

/// The message of a `done` without a matching `add`.
const NEGATIVE: &str = "scheduler: negative WaitGroup counter";

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroup")
            .field("count", &self.count())
            .finish()
    }
}
