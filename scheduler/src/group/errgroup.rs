//! [`Group`]: Go's `errgroup.Group`.

use std::fmt;
use std::sync::Arc;

use super::core::{Core, Task};
use crate::context::Context;
use crate::goroutine::task::Origin;
use crate::runtime::Runtime;
use crate::sched;
use crate::sched::join_handle::JoinHandle;
use crate::sched::shared::Shared;
use crate::sched::spawn_error::{SpawnError, spawned_or_panic};
use crate::wait::census;

/// Goroutines working on parts of one task, Go's `errgroup.Group`: [`go`](Self::go) starts
/// one, [`wait`](Self::wait) waits for all of them and returns the first error (by time).
///
/// * A group made by [`with_context`](Self::with_context) comes with a [`Context`] that is
///   cancelled the first time a goroutine returns an error (or panics), or the first time
///   `wait` returns, whichever comes first: pass it to the goroutines so that one failure
///   stops the rest.
/// * [`set_limit`](Self::set_limit) bounds how many goroutines run at once: `go` then waits
///   for room (back pressure), and [`try_go`](Self::try_go) fails fast.
/// * A goroutine that **panics** does not take the others down: the panic is printed by the
///   panic hook as usual, the context is cancelled, and `wait` re-raises it (the first one)
///   once every goroutine has ended, as recent `x/sync` does. A goroutine cancelled by a
///   forced shutdown ([`Runtime::shutdown_timeout`]) counts as a panic with the
///   [`Cancelled`](crate::Cancelled) payload, whether it had started or not.
///
/// Everything a goroutine did happens-before `wait` returns. `wait` parks a goroutine and
/// blocks a plain thread; `go` spawns on the runtime running the caller ([`Group::new`]) or
/// on a given runtime ([`Group::new_on`], usable from plain threads).
///
/// Dropping the group cancels its context and does not wait: call `wait`. To call `go` from
/// the group's own goroutines, share it in an [`Arc`]. For the goroutines' values in the
/// order they were started, use [`ResultGroup`](super::ResultGroup).
///
/// # Examples
///
/// ```
/// use scheduler::context::Context;
/// use scheduler::group::Group;
///
/// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
/// let result = rt.block_on(|| {
///     let (group, ctx) = Group::with_context(&Context::background());
///     for i in 0..10 {
///         let ctx = ctx.clone();
///         group.go(move || {
///             if i == 3 {
///                 return Err(format!("part {i} failed"));
///             }
///             // The others stop once the error has cancelled the context.
///             let _ = ctx.done().recv();
///             Ok(())
///         });
///     }
///     let result = group.wait();
///     assert!(ctx.is_done());
///     result
/// });
/// assert_eq!(result, Err("part 3 failed".to_owned()));
/// ```
pub struct Group<E> {
    core: Arc<Core<E>>,
    /// The runtime to spawn on; `None`: the caller's, at each `go`.
    runtime: Option<Arc<Shared>>,
}

impl<E: Send + 'static> Group<E> {
    /// A group that spawns on the runtime running the caller of [`go`](Self::go) (Go's zero
    /// `errgroup.Group`): no limit, no context.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
    /// rt.block_on(|| {
    ///     let group = scheduler::group::Group::<String>::new();
    ///     group.go(|| Ok(()));
    ///     assert_eq!(group.wait(), Ok(()));
    /// });
    /// ```
    pub fn new() -> Group<E> {
        Group {
            core: Core::new(None),
            runtime: None,
        }
    }

    /// A group that spawns on `runtime`, from anywhere: its `go` works on plain threads too.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
    /// let group = scheduler::group::Group::new_on(&rt);
    /// group.go(|| Err("no"));
    /// assert_eq!(group.wait(), Err("no")); // blocks this thread
    /// ```
    pub fn new_on(runtime: &Runtime) -> Group<E> {
        census::note_use();
        Group {
            core: Core::new(None),
            runtime: Some(runtime.shared().clone()),
        }
    }

    /// A group and a context derived from `parent` (Go's `errgroup.WithContext`): the context
    /// is cancelled the first time a goroutine of the group returns an error or panics, or
    /// the first time [`wait`](Self::wait) returns, whichever comes first, and when the group
    /// is dropped. The group spawns on the caller's runtime, as [`new`](Self::new)'s does.
    ///
    /// # Examples
    ///
    /// ```
    /// use scheduler::context::{Context, ContextError};
    ///
    /// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
    /// rt.block_on(|| {
    ///     let (group, ctx) = scheduler::group::Group::<()>::with_context(&Context::background());
    ///     group.go(|| Ok(()));
    ///     assert_eq!(group.wait(), Ok(()));
    ///     assert_eq!(ctx.err(), Some(ContextError::Canceled)); // `wait` returned
    /// });
    /// ```
    pub fn with_context(parent: &Context) -> (Group<E>, Context) {
        let (ctx, cancel) = parent.with_cancel();
        let group = Group {
            core: Core::new(Some(cancel)),
            runtime: None,
        };
        (group, ctx)
    }

    /// [`with_context`](Self::with_context), for a group that spawns on `runtime`, from
    /// anywhere.
    ///
    /// # Examples
    ///
    /// ```
    /// use scheduler::context::Context;
    ///
    /// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
    /// let (group, ctx) = scheduler::group::Group::with_context_on(&Context::background(), &rt);
    /// group.go(|| Err(7));
    /// assert_eq!(group.wait(), Err(7));
    /// assert!(ctx.is_done());
    /// ```
    pub fn with_context_on(parent: &Context, runtime: &Runtime) -> (Group<E>, Context) {
        let (mut group, ctx) = Group::with_context(parent);
        census::note_use();
        group.runtime = Some(runtime.shared().clone());
        (group, ctx)
    }

    /// Starts `f` as a goroutine of the group (Go's `g.Go(f)`). With a limit set, it first
    /// waits for room: the caller parks (or its thread blocks) until a goroutine of the group
    /// ends. At the runtime's [`max_goroutines`](crate::Builder::max_goroutines) it waits for
    /// room too, as [`spawn`](crate::spawn) does.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    ///
    /// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
    /// let group = scheduler::group::Group::<()>::new_on(&rt);
    /// let sum = Arc::new(AtomicUsize::new(0));
    /// for i in 1..=10 {
    ///     let sum = sum.clone();
    ///     group.go(move || {
    ///         sum.fetch_add(i, Ordering::Relaxed);
    ///         Ok(())
    ///     });
    /// }
    /// group.wait().unwrap();
    /// assert_eq!(sum.load(Ordering::Relaxed), 55);
    /// ```
    ///
    /// # Panics
    ///
    /// For a group of [`new`](Self::new) or [`with_context`](Self::with_context), outside a
    /// goroutine. When the runtime refuses the goroutine, with the
    /// [`SpawnError`]'s message, as [`spawn`](crate::spawn) does.
    #[track_caller]
    pub fn go<F>(&self, f: F)
    where
        F: FnOnce() -> Result<(), E> + Send + 'static,
    {
        let origin = Origin::here();
        let shared = self.shared("Group::go");
        let ticket = self
            .core
            .admit(true)
            .expect("a wait for room ends with room");
        spawned_or_panic(
            self.core
                .start(ticket, f, |task| spawn(&shared, task, true, origin)),
        );
    }

    /// Starts `f` as a goroutine of the group if there is room now (Go's `g.TryGo(f)`):
    /// returns false, and drops `f`, when the group is at its limit or the runtime refuses
    /// the goroutine (it is shutting down, at its
    /// [`max_goroutines`](crate::Builder::max_goroutines), or out of stacks: see
    /// [`try_spawn`](crate::try_spawn)). Never waits.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
    /// let group = scheduler::group::Group::<()>::new_on(&rt);
    /// group.set_limit(Some(1));
    /// let (release, wait) = scheduler::chan::bounded::<()>(0);
    /// assert!(group.try_go(move || wait.recv().map_err(drop)));
    /// assert!(!group.try_go(|| Ok(()))); // the one place is taken
    /// release.send(()).unwrap();
    /// group.wait().unwrap();
    /// ```
    ///
    /// # Panics
    ///
    /// For a group of [`new`](Self::new) or [`with_context`](Self::with_context), outside a
    /// goroutine.
    #[track_caller]
    pub fn try_go<F>(&self, f: F) -> bool
    where
        F: FnOnce() -> Result<(), E> + Send + 'static,
    {
        let origin = Origin::here();
        let shared = self.shared("Group::try_go");
        let Some(ticket) = self.core.admit(false) else {
            return false;
        };
        self.core
            .start(ticket, f, |task| spawn(&shared, task, false, origin))
            .is_ok()
    }

    /// Limits the goroutines of the group that run at once to `limit` (Go's
    /// `g.SetLimit(n)`); `None` removes the limit (Go's negative `n`). A limit of zero admits
    /// nothing: `go` then waits until the limit is raised, and `try_go` fails. Without a
    /// call, there is no limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    ///
    /// let rt = scheduler::Runtime::builder().procs(4).build().unwrap();
    /// let group = scheduler::group::Group::<()>::new_on(&rt);
    /// group.set_limit(Some(2));
    /// let (inside, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    /// for _ in 0..20 {
    ///     let (inside, most) = (inside.clone(), most.clone());
    ///     group.go(move || {
    ///         most.fetch_max(inside.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
    ///         scheduler::yield_now();
    ///         inside.fetch_sub(1, Ordering::SeqCst);
    ///         Ok(())
    ///     });
    /// }
    /// group.wait().unwrap();
    /// assert!(most.load(Ordering::SeqCst) <= 2);
    /// ```
    ///
    /// # Panics
    ///
    /// `scheduler: Group::set_limit called while N goroutines of the group are active under
    /// the old limit`, as Go's does: change the limit only while no goroutine started under
    /// a limit is running (or waiting in `go` for room).
    #[track_caller]
    pub fn set_limit(&self, limit: Option<usize>) {
        self.core.set_limit(limit);
    }

    /// Waits for every goroutine of the group to end, then cancels the group's context (if
    /// it has one) and returns the first error a goroutine returned, by time, or `Ok(())`
    /// (Go's `g.Wait()`).
    ///
    /// The outcome is handed out once: a second `wait`, with no goroutine started since,
    /// returns `Ok(())`. The group can be used again after `wait` (its context stays
    /// cancelled).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
    /// rt.block_on(|| {
    ///     let group = scheduler::group::Group::new();
    ///     group.go(|| Err("first"));
    ///     assert_eq!(group.wait(), Err("first"));
    ///     assert_eq!(group.wait(), Ok(())); // handed out once
    /// });
    /// ```
    ///
    /// # Panics
    ///
    /// Re-raises (with [`std::panic::resume_unwind`]) the first panic of a goroutine of the
    /// group, once all have ended; or [`Cancelled`](crate::Cancelled) if a forced shutdown
    /// dropped one before it ran.
    #[track_caller]
    pub fn wait(&self) -> Result<(), E> {
        self.core.wait();
        self.core.finish()
    }

    /// The limit set by [`set_limit`](Self::set_limit), if any.
    ///
    /// # Examples
    ///
    /// ```
    /// let group = scheduler::group::Group::<()>::new();
    /// assert_eq!(group.limit(), None);
    /// group.set_limit(Some(8));
    /// assert_eq!(group.limit(), Some(8));
    /// ```
    pub fn limit(&self) -> Option<usize> {
        self.core.limit()
    }

    /// The runtime to spawn on: the group's, or the caller's (panicking outside a goroutine,
    /// naming `what`, at the caller's line).
    #[track_caller]
    fn shared(&self, what: &str) -> Arc<Shared> {
        match &self.runtime {
            Some(shared) => shared.clone(),
            None => sched::current::with_shared(what, Arc::clone),
        }
    }
}

/// Spawns a group's task on `shared`: waiting for room under `max_goroutines` if `wait`.
fn spawn<F, E>(
    shared: &Arc<Shared>,
    task: Task<F, E>,
    wait: bool,
    origin: Origin,
) -> Result<JoinHandle<()>, SpawnError>
where
    F: FnOnce() -> Result<(), E> + Send + 'static,
    E: Send + 'static,
{
    // The handle is dropped: the group learns how the goroutine ended through its ticket.
    shared.try_spawn(move || task.run(), wait, origin)
}

impl<E: Send + 'static> Default for Group<E> {
    fn default() -> Group<E> {
        Group::new()
    }
}

impl<E> Drop for Group<E> {
    /// Cancels the group's context, if it has one, without waiting for the goroutines.
    fn drop(&mut self) {
        self.core.cancel();
    }
}

impl<E> fmt::Debug for Group<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("limit", &self.core.limit())
            .finish_non_exhaustive()
    }
}
