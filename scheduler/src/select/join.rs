//! Joins bounded by a deadline: a goroutine's completion as a `select` arm.

use std::fmt;
use std::panic::Location;
use std::thread;
use std::time::{Duration, Instant};

use super::{Mode, SelectWaiter, Selectable, sealed, select_one};
use crate::goroutine::join::JoinState;
use crate::sched::join_handle::JoinHandle;
use crate::wait::lock::RawLock;

/// Waiting for a goroutine's completion, as a `select` arm. Its lock is its own: the
/// completion flag needs none (`JoinState`'s protocol), but the select driver takes one per
/// arm.
pub(crate) struct JoinOp<'a> {
    state: &'a JoinState,
    lock: RawLock,
    announced: bool,
}

impl<'a> JoinOp<'a> {
    pub(crate) fn new<T>(handle: &'a JoinHandle<T>) -> JoinOp<'a> {
        JoinOp {
            state: handle.completion(),
            lock: RawLock::new(),
            announced: false,
        }
    }
}

impl sealed::Sealed for JoinOp<'_> {}

impl Selectable for JoinOp<'_> {
    fn lock(&self) -> &RawLock {
        &self.lock
    }

    unsafe fn try_complete(&mut self) -> bool {
        self.state.is_complete()
    }

    unsafe fn enqueue(&mut self, waiter: &SelectWaiter, token: usize) {
        if self.state.announce_with(&waiter.0, token) {
            self.announced = true;
        } else {
            // Completed since `try_complete`: nobody will notify the waiter but us.
            waiter.0.notify(token);
        }
    }

    unsafe fn withdraw(&mut self) {
        if std::mem::take(&mut self.announced) {
            // False if it completed meanwhile: the completer took the waiter, and notifies a
            // wait that is over.
            self.state.withdraw();
        }
    }

    fn collect(&mut self) {
        // The completer took the waiter.
        self.announced = false;
    }
}

/// [`JoinHandle::join_timeout`] (or `join_deadline`) ran out of time; the handle comes back,
/// to join again or to drop (which detaches the goroutine).
pub struct JoinTimeoutError<T>(JoinHandle<T>);

impl<T> JoinTimeoutError<T> {
    /// The handle, to join again.
    pub fn into_handle(self) -> JoinHandle<T> {
        self.0
    }
}

impl<T> fmt::Debug for JoinTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JoinTimeoutError").field(&self.0).finish()
    }
}

impl<T> fmt::Display for JoinTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out waiting for goroutine {} to finish",
            self.0.id()
        )
    }
}

impl<T> std::error::Error for JoinTimeoutError<T> {}

impl<T> JoinHandle<T> {
    /// Waits at most `timeout` for the goroutine to finish: its result, as
    /// [`join`](Self::join) returns it, or the handle back in a [`JoinTimeoutError`]. A
    /// goroutine that has not started is not run on the caller's stack here (as `join` may):
    /// it is waited for like any other.
    ///
    /// # Errors
    ///
    /// [`JoinTimeoutError`] if it did not finish in time.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
    /// let (tx, rx) = scheduler::chan::bounded::<u32>(0);
    /// let handle = rt.spawn(move || rx.recv().unwrap() * 2);
    /// let handle = handle
    ///     .join_timeout(Duration::from_millis(10))
    ///     .expect_err("nobody sent yet")
    ///     .into_handle();
    /// tx.send(21).unwrap();
    /// assert_eq!(handle.join().unwrap(), 42);
    /// ```
    #[track_caller]
    pub fn join_timeout(self, timeout: Duration) -> Result<thread::Result<T>, JoinTimeoutError<T>> {
        self.join_mode(Mode::after(timeout))
    }

    /// [`join_timeout`](Self::join_timeout) until `deadline`.
    ///
    /// # Errors
    ///
    /// [`JoinTimeoutError`] if it did not finish by then.
    #[track_caller]
    pub fn join_deadline(
        self,
        deadline: Instant,
    ) -> Result<thread::Result<T>, JoinTimeoutError<T>> {
        self.join_mode(Mode::Until(deadline))
    }

    #[track_caller]
    fn join_mode(self, mode: Mode) -> Result<thread::Result<T>, JoinTimeoutError<T>> {
        let completed = select_one(
            &mut JoinOp::new(&self),
            mode,
            self.block_kind(),
            Location::caller(),
        );
        if completed {
            Ok(self.take_finished())
        } else {
            Err(JoinTimeoutError(self))
        }
    }
}
