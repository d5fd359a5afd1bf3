//! The scoped flavour of the errgroup: goroutines that borrow from a [`scope`]'s caller.
//!
//! [`scope`]: crate::scope()

use std::fmt;
use std::sync::Arc;

use super::core::{Core, Task};
use crate::context::Context;
use crate::goroutine::task::Origin;
use crate::sched::spawn_error::spawned_or_panic;
use crate::scope::Scope;

/// A [`Group`](super::Group) whose goroutines may borrow from the caller of the [`scope`] it
/// belongs to: made by [`Scope::group`] or [`Scope::group_with_context`]. The same rules as
/// `Group`: the first error wins and cancels the context, `set_limit` bounds the goroutines
/// running at once, `wait` returns after every one of them ended; and the scope, which waits
/// for every goroutine spawned in it anyway, outlives them.
///
/// [`scope`]: crate::scope()
///
/// # Examples
///
/// ```
/// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
/// let lines = ["10", "20", "x", "40"];
/// let mut parsed = vec![0_u32; lines.len()];
/// let result = rt.scope(|s| {
///     let group = s.group();
///     group.set_limit(Some(2));
///     for (line, slot) in lines.iter().zip(parsed.iter_mut()) {
///         group.go(move || {
///             *slot = line.parse().map_err(|_| format!("not a number: {line}"))?;
///             Ok(())
///         });
///     }
///     group.wait()
/// });
/// assert_eq!(result, Err("not a number: x".to_owned()));
/// assert_eq!(parsed[0], 10);
/// ```
pub struct ScopedGroup<'scope, 'env, E> {
    core: Arc<Core<E>>,
    scope: &'scope Scope<'scope, 'env>,
}

impl<'scope, 'env> Scope<'scope, 'env> {
    /// A group (Go's `errgroup.Group`) whose goroutines run in this scope and may borrow.
    pub fn group<E: Send + 'scope>(&'scope self) -> ScopedGroup<'scope, 'env, E> {
        ScopedGroup {
            core: Core::new(None),
            scope: self,
        }
    }

    /// [`group`](Self::group) with a context derived from `parent`, cancelled on the group's
    /// first error or when its `wait` returns (Go's `errgroup.WithContext`).
    pub fn group_with_context<E: Send + 'scope>(
        &'scope self,
        parent: &Context,
    ) -> (ScopedGroup<'scope, 'env, E>, Context) {
        let (ctx, cancel) = parent.with_cancel();
        let group = ScopedGroup {
            core: Core::new(Some(cancel)),
            scope: self,
        };
        (group, ctx)
    }
}

impl<'scope, E: Send + 'scope> ScopedGroup<'scope, '_, E> {
    /// Starts `f` as a goroutine of the group, in the scope (Go's `g.Go(f)`); with a limit,
    /// waits (parks) for room first.
    ///
    /// # Panics
    ///
    /// When the runtime refuses the goroutine, as [`spawn`](crate::spawn) does.
    #[track_caller]
    pub fn go<F>(&self, f: F)
    where
        F: FnOnce() -> Result<(), E> + Send + 'scope,
    {
        let origin = Origin::here();
        let ticket = self
            .core
            .admit(true)
            .expect("a wait for room ends with room");
        spawned_or_panic(self.core.start(ticket, f, |task: Task<F, E>| {
            self.scope.try_spawn_as(origin, move || task.run(), true)
        }));
    }

    /// Starts `f` if there is room now (Go's `g.TryGo(f)`): false, dropping `f`, at the
    /// group's limit or when the runtime refuses the goroutine.
    #[track_caller]
    pub fn try_go<F>(&self, f: F) -> bool
    where
        F: FnOnce() -> Result<(), E> + Send + 'scope,
    {
        let origin = Origin::here();
        let Some(ticket) = self.core.admit(false) else {
            return false;
        };
        self.core
            .start(ticket, f, |task: Task<F, E>| {
                self.scope.try_spawn_as(origin, move || task.run(), false)
            })
            .is_ok()
    }

    /// Bounds the goroutines of the group running at once (Go's `g.SetLimit(n)`; `None`: no
    /// bound).
    ///
    /// # Panics
    ///
    /// As [`Group::set_limit`](super::Group::set_limit): while goroutines started under an
    /// earlier limit are running.
    #[track_caller]
    pub fn set_limit(&self, limit: Option<usize>) {
        self.core.set_limit(limit);
    }

    /// The limit, if any.
    pub fn limit(&self) -> Option<usize> {
        self.core.limit()
    }

    /// Waits for every goroutine of the group, then returns the first error (Go's
    /// `g.Wait()`), cancelling the context; a goroutine's panic is re-raised here.
    #[track_caller]
    pub fn wait(&self) -> Result<(), E> {
        self.core.wait();
        self.core.finish()
    }
}

impl<E> Drop for ScopedGroup<'_, '_, E> {
    /// Cancels the group's context, if it has one, without waiting (the scope waits).
    fn drop(&mut self) {
        self.core.cancel();
    }
}

impl<E> fmt::Debug for ScopedGroup<'_, '_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedGroup")
            .field("limit", &self.core.limit())
            .finish_non_exhaustive()
    }
}
