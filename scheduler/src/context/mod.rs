//! Cancellation contexts, Go's `context` package: a tree of scopes that end by cancellation or
//! by deadline, carried into every wait so that none outlives the work it serves.
//!
//! A [`Context`] ends once: when its [`CancelHandle`] is used or dropped, when its deadline
//! passes, or when its parent ends (cancelling a parent cancels every descendant). Once it has
//! ended, [`Context::err`] says why and [`Context::done`], a receiver usable in
//! [`select!`](crate::select!), is closed. Blocking calls take a context through their `_ctx`
//! variants ([`Receiver::recv_ctx`](crate::chan::Receiver::recv_ctx),
//! [`Sender::send_ctx`](crate::chan::Sender::send_ctx), [`sleep_ctx`](crate::time::sleep_ctx),
//! [`WaitGroup::wait_ctx`](crate::WaitGroup::wait_ctx)) and return its error promptly.
//!
//! A context also carries values ([`Context::with_value`], under typed [`Key`]s, Go's
//! `context.WithValue`), which its descendants inherit, and runs functions once it ends
//! ([`Context::after_func`], Go's `context.AfterFunc`).
//!
//! # Dropping the last `CancelHandle` cancels
//!
//! In Go, losing a `cancel` function leaks the context until its parent ends. Here the handle
//! owns the context's life: dropping it cancels the context and releases its place in the
//! parent, as Rust values release their resources on drop. A handle can be cloned (to give
//! several owners the power to cancel): [`cancel`](CancelHandle::cancel) through any clone
//! cancels, and dropping cancels once the last clone is gone. Keep a handle alive (`let (ctx,
//! _cancel) = ...`) for as long as the context should live; `let (ctx, _) = ...` cancels it at
//! once.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use scheduler::chan;
//! use scheduler::context::{Context, ContextError};
//!
//! let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
//! rt.block_on(|| {
//!     let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(20));
//!     let (_tx, rx) = chan::bounded::<i32>(0); // nobody ever sends
//!     let err = rx.recv_ctx(&ctx).unwrap_err();
//!     assert_eq!(err, chan::RecvCtxError::Context(ContextError::DeadlineExceeded));
//! });
//! ```

use std::collections::HashMap;
use std::fmt;
use std::panic::Location;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

mod after_func;
mod value;

use after_func::AfterFunc;
pub use after_func::AfterFuncHandle;
pub use value::Key;
use value::Values;

pub use crate::chan::error::ContextError;
use crate::chan::{
    self, Receiver, RecvCtxError, RecvError, RecvOp, SendCtxError, SendError, SendOp, Sender,
};
use crate::goroutine::task::Origin;
use crate::sched::timers::run_at;
use crate::select::{Mode, select_as};
use crate::wait::BlockKind;
use crate::wait::census;
use crate::wait::timers::TimerAction;

/// A scope of work that can end, and the values it carries; cheap to clone (clones share the
/// scope).
#[derive(Clone)]
pub struct Context {
    node: Arc<Node>,
    /// The values set on this context and its ancestors, nearest first; shared with them.
    values: Option<Arc<Values>>,
}

/// Ends a [`Context`]: by [`cancel`](Self::cancel) through any clone, or when the last clone
/// is dropped.
#[must_use = "dropping a CancelHandle cancels its context at once"]
#[derive(Clone)]
pub struct CancelHandle {
    owner: Arc<Owner>,
}

/// What every clone of a [`CancelHandle`] shares: dropped with the last of them, it cancels.
struct Owner {
    node: Arc<Node>,
}

struct Node {
    /// Keeps the ancestors (and so their deadlines and cancellation) alive.
    parent: Option<Arc<Node>>,
    deadline: Option<Instant>,
    /// Closed when the context ends; `done()` hands out clones of the receiver.
    done_tx: Sender<()>,
    done_rx: Receiver<()>,
    state: Mutex<NodeState>,
}

#[derive(Default)]
struct NodeState {
    err: Option<ContextError>,
    /// Descendants to cancel with this node, by address. Weak: a child lives as long as its
    /// own handles, and removes itself from here when it ends.
    children: HashMap<usize, Weak<Node>>,
    /// Functions to start when the node ends (`Context::after_func`); taken then.
    after: Vec<Arc<AfterFunc>>,
}

impl Node {
    fn new(parent: Option<Arc<Node>>, deadline: Option<Instant>) -> Arc<Node> {
        let (done_tx, done_rx) = chan::never_closing(0);
        Arc::new(Node {
            parent,
            deadline,
            done_tx,
            done_rx,
            state: Mutex::new(NodeState::default()),
        })
    }

    fn key(self: &Arc<Node>) -> usize {
        Arc::as_ptr(self) as usize
    }

    /// Ends this node and its descendants with `err`, unless it has ended already.
    ///
    /// The error is set and `done` closed under the node's lock, which `err()` takes: whoever
    /// sees the error finds `done` closed, and whoever sees `done` closed and then asks for
    /// the error gets it (golang/go#75533 was the window between the two). Closing only wakes
    /// the receivers (no user code runs), and nothing locks a node while holding a channel's
    /// lock, so the nesting cannot deadlock.
    fn cancel(self: &Arc<Node>, err: ContextError) {
        let (children, after) = {
            let mut state = self.state.lock();
            if state.err.is_some() {
                return;
            }
            state.err = Some(err);
            self.done_tx.close();
            (
                std::mem::take(&mut state.children),
                std::mem::take(&mut state.after),
            )
        };
        for func in after {
            func.fire();
        }
        for child in children.into_values().filter_map(|c| c.upgrade()) {
            child.cancel(err);
        }
        if let Some(parent) = &self.parent {
            parent.state.lock().children.remove(&self.key());
        }
    }

    fn err(self: &Arc<Node>) -> Option<ContextError> {
        let err = self.state.lock().err;
        if err.is_none() && self.deadline.is_some_and(|d| d <= Instant::now()) {
            // The timer has not fired yet, but the deadline has passed: end it now, so that
            // `err` and `done` never disagree.
            self.cancel(ContextError::DeadlineExceeded);
            return self.state.lock().err;
        }
        err
    }
}

/// Ends a context when its deadline passes. Dead once the context has ended otherwise (or is
/// gone), so that cancelling early frees the timer at the next compaction of its heap.
struct DeadlineTimer(Weak<Node>);

impl TimerAction for DeadlineTimer {
    fn fire(self: Box<Self>) {
        if let Some(node) = self.0.upgrade() {
            node.cancel(ContextError::DeadlineExceeded);
        }
    }

    fn is_live(&self) -> bool {
        self.0
            .upgrade()
            .is_some_and(|node| node.state.lock().err.is_none())
    }
}

impl Context {
    /// The root context: never cancelled, no deadline (Go's `context.Background()`).
    pub fn background() -> Context {
        census::note_use();
        Context {
            node: Node::new(None, None),
            values: None,
        }
    }

    /// A child that ends when `cancel` is called on the handle (or a clone of it), the last
    /// clone of the handle is dropped, or this context ends (Go's `context.WithCancel`).
    pub fn with_cancel(&self) -> (Context, CancelHandle) {
        self.child(self.node.deadline)
    }

    /// A child that also ends at `deadline` with [`ContextError::DeadlineExceeded`] (Go's
    /// `context.WithDeadline`). Its deadline is never later than this context's.
    pub fn with_deadline(&self, deadline: Instant) -> (Context, CancelHandle) {
        let deadline = match self.node.deadline {
            Some(parent) if parent <= deadline => return self.child(Some(parent)),
            _ => deadline,
        };
        let (ctx, handle) = self.child(Some(deadline));
        if deadline <= Instant::now() {
            ctx.node.cancel(ContextError::DeadlineExceeded);
        } else {
            run_at(deadline, DeadlineTimer(Arc::downgrade(&ctx.node)));
        }
        (ctx, handle)
    }

    /// A child that also ends `timeout` from now (Go's `context.WithTimeout`).
    pub fn with_timeout(&self, timeout: Duration) -> (Context, CancelHandle) {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.with_deadline(deadline),
            None => self.with_cancel(),
        }
    }

    fn child(&self, deadline: Option<Instant>) -> (Context, CancelHandle) {
        census::note_use();
        let node = Node::new(Some(self.node.clone()), deadline);
        let parent_err = {
            let mut state = self.node.state.lock();
            if state.err.is_none() {
                state.children.insert(node.key(), Arc::downgrade(&node));
            }
            state.err
        };
        if let Some(err) = parent_err {
            node.cancel(err);
        }
        let ctx = Context {
            node: node.clone(),
            values: self.values.clone(),
        };
        (
            ctx,
            CancelHandle {
                owner: Arc::new(Owner { node }),
            },
        )
    }

    /// A child that carries `value` under `key`, and this context's values and scope: it
    /// ends when this context ends (Go's `context.WithValue`). A value set under the same key
    /// here shadows the ancestors' for this context and its descendants.
    ///
    /// # Examples
    ///
    /// ```
    /// use scheduler::context::{Context, Key};
    ///
    /// static USER: Key<String> = Key::new("user");
    /// static ATTEMPT: Key<u32> = Key::new("attempt");
    ///
    /// let root = Context::background().with_value(&USER, "ana".to_string());
    /// let (child, _cancel) = root.with_cancel(); // children inherit the values
    /// let retry = child.with_value(&ATTEMPT, 2);
    /// assert_eq!(retry.value(&USER).map(String::as_str), Some("ana"));
    /// assert_eq!(retry.value(&ATTEMPT), Some(&2));
    /// assert_eq!(root.value(&ATTEMPT), None, "a parent never sees its children's values");
    /// ```
    pub fn with_value<T: Send + Sync + 'static>(&self, key: &'static Key<T>, value: T) -> Context {
        Context {
            node: self.node.clone(),
            values: Some(Values::with(self.values.clone(), key, value)),
        }
    }

    /// The value set under `key` on this context or its nearest ancestor that has one (Go's
    /// `ctx.Value(key)`), or `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use scheduler::context::{Context, Key};
    ///
    /// static REQUEST_ID: Key<u64> = Key::new("request id");
    ///
    /// let ctx = Context::background();
    /// assert_eq!(ctx.value(&REQUEST_ID), None);
    /// let ctx = ctx.with_value(&REQUEST_ID, 7);
    /// let ctx = ctx.with_value(&REQUEST_ID, 8); // shadows the 7
    /// assert_eq!(ctx.value(&REQUEST_ID), Some(&8));
    /// ```
    pub fn value<T: 'static>(&self, key: &'static Key<T>) -> Option<&T> {
        self.values.as_deref()?.find(key)
    }

    /// Arranges for `f` to run in a goroutine of its own once this context ends, or at once
    /// if it has ended (Go's `context.AfterFunc`). Each call registers `f` anew; the returned
    /// handle's [`stop`](AfterFuncHandle::stop) unregisters it.
    ///
    /// The goroutine runs on the runtime of the goroutine that called `after_func`. Called
    /// outside a runtime, or when that runtime is gone or refuses new goroutines by the time
    /// the context ends, `f` runs on a thread of its own instead. A context that never ends
    /// ([`background`](Self::background), or one whose handle is kept for ever) never runs
    /// `f`, and keeps it until `stop`.
    ///
    /// # Examples
    ///
    /// ```
    /// use scheduler::context::Context;
    ///
    /// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
    /// rt.block_on(|| {
    ///     let (ctx, cancel) = Context::background().with_cancel();
    ///     let (tx, rx) = scheduler::chan::bounded(1);
    ///     ctx.after_func(move || tx.send("cleaned up").unwrap());
    ///     assert!(rx.try_recv().is_err(), "not before the context ends");
    ///     cancel.cancel();
    ///     assert_eq!(rx.recv(), Ok("cleaned up"));
    /// });
    /// ```
    #[track_caller]
    pub fn after_func(&self, f: impl FnOnce() + Send + 'static) -> AfterFuncHandle {
        let func = AfterFunc::new(Box::new(f), Origin::here());
        let handle = func.handle(&self.node);
        // `err` first: it ends a context whose deadline passed before its timer fired.
        let ended = self.node.err().is_some() || {
            let mut state = self.node.state.lock();
            if state.err.is_none() {
                state.after.push(func.clone());
            }
            state.err.is_some()
        };
        if ended {
            func.fire();
        }
        handle
    }

    /// A receiver that is closed when the context ends: `recv` on it blocks until then, and
    /// it is ready in [`select!`](crate::select!) from then on.
    pub fn done(&self) -> Receiver<()> {
        self.node.done_rx.clone()
    }

    /// Why the context ended, or `None` while it has not.
    pub fn err(&self) -> Option<ContextError> {
        self.node.err()
    }

    /// Whether the context has ended.
    pub fn is_done(&self) -> bool {
        self.err().is_some()
    }

    /// The deadline, if this context or an ancestor has one.
    pub fn deadline(&self) -> Option<Instant> {
        self.node.deadline
    }

    /// The error of a context that `done` reported ended.
    pub(crate) fn err_or_canceled(&self) -> ContextError {
        self.err().unwrap_or(ContextError::Canceled)
    }
}

impl CancelHandle {
    /// Ends the context (and its descendants) with [`ContextError::Canceled`], unless it has
    /// ended already. Idempotent.
    pub fn cancel(&self) {
        self.owner.node.cancel(ContextError::Canceled);
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.node.cancel(ContextError::Canceled);
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("deadline", &self.deadline())
            .field("err", &self.err())
            .field("values", &self.values.as_deref().map(Values::names))
            .finish()
    }
}

impl fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelHandle").finish_non_exhaustive()
    }
}

/// Channel operations that a context can end: here rather than in `chan`, since contexts sit
/// above channels.
impl<T> Sender<T> {
    /// Sends, unless `ctx` ends first.
    ///
    /// # Errors
    ///
    /// [`SendCtxError::Context`] with the context's error if it ended first (or had already
    /// ended), [`SendCtxError::Disconnected`] if the channel is closed; both with the value.
    #[track_caller]
    pub fn send_ctx(&self, value: T, ctx: &Context) -> Result<(), SendCtxError<T>> {
        if let Some(err) = ctx.err() {
            return Err(SendCtxError::Context(err, value));
        }
        let done = ctx.done();
        let mut send = SendOp::new(self, value);
        let mut cancel = RecvOp::new(&done);
        match select_as(
            &mut [&mut send, &mut cancel],
            Mode::Block,
            BlockKind::ChannelSend,
            Location::caller(),
        ) {
            Some(0) => send
                .outcome()
                .map_err(|SendError(v)| SendCtxError::Disconnected(v)),
            _ => {
                let value = send
                    .take_value()
                    .expect("an unsent value stays with the operation");
                Err(SendCtxError::Context(ctx.err_or_canceled(), value))
            }
        }
    }
}

impl<T> Receiver<T> {
    /// Receives, unless `ctx` ends first.
    ///
    /// # Errors
    ///
    /// [`RecvCtxError::Context`] with the context's error if it ended first (or had already
    /// ended); [`RecvCtxError::Disconnected`] once the channel is closed and empty.
    #[track_caller]
    pub fn recv_ctx(&self, ctx: &Context) -> Result<T, RecvCtxError> {
        if let Some(err) = ctx.err() {
            return Err(RecvCtxError::Context(err));
        }
        let done = ctx.done();
        let mut recv = RecvOp::new(self);
        let mut cancel = RecvOp::new(&done);
        match select_as(
            &mut [&mut recv, &mut cancel],
            Mode::Block,
            BlockKind::ChannelReceive,
            Location::caller(),
        ) {
            Some(0) => recv
                .outcome()
                .map_err(|RecvError| RecvCtxError::Disconnected),
            _ => Err(RecvCtxError::Context(ctx.err_or_canceled())),
        }
    }
}
