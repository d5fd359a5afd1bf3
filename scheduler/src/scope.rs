//! Scoped goroutines: goroutines that borrow from the caller's stack, `std::thread::scope`'s
//! counterpart. The soundness argument is in `crate::sched::scoped` and docs/design.md.

use std::fmt;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe, Location};
use std::sync::Arc;
use std::thread;

use crate::goroutine::task::Origin;
use crate::runtime::Runtime;
use crate::sched::Shared;
use crate::sched::join_handle::JoinHandle;
use crate::sched::scoped::{self, Slot, Tally};
use crate::sched::spawn_error::{SpawnError, spawned_or_panic};
use crate::wait::Site;

/// Runs `f` with a [`Scope`] whose goroutines may borrow anything that outlives the call,
/// and returns once every one of them has ended: `std::thread::scope` for goroutines, on the
/// runtime running the caller.
///
/// Inside a goroutine, the wait at the end parks it (its worker runs the scoped goroutines,
/// or others, meanwhile). The wait ends only when every goroutine spawned in the scope has
/// ended, also when `f` panics or is cancelled, or the caller is cancelled while it waits: the
/// borrowed data outlives them all. Then `f`'s panic (or cancellation) is resumed; else the
/// first panic of a scoped goroutine whose [`ScopedJoinHandle::join`] nobody called is
/// re-raised (its payload, as it was); else `f`'s value is returned. When `f` was cancelled
/// (a forced shutdown, or [`JoinHandle::cancel`] of the caller), the scoped goroutines are
/// cancelled too, so the wait does not outlast the cancellation.
///
/// A scoped goroutine that never ends keeps the caller waiting, as a thread does in
/// `std::thread::scope`.
///
/// # Examples
///
/// ```
/// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
/// let total = rt.block_on(|| {
///     let mut numbers = vec![1, 2, 3, 4, 5, 6];
///     scheduler::scope(|s| {
///         let (left, right) = numbers.split_at_mut(3);
///         s.spawn(|| left.iter_mut().for_each(|n| *n *= 10));
///         s.spawn(|| right.iter_mut().for_each(|n| *n *= 100));
///     });
///     numbers.iter().sum::<i32>()
/// });
/// assert_eq!(total, 60 + 1500);
/// ```
///
/// A borrow that would outlive the scope does not compile:
///
/// ```compile_fail
/// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
/// rt.block_on(|| {
///     let mut escaped = None;
///     scheduler::scope(|s| {
///         let local = String::from("dies at the end of the closure");
///         escaped = Some(s.spawn(|| local.len()));
///     });
/// });
/// ```
///
/// # Panics
///
/// Outside a goroutine (use [`Runtime::scope`] there), and as described above.
#[track_caller]
pub fn scope<'env, F, T>(f: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    let site = Location::caller();
    let shared = crate::sched::current::with_shared("scope", Arc::clone);
    run(shared, site, f)
}

impl Runtime {
    /// [`scope`](crate::scope()) on this runtime, from anywhere: on a plain thread, the wait
    /// at the end blocks the thread.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
    /// let words = ["scoped", "goroutines", "borrow"];
    /// let lengths: Vec<usize> = rt.scope(|s| {
    ///     let handles: Vec<_> = words.iter().map(|w| s.spawn(move || w.len())).collect();
    ///     handles.into_iter().map(|h| h.join().unwrap()).collect()
    /// });
    /// assert_eq!(lengths, [6, 10, 6]);
    /// ```
    #[track_caller]
    pub fn scope<'env, F, T>(&self, f: F) -> T
    where
        F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
    {
        run(self.shared().clone(), Location::caller(), f)
    }
}

/// The body of [`scope`] and [`Runtime::scope`].
fn run<'env, F, T>(shared: Arc<Shared>, site: Site, f: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    let scope = Scope {
        tally: Arc::new(Tally::default()),
        shared,
        scope: PhantomData,
        env: PhantomData,
    };
    // Caught, so that no unwind leaves the frames the scoped goroutines borrow from before
    // they all ended.
    let result = panic::catch_unwind(AssertUnwindSafe(|| f(&scope)));
    if let Err(payload) = &result
        && scoped::is_cancellation(&**payload)
    {
        scope.tally.cancel_all();
    }
    scope.tally.wait_all(site);
    // Cancelled while it waited: the unwind comes now that nothing borrows from us.
    crate::sched::current::continue_cancellation();
    scoped::finish(&scope.tally, result)
}

/// The handle through which goroutines are spawned in a [`scope`]: they may borrow anything
/// that lives for `'env`, and the scope (`'scope`) ends when they all have.
pub struct Scope<'scope, 'env: 'scope> {
    tally: Arc<Tally>,
    shared: Arc<Shared>,
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

impl<'scope> Scope<'scope, '_> {
    /// Spawns a goroutine that may borrow from the scope's caller, like
    /// `std::thread::Scope::spawn`. At the `max_goroutines` limit it waits for room, as
    /// [`spawn`](crate::spawn) does.
    ///
    /// # Panics
    ///
    /// When the runtime refuses the goroutine (it is shutting down, or has no stack for it),
    /// as [`spawn`](crate::spawn) does.
    #[track_caller]
    pub fn spawn<F, T>(&'scope self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        self.spawn_as(Origin::here(), f)
    }

    /// [`spawn`](Self::spawn) with a given origin.
    #[track_caller]
    pub(crate) fn spawn_as<F, T>(&'scope self, origin: Origin, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        spawned_or_panic(self.try_spawn_as(origin, f, true))
    }

    /// Spawns `f` in the scope, or says why the runtime refused it; at the `max_goroutines`
    /// limit it waits for room if `wait`, else fails at once. For the scoped group.
    pub(crate) fn try_spawn_as<F, T>(
        &'scope self,
        origin: Origin,
        f: F,
        wait: bool,
    ) -> Result<ScopedJoinHandle<'scope, T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        self.tally.add();
        // SAFETY: `run` waits for the tally before the scope's frame (and with it everything
        // `'scope` covers) can go, whatever happens to `f` or to the caller
        // (`crate::sched::scoped`).
        let (main, slot) = unsafe { scoped::erase(&self.tally, f) };
        // Refused: `main` is dropped unstarted inside `try_spawn`, counting itself out.
        let handle = self.shared.try_spawn(main, wait, origin)?;
        if let Some(task) = handle.task_ref() {
            self.tally.track(task);
        }
        Ok(ScopedJoinHandle {
            handle,
            slot,
            scope: PhantomData,
        })
    }
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope").finish_non_exhaustive()
    }
}

/// A handle to a goroutine spawned in a [`scope`]: `join` returns its value, which may borrow
/// from the scope's caller. Dropping it leaves the goroutine running; the scope still waits
/// for it, and re-raises its panic if nobody joined it.
pub struct ScopedJoinHandle<'scope, T> {
    handle: JoinHandle<()>,
    slot: Arc<Slot<T>>,
    scope: PhantomData<&'scope ()>,
}

impl<T> ScopedJoinHandle<'_, T> {
    /// Waits for the goroutine and returns its value, or `Err` with its panic's payload (a
    /// [`Cancelled`](crate::Cancelled) one if it was cancelled), as
    /// [`JoinHandle::join`] does.
    #[track_caller]
    pub fn join(self) -> thread::Result<T> {
        let ended = self.handle.join_at(Location::caller());
        match self.slot.take() {
            Some(result) => result,
            // Dropped unstarted (cancelled): the goroutine's own result says so.
            None => Err(ended.expect_err("a scoped goroutine that ran left its result")),
        }
    }

    /// Cancels the goroutine, as [`JoinHandle::cancel`] does.
    pub fn cancel(&self) {
        self.handle.cancel();
    }

    /// Whether the goroutine has finished.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// The goroutine's id, as [`JoinHandle::id`].
    pub fn id(&self) -> u64 {
        self.handle.id()
    }
}

impl<T> fmt::Debug for ScopedJoinHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedJoinHandle")
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}
