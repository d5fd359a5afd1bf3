//! Waiting for a goroutine to finish: the completion flag every goroutine carries and the
//! [`JoinHandle`] its spawner gets.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use parking_lot::Mutex;

use super::task::Joinable;
use crate::sync::waiter::Waiter;

/// Completion of one goroutine, and the one waiter (its `JoinHandle`) that may wait for it.
pub(crate) struct JoinState {
    /// Set once, with Release, after the result was written (pairs with the Acquire loads in
    /// `is_complete`, after which the result may be read).
    complete: AtomicBool,
    /// The joiner waiting for completion. Checked and set under the lock on both sides, so a
    /// completion cannot slip between the joiner's check and its registration.
    waiter: Mutex<Option<Arc<Waiter>>>,
}

impl JoinState {
    pub(crate) fn new() -> JoinState {
        JoinState {
            complete: AtomicBool::new(false),
            waiter: Mutex::new(None),
        }
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.complete.load(Ordering::Acquire)
    }

    /// Publishes completion and wakes the joiner, if one waits.
    pub(crate) fn complete(&self) {
        self.complete.store(true, Ordering::Release);
        // Taking the lock after the store: a joiner that registered saw `complete == false`
        // under this lock earlier, so it is found here; one that comes later sees the flag.
        let waiter = self.waiter.lock().take();
        if let Some(waiter) = waiter {
            waiter.notify(0);
        }
    }

    /// Blocks the current goroutine (or thread) until [`complete`](Self::complete).
    fn wait(&self) {
        if self.is_complete() {
            return;
        }
        let waiter = Waiter::for_current();
        {
            let mut slot = self.waiter.lock();
            if self.is_complete() {
                return;
            }
            *slot = Some(waiter.clone());
        }
        waiter.wait();
        debug_assert!(self.is_complete());
    }
}

/// An owned permission to wait for a goroutine and take its result, like
/// [`std::thread::JoinHandle`].
///
/// Dropping the handle detaches the goroutine: it keeps running, and its result is dropped
/// when it finishes. The runtime still waits for it at shutdown.
///
/// # Examples
///
/// ```
/// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
/// let sum = rt.block_on(|| {
///     let handles: Vec<_> = (1..=10).map(|i| scheduler::spawn(move || i * i)).collect();
///     handles.into_iter().map(|h| h.join().unwrap()).sum::<i32>()
/// });
/// assert_eq!(sum, 385);
/// ```
pub struct JoinHandle<T> {
    task: Arc<dyn Joinable<T>>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(task: Arc<dyn Joinable<T>>) -> JoinHandle<T> {
        JoinHandle { task }
    }

    /// Waits for the goroutine to finish and returns its result: `Ok` with the closure's value,
    /// or `Err` with the panic payload if it panicked.
    ///
    /// Inside a goroutine this parks only the calling goroutine (its worker runs others); on a
    /// plain thread it blocks the thread. Everything the goroutine did happens-before `join`
    /// returns.
    ///
    /// A goroutine that was still blocked when
    /// [`Runtime::shutdown_timeout`](crate::Runtime::shutdown_timeout) ran out of time is
    /// unwound, and its `join` returns `Err` with a [`Cancelled`](crate::Cancelled) payload.
    pub fn join(self) -> thread::Result<T> {
        self.task.join_state().wait();
        // SAFETY: `wait` returned, so completion was observed with Acquire; `self` is consumed,
        // so the result is taken once.
        unsafe { self.task.take_result() }
    }

    /// Whether the goroutine has finished, so that [`join`](Self::join) will not block.
    pub fn is_finished(&self) -> bool {
        self.task.join_state().is_complete()
    }

    /// The goroutine's id: unique within its runtime, counting from 1.
    pub fn id(&self) -> u64 {
        self.task.header().id
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}
