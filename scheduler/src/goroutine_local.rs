//! Goroutine-local storage: [`goroutine_local!`](crate::goroutine_local!) declares keys, and a
//! [`GoroutineLocalKey`] reaches the running goroutine's own value. `std::thread_local!` for
//! goroutines; tokio's `task_local!`, may's `coroutine_local!`.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::ptr::NonNull;

use crate::goroutine::locals::Destroyed;
use crate::sched::current;

/// Declares goroutine-local storage: one or more keys of type [`GoroutineLocalKey`], each
/// giving every goroutine a value of its own.
///
/// The syntax is `std::thread_local!`'s: `static NAME: Type = initialiser;`, with attributes
/// and a visibility. The initialiser runs lazily, in each goroutine that reaches the key, at
/// its first access. See [`GoroutineLocalKey`] for when values are dropped and what happens
/// outside a goroutine.
///
/// # Examples
///
/// ```
/// use std::cell::{Cell, RefCell};
///
/// scheduler::goroutine_local! {
///     /// The request this goroutine serves.
///     static REQUEST_ID: Cell<u64> = Cell::new(0);
///     pub static LOG: RefCell<Vec<String>> = RefCell::new(Vec::new());
/// }
///
/// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
/// let ids = rt.block_on(|| {
///     REQUEST_ID.set(7);
///     let other = scheduler::spawn(|| {
///         REQUEST_ID.set(8);
///         LOG.with_borrow_mut(|log| log.push("served".to_owned()));
///         (REQUEST_ID.get(), LOG.with_borrow(Vec::len))
///     });
///     let other = other.join().unwrap();
///     (REQUEST_ID.get(), LOG.with_borrow(Vec::len), other)
/// });
/// assert_eq!(ids, (7, 0, (8, 1)));
/// ```
#[macro_export]
macro_rules! goroutine_local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr; $($rest:tt)*) => {
        $crate::goroutine_local!($(#[$attr])* $vis static $name: $t = $init);
        $crate::goroutine_local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr) => {
        $(#[$attr])*
        $vis static $name: $crate::__private::GoroutineLocalKey<$t> = {
            fn __init() -> $t {
                $init
            }
            $crate::__private::GoroutineLocalKey::__new(
                ::std::concat!(::std::module_path!(), "::", ::std::stringify!($name)),
                __init,
            )
        };
    };
}

/// A key to goroutine-local storage, declared with
/// [`goroutine_local!`](crate::goroutine_local!): each goroutine that reaches it has a value of
/// its own, made by the key's initialiser at its first access. `std::thread::LocalKey` for
/// goroutines.
///
/// **Life of a value.** A goroutine's value is made at its first [`with`](Self::with) (or
/// [`set`](GoroutineLocalKey::<Cell<T>>::set)) and dropped when the goroutine finishes: on its
/// own thread and stack, after its closure returned or panicked (or unwound because a
/// [`shutdown_timeout`](crate::Runtime::shutdown_timeout) cancelled it), before it is counted
/// out and before its [`JoinHandle::join`](crate::JoinHandle::join) returns. Values are dropped
/// newest first; a destructor may block like any goroutine code. During and after that drop
/// the goroutine's keys are out of reach: [`try_with`](Self::try_with) returns an
/// [`AccessError`] and `with` panics, as `std`'s do for a thread being torn down. A destructor
/// that panics is printed by the panic hook and otherwise ignored (the goroutine's result
/// stays what its closure returned); the other values are still dropped. A goroutine that never
/// started (cancelled by a shutdown before it ran) never made any.
///
/// **Inline joins.** A goroutine that a [`join`](crate::JoinHandle::join) runs on its
/// joiner's stack (it had not started yet) has its own values, not its joiner's, and drops
/// them before that `join` returns; the joiner's values are untouched meanwhile.
///
/// **Outside a goroutine** (a plain thread, a blocking job of
/// [`spawn_blocking`](crate::spawn_blocking), a destructor the runtime runs on a worker's own
/// stack) there is no value: `try_with` returns an [`AccessError`], and `with` panics naming
/// the key. tokio's `task_local!` panics the same way; unlike a `std` thread-local, there is
/// no value per OS thread to fall back on.
///
/// **Why `T` need not be `Send`.** A value is made, used and dropped on the thread of its
/// goroutine only: a goroutine that has started never changes OS thread, and one run inline by
/// a `join` runs on its joiner's thread. References to it live only for the call of `with`'s
/// closure. So `Rc`, `RefCell` and other `!Send` values are fine, as in a `std` thread-local.
///
/// # Examples
///
/// Two goroutines on one worker, taking turns, each with its own value:
///
/// ```
/// use std::cell::Cell;
///
/// scheduler::goroutine_local! {
///     static COUNT: Cell<u32> = Cell::new(0);
/// }
///
/// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
/// let counts = rt.block_on(|| {
///     let count_to = |n| {
///         move || {
///             for _ in 0..n {
///                 COUNT.set(COUNT.get() + 1);
///                 scheduler::yield_now(); // the other one runs, on this thread
///             }
///             COUNT.get()
///         }
///     };
///     let (a, b) = (scheduler::spawn(count_to(3)), scheduler::spawn(count_to(5)));
///     (a.join().unwrap(), b.join().unwrap(), COUNT.get())
/// });
/// assert_eq!(counts, (3, 5, 0));
/// ```
pub struct GoroutineLocalKey<T: 'static> {
    /// `module::NAME`, for the panic of `with` outside a goroutine.
    name: &'static str,
    init: fn() -> T,
}

impl<T: 'static> GoroutineLocalKey<T> {
    /// What [`goroutine_local!`](crate::goroutine_local!) expands to; not a public API.
    #[doc(hidden)]
    pub const fn __new(name: &'static str, init: fn() -> T) -> GoroutineLocalKey<T> {
        GoroutineLocalKey { name, init }
    }

    /// Runs `f` with a reference to the running goroutine's value, making it first (with the
    /// key's initialiser) if this goroutine has none yet. `f` may block, spawn, join or reach
    /// other keys; the reference stays valid throughout.
    ///
    /// An initialiser that reaches its own key makes a value there first; that one is kept,
    /// and the one the outer initialiser returns is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::RefCell;
    ///
    /// scheduler::goroutine_local! {
    ///     static NAMES: RefCell<Vec<&'static str>> = RefCell::new(vec!["main"]);
    /// }
    ///
    /// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
    /// let names = rt.block_on(|| {
    ///     NAMES.with(|names| names.borrow_mut().push("more"));
    ///     NAMES.with(|names| names.borrow().clone())
    /// });
    /// assert_eq!(names, ["main", "more"]);
    /// ```
    ///
    /// # Panics
    ///
    /// Outside a goroutine, and in a goroutine whose values are being dropped (see
    /// [`GoroutineLocalKey`]), with a message naming the key; and if the initialiser panics.
    #[track_caller]
    pub fn with<F, R>(&'static self, f: F) -> R
    where
        F: FnOnce(&T) -> R,
    {
        self.unwrap(self.try_with(f))
    }

    /// Runs `f` with a reference to the running goroutine's value, as [`with`](Self::with)
    /// does, or returns an [`AccessError`] without calling `f` outside a goroutine, and in a
    /// goroutine whose values are being dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::Cell;
    ///
    /// scheduler::goroutine_local! {
    ///     static DEPTH: Cell<u32> = Cell::new(0);
    /// }
    ///
    /// // A plain thread is no goroutine.
    /// assert!(DEPTH.try_with(|d| d.get()).is_err());
    /// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
    /// assert_eq!(rt.block_on(|| DEPTH.try_with(|d| d.get())), Ok(0));
    /// ```
    ///
    /// # Panics
    ///
    /// If the initialiser panics.
    pub fn try_with<F, R>(&'static self, f: F) -> Result<R, AccessError>
    where
        F: FnOnce(&T) -> R,
    {
        let value = self.value(|| (self.init)())?;
        // SAFETY: `value` points to this goroutine's value, which is dropped only when the
        // goroutine finishes, after its code (this call among it) returned; it is used only
        // on this thread, the goroutine's (`Locals`), and only shared references to it are
        // ever made.
        Ok(f(unsafe { value.as_ref() }))
    }

    /// Where the running goroutine's value for this key lives, made by `init` if there is none
    /// yet.
    fn value(&'static self, init: impl FnOnce() -> T) -> Result<NonNull<T>, AccessError> {
        let key = self.id();
        let locals = current::running_locals().ok_or(AccessError::OUTSIDE)?;
        // SAFETY: the running goroutine's slot, valid while its code runs and touched on this
        // thread only (`running_locals`), with no borrow of it held by anyone (`Locals`). The
        // same holds for each use below; the pointer is read again after `init`, user code
        // that may have run a `join` (which lends the slot to an inline goroutine, and gives
        // it back as it was).
        if let Some(value) = unsafe { (*locals).get(key) }? {
            return Ok(downcast(value));
        }
        let made: Box<dyn Any> = Box::new(init());
        let locals = current::running_locals().ok_or(AccessError::OUTSIDE)?;
        // SAFETY: as above.
        match unsafe { (*locals).insert(key, made) } {
            Ok(value) => Ok(downcast(value)),
            Err(made) => {
                // The initialiser reached this key and made a value that stays (or the
                // goroutine's values were dropped meanwhile): drop ours, outside any borrow of
                // the slot, and take the one that is there.
                drop(made);
                // SAFETY: as above.
                match unsafe { (*locals).get(key) }? {
                    Some(value) => Ok(downcast(value)),
                    None => unreachable!("scheduler: internal error: a goroutine-local lost"),
                }
            }
        }
    }

    /// Stores `value` as the running goroutine's value without running the initialiser if it
    /// has none yet; otherwise hands `value` to `update` with the present one.
    fn set_with(&'static self, value: T, update: impl FnOnce(&T, T)) -> Result<(), AccessError> {
        let mut value = Some(value);
        let slot = self.value(|| value.take().expect("taken once"))?;
        if let Some(value) = value {
            // SAFETY: as in `try_with`.
            update(unsafe { slot.as_ref() }, value);
        }
        Ok(())
    }

    /// The key's identity: the address of its `static`, which no other key shares.
    fn id(&'static self) -> usize {
        std::ptr::from_ref(self).addr()
    }

    #[track_caller]
    fn unwrap<R>(&'static self, result: Result<R, AccessError>) -> R {
        match result {
            Ok(result) => result,
            Err(error) => panic!("scheduler: goroutine-local {} {error}", self.name),
        }
    }
}

/// A stored value as the key's type.
fn downcast<T: 'static>(value: NonNull<dyn Any>) -> NonNull<T> {
    // SAFETY: the value is live (see `GoroutineLocalKey::try_with`); a shared reference for
    // the type check only.
    let any = unsafe { value.as_ref() };
    assert!(
        any.is::<T>(),
        "scheduler: internal error: a goroutine-local of another type"
    );
    value.cast::<T>()
}

impl<T: 'static> fmt::Debug for GoroutineLocalKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoroutineLocalKey")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// `LocalKey<Cell<T>>`'s shortcuts.
impl<T: 'static> GoroutineLocalKey<Cell<T>> {
    /// Sets the running goroutine's value to `value`, without running the initialiser if it
    /// had none yet.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::Cell;
    ///
    /// scheduler::goroutine_local! {
    ///     static ID: Cell<u64> = panic!("never made: `set` comes first");
    /// }
    ///
    /// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
    /// assert_eq!(rt.block_on(|| { ID.set(7); ID.get() }), 7);
    /// ```
    ///
    /// # Panics
    ///
    /// As for [`with`](GoroutineLocalKey::with), except that the initialiser does not run.
    #[track_caller]
    pub fn set(&'static self, value: T) {
        let result = self.set_with(Cell::new(value), |cell, value| cell.set(value.into_inner()));
        self.unwrap(result)
    }

    /// A copy of the running goroutine's value.
    ///
    /// # Panics
    ///
    /// As for [`with`](GoroutineLocalKey::with).
    #[track_caller]
    pub fn get(&'static self) -> T
    where
        T: Copy,
    {
        self.with(Cell::get)
    }

    /// Takes the running goroutine's value, leaving `T::default()`.
    ///
    /// # Panics
    ///
    /// As for [`with`](GoroutineLocalKey::with).
    #[track_caller]
    pub fn take(&'static self) -> T
    where
        T: Default,
    {
        self.with(Cell::take)
    }

    /// Replaces the running goroutine's value with `value` and returns the old one.
    ///
    /// # Panics
    ///
    /// As for [`with`](GoroutineLocalKey::with).
    #[track_caller]
    pub fn replace(&'static self, value: T) -> T {
        self.with(|cell| cell.replace(value))
    }
}

/// `LocalKey<RefCell<T>>`'s shortcuts.
impl<T: 'static> GoroutineLocalKey<RefCell<T>> {
    /// Runs `f` with a shared borrow of the running goroutine's value.
    ///
    /// # Panics
    ///
    /// As for [`with`](GoroutineLocalKey::with), and if the value is mutably borrowed.
    #[track_caller]
    pub fn with_borrow<F, R>(&'static self, f: F) -> R
    where
        F: FnOnce(&T) -> R,
    {
        self.with(|cell| f(&cell.borrow()))
    }

    /// Runs `f` with a mutable borrow of the running goroutine's value.
    ///
    /// # Panics
    ///
    /// As for [`with`](GoroutineLocalKey::with), and if the value is borrowed.
    #[track_caller]
    pub fn with_borrow_mut<F, R>(&'static self, f: F) -> R
    where
        F: FnOnce(&mut T) -> R,
    {
        self.with(|cell| f(&mut cell.borrow_mut()))
    }

    /// Sets the running goroutine's value to `value`, without running the initialiser if it
    /// had none yet.
    ///
    /// # Panics
    ///
    /// As for [`with`](GoroutineLocalKey::with) (except that the initialiser does not run),
    /// and if the value is borrowed.
    #[track_caller]
    pub fn set(&'static self, value: T) {
        let result = self.set_with(RefCell::new(value), |cell, value| {
            *cell.borrow_mut() = value.into_inner();
        });
        self.unwrap(result)
    }

    /// Takes the running goroutine's value, leaving `T::default()`.
    ///
    /// # Panics
    ///
    /// As for [`with`](GoroutineLocalKey::with), and if the value is borrowed.
    #[track_caller]
    pub fn take(&'static self) -> T
    where
        T: Default,
    {
        self.with(RefCell::take)
    }

    /// Replaces the running goroutine's value with `value` and returns the old one.
    ///
    /// # Panics
    ///
    /// As for [`with`](GoroutineLocalKey::with), and if the value is borrowed.
    #[track_caller]
    pub fn replace(&'static self, value: T) -> T {
        self.with(|cell| cell.replace(value))
    }
}

/// Why a [`GoroutineLocalKey`] could not be reached: the caller is no goroutine, or its
/// goroutine finished and its values are being dropped. `std::thread::AccessError`'s
/// counterpart.
///
/// # Examples
///
/// ```
/// use std::cell::Cell;
///
/// scheduler::goroutine_local! {
///     static N: Cell<u8> = Cell::new(0);
/// }
///
/// let error = N.try_with(Cell::get).unwrap_err();
/// assert_eq!(error.to_string(), "accessed outside a goroutine");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessError {
    outside: bool,
}

impl AccessError {
    const OUTSIDE: AccessError = AccessError { outside: true };
    const DESTROYED: AccessError = AccessError { outside: false };
}

impl From<Destroyed> for AccessError {
    fn from(_: Destroyed) -> AccessError {
        AccessError::DESTROYED
    }
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.outside {
            "accessed outside a goroutine"
        } else {
            "accessed while the goroutine's values are dropped, as it finishes"
        })
    }
}

impl std::error::Error for AccessError {}
