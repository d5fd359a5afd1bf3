//! [`JoinSet`]: a set of goroutines whose results come back in the order they finish, tokio's
//! `JoinSet` for goroutines.
//!
//! Each goroutine of a set runs its closure with a small guard beside it. When the closure
//! returns or panics, or is dropped without running (a cancelled goroutine that never
//! started, a spawn the runtime refused), the guard sends the goroutine's key on a channel
//! that the set owns. [`JoinSet::join_next`] receives the next key, removes that handle from
//! a map and joins it: one receive, one map removal and one join per goroutine, however many
//! there are. A join may still wait a moment, since the guard reports just before the
//! goroutine publishes its result.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::panic::Location;
use std::thread;
use std::time::{Duration, Instant};

use crate::chan::{self, Receiver, RecvCtxError, RecvTimeoutError, Sender};
use crate::context::{Context, ContextError};
use crate::goroutine::task::Origin;
use crate::runtime::Runtime;
use crate::sched;
use crate::sched::join_handle::JoinHandle;
use crate::sched::spawn_error::spawned_or_panic;
use crate::wait::census;

/// A set of goroutines that yields their results as they finish, in order of completion:
/// tokio's `JoinSet`, for goroutines. Go has no such type; the nearest is a channel that every
/// goroutine sends its result on.
///
/// [`spawn`](Self::spawn) starts a goroutine in the set; [`join_next`](Self::join_next) waits
/// for whichever goroutine finishes next and returns its result (`Ok` with its value, `Err`
/// with its panic payload, or with [`Cancelled`](crate::Cancelled) if it was cancelled), and
/// `None` once the set is empty. Everything a goroutine did happens-before `join_next`
/// returns its result. A goroutine counts as finished when its closure has returned or
/// unwound, so two goroutines that finish at almost the same time come back in the order
/// their closures ended.
///
/// Waiting parks a goroutine and blocks a plain thread, so a set works in both (its
/// goroutines then come from [`spawn_on`](Self::spawn_on)).
///
/// **Dropping the set cancels** every goroutine still in it, as
/// [`cancel_all`](Self::cancel_all) does, and **does not wait** for them: each unwinds at its
/// next suspension point, or is dropped unstarted, on its own. Join them first (or call
/// [`join_all`](Self::join_all)) where their ends matter; the runtime still waits for them
/// when it shuts down.
///
/// # Examples
///
/// ```
/// use scheduler::JoinSet;
///
/// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
/// let total = rt.block_on(|| {
///     let mut set = JoinSet::new();
///     for i in 1..=10_u64 {
///         set.spawn(move || i * i);
///     }
///     let mut total = 0;
///     while let Some(result) = set.join_next() {
///         total += result.unwrap(); // `Err` only if that goroutine panicked
///     }
///     total
/// });
/// assert_eq!(total, 385);
/// ```
pub struct JoinSet<T> {
    /// The goroutines not yet joined, by their key in this set.
    handles: HashMap<u64, JoinHandle<T>>,
    /// Keys received from the channel and not yet joined, oldest first.
    finished: VecDeque<u64>,
    /// The key of the next goroutine spawned.
    next_key: u64,
    /// Cloned into each goroutine's guard. The set keeps one, so `done_rx` is never
    /// disconnected while the set lives.
    done_tx: Sender<u64>,
    /// The keys of goroutines whose closures have ended, in the order they ended.
    done_rx: Receiver<u64>,
}

/// How long a join waits for the next goroutine to finish.
enum Until<'a> {
    Forever,
    Deadline(Instant),
    Context(&'a Context),
}

/// Lives in a goroutine's closure: reports its key when the closure ends, however it ends.
struct Finished {
    key: u64,
    tx: Sender<u64>,
}

impl Drop for Finished {
    fn drop(&mut self) {
        // `try_send` on an unbounded channel never waits, so it is no suspension point: a
        // cancelled goroutine that is unwinding passes through it without a second unwind.
        // It fails only when the set is gone, and then nobody is listening.
        let _ = self.tx.try_send(self.key);
    }
}

impl<T> JoinSet<T> {
    /// An empty set.
    ///
    /// # Examples
    ///
    /// ```
    /// let set = scheduler::JoinSet::<u32>::new();
    /// assert!(set.is_empty());
    /// ```
    pub fn new() -> JoinSet<T> {
        let (done_tx, done_rx) = chan::unbounded();
        JoinSet {
            handles: HashMap::new(),
            finished: VecDeque::new(),
            next_key: 0,
            done_tx,
            done_rx,
        }
    }

    /// The goroutines in the set: spawned and not yet returned by a join.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
    /// let mut set = scheduler::JoinSet::new();
    /// set.spawn_on(|| 1, &rt);
    /// set.spawn_on(|| 2, &rt);
    /// assert_eq!(set.len(), 2);
    /// set.join_next();
    /// assert_eq!(set.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Whether the set holds no goroutine.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
    /// let mut set = scheduler::JoinSet::new();
    /// set.spawn_on(|| (), &rt);
    /// assert!(!set.is_empty());
    /// set.join_all();
    /// ```
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Cancels every goroutine in the set with [`JoinHandle::cancel`]: each unwinds with
    /// [`Cancelled`](crate::Cancelled) at its next suspension point, or is dropped unstarted,
    /// and its result (`Err` holding `Cancelled`) still comes back through the joins. One that
    /// had finished already keeps its result.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
    /// let (_tx, rx) = scheduler::chan::bounded::<u32>(0); // nobody sends
    /// let mut set = scheduler::JoinSet::new();
    /// set.spawn_on(move || rx.recv(), &rt);
    /// set.cancel_all();
    /// let payload = set.join_next().unwrap().unwrap_err();
    /// assert!(payload.is::<scheduler::Cancelled>());
    /// ```
    pub fn cancel_all(&self) {
        for handle in self.handles.values() {
            handle.cancel();
        }
    }

    /// Waits for the next goroutine of the set to finish and returns its result, or `None`
    /// at once if the set is empty. Results come in the order the goroutines finished.
    ///
    /// Inside a goroutine it parks the caller; on a plain thread it blocks the thread.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
    /// rt.block_on(|| {
    ///     let (go_tx, go_rx) = scheduler::chan::bounded::<()>(0);
    ///     let mut set = scheduler::JoinSet::new();
    ///     set.spawn(move || {
    ///         go_rx.recv().unwrap(); // finishes only when told
    ///         "slow"
    ///     });
    ///     set.spawn(|| "fast");
    ///     assert_eq!(set.join_next().unwrap().unwrap(), "fast");
    ///     go_tx.send(()).unwrap();
    ///     assert_eq!(set.join_next().unwrap().unwrap(), "slow");
    ///     assert!(set.join_next().is_none());
    /// });
    /// ```
    #[track_caller]
    pub fn join_next(&mut self) -> Option<thread::Result<T>> {
        let site = Location::caller();
        let next = self.next_finished(Until::Forever);
        next.ok()?.map(|handle| handle.join_at(site))
    }

    /// The result of a goroutine of the set that has finished, without waiting: `None` if
    /// none has (or the set is empty).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
    /// rt.block_on(|| {
    ///     let mut set = scheduler::JoinSet::new();
    ///     set.spawn(|| 7);
    ///     // On the only worker, the goroutine cannot run before this one parks.
    ///     assert!(set.try_join_next().is_none());
    ///     assert_eq!(set.join_next().unwrap().unwrap(), 7);
    /// });
    /// ```
    pub fn try_join_next(&mut self) -> Option<thread::Result<T>> {
        self.finished.extend(self.done_rx.try_iter());
        // A goroutine whose key arrived may still be publishing its result: take the first
        // one that has, so that the join below never waits.
        let at = self
            .finished
            .iter()
            .position(|key| match self.handles.get(key) {
                Some(handle) => handle.is_finished(),
                None => true, // a refused spawn's key: drop it below
            })?;
        let key = self.finished.remove(at).expect("a position found above");
        match self.handles.remove(&key) {
            Some(handle) => Some(handle.join()),
            None => self.try_join_next(),
        }
    }

    /// [`join_next`](Self::join_next), waiting at most `timeout`: `None` if the set is
    /// empty or no goroutine finished in time ([`is_empty`](Self::is_empty) tells which).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
    /// let (_tx, rx) = scheduler::chan::bounded::<u32>(0); // nobody sends
    /// let mut set = scheduler::JoinSet::new();
    /// set.spawn_on(move || rx.recv(), &rt);
    /// assert!(set.join_next_timeout(Duration::from_millis(10)).is_none());
    /// assert_eq!(set.len(), 1); // still running: timed out
    /// ```
    #[track_caller]
    pub fn join_next_timeout(&mut self, timeout: Duration) -> Option<thread::Result<T>> {
        let site = Location::caller();
        // A deadline past what `Instant` can hold is as good as none.
        let until = Instant::now()
            .checked_add(timeout)
            .map_or(Until::Forever, Until::Deadline);
        let next = self.next_finished(until);
        next.ok()?.map(|handle| handle.join_at(site))
    }

    /// [`join_next`](Self::join_next), unless `ctx` ends first.
    ///
    /// # Errors
    ///
    /// The context's error if it ended before a goroutine of the set finished (or had ended
    /// already, and none had finished). An empty set returns `Ok(None)` whatever the context.
    ///
    /// # Examples
    ///
    /// ```
    /// use scheduler::context::{Context, ContextError};
    ///
    /// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
    /// let (_tx, rx) = scheduler::chan::bounded::<u32>(0); // nobody sends
    /// let mut set = scheduler::JoinSet::new();
    /// set.spawn_on(move || rx.recv(), &rt);
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// cancel.cancel();
    /// assert_eq!(set.join_next_ctx(&ctx).unwrap_err(), ContextError::Canceled);
    /// ```
    #[track_caller]
    pub fn join_next_ctx(
        &mut self,
        ctx: &Context,
    ) -> Result<Option<thread::Result<T>>, ContextError> {
        let site = Location::caller();
        let next = self.next_finished(Until::Context(ctx));
        Ok(next?.map(|handle| handle.join_at(site)))
    }

    /// Waits for every goroutine of the set and returns their results in the order they
    /// finished, leaving nothing to cancel.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
    /// let mut set = scheduler::JoinSet::new();
    /// for i in 0..5 {
    ///     set.spawn_on(move || i, &rt);
    /// }
    /// let mut all: Vec<i32> = set.join_all().into_iter().map(Result::unwrap).collect();
    /// all.sort();
    /// assert_eq!(all, [0, 1, 2, 3, 4]);
    /// ```
    #[track_caller]
    pub fn join_all(mut self) -> Vec<thread::Result<T>> {
        let site = Location::caller();
        let mut all = Vec::with_capacity(self.len());
        while let Ok(Some(handle)) = self.next_finished(Until::Forever) {
            all.push(handle.join_at(site));
        }
        all
    }

    /// Takes the handle of the goroutine that finished next out of the set, waiting for one
    /// as `until` allows: `Ok(None)` if the set is empty, `Err` with the context's error (or
    /// [`ContextError::DeadlineExceeded`] for a deadline) if the wait ended first.
    #[track_caller]
    fn next_finished(&mut self, until: Until<'_>) -> Result<Option<JoinHandle<T>>, ContextError> {
        while !self.handles.is_empty() {
            let key = match self.finished.pop_front() {
                Some(key) => key,
                None => self.receive(&until)?,
            };
            if let Some(handle) = self.handles.remove(&key) {
                return Ok(Some(handle));
            }
            // The key of a spawn that was refused: it never entered the map.
        }
        Ok(None)
    }

    /// The next key from the channel, waiting as `until` allows.
    #[track_caller]
    fn receive(&self, until: &Until<'_>) -> Result<u64, ContextError> {
        const HELD: &str = "the set holds a sender";
        match until {
            Until::Forever => Ok(self.done_rx.recv().expect(HELD)),
            Until::Deadline(deadline) => match self.done_rx.recv_deadline(*deadline) {
                Ok(key) => Ok(key),
                Err(RecvTimeoutError::Timeout) => Err(ContextError::DeadlineExceeded),
                Err(RecvTimeoutError::Disconnected) => unreachable!("{HELD}"),
            },
            Until::Context(ctx) => self.done_rx.recv_ctx(ctx).map_err(|err| match err {
                RecvCtxError::Context(err) => err,
                RecvCtxError::Disconnected => unreachable!("{HELD}"),
            }),
        }
    }

    /// The closure that runs `f` with the guard that reports `key`.
    fn guarded<F>(&mut self, f: F) -> (u64, impl FnOnce() -> T + Send + 'static)
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let key = self.next_key;
        self.next_key += 1;
        let guard = Finished {
            key,
            tx: self.done_tx.clone(),
        };
        let run = move || {
            let _guard = guard;
            f()
        };
        (key, run)
    }
}

impl<T: Send + 'static> JoinSet<T> {
    /// Spawns `f` in the set, on the runtime running the caller, as [`spawn`](crate::spawn)
    /// does: at the [`max_goroutines`](crate::Builder::max_goroutines) limit it waits for
    /// room.
    ///
    /// To tell the results apart, return something that says which goroutine it was (an
    /// index, a name) with the value.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
    /// rt.block_on(|| {
    ///     let mut set = scheduler::JoinSet::new();
    ///     for name in ["a", "b"] {
    ///         set.spawn(move || (name, name.len()));
    ///     }
    ///     let mut got: Vec<_> = set.join_all().into_iter().map(Result::unwrap).collect();
    ///     got.sort();
    ///     assert_eq!(got, [("a", 1), ("b", 1)]);
    /// });
    /// ```
    ///
    /// # Panics
    ///
    /// Outside a goroutine (use [`spawn_on`](Self::spawn_on) there), and when the runtime
    /// refuses the goroutine, as [`spawn`](crate::spawn) does.
    #[track_caller]
    pub fn spawn<F>(&mut self, f: F)
    where
        F: FnOnce() -> T + Send + 'static,
    {
        let origin = Origin::here();
        // Outside a goroutine, `run` is dropped unspawned and its key comes back unclaimed,
        // which the joins skip.
        let (key, run) = self.guarded(f);
        let handle = spawned_or_panic(sched::current::with_shared("JoinSet::spawn", |shared| {
            shared.try_spawn(run, true, origin)
        }));
        self.handles.insert(key, handle);
    }

    /// Spawns `f` in the set, on `runtime`, from anywhere: a plain thread, or a goroutine of
    /// any runtime, as [`Runtime::spawn`] does.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
    /// let mut set = scheduler::JoinSet::new();
    /// set.spawn_on(|| 40 + 2, &rt);
    /// assert_eq!(set.join_next().unwrap().unwrap(), 42); // blocks this thread
    /// ```
    ///
    /// # Panics
    ///
    /// When the runtime refuses the goroutine, as [`Runtime::spawn`] does.
    #[track_caller]
    pub fn spawn_on<F>(&mut self, f: F, runtime: &Runtime)
    where
        F: FnOnce() -> T + Send + 'static,
    {
        let origin = Origin::here();
        census::note_use();
        let (key, run) = self.guarded(f);
        let handle = spawned_or_panic(runtime.shared().try_spawn(run, true, origin));
        self.handles.insert(key, handle);
    }
}

impl<T> Default for JoinSet<T> {
    fn default() -> JoinSet<T> {
        JoinSet::new()
    }
}

impl<T> Drop for JoinSet<T> {
    /// Cancels what is left, without waiting for it (see the type's doc).
    fn drop(&mut self) {
        self.cancel_all();
    }
}

impl<T> fmt::Debug for JoinSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinSet").field("len", &self.len()).finish()
    }
}
