//! A worker's run queues and the order it picks from them (`docs/design.md`, section 4).
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
//! * `local`: goroutines spawned here (or stolen) that have not started: a crossbeam LIFO
//!   deque, so the newest runs first (depth-first, like a call) while thieves take the oldest
//!   half.
//! * the worker's inbox ([`Sources::inbox`]): its started goroutines woken by other threads;
//!   drained into `ready`.
//!
//! Every 61st pick looks at the global injector first (and polls for readiness, if goroutines
//! of this worker wait for I/O) and every 31st takes the oldest local goroutine first, so
//! nothing waits forever behind a busy queue.
//!
//! Everything here is owned by the worker thread (`Cell`, `RefCell`, a crossbeam `Worker`),
//! and nothing here runs a goroutine: the pick order is tested on plain tasks that never
//! start.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::Arc;

use crossbeam_deque::{Injector, Steal, Stealer, Worker};

use crate::goroutine::home::Owner;
use crate::goroutine::task::TaskRef;
use crate::sched::inbox::Inbox;

/// Every this many picks, the global queue is looked at first.
const GLOBAL_QUEUE_INTERVAL: u32 = 61;
/// Every this many picks, the oldest not-yet-started local goroutine is taken first.
const LOCAL_FAIRNESS_INTERVAL: u32 = 31;

/// Where a pick looks beyond the worker's own queues. Asked for each only when the pick
/// looks there (the worker finds them in the runtime's shared state).
pub(super) trait Sources {
    /// The runtime's global queue of goroutines spawned from outside.
    fn injector(&self) -> &Injector<TaskRef>;
    /// This worker's inbox: its started goroutines woken by other threads.
    fn inbox(&self) -> &Inbox<TaskRef>;
    /// The stealer of this worker's own `local` deque, to take its oldest entry.
    fn own(&self) -> &Stealer<TaskRef>;
    /// Polls for readiness without blocking, queueing the goroutines it wakes (here, through
    /// `push_woken`): every 61st pick, with the look at the global queue, so that a worker
    /// that never runs out of work still delivers I/O.
    fn poll_io(&self) {}
}

/// The run queues of one worker. Owned by its thread.
pub(super) struct RunQueues {
    /// Not-started goroutines spawned here or stolen; thieves take from the other end.
    local: Worker<TaskRef>,
    ready: RefCell<VecDeque<TaskRef>>,
    runnext: RefCell<Option<TaskRef>>,
    tick: Cell<u32>,
    /// Set by a yield: the next pick prefers a goroutine that has not started yet.
    prefer_local: Cell<bool>,
    /// Set when the pick is a goroutine taken from `runnext` after a hand-off: it inherits the
    /// current resume's epoch (and so its time slice) instead of starting a new one.
    inherit_slice: Cell<bool>,
    /// Whether the last resume ended by handing off (it parked or finished) rather than by
    /// yielding: only then may a `runnext` goroutine continue its slice. A goroutine that
    /// yielded, asked to or not, closed its slice, and one that a timer then woke starts
    /// afresh.
    slice_open: Cell<bool>,
}

impl RunQueues {
    pub(super) fn new(local: Worker<TaskRef>) -> RunQueues {
        RunQueues {
            local,
            ready: RefCell::new(VecDeque::new()),
            runnext: RefCell::new(None),
            tick: Cell::new(0),
            prefer_local: Cell::new(false),
            inherit_slice: Cell::new(false),
            slice_open: Cell::new(false),
        }
    }

    /// The deque of not-started goroutines (for stealing into it, and for its length).
    #[inline]
    pub(super) fn local(&self) -> &Worker<TaskRef> {
        &self.local
    }

    /// Gives the deque back: for a spare worker that leaves its slot.
    pub(super) fn into_local(self) -> Worker<TaskRef> {
        self.local
    }

    /// Queues a goroutine that has not started.
    #[inline]
    pub(super) fn push_local(&self, task: TaskRef) {
        self.local.push(task);
    }

    /// Queues a started goroutine behind the others that are ready.
    // Always: the yield path (about 300 instructions) pays for a call here.
    #[inline(always)]
    pub(super) fn push_ready(&self, task: TaskRef) {
        self.ready.borrow_mut().push_back(task);
    }

    /// Queues a goroutine that yielded: behind the ready ones, and one not-started goroutine
    /// goes first at the next pick.
    // Always: the yield path (about 300 instructions) pays for a call here.
    #[inline(always)]
    pub(super) fn push_yielded(&self, task: TaskRef) {
        self.push_ready(task);
        self.prefer_local.set(true);
    }

    /// Queues a started goroutine woken on its own worker: it runs next, and the one it
    /// displaces goes to the back of `ready`.
    #[inline]
    pub(super) fn push_woken(&self, task: TaskRef) {
        if let Some(displaced) = self.runnext.replace(Some(task)) {
            self.push_ready(displaced);
        }
    }

    /// Records how the last resume ended: by a hand-off (park or finish: true) or a yield.
    #[inline]
    pub(super) fn set_slice_open(&self, open: bool) {
        self.slice_open.set(open);
    }

    /// Whether the goroutine just picked inherits the current resume's slice (and clears it).
    #[inline]
    pub(super) fn take_inherit(&self) -> bool {
        self.inherit_slice.replace(false)
    }

    /// Takes the goroutine at `task` out of the local deque if it is the newest entry there
    /// (the usual case when a goroutine joins what it just spawned), so that running it inline
    /// leaves no stale entry behind. True if it was taken.
    pub(super) fn take_newest_if(&self, task: *const ()) -> bool {
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
    pub(super) fn drop_stale_newest(&self) {
        while let Some(newest) = self.local.pop() {
            if newest.header().home.owner() == Owner::Inline {
                continue;
            }
            self.local.push(newest);
            return;
        }
    }

    /// The next goroutine from this worker's own queues (and, now and then, the global one),
    /// in the order of the module doc. `slice_used_up` says whether the monitor asked the
    /// current resume to yield; `drained` sees every goroutine taken out of the inbox.
    #[inline]
    pub(super) fn next(
        &self,
        sources: &impl Sources,
        slice_used_up: impl Fn() -> bool,
        drained: impl FnMut(&TaskRef),
    ) -> Option<TaskRef> {
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        if tick.is_multiple_of(GLOBAL_QUEUE_INTERVAL) {
            sources.poll_io();
            if let Some(task) = self.steal_global(sources.injector()) {
                return Some(task);
            }
        }
        self.drain_inbox(sources.inbox(), drained);
        // `is_empty` first: two loads, inlined, where a pop is a call that takes the deque's
        // bottom (and after a yield the deque is usually empty).
        if self.prefer_local.replace(false)
            && !self.local.is_empty()
            && let Some(task) = self.local.pop()
        {
            return Some(task);
        }
        if tick.is_multiple_of(LOCAL_FAIRNESS_INTERVAL)
            && let Some(task) = steal_one(sources.own())
        {
            return Some(task);
        }
        if let Some(task) = self.runnext.take() {
            // The monitor asks the current resume to yield once it has run a whole slice;
            // with inherited epochs that is the whole chain of hand-offs.
            let open = self.slice_open.get();
            if !(open && slice_used_up()) {
                self.inherit_slice.set(open);
                return Some(task);
            }
            self.push_ready(task);
        }
        let ready = self.ready.borrow_mut().pop_front();
        ready
            .or_else(|| self.local.pop())
            .or_else(|| self.steal_global(sources.injector()))
    }

    /// Moves goroutines woken by other threads into `ready`.
    fn drain_inbox(&self, inbox: &Inbox<TaskRef>, mut drained: impl FnMut(&TaskRef)) {
        if inbox.is_empty() {
            return;
        }
        let mut ready = self.ready.borrow_mut();
        while let Some(task) = inbox.pop() {
            drained(&task);
            ready.push_back(task);
        }
    }

    /// A batch from the global queue into `local`, and one of it to run.
    pub(super) fn steal_global(&self, injector: &Injector<TaskRef>) -> Option<TaskRef> {
        loop {
            match injector.steal_batch_and_pop(&self.local) {
                Steal::Success(task) => return Some(task),
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }
}

/// Takes one goroutine from a stealer or injector, retrying on contention.
pub(super) fn steal_one<S: StealOne>(source: &S) -> Option<TaskRef> {
    loop {
        match source.steal_one() {
            Steal::Success(task) => return Some(task),
            Steal::Empty => return None,
            Steal::Retry => continue,
        }
    }
}

/// A queue one goroutine can be taken from by another thread.
pub(super) trait StealOne {
    fn steal_one(&self) -> Steal<TaskRef>;
}

impl StealOne for Stealer<TaskRef> {
    fn steal_one(&self) -> Steal<TaskRef> {
        self.steal()
    }
}

impl StealOne for Injector<TaskRef> {
    fn steal_one(&self) -> Steal<TaskRef> {
        self.steal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goroutine::task::{Origin, Task};

    /// A goroutine that never runs: only its identity matters here.
    fn task(id: u64) -> TaskRef {
        Task::new(std::ptr::null(), id, Origin::here(), 0, || ())
    }

    fn id(task: Option<TaskRef>) -> Option<u64> {
        task.map(|t| t.header().id)
    }

    struct Fixture {
        queues: RunQueues,
        injector: Injector<TaskRef>,
        inbox: Inbox<TaskRef>,
        own: Stealer<TaskRef>,
    }

    impl Fixture {
        fn new() -> Fixture {
            let local = Worker::new_lifo();
            let own = local.stealer();
            Fixture {
                queues: RunQueues::new(local),
                injector: Injector::new(),
                inbox: Inbox::new(),
                own,
            }
        }

        fn next_with(&self, slice_used_up: bool) -> Option<u64> {
            id(self.queues.next(self, || slice_used_up, |_| {}))
        }

        fn next(&self) -> Option<u64> {
            self.next_with(false)
        }
    }

    impl Sources for Fixture {
        fn injector(&self) -> &Injector<TaskRef> {
            &self.injector
        }
        fn inbox(&self) -> &Inbox<TaskRef> {
            &self.inbox
        }
        fn own(&self) -> &Stealer<TaskRef> {
            &self.own
        }
    }

    #[test]
    fn runnext_then_ready_then_newest_local_then_global() {
        let f = Fixture::new();
        f.injector.push(task(1));
        f.queues.push_local(task(2));
        f.queues.push_local(task(3));
        f.queues.push_ready(task(4));
        f.queues.push_woken(task(5));
        assert_eq!(f.next(), Some(5), "runnext first");
        assert_eq!(f.next(), Some(4), "then ready");
        assert_eq!(f.next(), Some(3), "then the newest not-started goroutine");
        assert_eq!(f.next(), Some(2));
        assert_eq!(f.next(), Some(1), "then the global queue");
        assert_eq!(f.next(), None);
    }

    #[test]
    fn a_second_wake_displaces_runnext_to_the_back_of_ready() {
        let f = Fixture::new();
        f.queues.push_ready(task(1));
        f.queues.push_woken(task(2));
        f.queues.push_woken(task(3));
        assert_eq!(f.next(), Some(3));
        assert_eq!(f.next(), Some(1));
        assert_eq!(f.next(), Some(2));
    }

    #[test]
    fn the_inbox_is_drained_behind_ready() {
        let f = Fixture::new();
        f.queues.push_ready(task(1));
        f.inbox.push(task(2));
        assert_eq!(f.next(), Some(1));
        assert_eq!(f.next(), Some(2));
        assert!(f.inbox.is_empty());
    }

    #[test]
    fn a_yield_lets_one_not_started_goroutine_go_first() {
        let f = Fixture::new();
        f.queues.push_local(task(1));
        f.queues.push_yielded(task(2));
        assert_eq!(f.next(), Some(1), "the not-started one first");
        f.queues.push_local(task(3));
        assert_eq!(f.next(), Some(2), "then the order is normal again");
    }

    #[test]
    fn runnext_inherits_the_slice_only_after_a_hand_off() {
        let f = Fixture::new();
        f.queues.set_slice_open(true);
        f.queues.push_woken(task(1));
        assert_eq!(f.next(), Some(1));
        assert!(f.queues.take_inherit(), "a hand-off passes the slice on");
        assert!(!f.queues.take_inherit(), "taken once");
        f.queues.set_slice_open(false);
        f.queues.push_woken(task(2));
        assert_eq!(f.next(), Some(2));
        assert!(!f.queues.take_inherit(), "after a yield a new slice starts");
    }

    #[test]
    fn a_used_up_slice_sends_runnext_behind_ready() {
        let f = Fixture::new();
        f.queues.set_slice_open(true);
        f.queues.push_ready(task(1));
        f.queues.push_woken(task(2));
        assert_eq!(f.next_with(true), Some(1), "the others get their turn");
        assert!(!f.queues.take_inherit());
        assert_eq!(f.next(), Some(2));
    }

    #[test]
    fn the_global_queue_gets_a_turn_every_61_picks() {
        let f = Fixture::new();
        f.injector.push(task(1));
        let picks: Vec<_> = (1..=61)
            .map(|_| {
                f.queues.push_ready(task(2));
                f.next()
            })
            .collect();
        assert!(picks[..60].iter().all(|&p| p == Some(2)));
        assert_eq!(
            picks[60],
            Some(1),
            "the 61st pick takes from the global queue"
        );
    }

    #[test]
    fn the_oldest_local_goroutine_gets_a_turn_every_31_picks() {
        let f = Fixture::new();
        f.queues.push_local(task(1));
        let picks: Vec<_> = (1..=31)
            .map(|_| {
                f.queues.push_local(task(2));
                f.next()
            })
            .collect();
        assert!(picks[..30].iter().all(|&p| p == Some(2)));
        assert_eq!(
            picks[30],
            Some(1),
            "the 31st pick takes the oldest local goroutine"
        );
    }

    #[test]
    fn take_newest_if_leaves_other_entries_in_place() {
        let f = Fixture::new();
        let (a, b) = (task(1), task(2));
        f.queues.push_local(a.clone());
        f.queues.push_local(b.clone());
        assert!(!f.queues.take_newest_if(Arc::as_ptr(&a) as *const ()));
        assert!(f.queues.take_newest_if(Arc::as_ptr(&b) as *const ()));
        assert_eq!(f.next(), Some(1));
    }
}
