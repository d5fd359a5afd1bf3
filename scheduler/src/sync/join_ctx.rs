//! A join bounded by a [`Context`]: the goroutine's completion and the context's end, as two
//! `select` arms.

use std::fmt;
use std::panic::Location;
use std::thread;

use crate::chan::RecvOp;
use crate::context::{Context, ContextError};
use crate::sched::join_handle::JoinHandle;
use crate::select::{JoinOp, Mode, select_as};

/// [`JoinHandle::join_ctx`]'s context ended first; the handle comes back, to join again or to
/// drop (which detaches the goroutine).
pub struct JoinCtxError<T> {
    error: ContextError,
    handle: JoinHandle<T>,
}

impl<T> JoinCtxError<T> {
    /// Why the context ended.
    pub fn error(&self) -> ContextError {
        self.error
    }

    /// The handle, to join again.
    pub fn into_handle(self) -> JoinHandle<T> {
        self.handle
    }
}

impl<T> fmt::Debug for JoinCtxError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinCtxError")
            .field("error", &self.error)
            .field("handle", &self.handle)
            .finish()
    }
}

impl<T> fmt::Display for JoinCtxError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stopped waiting for goroutine {}: {}",
            self.handle.id(),
            self.error
        )
    }
}

impl<T> std::error::Error for JoinCtxError<T> {}

impl<T> JoinHandle<T> {
    /// Waits for the goroutine to finish, unless `ctx` ends first: its result, as
    /// [`join`](Self::join) returns it, or the handle back in a [`JoinCtxError`] with the
    /// context's error. The goroutine is not cancelled (call [`cancel`](Self::cancel) for
    /// that).
    ///
    /// # Errors
    ///
    /// [`JoinCtxError`] if the context ended first (or had ended already).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use scheduler::context::{Context, ContextError};
    ///
    /// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
    /// let (_tx, rx) = scheduler::chan::bounded::<u32>(0);
    /// let handle = rt.spawn(move || rx.recv());
    /// let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(10));
    /// let err = handle.join_ctx(&ctx).expect_err("nobody sends");
    /// assert_eq!(err.error(), ContextError::DeadlineExceeded);
    /// let handle = err.into_handle();
    /// handle.cancel();
    /// assert!(handle.join().unwrap_err().is::<scheduler::Cancelled>());
    /// ```
    #[track_caller]
    pub fn join_ctx(self, ctx: &Context) -> Result<thread::Result<T>, JoinCtxError<T>> {
        if let Some(error) = ctx.err() {
            return Err(JoinCtxError {
                error,
                handle: self,
            });
        }
        let done = ctx.done();
        let winner = {
            let mut join = JoinOp::new(&self);
            let mut cancel = RecvOp::new(&done);
            select_as(
                &mut [&mut join, &mut cancel],
                Mode::Block,
                self.block_kind(),
                Location::caller(),
            )
        };
        match winner {
            Some(0) => Ok(self.take_finished()),
            _ => Err(JoinCtxError {
                error: ctx.err_or_canceled(),
                handle: self,
            }),
        }
    }
}
