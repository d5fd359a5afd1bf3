//! Running a function once a context ends, Go 1.21's `context.AfterFunc`.

use std::fmt;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use super::Node;
use crate::goroutine::task::Origin;
use crate::sched::Shared;
use crate::sched::current;

/// The function to run, until it is started or stopped.
type Func = Box<dyn FnOnce() + Send>;

/// A function registered with [`Context::after_func`](super::Context::after_func).
pub(super) struct AfterFunc {
    /// Taken once: by the context's end, which starts it, or by `stop`. Whoever takes it
    /// decides.
    f: Mutex<Option<Func>>,
    /// The runtime to start it on: the one the registering goroutine ran on. Weak, so that
    /// a registration keeps no runtime alive.
    runtime: Option<Weak<Shared>>,
    /// The line of the `after_func` call, shown as where its goroutine was spawned.
    origin: Origin,
}

/// Stops a function registered with [`Context::after_func`](super::Context::after_func) from
/// running, as Go's `stop` function does. Dropping it does not stop the function.
///
/// # Examples
///
/// ```
/// use scheduler::context::Context;
///
/// let (ctx, cancel) = Context::background().with_cancel();
/// let stop = ctx.after_func(|| unreachable!("stopped before the context ended"));
/// assert!(stop.stop(), "it had not started");
/// assert!(!stop.stop(), "already stopped");
/// cancel.cancel();
/// ```
pub struct AfterFuncHandle {
    func: Arc<AfterFunc>,
    /// The context it is registered with, to take it off the list on `stop`.
    node: Weak<Node>,
}

impl AfterFunc {
    /// A registration of `f`, to run on the caller's runtime (a plain thread outside one).
    pub(super) fn new(f: Func, origin: Origin) -> Arc<AfterFunc> {
        let runtime = current::with_worker(|w| w.map(|w| Arc::downgrade(w.shared())));
        Arc::new(AfterFunc {
            f: Mutex::new(Some(f)),
            runtime,
            origin,
        })
    }

    /// The handle that stops this registration with `node`.
    pub(super) fn handle(self: &Arc<Self>, node: &Arc<Node>) -> AfterFuncHandle {
        AfterFuncHandle {
            func: self.clone(),
            node: Arc::downgrade(node),
        }
    }

    /// The context ended: starts the function in a goroutine of its own unless it was
    /// stopped. On the runtime it was registered from, or, when that is gone or refuses new
    /// goroutines (shutting down, full), or it was registered outside a runtime, on a thread
    /// of its own: it runs in any case.
    pub(super) fn fire(&self) {
        let Some(f) = self.f.lock().take() else {
            return; // stopped
        };
        let slot = Arc::new(Mutex::new(Some(f)));
        if let Some(shared) = self.runtime.as_ref().and_then(Weak::upgrade) {
            let in_goroutine = slot.clone();
            let origin = Origin {
                site: self.origin.site,
                name: self.origin.name.clone(),
            };
            let run = move || {
                if let Some(f) = in_goroutine.lock().take() {
                    f();
                }
            };
            if shared.try_spawn(run, false, origin).is_ok() {
                return;
            }
        }
        let f = slot.lock().take().expect("a refused goroutine never ran");
        std::thread::Builder::new()
            .name("scheduler-after-func".into())
            .spawn(f)
            .expect("scheduler: cannot start a thread for Context::after_func");
    }
}

impl AfterFuncHandle {
    /// Stops the function from running. Returns true if this stopped it, false if it has
    /// already been started (the context ended) or stopped.
    ///
    /// # Examples
    ///
    /// ```
    /// use scheduler::context::Context;
    ///
    /// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
    /// rt.block_on(|| {
    ///     let (ctx, cancel) = Context::background().with_cancel();
    ///     let (tx, rx) = scheduler::chan::bounded(1);
    ///     let handle = ctx.after_func(move || tx.send("ran").unwrap());
    ///     cancel.cancel();
    ///     assert_eq!(rx.recv(), Ok("ran"));
    ///     assert!(!handle.stop(), "too late: it has run");
    /// });
    /// ```
    pub fn stop(&self) -> bool {
        let f = self.func.f.lock().take();
        let stopped = f.is_some();
        drop(f); // outside the lock: its captures' drops may do anything
        if stopped && let Some(node) = self.node.upgrade() {
            node.state
                .lock()
                .after
                .retain(|f| !Arc::ptr_eq(f, &self.func));
        }
        stopped
    }
}

impl fmt::Debug for AfterFuncHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AfterFuncHandle").finish_non_exhaustive()
    }
}
