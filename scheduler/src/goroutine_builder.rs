//! Spawning a goroutine with chosen settings: `std::thread::Builder`, for goroutines.

use std::panic::Location;
use std::sync::Arc;

use crate::goroutine::task::Origin;
use crate::runtime::Runtime;
use crate::sched;
use crate::sched::join_handle::JoinHandle;
use crate::sched::spawn_error::SpawnError;
use crate::wait::census;

/// Spawns a goroutine with a name, which shows in the goroutine dump
/// ([`goroutines`](crate::goroutines())), in stall warnings, in the execution trace and in the
/// panic message of the goroutine. `std::thread::Builder`'s counterpart.
///
/// There is no per-goroutine stack size: a runtime's goroutines share one arena of stacks of
/// equal size, which is what makes a spawn cheap; choose it with
/// [`Builder::stack_size`](crate::Builder::stack_size).
///
/// # Examples
///
/// ```
/// use scheduler::GoroutineBuilder;
///
/// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
/// let name = rt.block_on(|| {
///     let h = GoroutineBuilder::new()
///         .name("acceptor")
///         .spawn(|| {
///             let dump = scheduler::goroutines();
///             let me = dump.iter().find(|g| g.name() == Some("acceptor")).unwrap();
///             me.name().map(str::to_owned)
///         })
///         .expect("admitted");
///     h.join().unwrap()
/// });
/// assert_eq!(name.as_deref(), Some("acceptor"));
/// ```
#[derive(Clone, Debug, Default)]
#[must_use = "a builder spawns nothing until `spawn` or `spawn_on` is called"]
pub struct GoroutineBuilder {
    name: Option<Arc<str>>,
}

impl GoroutineBuilder {
    /// A builder for an unnamed goroutine.
    pub fn new() -> GoroutineBuilder {
        GoroutineBuilder::default()
    }

    /// Names the goroutine. Names need not be unique.
    pub fn name(mut self, name: impl Into<String>) -> GoroutineBuilder {
        self.name = Some(Arc::from(name.into()));
        self
    }

    /// Spawns the goroutine on the runtime running the caller, as [`spawn`](crate::spawn)
    /// does (at the [`max_goroutines`](crate::Builder::max_goroutines) limit it waits for
    /// room), but returns a refusal as an error instead of panicking.
    ///
    /// # Errors
    ///
    /// [`SpawnError::ShuttingDown`] or [`SpawnError::Stacks`], as for
    /// [`try_spawn`](crate::try_spawn).
    ///
    /// # Panics
    ///
    /// Outside a goroutine: use [`spawn_on`](Self::spawn_on) there.
    #[track_caller]
    pub fn spawn<F, T>(self, f: F) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let origin = self.origin(Location::caller());
        sched::current::with_shared("GoroutineBuilder::spawn", |shared| {
            shared.try_spawn(f, true, origin)
        })
    }

    /// Spawns the goroutine on `runtime`, from anywhere, as [`Runtime::spawn`] does, but
    /// returns a refusal as an error instead of panicking.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
    /// let h = scheduler::GoroutineBuilder::new()
    ///     .name("worker")
    ///     .spawn_on(&rt, || 2 + 2)
    ///     .unwrap();
    /// assert_eq!(h.join().unwrap(), 4);
    /// ```
    #[track_caller]
    pub fn spawn_on<F, T>(self, runtime: &Runtime, f: F) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let origin = self.origin(Location::caller());
        census::note_use();
        runtime.shared().try_spawn(f, true, origin)
    }

    fn origin(self, site: &'static Location<'static>) -> Origin {
        Origin {
            site,
            name: self.name,
        }
    }
}
