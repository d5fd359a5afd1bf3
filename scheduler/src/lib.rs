//! Goroutines for Rust: an M:N scheduler of stackful coroutines.
//!
//! A [`Runtime`] runs goroutines, cheap stackful coroutines, on a fixed number of worker
//! threads ("procs", Go's `GOMAXPROCS`), balanced by work stealing. A goroutine that waits
//! ([`JoinHandle::join`], [`WaitGroup::wait`], ...) parks, and its worker thread runs another
//! goroutine meanwhile. The same calls made from a plain thread block that thread, so the
//! types work everywhere.
//!
//! # A first program
//!
//! The classic lesson: two goroutines counting, and the main goroutine waiting for both.
//!
//! ```
//! use scheduler::{Runtime, WaitGroup};
//!
//! let rt = Runtime::builder().procs(1).build()?;
//! let out = rt.block_on(|| {
//!     let wg = WaitGroup::new();
//!     let a = wg.go(|| (0..=3).rev().map(|n| format!("[A:{n}]")).collect::<Vec<_>>());
//!     let b = wg.go(|| (0..=3).map(|n| format!("[B:{n}]")).collect::<Vec<_>>());
//!     wg.wait();
//!     (a.join().unwrap(), b.join().unwrap())
//! });
//! assert_eq!(out.0, ["[A:3]", "[A:2]", "[A:1]", "[A:0]"]);
//! assert_eq!(out.1.len(), 4);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What runs where
//!
//! * [`Runtime::block_on`] runs a closure as the *main goroutine* and blocks the caller until
//!   it returns; [`Runtime::spawn`] starts a goroutine from anywhere.
//! * Inside a goroutine, [`spawn`], [`yield_now`], [`procs`], [`num_goroutines`] and
//!   [`metrics()`] act on the runtime that runs it.
//! * A goroutine that has started never changes thread (thread-locals, `RefCell` borrows and
//!   `!Send` values across a blocking call are sound); only goroutines that have not started
//!   yet are stolen by idle workers. See `docs/design.md` and `docs/caveats.md`.
//! * Goroutines are not preempted at arbitrary points: one that computes for a long time
//!   without blocking, calling [`yield_now`] or calling [`checkpoint`] keeps its worker. Each
//!   runtime's monitor thread asks a goroutine that has run for a time slice (10 ms) to yield
//!   at its next `checkpoint`. Code that blocks the OS thread (std locks held for long,
//!   blocking I/O, `std::thread::sleep`) blocks every started goroutine of that worker: run it
//!   with [`spawn_blocking`], on a pool of threads of its own, and `join` it.
//!
//! # Integrity
//!
//! Dropping a [`Runtime`] waits for all of its goroutines, then joins its threads;
//! [`Runtime::shutdown_timeout`] bounds the wait and cancels what is left. A panicking
//! goroutine never takes its worker down: the panic is printed by the panic hook and
//! returned by [`JoinHandle::join`].
//!
//! To tie goroutines to the task they serve, start them in a [`group::Group`] (Go's
//! `errgroup`: `wait` returns when all have ended, with the first error, and its context stops
//! the rest at the first failure) or a [`JoinSet`] (results in the order the goroutines
//! finish; dropping it cancels what is left).

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

// The runtime reads `/proc`, thread ids and per-thread CPU clocks, and maps its stacks with
// Linux's madvise flags: say so at once rather than fail on a missing symbol elsewhere.
#[cfg(not(target_os = "linux"))]
compile_error!(
    "scheduler supports Linux only: it uses gettid, /proc/self/task, pthread_getcpuclockid and \
     madvise(MADV_GUARD_INSTALL)"
);

mod builder;
pub mod chan;
pub mod context;
mod dump;
mod goroutine;
mod goroutine_builder;
mod goroutine_local;
pub mod group;
mod join_set;
mod metrics;
pub mod net;
mod runtime;
mod sched;
mod scope;
mod select;
mod sigquit;
pub mod sync;
#[cfg(test)]
mod testing;
pub mod time;
pub mod trace;
mod wait;

pub use builder::{BuildError, Builder, MAX_PROCS, PROCS_ENV};
pub use dump::{GoroutineDump, GoroutineInfo, GoroutineState, WaitReason};
pub use goroutine::stack::{DEFAULT_STACK_SIZE, MAX_STACK_SIZE, MIN_STACK_SIZE};
pub use goroutine_builder::GoroutineBuilder;
pub use goroutine_local::{AccessError, GoroutineLocalKey};
pub use join_set::JoinSet;
pub use metrics::{BlockedGoroutines, Metrics, WorkerMetrics};
pub use runtime::{Runtime, ShutdownError};
pub use sched::join_handle::JoinHandle;
pub use sched::spawn_error::SpawnError;
pub use scope::{Scope, ScopedJoinHandle, scope};
pub use select::JoinTimeoutError;
pub use sigquit::SIGQUIT_DUMP_ENV;
pub use sync::JoinCtxError;
pub use sync::WaitGroup;
pub use wait::Cancelled;

use goroutine::task::Origin;
use sched::spawn_error::spawned_or_panic;

/// What the macros expand to; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::chan::{RecvOp, SendOp};
    pub use crate::goroutine_local::GoroutineLocalKey;
    pub use crate::select::{Mode, Selectable, select};
}
pub use time::sleep;

/// Spawns a goroutine on the runtime running the caller, Go's `go f()`.
///
/// The goroutine is queued on the caller's worker, where idle workers may steal it until it
/// starts. Its result comes back through the returned [`JoinHandle`]; dropping the handle
/// detaches it.
///
/// # Examples
///
/// ```
/// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
/// let v = rt.block_on(|| scheduler::spawn(|| "hello").join().unwrap());
/// assert_eq!(v, "hello");
/// ```
///
/// # Panics
///
/// Outside a goroutine: use [`Runtime::spawn`] or [`Runtime::block_on`] there. Also when the
/// goroutine is refused, with the [`SpawnError`]'s message: the runtime is shutting down, or
/// no stack could be reserved for it (the message names the limit). Use [`try_spawn`] to get
/// the error instead.
///
/// # Back pressure
///
/// On a runtime built with [`Builder::max_goroutines`] that holds that many goroutines,
/// `spawn` parks the caller until one finishes (where [`try_spawn`] fails at once).
#[track_caller]
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let origin = Origin::here();
    spawned_or_panic(sched::current::with_shared("spawn", |shared| {
        shared.try_spawn(f, true, origin)
    }))
}

/// Every live goroutine of the runtime running the caller: Go's `runtime.Stack(buf, true)`.
/// See [`GoroutineDump`]; [`Runtime::goroutines`] does the same from anywhere.
///
/// # Examples
///
/// ```
/// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
/// rt.block_on(|| {
///     let dump = scheduler::goroutines();
///     let me = dump.iter().next().expect("the caller is live");
///     assert_eq!(me.name(), Some("main"));
///     assert_eq!(me.state(), scheduler::GoroutineState::Running { worker: 0 });
/// });
/// ```
///
/// # Panics
///
/// Outside a goroutine.
#[track_caller]
pub fn goroutines() -> GoroutineDump {
    sched::current::with_shared("goroutines", |shared| GoroutineDump::of(shared))
}

/// Like [`spawn`], but reports a refused goroutine as an error instead of panicking or
/// waiting: the runtime is shutting down ([`SpawnError::ShuttingDown`]), it holds
/// [`Builder::max_goroutines`] goroutines already ([`SpawnError::AtCapacity`]: fails fast,
/// where `spawn` would wait), or no stack could be reserved for it ([`SpawnError::Stacks`]:
/// memory, the address-space limit, or on older kernels the mapping limit). A program that
/// sheds load early checks it.
///
/// Every admitted goroutine has its stack reserved (address space only: memory is used as the
/// stack is touched), so a goroutine that was admitted always starts.
///
/// # Examples
///
/// ```
/// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
/// let n = rt.block_on(|| match scheduler::try_spawn(|| 21 * 2) {
///     Ok(handle) => handle.join().unwrap(),
///     Err(err) => panic!("refused: {err}"),
/// });
/// assert_eq!(n, 42);
/// ```
///
/// # Panics
///
/// Outside a goroutine: use [`Runtime::try_spawn`] there.
#[track_caller]
pub fn try_spawn<F, T>(f: F) -> Result<JoinHandle<T>, SpawnError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let origin = Origin::here();
    sched::current::with_shared("try_spawn", |shared| shared.try_spawn(f, false, origin))
}

/// Runs `f` on the runtime's blocking pool, a set of plain OS threads beside the workers, and
/// returns a [`JoinHandle`] for its result: the way to call code that blocks its thread from
/// a goroutine.
///
/// Use it for file I/O (`std::fs`), DNS lookups (`ToSocketAddrs`), blocking network or
/// database clients, CPU-heavy calls into C, waits on std locks or channels: anything that
/// blocks the OS thread. A goroutine that blocks its OS thread blocks its whole worker, and
/// with it every goroutine queued there, since goroutines switch only at this crate's
/// suspension points. Here only the job's pool thread blocks; the goroutine that
/// [`join`](JoinHandle::join)s it parks, and its worker runs other goroutines meanwhile.
///
/// Everything before the call happens-before `f` runs, and everything `f` did happens-before
/// `join` returns. `join` returns `Ok` with `f`'s value, or `Err` with the panic payload if
/// `f` panicked (the panic hook prints it first, naming the thread `scheduler-blocking`).
/// Dropping the handle detaches the job; the runtime still waits for it when it shuts down.
///
/// The pool starts threads as jobs need them, up to
/// [`Builder::max_blocking_threads`] (512 by default); further jobs wait in a FIFO queue
/// until a thread is free. Idle threads exit after
/// [`Builder::blocking_keep_alive`] (10 seconds by default). A job is not a goroutine:
/// inside it, this crate's waits block its thread (which is fine there), and [`spawn`] and
/// the other calls that need a goroutine panic. A running job cannot be interrupted:
/// dropping the runtime, or [`Runtime::shutdown_timeout`], waits for it to return.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
/// let (len, ticks) = rt.block_on(|| {
///     // Blocks a pool thread for 50 ms, not this goroutine's worker...
///     let job = scheduler::spawn_blocking(|| {
///         std::thread::sleep(Duration::from_millis(50));
///         std::fs::read_dir(".").map(|dir| dir.count()).unwrap_or(0)
///     });
///     // ...so this goroutine, on the same (only) worker, keeps running.
///     let ticker = scheduler::spawn(|| {
///         let tick = scheduler::time::tick(Duration::from_millis(5));
///         (0..3).map(|_| tick.recv().unwrap()).count()
///     });
///     (job.join().unwrap(), ticker.join().unwrap())
/// });
/// assert!(len > 0);
/// assert_eq!(ticks, 3);
/// ```
///
/// # Panics
///
/// Outside a goroutine: use [`Runtime::spawn_blocking`] there. Also when the job is refused,
/// with the [`SpawnError`]'s message: the runtime is shutting down, or the pool has no thread
/// and cannot start one. Use [`try_spawn_blocking`] to get the error instead.
#[track_caller]
pub fn spawn_blocking<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    spawned_or_panic(sched::current::with_shared("spawn_blocking", |shared| {
        sched::blocking::spawn(shared, f)
    }))
}

/// Like [`spawn_blocking`], but reports a refused job as an error instead of panicking: the
/// runtime is shutting down ([`SpawnError::ShuttingDown`], from the moment
/// [`Runtime::shutdown_timeout`] is called), or the pool has no thread and cannot start one
/// ([`SpawnError::BlockingThread`]).
///
/// # Examples
///
/// ```
/// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
/// let n = rt.block_on(|| match scheduler::try_spawn_blocking(|| 6 * 7) {
///     Ok(handle) => handle.join().unwrap(),
///     Err(err) => panic!("refused: {err}"),
/// });
/// assert_eq!(n, 42);
/// ```
///
/// # Panics
///
/// Outside a goroutine: use [`Runtime::try_spawn_blocking`] there.
#[track_caller]
pub fn try_spawn_blocking<F, T>(f: F) -> Result<JoinHandle<T>, SpawnError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    sched::current::with_shared("try_spawn_blocking", |shared| {
        sched::blocking::spawn(shared, f)
    })
}

/// Lets other goroutines run, Go's `runtime.Gosched()`: the caller goes behind the goroutines
/// that are ready on its worker, with one goroutine that has not started yet (if any) going
/// first.
///
/// Outside a goroutine it yields the thread ([`std::thread::yield_now`]).
pub fn yield_now() {
    if !sched::current::yield_current() {
        std::thread::yield_now();
    }
}

/// A preemption point for long computations: yields, as [`yield_now`] does, if the runtime's
/// monitor asked the calling goroutine to, and otherwise returns at once.
///
/// The monitor asks a goroutine that has run for a whole time slice
/// ([`Builder::time_slice`], 10 ms by default) without suspending. Sprinkle `checkpoint` in
/// CPU-bound loops, where Go would preempt the goroutine by a signal: on the fast path it
/// costs a few loads, one of them a Relaxed atomic load, and no write, so calling it every
/// few microseconds of work is fine. A goroutine that suspends anyway (it blocks, yields or
/// sleeps through this crate) has its pending request dropped, so it never yields twice for
/// one request. Outside a goroutine, and in a goroutine that is unwinding a panic, it does
/// nothing.
///
/// # Examples
///
/// On one proc, a loop that never blocks still lets the other goroutines run:
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
///
/// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
/// rt.block_on(|| {
///     let done = Arc::new(AtomicBool::new(false));
///     let flag = done.clone();
///     // Queued on this worker; it can only run when the loop below yields.
///     scheduler::spawn(move || flag.store(true, Ordering::Relaxed));
///     let mut work = 0_u64;
///     while !done.load(Ordering::Relaxed) {
///         work = work.wrapping_mul(31).wrapping_add(7); // some computation
///         scheduler::checkpoint(); // yields once the time slice is used up
///     }
///     std::hint::black_box(work);
/// });
/// ```
#[inline]
pub fn checkpoint() {
    if sched::current::preemption_requested() {
        preempted();
    }
}

/// `checkpoint`'s slow path, out of line so that loops inline only the check.
#[cold]
#[inline(never)]
fn preempted() {
    // A goroutine that is unwinding does not suspend: `yield_current` then does nothing.
    sched::current::yield_current();
}

/// The number of worker threads of the runtime running the caller (`GOMAXPROCS`).
///
/// # Panics
///
/// Outside a goroutine.
#[track_caller]
pub fn procs() -> usize {
    sched::current::with_shared("procs", |shared| shared.procs)
}

/// Goroutines spawned on the caller's runtime and not yet finished, the caller included
/// (Go's `runtime.NumGoroutine()`).
///
/// # Panics
///
/// Outside a goroutine.
#[track_caller]
pub fn num_goroutines() -> usize {
    sched::current::with_shared("num_goroutines", |shared| shared.live())
}

/// A snapshot of the caller's runtime: goroutines runnable, running and blocked (by what
/// they wait for), queue lengths, and each worker's steals, sleeps and busy time. See
/// [`Metrics`] for what each number means and how they add up.
///
/// From outside a goroutine, use [`Runtime::metrics`].
///
/// # Examples
///
/// ```
/// let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
/// let m = rt.block_on(scheduler::metrics);
/// assert_eq!(m.procs, 2);
/// assert!(m.running >= 1); // the caller itself
/// assert!(m.live >= 1);
/// ```
///
/// # Panics
///
/// Outside a goroutine.
#[track_caller]
pub fn metrics() -> Metrics {
    sched::current::with_shared("metrics", |shared| metrics::snapshot(shared))
}

/// Whether the caller runs inside a goroutine.
pub fn in_goroutine() -> bool {
    sched::current::in_goroutine()
}

/// The examples of the guide and the README, run as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../docs/guide.md")]
#[doc = include_str!("../../README.md")]
mod documentation_examples {}
