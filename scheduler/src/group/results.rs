//! [`ResultGroup`]: a [`Group`] whose goroutines return values, collected in the order they
//! were started.

use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

use super::Group;

/// A [`Group`] whose goroutines return values: [`wait`](Self::wait) gives them back in the
/// order the goroutines were started (not the order they finished), or the first error.
/// Go's idiom of a slice indexed by the goroutine's number, written to by each, with
/// `errgroup` around it.
///
/// Make one with [`new`](Self::new), or from any [`Group`] (one with a context, on a given
/// runtime, with a limit) with `ResultGroup::from(group)`. Everything else is the group's:
/// the limit, the context cancelled on the first error, a panic re-raised by `wait`.
///
/// # Examples
///
/// ```
/// use scheduler::context::Context;
/// use scheduler::group::{Group, ResultGroup};
///
/// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
/// let (group, _ctx) = Group::with_context_on(&Context::background(), &rt);
/// let group = ResultGroup::from(group);
/// group.set_limit(Some(4));
/// for i in 0..10_u64 {
///     group.go(move || if i < 100 { Ok(i * i) } else { Err("too big") });
/// }
/// let squares = group.wait().unwrap();
/// assert_eq!(squares, [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
/// ```
pub struct ResultGroup<T, E> {
    group: Group<E>,
    /// One slot per goroutine started, in the order of the `go` calls; each goroutine fills
    /// its own when it succeeds. `try_go`'s refusals leave theirs empty.
    values: Arc<Mutex<Vec<Option<T>>>>,
}

impl<T: Send + 'static, E: Send + 'static> ResultGroup<T, E> {
    /// A group that spawns on the caller's runtime at each `go`, as [`Group::new`]'s does.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
    /// let lens = rt.block_on(|| {
    ///     let group = scheduler::group::ResultGroup::<usize, String>::new();
    ///     for word in ["go", "rust"] {
    ///         group.go(move || Ok(word.len()));
    ///     }
    ///     group.wait()
    /// });
    /// assert_eq!(lens, Ok(vec![2, 4]));
    /// ```
    pub fn new() -> ResultGroup<T, E> {
        ResultGroup::from(Group::new())
    }

    /// Starts `f` as a goroutine of the group, as [`Group::go`] does (waiting for room under
    /// a limit); its value takes the next place in what [`wait`](Self::wait) returns.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
    /// let group = scheduler::group::ResultGroup::from(scheduler::group::Group::new_on(&rt));
    /// group.go(|| Ok::<_, ()>("a"));
    /// group.go(|| Ok("b"));
    /// assert_eq!(group.wait(), Ok(vec!["a", "b"]));
    /// ```
    ///
    /// # Panics
    ///
    /// As [`Group::go`].
    #[track_caller]
    pub fn go<F>(&self, f: F)
    where
        F: FnOnce() -> Result<T, E> + Send + 'static,
    {
        let fill = self.slot();
        self.group.go(move || fill(f()?));
    }

    /// Starts `f` as a goroutine of the group if there is room now, as [`Group::try_go`]
    /// does; false if not. Only started goroutines take a place in what
    /// [`wait`](Self::wait) returns.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
    /// let group = scheduler::group::ResultGroup::from(scheduler::group::Group::new_on(&rt));
    /// group.set_limit(Some(0)); // no room at all
    /// assert!(!group.try_go(|| Ok::<_, ()>(1)));
    /// group.set_limit(None);
    /// assert!(group.try_go(|| Ok(2)));
    /// assert_eq!(group.wait(), Ok(vec![2]));
    /// ```
    ///
    /// # Panics
    ///
    /// As [`Group::try_go`].
    #[track_caller]
    pub fn try_go<F>(&self, f: F) -> bool
    where
        F: FnOnce() -> Result<T, E> + Send + 'static,
    {
        let fill = self.slot();
        self.group.try_go(move || fill(f()?))
    }

    /// [`Group::set_limit`].
    ///
    /// # Examples
    ///
    /// ```
    /// let group = scheduler::group::ResultGroup::<u8, ()>::new();
    /// group.set_limit(Some(3));
    /// ```
    ///
    /// # Panics
    ///
    /// As [`Group::set_limit`].
    #[track_caller]
    pub fn set_limit(&self, limit: Option<usize>) {
        self.group.set_limit(limit);
    }

    /// Waits for every goroutine of the group, as [`Group::wait`] does, and returns their
    /// values in the order the goroutines were started, or the first error (the values are
    /// then dropped). The values are handed out once: the group starts empty again.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
    /// let group = scheduler::group::ResultGroup::from(scheduler::group::Group::new_on(&rt));
    /// group.go(|| Ok(1));
    /// group.go(|| Err("broken"));
    /// assert_eq!(group.wait(), Err("broken"));
    /// ```
    ///
    /// # Panics
    ///
    /// As [`Group::wait`]: the first panic of a goroutine is re-raised.
    #[track_caller]
    pub fn wait(&self) -> Result<Vec<T>, E> {
        let outcome = self.group.wait();
        // Every goroutine has ended: nothing writes to the slots until the next `go`.
        let values = std::mem::take(&mut *self.values.lock());
        outcome.map(|()| values.into_iter().flatten().collect())
    }

    /// Takes the next place, and returns what fills it from the goroutine.
    fn slot(&self) -> impl FnOnce(T) -> Result<(), E> + Send + 'static {
        let index = {
            let mut values = self.values.lock();
            values.push(None);
            values.len() - 1
        };
        let values = self.values.clone();
        move |value| {
            values.lock()[index] = Some(value);
            Ok(())
        }
    }
}

impl<T, E> From<Group<E>> for ResultGroup<T, E> {
    /// Collects the values of `group`'s goroutines started from now on, through the
    /// `ResultGroup`.
    fn from(group: Group<E>) -> ResultGroup<T, E> {
        ResultGroup {
            group,
            values: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

impl<T: Send + 'static, E: Send + 'static> Default for ResultGroup<T, E> {
    fn default() -> ResultGroup<T, E> {
        ResultGroup::new()
    }
}

impl<T, E> fmt::Debug for ResultGroup<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResultGroup")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}
