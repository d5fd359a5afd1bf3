//! A worker: one OS thread that runs goroutines, Go's M with its P.
//!
//! Its run queues, all owned by the worker thread:
//!
//! * `runnext`: the goroutine most recently woken on this thread (by a goroutine of this
//!   worker, a timer it fired, or a cancellation). It runs next, so a ping-pong pair hands
//!   over without a queue round trip. As in Go, it inherits the time slice of the goroutine
//!   that woke it: a chain of hand-offs counts as one resume for the monitor, and once that
//!   has run a whole slice the next hand-off goes to the back of `ready`. So a pair that
//!   computes a lot per turn gets the same time as one that computes little, not the same
//!   number of turns.
//! * `ready`: started goroutines that are runnable again (yielded, woken, or displaced from
//!   `runnext`), FIFO. Never stolen: a started goroutine stays on its thread.
//! * `local`: goroutines spawned here (or stolen) that have not started: a crossbeam LIFO deque,
//!   so the newest runs first (depth-first, like a call) while thieves take the oldest half.
//! * the worker's inbox in [`Remote`](super::shared::Remote): its started goroutines woken by
//!   other threads; drained into `ready`.
//!
//! Every 61st pick looks at the global injector first and every 31st takes the oldest local
//! goroutine first, so nothing waits forever behind a busy queue.

use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};
use std::time::{Duration, Instant};

use corosensei::stack::Stack;
use corosensei::{Coroutine, CoroutineResult};
use crossbeam_deque::{Steal, Worker};

use super::current;
use super::deadlock;
use super::monitor::{self, Activity};
use super::shared::{Shared, phase};
use super::stats::WorkerStats;
use super::wake::unpark;
use crate::goroutine::overflow;
use crate::goroutine::stack::StackPool;
use crate::goroutine::task::{
    Coro, GoYielder, Header, INLINE, NO_HOME, Runnable, Suspend, TaskRef, state,
};
use crate::wait::BlockKind;
use crate::wait::timers::{self, TimerHeap};

/// How many stack reservations a worker takes from the arena at a time.
const STACK_BLOCK: usize = 64;
/// How many goroutine ids a worker reserves at a time.
const ID_BLOCK: u64 = 1024;
/// Every this many picks, the global queue is looked at first.
const GLOBAL_QUEUE_INTERVAL: u32 = 61;
/// Every this many picks, the oldest not-yet-started local goroutine is taken first.
const LOCAL_FAIRNESS_INTERVAL: u32 = 31;

/// A started goroutine in its worker's registry.
struct Started {
    /// Held without a reference count: a started goroutine keeps itself alive (its
    /// coroutine's closure owns a `TaskRef`) until it finishes, and it is removed then.
    task: *const dyn Runnable,
    coro: Coro,
    /// Lowest usable address of the goroutine's stack.
    stack_limit: usize,
}

/// The worker's own state. Lives on the worker thread's stack for the thread's whole life;
/// reached from goroutines through [`current::current_worker`]. Interior mutability only:
/// goroutine code (spawn, wake) and the loop both touch it, never at the same time, and no
/// borrow is held across a resume.
pub(crate) struct WorkerLocal {
    index: usize,
    shared: Arc<Shared>,
    local: Worker<TaskRef>,
    ready: RefCell<VecDeque<TaskRef>>,
    runnext: RefCell<Option<TaskRef>>,
    /// The goroutine being resumed right now; `None` while the loop itself runs.
    current: RefCell<Option<TaskRef>>,
    /// Every started, unfinished goroutine of this worker (its home), with its coroutine; a
    /// goroutine's `slot` is its index here. A forced shutdown finds the parked ones here.
    ///
    /// Only the worker loop pushes and removes entries, never while a goroutine runs, so a
    /// pointer to an entry taken for a resume stays valid through it. Keeping the coroutine
    /// here rather than in the goroutine's header keeps the goroutines that have not started
    /// (the many, in a burst of spawns) small.
    started: UnsafeCell<Vec<Started>>,
    stacks: RefCell<StackPool>,
    /// Timers set by this worker's goroutines; fired by this worker between goroutines.
    timers: RefCell<TimerHeap>,
    tick: Cell<u32>,
    /// Set when the next resume is of a goroutine taken from `runnext`, which inherits the
    /// current resume's epoch (and so its time slice) instead of starting a new one.
    inherit_slice: Cell<bool>,
    /// Whether the last resume ended by handing off (it parked or finished) rather than by
    /// yielding: only then may a `runnext` goroutine continue its slice. A goroutine that
    /// yielded, asked to or not, closed its slice, and one that a timer then woke starts
    /// afresh.
    slice_open: Cell<bool>,
    /// Set by a yield: the next pick prefers a goroutine that has not started yet.
    prefer_local: Cell<bool>,
    searching: Cell<bool>,
    /// Whether this worker has already reacted to the CANCELLING phase.
    cancel_seen: Cell<bool>,
    rng: Cell<u64>,
    /// Goroutine ids reserved for spawns on this worker: the next one, and the end of the
    /// block. Taking ids in blocks keeps the shared counter off the spawn path.
    ids: Cell<(u64, u64)>,
    /// Stack reservations taken from the arena and not yet given to a goroutine.
    stack_budget: Cell<usize>,
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
}

impl WorkerLocal {
    pub(crate) fn new(index: usize, shared: Arc<Shared>, local: Worker<TaskRef>) -> WorkerLocal {
        let stacks = StackPool::new(shared.stacks.clone());
        let stats = shared.remotes[index].stats.clone();
        let activity = shared.remotes[index].activity.clone();
        WorkerLocal {
            index,
            shared,
            local,
            ready: RefCell::new(VecDeque::new()),
            runnext: RefCell::new(None),
            current: RefCell::new(None),
            started: UnsafeCell::new(Vec::new()),
            stacks: RefCell::new(stacks),
            timers: RefCell::new(TimerHeap::default()),
            tick: Cell::new(0),
            inherit_slice: Cell::new(false),
            slice_open: Cell::new(false),
            prefer_local: Cell::new(false),
            searching: Cell::new(false),
            cancel_seen: Cell::new(false),
            rng: Cell::new(0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1)),
            ids: Cell::new((0, 0)),
            stack_budget: Cell::new(0),
            stats,
            busy_ns: Cell::new(0),
            awake_since: Cell::new(0),
            epoch: Cell::new(activity.first_epoch()),
            activity,
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

    /// This worker's timers. Borrow briefly: never across a resume or a timer's action.
    pub(crate) fn timers(&self) -> &RefCell<TimerHeap> {
        &self.timers
    }

    pub(crate) fn current_task(&self) -> Option<TaskRef> {
        self.current.borrow().clone()
    }

    /// Counts a goroutine that finished on this worker, and takes back its stack reservation.
    pub(crate) fn count_finished(&self) {
        self.shared.remotes[self.index].counts.finished_one();
        self.shared.goroutine_finished();
        let mut budget = self.stack_budget.get() + 1;
        if budget > 2 * STACK_BLOCK {
            self.shared.stacks.release(STACK_BLOCK);
            budget -= STACK_BLOCK;
        }
        self.stack_budget.set(budget);
    }

    /// Reserves a stack for a goroutine about to be spawned here (see `StackArena::reserve`),
    /// from this worker's batch of reservations.
    pub(crate) fn reserve_stack(&self) -> std::io::Result<()> {
        match self.stack_budget.get() {
            0 => {
                // A batch at a time keeps the arena's lock off most spawns; near the limit,
                // one at a time.
                if self.shared.stacks.reserve(STACK_BLOCK).is_ok() {
                    self.stack_budget.set(STACK_BLOCK - 1);
                    Ok(())
                } else {
                    self.shared.stacks.reserve(1)
                }
            }
            budget => {
                self.stack_budget.set(budget - 1);
                Ok(())
            }
        }
    }

    /// Counts a goroutine spawned on this worker and returns its id.
    pub(crate) fn count_spawned(&self) -> u64 {
        self.shared.remotes[self.index].counts.spawned_one();
        let (mut next, mut end) = self.ids.get();
        if next == end {
            next = self.shared.take_ids(ID_BLOCK);
            end = next + ID_BLOCK;
        }
        self.ids.set((next + 1, end));
        next
    }

    /// Queues a goroutine spawned by a goroutine of this worker.
    pub(crate) fn push_spawned(&self, task: TaskRef) {
        self.local.push(task);
        // With one worker, the only one that could take it is this one, which is awake.
        if self.shared.procs > 1 {
            self.shared.notify_work();
        }
    }

    /// Queues a goroutine like [`push_spawned`](Self::push_spawned) but wakes nobody: for
    /// tests of the monitor, which must find it.
    #[cfg(test)]
    pub(crate) fn push_unannounced(&self, task: TaskRef) {
        self.local.push(task);
    }

    /// Takes the goroutine at `task` out of the local deque if it is the newest entry there
    /// (the usual case when a goroutine joins what it just spawned), so that running it inline
    /// leaves no stale entry behind. True if it was taken.
    pub(crate) fn take_newest_if(&self, task: *const ()) -> bool {
        match self.local.pop() {
            Some(newest) if std::ptr::eq(Arc::as_ptr(&newest) as *const (), task) => true,
            Some(newest) => {
                // Not it: put it back where it was (the same end of the deque).
                self.local.push(newest);
                false
            }
            None => false,
        }
    }

    /// Drops stale entries (goroutines a join ran inline) from the newest end of the local
    /// deque, so that a goroutine that spawns and joins in a loop, never yielding, does not
    /// pile them up.
    pub(crate) fn drop_stale_newest(&self) {
        while let Some(newest) = self.local.pop() {
            if newest.header().home.load(Ordering::Relaxed) == INLINE {
                continue;
            }
            self.local.push(newest);
            return;
        }
    }

    /// Queues a started goroutine of this worker that a goroutine of this worker woke: it runs
    /// next, and the one it displaces goes to the back of `ready`.
    /// `kind` is what it was parked on (`Header::parked_as`), to count it out of that.
    pub(crate) fn push_woken(&self, task: TaskRef, kind: BlockKind) {
        self.stats.unparked(kind);
        if let Some(displaced) = self.runnext.replace(Some(task)) {
            self.ready.borrow_mut().push_back(displaced);
        }
    }

    /// The worker thread's body: runs goroutines until the runtime stops.
    pub(crate) fn run(&self) {
        let _context = current::enter(self);
        self.activity.publish_thread();
        self.awake_since.set(self.stats.awake(0));
        loop {
            if !self.cancel_seen.get() && self.shared.phase() >= phase::CANCELLING {
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
            if let Some(task) = self.search() {
                self.run_task(task);
                continue;
            }
            if self.shared.phase() == phase::STOPPING {
                break;
            }
            self.shared.note_if_all_done();
            if !self.park() {
                // A spare with nothing left to do retired.
                break;
            }
        }
        // SAFETY: the worker loop, between goroutines (`started` doc).
        debug_assert!(unsafe { (*self.started.get()).is_empty() });
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
        let budget = self.stack_budget.replace(0);
        if budget > 0 {
            self.shared.stacks.release(budget);
        }
        self.stacks.borrow_mut().flush();
        self.local
    }

    fn next_tick(&self) -> u32 {
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        tick
    }

    /// The next goroutine from this worker's own queues (and, now and then, the global one).
    fn next_local(&self) -> Option<TaskRef> {
        let tick = self.next_tick();
        if tick.is_multiple_of(GLOBAL_QUEUE_INTERVAL)
            && let Some(task) = self.steal_global()
        {
            return Some(task);
        }
        self.drain_inbox();
        // `is_empty` first: two loads, inlined, where a pop is a call that takes the deque's
        // bottom (and after a yield the deque is usually empty).
        if self.prefer_local.replace(false)
            && !self.local.is_empty()
            && let Some(task) = self.local.pop()
        {
            return Some(task);
        }
        if tick.is_multiple_of(LOCAL_FAIRNESS_INTERVAL)
            && let Some(task) = steal_one(&self.shared.remotes[self.index].stealer)
        {
            return Some(task);
        }
        if let Some(task) = self.runnext.take() {
            // The monitor asks the current resume to yield once it has run a whole slice;
            // with inherited epochs that is the whole chain of hand-offs.
            let open = self.slice_open.get();
            if !(open && self.preemption_requested()) {
                self.inherit_slice.set(open);
                return Some(task);
            }
            self.ready.borrow_mut().push_back(task);
        }
        let ready = self.ready.borrow_mut().pop_front();
        ready
            .or_else(|| self.local.pop())
            .or_else(|| self.steal_global())
    }

    /// Moves goroutines woken by other threads into `ready`.
    fn drain_inbox(&self) {
        let inbox = &self.shared.remotes[self.index].inbox;
        if inbox.is_empty() {
            return;
        }
        let mut ready = self.ready.borrow_mut();
        while let Some(task) = steal_one(inbox) {
            // SAFETY: only this worker's own goroutines are in its inbox.
            self.stats.unparked(unsafe { task.header().parked_as() });
            ready.push_back(task);
        }
    }

    fn steal_global(&self) -> Option<TaskRef> {
        loop {
            match self.shared.injector.steal_batch_and_pop(&self.local) {
                Steal::Success(task) => return Some(task),
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }

    /// Looks for work in other workers' deques, as a searcher (see [`super::idle`]).
    fn search(&self) -> Option<TaskRef> {
        if self.shared.steal_slots() == 1 {
            return None;
        }
        if !self.searching.get() {
            if !self.shared.idle.try_start_searching() {
                return None;
            }
            self.searching.set(true);
        }
        loop {
            let task = self.steal_global().or_else(|| self.steal_from_others())?;
            // A goroutine that a joiner already ran inline left a stale entry, oldest first,
            // where thieves take: not work, so search on rather than give up the search
            // (Relaxed: a hint; `start` decides).
            if task.header().home.load(Ordering::Relaxed) != NO_HOME {
                continue;
            }
            self.stop_searching();
            return Some(task);
        }
    }

    /// Leaves the searching state, if in it, before running a goroutine found.
    fn stop_searching(&self) {
        if self.searching.replace(false) && self.shared.idle.stop_searching() {
            // The last searcher found work; there may be more: let another worker look.
            self.shared.notify_work();
        }
    }

    /// Steals half of a random victim's not-yet-started goroutines.
    fn steal_from_others(&self) -> Option<TaskRef> {
        let slots = self.shared.steal_slots();
        let start = self.next_random() as usize % slots;
        for offset in 0..slots {
            let victim = (start + offset) % slots;
            if victim == self.index {
                continue;
            }
            let stealer = &self.shared.remotes[victim].stealer;
            let before = self.local.len();
            loop {
                match stealer.steal_batch_and_pop(&self.local) {
                    Steal::Success(task) => {
                        // The batch landed in our deque (a thief may already have taken some
                        // of it back: then the count is low, never high).
                        let batch = self.local.len().saturating_sub(before);
                        self.stats.stole(1 + batch);
                        return Some(task);
                    }
                    Steal::Empty => break,
                    Steal::Retry => continue,
                }
            }
        }
        None
    }

    fn next_random(&self) -> u64 {
        // xorshift64: cheap, and good enough to spread victims.
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        x
    }

    /// Sleeps until there may be work (the protocol is in [`super::idle`]). Returns false if
    /// this is a spare worker that retired instead: it has no started goroutine left to wait
    /// for, and found no work in its final look (see [`super::spare`]).
    // Out of line: the worker loop around it is the hot path of every yield and wake, and
    // parking is the slow path that follows a fruitless search anyway.
    #[inline(never)]
    fn park(&self) -> bool {
        let shared = &*self.shared;
        // Tell the monitor this worker runs nothing now.
        self.activity.parking(self.epoch.get());
        let was_searching = self.searching.replace(false);
        // SAFETY: the worker loop, between goroutines (`started` doc).
        let retiring = self.index >= shared.procs && unsafe { (*self.started.get()).is_empty() };
        if retiring {
            shared.idle.retire_spare(was_searching);
        } else {
            shared.idle.before_park(self.index, was_searching);
        }
        let remote = &shared.remotes[self.index];
        // The final look: after publishing that we park, every queue once more.
        let work_left = !remote.inbox.is_empty()
            || !self.local.is_empty()
            || shared.has_stealable_work()
            || (shared.phase() >= phase::CANCELLING && !self.cancel_seen.get())
            || shared.phase() == phase::STOPPING;
        if retiring {
            if !work_left {
                return false;
            }
            // Work came after all: count ourselves back in and go on, searching on if we were
            // a searcher (as below, for a cancelled park).
            shared.idle.add_spare();
            shared.monitor.worker_awake();
            if was_searching && shared.idle.try_start_searching() {
                self.searching.set(true);
            }
            return true;
        }
        if !work_left {
            let next_timer = self.timers.borrow().next_deadline();
            let busy = self
                .stats
                .asleep(self.awake_since.get(), self.busy_ns.get(), true);
            self.busy_ns.set(busy);
            spin_until_notified(&remote.parker);
            remote.parker.park(next_timer, || {
                if deadlock::all_asleep(shared) {
                    shared.deadlock.stalled();
                }
            });
            self.awake_since.set(self.stats.awake(busy));
        }
        let woken_as_searcher = shared.idle.after_wake(self.index);
        // Counted as unparked again (by `after_wake` or by the producer that woke us): a
        // monitor asleep because every worker was parked has work to watch again.
        shared.monitor.worker_awake();
        if woken_as_searcher {
            self.searching.set(true);
        } else if work_left && was_searching && shared.idle.try_start_searching() {
            // The final look cancelled the sleep of a searcher. A producer may have skipped
            // waking anyone because it saw us searching, for more goroutines than we will
            // take: search on, so that taking one makes us the last searcher who wakes
            // another worker for the rest (Go's findrunnable does the same). If the search is
            // refused, half the workers search already and the same holds for them.
            self.searching.set(true);
        }
        true
    }

    /// Resumes `task` (starting it if it is new) until it finishes, yields or parks.
    fn run_task(&self, task: TaskRef) {
        let header = task.header();
        // Queued means ACTIVE: running it changes no state (see the `state` module). A
        // goroutine whose home is this worker was started here (started goroutines are only
        // queued on their home worker); any other has not started (Relaxed: we wrote `home`
        // ourselves if so; otherwise `start` decides by CAS).
        let slot = if header.home.load(Ordering::Relaxed) == self.index {
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
            if header.home.load(Ordering::Relaxed) != NO_HOME {
                return None;
            }
            header.home.store(self.index, Ordering::Relaxed);
        } else if !header.claim(self.index) {
            // A joiner claimed it and ran it on its own stack: this queue entry is stale.
            return None;
        }
        if self.shared.phase() >= phase::CANCELLING {
            header.state.store(state::DONE, Ordering::Release);
            task.cancel(&|| self.count_finished());
            return None;
        }
        let stack = match self.stacks.borrow_mut().take() {
            Ok(stack) => stack,
            Err(_) => {
                // A stack is reserved for every admitted goroutine (`Shared::try_spawn`), so
                // the arena could only not map more because the free stacks sit in workers'
                // caches: have them handed back, and start this one later. Un-claim it first
                // (its closure is untouched); Release: a later claimer sees NO_HOME.
                header.home.store(NO_HOME, Ordering::Release);
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
        // SAFETY: the worker loop, between goroutines (`started` doc).
        let started = unsafe { &mut *self.started.get() };
        let slot = started.len();
        // SAFETY: this is the home worker thread from now on.
        unsafe { header.set_slot(slot) };
        started.push(Started {
            task: Arc::as_ptr(task),
            coro,
            stack_limit,
        });
        self.stats.set_started(started.len());
        Some(slot)
    }

    /// Resumes the started goroutine `task`, whose entry in `started` is `slot`.
    fn resume(&self, task: TaskRef, slot: usize) {
        // SAFETY: the worker loop; the entry stays where it is until this resume ends
        // (`started` doc), and no other reference to it exists while we use this pointer.
        let entry: *mut Started = unsafe { (*self.started.get()).as_mut_ptr().add(slot) };
        // SAFETY: as above.
        let stack_limit = unsafe { (*entry).stack_limit };
        // For the stack overflow handler and `current::can_run_inline`: plain stores to a
        // thread-local, cleared below.
        overflow::set_running(stack_limit, task.header().id);
        self.stats.set_running(true);
        // A new epoch for the monitor, unless this goroutine inherits the slice of the one
        // that woke it (`runnext`): a Relaxed store to this worker's own cache line. It also
        // voids any yield request made for an earlier resume (see `sched/monitor.rs`).
        // A worker that parked since has published that it runs nothing: the chain ended.
        let inherit =
            self.inherit_slice.replace(false) && self.activity.is_running(self.epoch.get());
        if !inherit {
            let epoch = monitor::next_epoch(self.epoch.get());
            self.epoch.set(epoch);
            self.activity.resuming(epoch);
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
        self.slice_open.set(!matches!(
            result,
            Ok(CoroutineResult::Yield(Suspend::Yield))
        ));
        match result {
            Ok(CoroutineResult::Return(())) => {
                header.state.store(state::DONE, Ordering::Release);
                // The goroutine counted itself out (`Task::finish`) before returning.
                let finished = self.unregister(slot);
                self.stacks.borrow_mut().give(finished.coro.into_stack());
            }
            Ok(CoroutineResult::Yield(Suspend::Yield)) => {
                // Still ACTIVE: a yield changes no state.
                self.ready.borrow_mut().push_back(task);
                self.prefer_local.set(true);
            }
            Ok(CoroutineResult::Yield(Suspend::Park)) => {
                if !self.try_park(header) {
                    self.ready.borrow_mut().push_back(task);
                }
            }
            Ok(CoroutineResult::Yield(Suspend::ParkUnlocking(handover))) => {
                // A cancelled goroutine (one that caught its cancellation and blocks again) is
                // not parked: it runs again, finds its wait incomplete, withdraws and unwinds.
                // Cancellation is sticky. (A `Park` comes from a `Waiter`, which checks the
                // flag itself before parking.)
                let kept = if !header.is_cancelled() && self.try_park(header) {
                    task
                } else {
                    self.ready.borrow_mut().push_back(task.clone());
                    task
                };
                // SAFETY: the goroutine suspended holding this lock, with this empty keeper,
                // and handed both to us (`park_current_unlocking`); they live as long as that
                // call, which cannot return before the goroutine is resumed, which happens
                // after this. Nobody else touches the keeper before the lock is released.
                unsafe {
                    *(*handover.keeper).get() = Some(kept);
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
        // AcqRel: Release publishes our writes (the goroutine's, and the worker's) to the
        // waker that moves it out of PARKED; on failure, Acquire takes what the waker that set
        // NOTIFIED wrote before.
        if header
            .state
            .compare_exchange(
                state::ACTIVE,
                state::PARKED,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            // Counted out by this worker when it takes the goroutine back (`push_woken`,
            // `drain_inbox`), which comes after this on this thread.
            // SAFETY: the worker loop of the goroutine's home worker.
            self.stats.parked(unsafe { header.parked_as() });
            return true;
        }
        // Woken before it finished parking: clear the flag (an RMW, to keep the chain).
        header.state.swap(state::ACTIVE, Ordering::AcqRel);
        false
    }

    /// Removes a finished goroutine from `started`.
    fn unregister(&self, slot: usize) -> Started {
        // SAFETY: the worker loop, between goroutines (`started` doc).
        let started = unsafe { &mut *self.started.get() };
        let finished = started.swap_remove(slot);
        self.stats.set_started(started.len());
        if let Some(moved) = started.get(slot) {
            // SAFETY: every goroutine in `started` is alive (`Started::task` doc) and has
            // this worker, this thread, as its home.
            unsafe { (*moved.task).header().set_slot(slot) };
        }
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
        // SAFETY: the worker loop, between goroutines (`started` doc).
        let started: Vec<TaskRef> = unsafe { &*self.started.get() }
            .iter()
            .map(|entry| {
                // SAFETY: the pointer came from `Arc::as_ptr` and the goroutine is alive
                // (`Started::task` doc), so its count is at least one while we add ours.
                unsafe {
                    Arc::increment_strong_count(entry.task);
                    Arc::from_raw(entry.task)
                }
            })
            .collect();
        if cfg!(panic = "abort") && !started.is_empty() {
            abort_cancellation(started.len());
        }
        for task in &started {
            // Relaxed: read by the goroutine on this same thread when it resumes.
            task.header().cancelled.store(true, Ordering::Relaxed);
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

/// The body of a worker thread, base or spare, after its signal stack is set up: runs the
/// worker loop until the runtime stops (or, for a spare, until it retires), then gives a
/// spare's slot back. The only caller of [`WorkerLocal::run`], which keeps it inlined here.
pub(crate) fn thread_main(index: usize, shared: Arc<Shared>, local: Worker<TaskRef>) {
    let worker = WorkerLocal::new(index, shared.clone(), local);
    worker.run();
    if index >= shared.procs {
        shared.spares.vacate(&shared, index, worker);
    }
}

/// Counts the goroutine that finishes on this thread's worker (`Runnable::run`'s `finished`),
/// for a goroutine's body, which cannot borrow its worker across its suspensions.
fn count_finished_here() {
    current::current_worker()
        .expect("scheduler: internal error: a goroutine finished off its runtime's workers")
        .count_finished();
}

/// How long a worker with nothing to do watches its parker before it goes to sleep.
const PARK_SPIN: Duration = Duration::from_micros(50);

/// Spins for up to [`PARK_SPIN`] until `parker` is notified (a wake of one of this worker's
/// goroutines from another thread, or work for it to take), so that a wake arriving soon
/// after the worker ran out of work costs the waker a store instead of a futex wake, and the
/// worker the tens of microseconds it takes a sleeping thread to run again. Goroutines that
/// talk across two workers (each started goroutine stays on its thread) wake each other that
/// way at every hand-off. The worker is already counted as parked (it made its final look),
/// so the spin changes nothing the idle protocol relies on.
fn spin_until_notified(parker: &super::parker::Parker) {
    let until = Instant::now() + PARK_SPIN;
    loop {
        for _ in 0..64 {
            if parker.is_notified() {
                return;
            }
            std::hint::spin_loop();
        }
        if Instant::now() >= until {
            return;
        }
    }
}

/// Takes one goroutine from a stealer or injector, retrying on contention.
fn steal_one<S: StealOne>(source: &S) -> Option<TaskRef> {
    loop {
        match source.steal_one() {
            Steal::Success(task) => return Some(task),
            Steal::Empty => return None,
            Steal::Retry => continue,
        }
    }
}

trait StealOne {
    fn steal_one(&self) -> Steal<TaskRef>;
}

impl StealOne for crossbeam_deque::Stealer<TaskRef> {
    fn steal_one(&self) -> Steal<TaskRef> {
        self.steal()
    }
}

impl StealOne for crossbeam_deque::Injector<TaskRef> {
    fn steal_one(&self) -> Steal<TaskRef> {
        self.steal()
    }
}
