//! A worker: one OS thread that runs goroutines, Go's M with its P.
//!
//! The loop in [`WorkerLocal::run`] fires due timers, picks the next goroutine from its own
//! queues ([`queues`]), else searches other workers' deques ([`search`]), else sleeps
//! ([`park`]); a goroutine it picks is started (given a stack, a coroutine, and this worker as
//! its home, in the [`started`] registry) or resumed. [`budget`] holds the ids and stack
//! reservations the worker takes in blocks.

mod budget;
mod park;
mod queues;
mod search;
mod started;

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};

use corosensei::stack::Stack;
use corosensei::{Coroutine, CoroutineResult};
use crossbeam_deque::{Injector, Stealer, Worker};

use super::current;
use super::inbox::Inbox;
use super::io::poller::Poller;
use super::monitor::{self, Activity};
use super::registry;
use super::shared::{Phase, Shared};
use super::stats::WorkerStats;
use super::wake::unpark;
use crate::goroutine::home::Owner;
use crate::goroutine::overflow;
use crate::goroutine::stack::StackPool;
use crate::goroutine::task::{GoYielder, Header, Suspend, TaskRef};
use crate::wait::BlockKind;
use crate::wait::census;
use crate::wait::timers::{self, TimerHeap};

use budget::Budgets;
use queues::{RunQueues, Sources};
use started::Registry;

/// The worker's own state. Lives on the worker thread's stack for the thread's whole life;
/// reached from goroutines through [`current::with_worker`]. Interior mutability only:
/// goroutine code (spawn, wake) and the loop both touch it, never at the same time, and no
/// borrow is held across a resume.
pub(crate) struct WorkerLocal {
    index: usize,
    shared: Arc<Shared>,
    /// `runnext`, `ready`, the local deque, and the pick order.
    queues: RunQueues,
    /// The goroutine being resumed right now; `None` while the loop itself runs.
    current: RefCell<Option<TaskRef>>,
    /// Every started, unfinished goroutine of this worker, with its coroutine.
    started: Registry,
    stacks: RefCell<StackPool>,
    /// Spawns since this worker last removed the goroutines handed back to its shard of the
    /// registry (`sched::registry`).
    spawns_since_drain: Cell<usize>,
    /// Timers set by this worker's goroutines; fired by this worker between goroutines.
    timers: RefCell<TimerHeap>,
    searching: Cell<bool>,
    /// Whether spinning before a sleep pays off here (`park::SpinPolicy`).
    spin: park::SpinPolicy,
    /// Whether this worker has already reacted to the `Cancelling` phase.
    cancel_seen: Cell<bool>,
    rng: Cell<u64>,
    /// Goroutine ids and stack reservations taken in blocks.
    budgets: Budgets,
    /// This worker's counters (also in its [`Remote`](super::shared::Remote)), held directly
    /// so that the hot paths reach them without indexing `remotes`.
    stats: Arc<WorkerStats>,
    /// Time spent awake before the current stretch, and when that stretch began (see
    /// [`WorkerStats`]), in nanoseconds.
    busy_ns: Cell<u64>,
    awake_since: Cell<u64>,
    /// The epoch of the current (or last) resume, published to the monitor in `activity`:
    /// odd, and 2 more at every resume (see [`Activity`]).
    epoch: Cell<u64>,
    /// This worker's `Remote::activity`: what it publishes to the monitor.
    activity: Arc<Activity>,
    /// Whether the trace has the start of the running goroutine's run, so it needs its end
    /// (see `super::trace`).
    pub(super) traced_run: Cell<bool>,
}

impl WorkerLocal {
    pub(crate) fn new(index: usize, shared: Arc<Shared>, local: Worker<TaskRef>) -> WorkerLocal {
        let stacks = StackPool::new(shared.stacks.clone());
        let stats = shared.remotes[index].stats.clone();
        let activity = shared.remotes[index].activity.clone();
        WorkerLocal {
            index,
            shared,
            queues: RunQueues::new(local),
            current: RefCell::new(None),
            started: Registry::default(),
            stacks: RefCell::new(stacks),
            spawns_since_drain: Cell::new(0),
            timers: RefCell::new(TimerHeap::default()),
            searching: Cell::new(false),
            spin: park::SpinPolicy::default(),
            cancel_seen: Cell::new(false),
            rng: Cell::new(0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1)),
            budgets: Budgets::default(),
            stats,
            busy_ns: Cell::new(0),
            awake_since: Cell::new(0),
            epoch: Cell::new(activity.first_epoch()),
            activity,
            traced_run: Cell::new(false),
        }
    }

    pub(crate) fn index(&self) -> usize {
        self.index
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(crate) fn belongs_to(&self, shared: &Arc<Shared>) -> bool {
        Arc::ptr_eq(&self.shared, shared)
    }

    /// Whether the monitor asked the running goroutine to yield (see `checkpoint`). A request
    /// made for an earlier resume, which ended when its goroutine suspended, does not count.
    #[inline]
    pub(crate) fn preemption_requested(&self) -> bool {
        self.activity.is_requested(self.epoch.get())
    }

    /// The running goroutine's header, if a goroutine runs.
    pub(crate) fn current_header(&self) -> Option<*const Header> {
        self.current
            .borrow()
            .as_ref()
            .map(|t| t.header() as *const Header)
    }

    /// This worker's readiness poller, made at the first call: only goroutines of this worker
    /// (running on its thread) call this, so nobody races the making.
    pub(crate) fn poller(&self) -> std::io::Result<Arc<Poller>> {
        let slot = &self.shared.remotes[self.index].poller;
        if let Some(poller) = slot.get() {
            return Ok(poller.clone());
        }
        let poller = Poller::new()?;
        Ok(slot.get_or_init(|| poller).clone())
    }

    /// Polls this worker's poller without blocking if one of its goroutines waits for I/O,
    /// making the goroutines whose descriptors are ready runnable here. Returns whether any
    /// descriptor was reported. Called when the worker runs out of local work, and every 61st
    /// pick ([`Sources::poll_io`]), as Go's scheduler checks the network.
    fn poll_io_now(&self) -> bool {
        match self.shared.remotes[self.index].poller.get() {
            Some(poller) if poller.has_waiters() => {
                poller.poll(Some(std::time::Duration::ZERO)) > 0
            }
            _ => false,
        }
    }

    /// This worker's timers. Borrow briefly: never across a resume or a timer's action.
    pub(crate) fn timers(&self) -> &RefCell<TimerHeap> {
        &self.timers
    }

    pub(crate) fn current_task(&self) -> Option<TaskRef> {
        self.current.borrow().clone()
    }

    /// Counts a goroutine that finishes on this worker, takes back its stack reservation, and
    /// removes it from the registry of live goroutines if this worker's shard lists it (the
    /// others are handed back to their shard after `resume`: see `sched::registry`).
    pub(crate) fn count_finished(&self, header: &Header) {
        if header.registry_shard() == self.index {
            self.shared.registry.remove(header);
        }
        self.count_out();
    }

    /// [`count_finished`](Self::count_finished) for the finishes that do not come back through
    /// `resume` (a goroutine dropped unstarted, or run inline by a join): rare, so it removes
    /// the goroutine from any shard at once.
    pub(crate) fn count_finished_now(&self, header: &Header) {
        self.shared.registry.remove(header);
        self.count_out();
    }

    fn count_out(&self) {
        self.shared.remotes[self.index].counts.finished_one();
        self.shared.goroutine_finished();
        self.budgets.release_stack(&self.shared.stacks);
    }

    /// Reserves a stack for a goroutine about to be spawned here (see `StackArena::reserve`),
    /// from this worker's batch of reservations.
    pub(crate) fn reserve_stack(&self) -> std::io::Result<()> {
        self.budgets.reserve_stack(&self.shared.stacks)
    }

    /// Counts a goroutine spawned on this worker and returns its id. Every
    /// [`registry::BATCH`] spawns, removes the goroutines of this worker's shard of the
    /// registry that finished elsewhere.
    pub(crate) fn count_spawned(&self) -> u64 {
        let since = self.spawns_since_drain.get() + 1;
        if since >= registry::BATCH {
            self.shared.registry.drain(self.index);
            self.spawns_since_drain.set(0);
        } else {
            self.spawns_since_drain.set(since);
        }
        self.shared.remotes[self.index].counts.spawned_one();
        self.budgets.next_id(|n| self.shared.take_ids(n))
    }

    /// Queues a goroutine spawned by a goroutine of this worker.
    pub(crate) fn push_spawned(&self, task: TaskRef) {
        self.queues.push_local(task);
        // With one worker, the only one that could take it is this one, which is awake.
        if self.shared.procs > 1 {
            self.shared.notify_work();
        }
    }

    /// Queues a goroutine like [`push_spawned`](Self::push_spawned) but wakes nobody: for
    /// tests of the monitor, which must find it.
    #[cfg(test)]
    pub(crate) fn push_unannounced(&self, task: TaskRef) {
        self.queues.push_local(task);
    }

    /// Takes the goroutine at `task` out of the local deque if it is the newest entry there
    /// (the usual case when a goroutine joins what it just spawned), so that running it inline
    /// leaves no stale entry behind. True if it was taken.
    pub(crate) fn take_newest_if(&self, task: *const ()) -> bool {
        self.queues.take_newest_if(task)
    }

    /// Drops stale entries (goroutines a join ran inline) from the newest end of the local
    /// deque, so that a goroutine that spawns and joins in a loop, never yielding, does not
    /// pile them up.
    pub(crate) fn drop_stale_newest(&self) {
        self.queues.drop_stale_newest();
    }

    /// Queues a started goroutine of this worker that a goroutine of this worker woke: it runs
    /// next, and the one it displaces goes to the back of `ready`.
    /// `kind` is what it was parked on (`Header::parked_as`), to count it out of that.
    pub(crate) fn push_woken(&self, task: TaskRef, kind: BlockKind) {
        self.stats.unparked(kind);
        self.queues.push_woken(task);
    }

    /// The worker thread's body: runs goroutines until the runtime stops.
    pub(crate) fn run(&self) {
        let _context = current::enter(self);
        self.activity.publish_thread();
        self.awake_since.set(self.stats.awake(0));
        loop {
            if !self.cancel_seen.get() && self.shared.phase() >= Phase::Cancelling {
                self.cancel_started();
            }
            timers::fire_due(&self.timers);
            if self.shared.stack_flush_requested() {
                self.stacks.borrow_mut().flush();
            }
            if let Some(task) = self.next_local() {
                // Woken as a searcher but found work at home: stop searching before running
                // it, or other workers would trust a searcher that is busy (none would be
                // woken for new work, and none could start searching).
                self.stop_searching();
                self.run_task(task);
                continue;
            }
            // Out of local work: the goroutines of this worker's shard of the registry that
            // finished elsewhere leave it; then readiness (it makes goroutines of this worker
            // runnable, which only it can run), then other workers' goroutines.
            self.shared.registry.drain(self.index);
            if self.poll_io_now() {
                continue;
            }
            if let Some(task) = self.search() {
                self.run_task(task);
                continue;
            }
            if self.shared.phase() == Phase::Stopping {
                break;
            }
            let spin = self.spin.begin();
            if spin && self.watch_inbox() {
                self.spin.ended(true);
                continue;
            }
            self.shared.note_if_all_done();
            if !self.park(spin) {
                // A spare with nothing left to do retired.
                break;
            }
        }
        debug_assert!(self.started.is_empty());
        self.shared.registry.drain(self.index);
        self.busy_ns.set(
            self.stats
                .asleep(self.awake_since.get(), self.busy_ns.get(), false),
        );
        // Callbacks still pending (a ticker, a context deadline) outlive the runtime's
        // goroutines: the process-wide timer thread takes them over.
        let global = timers::global_if_needed(&self.timers);
        if let Some(global) = global {
            for (deadline, action) in self.timers.borrow_mut().drain() {
                global.push(deadline, action);
            }
        }
    }

    /// Takes back the worker's deque once its loop has ended, giving its unused stack
    /// reservations and cached stacks back to the arena: for a spare that leaves its slot.
    pub(crate) fn into_deque(self) -> Worker<TaskRef> {
        self.budgets.give_back_stacks(&self.shared.stacks);
        self.stacks.borrow_mut().flush();
        self.queues.into_local()
    }

    /// The next goroutine from this worker's own queues (and, now and then, the global one).
    fn next_local(&self) -> Option<TaskRef> {
        self.queues.next(
            self,
            || self.preemption_requested(),
            // Only this worker's own goroutines are in its inbox.
            |task| self.stats.unparked(task.header().parked_as()),
        )
    }

    /// Resumes `task` (starting it if it is new) until it finishes, yields or parks.
    fn run_task(&self, task: TaskRef) {
        let header = task.header();
        // Queued means ACTIVE: running it changes no state (see `goroutine/state.rs`). A
        // goroutine whose home is this worker was started here (started goroutines are only
        // queued on their home worker); any other has not started (Relaxed: we wrote `home`
        // ourselves if so; otherwise `start` decides by CAS).
        let slot = if header.home.owner() == Owner::Worker(self.index) {
            // SAFETY: home thread.
            unsafe { header.slot() }
        } else {
            match self.start(&task) {
                Some(slot) => slot,
                None => return,
            }
        };
        self.resume(task, slot);
    }

    /// Gives a new goroutine a stack, a coroutine and this worker as its home, and returns
    /// its slot in `started`. Returns `None` if a joiner already ran it (a stale queue
    /// entry), or, after finishing it as cancelled, when the runtime is cancelling.
    fn start(&self, task: &TaskRef) -> Option<usize> {
        let header = task.header();
        if Arc::strong_count(task) == 1 {
            // Only the queue's reference is left, so no JoinHandle exists and nobody can claim
            // it any more: no CAS needed. But a joiner may have claimed it before it dropped
            // its handle, leaving this entry stale. The Acquire fence pairs with the Release
            // decrement of that handle's drop, so such a claim is visible to the load below.
            // (The count can only be stale upwards: a handle that existed when the goroutine
            // was queued is seen, since the queue's hand-over orders its creation first.)
            fence(Ordering::Acquire);
            if header.home.owner() != Owner::Unclaimed {
                return None;
            }
            header.home.claim_unshared(Owner::Worker(self.index));
        } else if !header.home.claim(Owner::Worker(self.index)) {
            // A joiner claimed it and ran it on its own stack: this queue entry is stale.
            return None;
        }
        // Cancelled before it started (a forced shutdown, or `JoinHandle::cancel`): dropped
        // unstarted, its result `Cancelled`.
        if self.shared.phase() >= Phase::Cancelling || header.is_cancelled() {
            header.state.finish();
            task.cancel(&|| self.count_finished_now(header));
            return None;
        }
        let stack = match self.stacks.borrow_mut().take() {
            Ok(stack) => stack,
            Err(_) => {
                // A stack is reserved for every admitted goroutine (`Shared::try_spawn`), so
                // the arena could only not map more because the free stacks sit in workers'
                // caches: have them handed back, and start this one later. Un-claim it first
                // (its closure is untouched).
                header.home.unclaim();
                self.shared.injector.push(task.clone());
                self.shared.request_stack_flush();
                std::thread::yield_now();
                return None;
            }
        };
        if self.shared.stack_flush_requested() {
            self.shared.stack_flush_done();
        }
        let stack_limit = stack.limit().get();
        let body_task = task.clone();
        let coro = Coroutine::with_stack(stack, move |yielder: &GoYielder, ()| {
            // SAFETY: we are the goroutine, on its home thread; the yielder lives on this
            // coroutine's stack as long as the coroutine does.
            unsafe { body_task.header().set_yielder(yielder) };
            // A goroutine finishes on its home worker, this thread.
            body_task.run(&count_finished_here);
        });
        // SAFETY: the worker loop, between goroutines; the goroutine starts here, its home.
        let slot = unsafe { self.started.register(task, coro, stack_limit) };
        self.stats.set_started(self.started.len());
        Some(slot)
    }

    /// Resumes the started goroutine `task`, whose entry in `started` is `slot`.
    fn resume(&self, task: TaskRef, slot: usize) {
        // SAFETY: the worker loop; the entry stays where it is until this resume ends
        // (`Registry` doc), and no other reference to it exists while we use this pointer.
        let entry = unsafe { self.started.entry(slot) };
        // SAFETY: as above.
        let stack_limit = unsafe { (*entry).stack_limit };
        // One (virtual) call for the header's id, used twice below.
        let id = task.header().id;
        // For the stack overflow handler and `current::can_run_inline`: plain stores to a
        // thread-local, cleared below.
        overflow::set_running(stack_limit, id);
        self.stats.set_running(true);
        // A new epoch for the monitor, unless this goroutine inherits the slice of the one
        // that woke it (`runnext`): a Relaxed store to this worker's own cache line. It also
        // voids any yield request made for an earlier resume (see `sched/monitor.rs`).
        // A worker that parked since has published that it runs nothing: the chain ended.
        let inherit = self.queues.take_inherit() && self.activity.is_running(self.epoch.get());
        if !inherit {
            let epoch = monitor::next_epoch(self.epoch.get());
            self.epoch.set(epoch);
            self.activity.resuming(epoch);
        }
        self.activity.set_goroutine(id);
        if self.tracing() {
            self.trace_run_start(&task);
        }
        *self.current.borrow_mut() = Some(task);
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: as above; the goroutine's own code never touches its entry.
            unsafe { (*entry).coro.resume(()) }
        }));
        self.stats.set_running(false);
        overflow::clear_running();
        let task = self
            .current
            .borrow_mut()
            .take()
            .expect("scheduler: internal error: current goroutine lost");
        let header = task.header();
        if self.traced_run.get() {
            self.trace_run_stop(header, &result);
        }
        self.queues.set_slice_open(!matches!(
            result,
            Ok(CoroutineResult::Yield(Suspend::Yield))
        ));
        match result {
            Ok(CoroutineResult::Return(())) => {
                header.state.finish();
                // The goroutine counted itself out (`count_finished_here`, called by
                // `Completion::run`) before returning.
                let finished = self.unregister(slot);
                self.stacks.borrow_mut().give(finished.coro.into_stack());
                if header.registry_shard() != self.index {
                    self.shared.registry.finished_elsewhere(task);
                }
            }
            Ok(CoroutineResult::Yield(Suspend::Yield)) => {
                // Still ACTIVE: a yield changes no state.
                self.queues.push_yielded(task);
            }
            Ok(CoroutineResult::Yield(Suspend::Park)) => {
                if !self.try_park(header) {
                    self.queues.push_ready(task);
                }
            }
            Ok(CoroutineResult::Yield(Suspend::ParkUnlocking(handover))) => {
                // A cancelled goroutine (one that caught its cancellation and blocks again) is
                // not parked: it runs again, finds its wait incomplete, withdraws and unwinds.
                // Cancellation is sticky. (A `Park` comes from a `Waiter`, which checks the
                // flag itself before parking.)
                if header.is_cancelled() || !self.try_park(header) {
                    self.queues.push_ready(task.clone());
                }
                // SAFETY: the goroutine suspended holding this lock, with this empty keeper,
                // and handed both to us (`park_current_unlocking`); they live as long as that
                // call, which cannot return before the goroutine is resumed, which happens
                // after this. Nobody else touches the keeper before the lock is released.
                unsafe {
                    *(*handover.keeper).get() = Some(task);
                    (*handover.lock).unlock();
                }
            }
            Err(_) => {
                // The body catches the closure's panics, so this is the runtime's own bug.
                eprintln!("scheduler: internal error: a panic escaped a goroutine");
                std::process::abort();
            }
        }
    }

    /// Marks a goroutine that suspended to park as PARKED, and counts it as blocked (on what it
    /// said it waits for). False if it was woken meanwhile: the caller runs it again.
    fn try_park(&self, header: &Header) -> bool {
        if header.state.park() {
            // Counted out by this worker when it takes the goroutine back (`push_woken`,
            // `drain_inbox`), which comes after this on this thread.
            header.set_parked_at(self.shared.clock.now());
            self.stats.parked(header.parked_as());
            return true;
        }
        false
    }

    /// Removes a finished goroutine from `started`.
    fn unregister(&self, slot: usize) -> started::Started {
        // SAFETY: the worker loop, between goroutines.
        let finished = unsafe { self.started.unregister(slot) };
        self.stats.set_started(self.started.len());
        finished
    }

    /// A `join` by the running goroutine starts running a goroutine that had not started on
    /// its own stack (`entering`), or is done with it.
    pub(crate) fn count_inline(&self, entering: bool) {
        self.stats.add_inline(if entering { 1 } else { -1 });
    }

    /// A forced shutdown: mark every started goroutine cancelled and wake the parked ones, so
    /// each unwinds from its suspension point.
    fn cancel_started(&self) {
        self.cancel_seen.set(true);
        // SAFETY: the worker loop, between goroutines.
        let started = unsafe { self.started.tasks() };
        if cfg!(panic = "abort") && !started.is_empty() {
            abort_cancellation(started.len());
        }
        for task in &started {
            task.header().set_cancelled();
            unpark(task);
        }
    }
}

/// A forced shutdown must cancel `started` goroutines that started, which means unwinding
/// their stacks, and this program is built with `panic = "abort"`, where nothing unwinds: say
/// so, and end the process (docs/caveats.md). Leaving them suspended instead would let their
/// stacks, which channels may still point into, be unmapped with the runtime.
#[cold]
fn abort_cancellation(started: usize) -> ! {
    eprintln!(
        "scheduler: a forced shutdown must cancel {started} started goroutine(s) on this \
         worker, which unwinds their stacks; this program is built with panic = \"abort\", \
         where nothing unwinds: aborting. Let every goroutine finish before the runtime stops, \
         or build with panic = \"unwind\"."
    );
    std::process::abort();
}

/// A worker's pick looks at its runtime's global queue and at its own slot's inbox and
/// stealer.
impl Sources for WorkerLocal {
    #[inline]
    fn injector(&self) -> &Injector<TaskRef> {
        &self.shared.injector
    }

    #[inline]
    fn inbox(&self) -> &Inbox<TaskRef> {
        &self.shared.remotes[self.index].inbox
    }

    fn poll_io(&self) {
        self.poll_io_now();
    }

    #[inline]
    fn own(&self) -> &Stealer<TaskRef> {
        &self.shared.remotes[self.index].stealer
    }
}

/// The body of a worker thread, base or spare, after its signal stack is set up: runs the
/// worker loop until the runtime stops (or, for a spare, until it retires), then gives a
/// spare's slot back. The only caller of [`WorkerLocal::run`], which keeps it inlined here.
pub(crate) fn thread_main(index: usize, shared: Arc<Shared>, local: Worker<TaskRef>) {
    let _census = census::crate_thread(shared.census_id());
    let worker = WorkerLocal::new(index, shared.clone(), local);
    worker.run();
    if index >= shared.procs {
        shared.spares.vacate(&shared, index, worker);
    }
}

/// Drops the goroutine-local values of the goroutine finishing here and counts it out
/// (`Runnable::run`'s `finished`): its body cannot borrow its worker across its suspensions.
fn count_finished_here() {
    current::with_worker(|worker| {
        let worker = worker
            .expect("scheduler: internal error: a goroutine finished off its runtime's workers");
        let header = worker
            .current_header()
            .expect("scheduler: internal error: a goroutine finished outside its resume");
        // SAFETY: the header of the goroutine running right here, whose TaskRef the worker
        // holds for the whole resume.
        let header = unsafe { &*header };
        // SAFETY: its own slot, on its home thread, after its closure returned: the values go
        // on its stack while it still counts as live, before its joiner is released.
        unsafe { header.locals.destroy() };
        if worker.traced_run.get() {
            worker.trace_run_finished(header);
        }
        worker.count_finished(header);
    });
}
