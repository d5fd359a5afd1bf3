//! One-time initialisation that parks goroutines while another initialises.

use std::cell::UnsafeCell;
use std::fmt;
use std::mem::MaybeUninit;
use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::sched::wait::WaitHere;
use crate::wait::lock::Locked;
use crate::wait::waiter::Waiter;
use crate::wait::{BlockKind, Site};

const EMPTY: u8 = 0;
const RUNNING: u8 = 1;
const READY: u8 = 2;

/// A cell written once, Go's `sync.Once` with a value (like `std::sync::OnceLock`).
///
/// [`get_or_init`](Self::get_or_init) runs the initialiser once; callers that arrive while it
/// runs park (threads block) until the value is there. If the initialiser panics, the cell
/// stays empty and the next caller tries again. Reading an initialised cell is one atomic
/// load.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use scheduler::sync::OnceLock;
///
/// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
/// let cell = Arc::new(OnceLock::new());
/// let runs = Arc::new(AtomicUsize::new(0));
/// rt.block_on(move || {
///     let wg = scheduler::WaitGroup::new();
///     for _ in 0..8 {
///         let (cell, runs) = (cell.clone(), runs.clone());
///         wg.go(move || {
///             let v = cell.get_or_init(|| {
///                 runs.fetch_add(1, Ordering::SeqCst);
///                 scheduler::yield_now(); // others arrive meanwhile and wait
///                 42
///             });
///             assert_eq!(*v, 42);
///         });
///     }
///     wg.wait();
///     assert_eq!(runs.load(Ordering::SeqCst), 1);
/// });
/// ```
pub struct OnceLock<T> {
    /// `EMPTY`, `RUNNING` or `READY`. Release on `READY` publishes the value; Acquire loads
    /// see it.
    state: AtomicU8,
    /// Callers waiting for a `RUNNING` initialiser.
    waiters: Locked<Vec<Arc<Waiter>>>,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: the value is written once, by the single initialiser that moved the state to
// RUNNING, and only read after READY is observed with Acquire: shared access is `&T` (T: Sync)
// and the value may be created on one thread and dropped on another (T: Send).
unsafe impl<T: Send + Sync> Sync for OnceLock<T> {}
// SAFETY: owning the cell is owning a T.
unsafe impl<T: Send> Send for OnceLock<T> {}

impl<T> OnceLock<T> {
    /// An empty cell.
    pub const fn new() -> OnceLock<T> {
        OnceLock {
            state: AtomicU8::new(EMPTY),
            waiters: Locked::new(Vec::new()),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// The value, if initialised.
    pub fn get(&self) -> Option<&T> {
        if self.state.load(Ordering::Acquire) == READY {
            // SAFETY: READY, seen with Acquire, means the value was written and never changes.
            Some(unsafe { (*self.value.get()).assume_init_ref() })
        } else {
            None
        }
    }

    /// Sets the value if the cell is empty; gives `value` back otherwise.
    ///
    /// # Errors
    ///
    /// `Err(value)` if the cell already had (or was getting) a value.
    #[track_caller]
    pub fn set(&self, value: T) -> Result<(), T> {
        let mut value = Some(value);
        self.get_or_init(|| value.take().expect("runs at most once"));
        match value {
            None => Ok(()),
            Some(value) => Err(value),
        }
    }

    /// The value, initialised by `init` if the cell is empty. Parks while another caller's
    /// `init` runs.
    #[track_caller]
    pub fn get_or_init(&self, init: impl FnOnce() -> T) -> &T {
        if let Some(value) = self.get() {
            return value;
        }
        let mut init = Some(init);
        loop {
            match self
                .state
                .compare_exchange(EMPTY, RUNNING, Ordering::Acquire, Ordering::Acquire)
            {
                Ok(_) => {
                    let init = init.take().expect("only one initialisation per caller");
                    return self.initialise(init);
                }
                Err(READY) => return self.get().expect("READY"),
                Err(_) => self.wait_while_running(Location::caller()),
            }
        }
    }

    fn initialise(&self, init: impl FnOnce() -> T) -> &T {
        // If `init` panics, reopen the cell and wake the waiters so that one of them retries.
        struct Reopen<'a, T>(&'a OnceLock<T>);
        impl<T> Drop for Reopen<'_, T> {
            fn drop(&mut self) {
                self.0.state.store(EMPTY, Ordering::Release);
                self.0.wake_all();
            }
        }
        let reopen = Reopen(self);
        let value = init();
        std::mem::forget(reopen);
        // SAFETY: the state is RUNNING and we moved it there, so nobody else writes or reads
        // the value until READY is published below.
        unsafe { (*self.value.get()).write(value) };
        self.state.store(READY, Ordering::Release);
        self.wake_all();
        self.get().expect("just initialised")
    }

    /// Waits at `site` until the running initialiser is done (or gave up).
    fn wait_while_running(&self, site: Site) {
        let waiter = Waiter::for_current(BlockKind::Once);
        {
            let mut waiters = self.waiters.lock();
            // Checked under the lock that `wake_all` takes after changing the state.
            if self.state.load(Ordering::Acquire) != RUNNING {
                return;
            }
            waiters.push(waiter.clone());
        }
        waiter.wait(site);
    }

    fn wake_all(&self) {
        let waiters = std::mem::take(&mut *self.waiters.lock());
        for waiter in waiters {
            waiter.notify(0);
        }
    }

    /// Consumes the cell, returning the value if it was initialised.
    pub fn into_inner(mut self) -> Option<T> {
        self.take()
    }

    /// Takes the value out, leaving the cell empty.
    pub fn take(&mut self) -> Option<T> {
        if *self.state.get_mut() == READY {
            *self.state.get_mut() = EMPTY;
            // SAFETY: READY means initialised; the state is EMPTY now, so it is not read or
            // dropped again.
            Some(unsafe { self.value.get_mut().assume_init_read() })
        } else {
            None
        }
    }
}

impl<T> Default for OnceLock<T> {
    fn default() -> OnceLock<T> {
        OnceLock::new()
    }
}

impl<T> Drop for OnceLock<T> {
    fn drop(&mut self) {
        drop(self.take());
    }
}

impl<T: fmt::Debug> fmt::Debug for OnceLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OnceLock").field(&self.get()).finish()
    }
}
