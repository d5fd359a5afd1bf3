//! One goroutine in memory: the header the scheduler works with, and the typed cell that holds
//! its closure and, later, its result. Both live in a single allocation, made by `spawn`.

use std::cell::UnsafeCell;
use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU32, Ordering};
use std::thread;

use corosensei::{Coroutine, Yielder};

use super::completion::Completion;
use super::home::Home;
use super::join::JoinState;
use super::locals::Locals;
use super::stack::GuardedStack;
use super::state::TaskState;
use crate::wait::BlockKind;
use crate::wait::lock::RawLock;
use crate::wait::waiter::Wake;

/// Why a goroutine handed control back to its worker.
pub(crate) enum Suspend {
    /// `yield_now`: run again after the others that are ready.
    Yield,
    /// Blocked: run again once somebody calls [`unpark`](crate::sched::unpark).
    Park,
    /// Blocked as `Park`, holding a lock that the worker releases once the goroutine is
    /// parked (see [`park_current_unlocking`](crate::sched::context::park_current_unlocking)).
    ParkUnlocking(Handover),
}

/// What a goroutine parking with [`Suspend::ParkUnlocking`] hands its worker: the lock to
/// release, and a cell on the goroutine's stack to receive the worker's reference to it (so
/// whoever wakes it has a reference to queue without counting one more).
pub(crate) struct Handover {
    pub(crate) lock: *const RawLock,
    pub(crate) keeper: *const UnsafeCell<Option<TaskRef>>,
}

/// The coroutine a started goroutine runs in.
pub(crate) type Coro = Coroutine<(), Suspend, (), GuardedStack>;
/// The handle a goroutine suspends itself through.
pub(crate) type GoYielder = Yielder<(), Suspend>;

/// A goroutine as the scheduler sees it: queued, run, parked and woken through this.
pub(crate) type TaskRef = Arc<dyn Runnable>;

/// The scheduler's view of a goroutine, with its closure and result types erased.
/// A goroutine is woken through the wait kernel's [`Wake`], which the scheduler implements
/// (`crate::sched::wake`).
pub(crate) trait Runnable: Wake + Send + Sync + 'static {
    fn header(&self) -> &Header;
    /// Runs the closure and publishes its result. Called once, on the goroutine's own stack.
    /// `finished` runs between the result's write and its publication to the joiner: the
    /// scheduler counts the goroutine out there, so that once `join` returns it no longer
    /// shows in `num_goroutines`.
    fn run(&self, finished: &dyn Fn());
    /// Drops the closure of a goroutine that never started and publishes
    /// [`Cancelled`](crate::Cancelled) as its result (shutdown past its deadline);
    /// `finished` as for [`run`](Self::run).
    fn cancel(&self, finished: &dyn Fn());
}

/// Where a goroutine comes from: the line that spawned it and the name it was given. Shown by
/// the goroutine dump, stall warnings and panic messages.
pub(crate) struct Origin {
    /// The caller of `spawn` (or of whichever public function spawned it).
    pub(crate) site: &'static Location<'static>,
    /// The name given through `GoroutineBuilder::name`, if any.
    pub(crate) name: Option<Arc<str>>,
}

impl Origin {
    /// An unnamed goroutine spawned at the caller's line.
    #[track_caller]
    pub(crate) fn here() -> Origin {
        Origin {
            site: Location::caller(),
            name: None,
        }
    }
}

/// The part of a goroutine every queue and waker touches.
pub(crate) struct Header {
    /// Queued or running, parked, or finished (see [`TaskState`]). Read and written by any
    /// thread, through its transitions only.
    pub(crate) state: TaskState,
    /// Set once, by a forced shutdown or `JoinHandle::cancel`; read by the goroutine at each
    /// suspension point (see [`Header::is_cancelled`]).
    pub(crate) cancelled: AtomicBool,
    /// Who runs the goroutine: the worker that started it, a joiner that ran it inline, or
    /// the blocking pool (see [`Home`]).
    pub(crate) home: Home,
    /// The runtime the goroutine belongs to: its `crate::sched::Shared`, type-erased (this
    /// layer sits below the scheduler, which casts it back). Valid while the goroutine is not
    /// `DONE`: a runtime outlives its goroutines.
    pub(crate) shared: *const (),
    /// Unique within its runtime; 1 for the first goroutine.
    pub(crate) id: u64,
    /// Where it was spawned, and its name. Immutable.
    pub(crate) origin: Origin,
    /// The shard of the runtime's registry of live goroutines that lists it
    /// (`sched::registry`): its spawner's. Immutable.
    registry_shard: u32,
    /// Its index in that shard. Read and written only under the shard's lock.
    pub(crate) registry_index: AtomicU32,
    /// The coroutine's yielder. Written by the goroutine when it starts and read by it when it
    /// suspends: only on the home thread.
    yielder: UnsafeCell<*const GoYielder>,
    /// Index in the home worker's list of started goroutines. Home worker only.
    slot: UnsafeCell<usize>,
    /// What the goroutine waits for when it parks: written by the goroutine as it suspends to
    /// park, read by its worker when the park succeeds (to count it as blocked on that kind)
    /// and when it takes the woken goroutine back (to count it out). Home worker only.
    /// (Not passed in [`Suspend`]: a bigger payload there costs every yield.)
    /// Written on the home worker only; atomic so that the goroutine dump can read it from
    /// any thread.
    parked_as: AtomicU8,
    /// The line of the user's code where the goroutine last parked (`park_current`'s caller,
    /// through `#[track_caller]`). Written by the goroutine as it parks, read by the dump.
    wait_site: AtomicPtr<Location<'static>>,
    /// When the goroutine last parked, in the runtime's coarse clock (milliseconds since
    /// the runtime started, modulo 2^32: 49 days). Written by the home worker as it parks the
    /// goroutine. 32 bits, like the registry's fields, keep the header small.
    parked_at: AtomicU32,
    /// Its goroutine-local values (`crate::GoroutineLocalKey`): a null pointer until the
    /// first. Touched only on the home thread: by the goroutine's own code, and by its finish,
    /// which drops them. While a `join` by this goroutine runs another one inline, the slot
    /// holds that one's values (see [`Locals::run_inline`]).
    pub(crate) locals: Locals,
}

// SAFETY: the UnsafeCell fields are touched only on the goroutine's home worker thread (field
// docs), and a started goroutine never changes thread, so the !Send coroutine, the yielder
// pointer and the goroutine-local values (which need not be Send) never cross threads.
// `shared` is only dereferenced while the runtime is alive (see its doc). Every other field is
// atomic or immutable.
unsafe impl Send for Header {}
// SAFETY: as for Send: shared access from other threads only reaches the atomic fields.
unsafe impl Sync for Header {}

impl Header {
    pub(crate) fn new(shared: *const (), id: u64, origin: Origin, registry_shard: usize) -> Header {
        let registry_shard = u32::try_from(registry_shard).expect("fewer than 2^32 worker slots");
        Header {
            state: TaskState::new(),
            cancelled: AtomicBool::new(false),
            home: Home::unclaimed(),
            shared,
            id,
            origin,
            registry_shard,
            registry_index: AtomicU32::new(0),
            yielder: UnsafeCell::new(std::ptr::null()),
            slot: UnsafeCell::new(0),
            parked_as: AtomicU8::new(BlockKind::Other as u8),
            wait_site: AtomicPtr::new(std::ptr::null_mut()),
            parked_at: AtomicU32::new(0),
            locals: Locals::new(),
        }
    }

    /// Records the running goroutine's yielder.
    ///
    /// # Safety
    /// Called by the goroutine itself, on its home thread; `yielder` lives as long as the
    /// coroutine (corosensei keeps it on the coroutine's stack).
    pub(crate) unsafe fn set_yielder(&self, yielder: &GoYielder) {
        // SAFETY: home-thread-only access (caller's contract).
        unsafe { *self.yielder.get() = yielder };
    }

    /// The yielder recorded by [`set_yielder`](Self::set_yielder).
    ///
    /// # Safety
    /// Called by the goroutine itself while it runs, after it started.
    pub(crate) unsafe fn yielder(&self) -> &GoYielder {
        // SAFETY: set at start by the goroutine (it runs now, so it started) and valid while
        // its coroutine lives, which it does while it runs.
        unsafe { &**self.yielder.get() }
    }

    /// # Safety
    /// Home worker thread only.
    pub(crate) unsafe fn slot(&self) -> usize {
        // SAFETY: home-thread-only access (caller's contract).
        unsafe { *self.slot.get() }
    }

    /// # Safety
    /// Home worker thread only.
    pub(crate) unsafe fn set_slot(&self, slot: usize) {
        // SAFETY: home-thread-only access (caller's contract).
        unsafe { *self.slot.get() = slot }
    }

    /// What the goroutine waits for, or waited for when it last parked.
    ///
    /// Exact on the home worker thread, which alone writes it; elsewhere (the dump) a recent
    /// value.
    #[inline]
    pub(crate) fn parked_as(&self) -> BlockKind {
        // Relaxed: on the home thread this reads its own last store; the dump wants a recent
        // value and orders nothing by it.
        BlockKind::from_u8(self.parked_as.load(Ordering::Relaxed))
    }

    /// Records what the goroutine is about to park on, and the user's line that waits.
    /// Called by the goroutine itself, on its home thread.
    #[inline]
    pub(crate) fn set_parked_as(&self, kind: BlockKind, site: &'static Location<'static>) {
        // Relaxed: only the home thread writes these; readers elsewhere want a recent value.
        self.parked_as.store(kind as u8, Ordering::Relaxed);
        self.wait_site
            .store(std::ptr::from_ref(site).cast_mut(), Ordering::Relaxed);
    }

    /// Where the goroutine last parked, if it ever did.
    pub(crate) fn wait_site(&self) -> Option<&'static Location<'static>> {
        // Relaxed: see `set_parked_as`.
        let site = self.wait_site.load(Ordering::Relaxed);
        // SAFETY: null, or a `&'static Location` stored by `set_parked_as`.
        unsafe { site.as_ref() }
    }

    /// Stamps the park that the home worker is completing with the coarse clock's reading.
    #[inline]
    pub(crate) fn set_parked_at(&self, millis: u64) {
        // Relaxed: a statistic for the dump, which orders nothing by it. Truncated: see the
        // field.
        self.parked_at.store(millis as u32, Ordering::Relaxed);
    }

    /// When the goroutine last parked, in the coarse clock's milliseconds modulo 2^32.
    pub(crate) fn parked_at(&self) -> u32 {
        // Relaxed: see `set_parked_at`.
        self.parked_at.load(Ordering::Relaxed)
    }

    /// The shard of the registry that lists the goroutine.
    #[inline]
    pub(crate) fn registry_shard(&self) -> usize {
        self.registry_shard as usize
    }

    /// `goroutine 7 "name" (spawned at src/main.rs:12:5)`: how warnings and panic messages
    /// name the goroutine.
    pub(crate) fn describe(&self) -> String {
        match &self.origin.name {
            Some(name) => format!(
                "goroutine {} {name:?} (spawned at {})",
                self.id, self.origin.site
            ),
            None => format!("goroutine {} (spawned at {})", self.id, self.origin.site),
        }
    }

    /// Whether the goroutine was cancelled (a forced shutdown, or `JoinHandle::cancel`).
    /// Once set, every later suspension point of the goroutine unwinds (see
    /// [`crate::sched::current`]).
    ///
    /// Relaxed: a forced shutdown sets the flag on the goroutine's home worker thread itself
    /// (`WorkerLocal::cancel_started`), where the goroutine reads it; `JoinHandle::cancel` sets
    /// it from any thread and then wakes the goroutine, whose wake (an AcqRel RMW of its state,
    /// which the worker's next park or resume reads) carries the store to it. A goroutine that
    /// is running sees it at a later suspension point, once coherence delivers it.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Marks the goroutine cancelled (see [`is_cancelled`](Self::is_cancelled)); the caller
    /// wakes it next.
    pub(crate) fn set_cancelled(&self) {
        // Relaxed: see `is_cancelled`.
        self.cancelled.store(true, Ordering::Relaxed);
    }
}

/// A goroutine with closure type `F` and result type `T`: the one allocation of a spawn.
pub(crate) struct Task<F, T> {
    header: Header,
    /// The closure, then the result; taken by the worker that starts the goroutine (or the
    /// joiner that runs it inline, or the worker that cancels it), then by the JoinHandle.
    completion: Completion<F, T>,
}

impl<F, T> Task<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    pub(crate) fn new(
        shared: *const (),
        id: u64,
        origin: Origin,
        registry_shard: usize,
        f: F,
    ) -> Arc<Task<F, T>> {
        Arc::new(Task {
            header: Header::new(shared, id, origin, registry_shard),
            completion: Completion::new(f),
        })
    }
}

impl<F, T> Runnable for Task<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn header(&self) -> &Header {
        &self.header
    }

    fn run(&self, finished: &dyn Fn()) {
        // SAFETY: called once, by the worker that owns the goroutine (`Runnable::run` doc).
        unsafe { self.completion.run(finished) }
    }

    fn cancel(&self, finished: &dyn Fn()) {
        // SAFETY: called once, by the worker that claimed the unstarted goroutine.
        unsafe { self.completion.cancel(finished) }
    }
}

/// The typed view a [`JoinHandle`](crate::JoinHandle) keeps of a goroutine or a blocking job.
pub(crate) trait Joinable<T>: Send + Sync {
    /// Unique within the runtime (goroutines and blocking jobs share the sequence).
    fn id(&self) -> u64;
    /// The goroutine's header; `None` for a blocking job, which the pool runs.
    fn goroutine(&self) -> Option<&Header>;
    /// Runs the goroutine on the caller's stack (`finished` as for [`Runnable::run`]). Only
    /// after its [`Home::claim`] for [`Owner::Inline`](super::home::Owner::Inline) succeeded.
    fn run_inline(&self, finished: &dyn Fn());
    fn completion_state(&self) -> &JoinState;
    /// Takes the result.
    ///
    /// # Safety
    /// Only after `completion_state().is_complete()` returned true, and at most once.
    unsafe fn take_result(&self) -> thread::Result<T>;
    /// The goroutine as the scheduler sees it, to cancel and wake it; `None` for a blocking
    /// job.
    fn runnable(self: Arc<Self>) -> Option<TaskRef>;
}

impl<F, T> Joinable<T> for Task<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn id(&self) -> u64 {
        self.header.id
    }

    fn goroutine(&self) -> Option<&Header> {
        Some(&self.header)
    }

    fn run_inline(&self, finished: &dyn Fn()) {
        Runnable::run(self, finished);
        self.header.state.finish();
    }

    fn completion_state(&self) -> &JoinState {
        self.completion.join_state()
    }

    unsafe fn take_result(&self) -> thread::Result<T> {
        // SAFETY: the caller's contract is `Completion::take_result`'s.
        unsafe { self.completion.take_result() }
    }

    fn runnable(self: Arc<Self>) -> Option<TaskRef> {
        Some(self)
    }
}
