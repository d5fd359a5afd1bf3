//! Timers: the heap that orders them, and the process-wide thread that fires those set outside
//! any runtime.
//!
//! A timer set by a goroutine goes into its worker's own [`TimerHeap`] (`crate::sched::timers`
//! puts it there): no lock, and the worker fires it between goroutines, or sleeps exactly until
//! it is due when it has nothing else to do (see `WorkerLocal::park`). A timer set outside any
//! runtime (a plain thread's `after`, a context deadline made in `main`) goes to one
//! process-wide timer thread, `scheduler-timer`, started on first use and asleep whenever it
//! has no timer due. Timers a worker still holds when its runtime stops are handed to that
//! thread too, so none is lost.
//!
//! Actions run on the firing thread's own stack and must be short and never block: they wake a
//! waiter, send on a channel with `try_send`, or cancel a context.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{OnceLock, Weak};
use std::thread;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::waiter::Waiter;

/// A callback a timer runs when it fires: short, and never blocking.
pub(crate) trait TimerAction: Send {
    fn fire(self: Box<Self>);
    /// Whether firing could still matter (a ticker whose receivers are all gone, a context
    /// cancelled early: no). Dead timers are dropped when their heap is compacted.
    fn is_live(&self) -> bool;
}

/// What a timer does when it fires.
pub(crate) enum Action {
    /// Ends a goroutine's wait as timed out (if it is still waiting). Weak: a wait that ended
    /// early (answered at once, a `recv_timeout` of an hour) drops its waiter, and with it the
    /// goroutine's task (a detached goroutine's result included), when it ends, not when the
    /// timer comes due.
    TimeOut(Weak<Waiter>),
    /// Runs a callback.
    Run(Box<dyn TimerAction>),
}

impl Action {
    fn fire(self) {
        match self {
            Action::TimeOut(waiter) => {
                if let Some(waiter) = waiter.upgrade() {
                    waiter.time_out();
                }
            }
            Action::Run(action) => action.fire(),
        }
    }

    /// Whether firing it could still do anything.
    fn is_live(&self) -> bool {
        match self {
            Action::TimeOut(waiter) => waiter.upgrade().is_some_and(|w| w.is_waiting()),
            Action::Run(action) => action.is_live(),
        }
    }
}

struct Entry {
    deadline: Instant,
    /// Breaks ties so that timers with one deadline fire in the order they were set.
    seq: u64,
    action: Action,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Entry) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    /// Reversed, so that `BinaryHeap` (a max-heap) yields the earliest deadline first.
    fn cmp(&self, other: &Entry) -> Ordering {
        (other.deadline, other.seq).cmp(&(self.deadline, self.seq))
    }
}

/// Timers ordered by deadline.
///
/// A timer that became dead (its wait ended first, its context was cancelled, its receivers
/// are gone) stays until it reaches the top, or until the heap is compacted: whenever the heap
/// has doubled since the last compaction, every dead entry is dropped. So dead timers cost
/// amortised constant time each and never hold more than about half of the heap.
pub(crate) struct TimerHeap {
    heap: BinaryHeap<Entry>,
    seq: u64,
    /// The length at which the next compaction runs.
    compact_at: usize,
}

/// The smallest heap that is ever compacted.
const MIN_COMPACTION: usize = 64;

impl Default for TimerHeap {
    fn default() -> TimerHeap {
        TimerHeap {
            heap: BinaryHeap::new(),
            seq: 0,
            compact_at: MIN_COMPACTION,
        }
    }
}

impl TimerHeap {
    pub(crate) fn push(&mut self, deadline: Instant, action: Action) {
        if self.heap.len() >= self.compact_at {
            self.heap.retain(|e| e.action.is_live());
            self.compact_at = (2 * self.heap.len()).max(MIN_COMPACTION);
        }
        self.seq += 1;
        self.heap.push(Entry {
            deadline,
            seq: self.seq,
            action,
        });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|e| e.deadline)
    }

    /// Removes and returns the earliest timer if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Action> {
        if self.heap.peek()?.deadline > now {
            return None;
        }
        self.heap.pop().map(|e| e.action)
    }

    /// Takes every timer out, for handing over to another heap.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = (Instant, Action)> + '_ {
        self.heap.drain().map(|e| (e.deadline, e.action))
    }
}

/// Fires every timer of `heap` that is due now. The heap is borrowed only between firings, so
/// an action may set new timers.
pub(crate) fn fire_due(heap: &std::cell::RefCell<TimerHeap>) {
    if heap.borrow().is_empty() {
        return;
    }
    let now = Instant::now();
    loop {
        let action = heap.borrow_mut().pop_due(now);
        match action {
            Some(action) => action.fire(),
            None => return,
        }
    }
}

/// The timer thread, if `heap` holds timers that still matter (started only then).
pub(crate) fn global_if_needed(
    heap: &std::cell::RefCell<TimerHeap>,
) -> Option<&'static GlobalTimers> {
    let mut heap = heap.borrow_mut();
    heap.heap.retain(|e| e.action.is_live());
    (!heap.is_empty()).then(global)
}

/// The process-wide timer thread's heap.
pub(crate) struct GlobalTimers {
    heap: Mutex<TimerHeap>,
    changed: Condvar,
    /// Set, under the heap's lock, while the thread fires an action without the lock.
    firing: AtomicBool,
}

static GLOBAL: OnceLock<&'static GlobalTimers> = OnceLock::new();

/// Whether the timer thread has nothing to do: not started, or no live timer pending and none
/// firing.
pub(crate) fn global_idle() -> bool {
    let Some(timers) = GLOBAL.get() else {
        return true;
    };
    let heap = timers.heap.lock();
    // Relaxed: written under the lock we hold.
    !timers.firing.load(AtomicOrdering::Relaxed) && !heap.heap.iter().any(|e| e.action.is_live())
}

/// The timer thread, started on first use.
pub(crate) fn global() -> &'static GlobalTimers {
    GLOBAL.get_or_init(|| {
        let timers: &'static GlobalTimers = Box::leak(Box::new(GlobalTimers {
            heap: Mutex::new(TimerHeap::default()),
            changed: Condvar::new(),
            firing: AtomicBool::new(false),
        }));
        thread::Builder::new()
            .name("scheduler-timer".into())
            .spawn(move || {
                let _census = super::census::crate_thread(super::census::SERVICE_THREADS);
                timers.run()
            })
            .expect("scheduler: cannot start the timer thread");
        timers
    })
}

impl GlobalTimers {
    pub(crate) fn push(&self, deadline: Instant, action: Action) {
        let mut heap = self.heap.lock();
        let earlier = heap.next_deadline().is_none_or(|next| deadline < next);
        heap.push(deadline, action);
        if earlier {
            self.changed.notify_one();
        }
    }

    fn run(&self) {
        let mut heap = self.heap.lock();
        loop {
            let now = Instant::now();
            while let Some(action) = heap.pop_due(now) {
                // Run without the lock: the action may set another timer. Relaxed: `firing`
                // is read only under the lock.
                self.firing.store(true, AtomicOrdering::Relaxed);
                drop(heap);
                action.fire();
                heap = self.heap.lock();
                self.firing.store(false, AtomicOrdering::Relaxed);
            }
            match heap.next_deadline() {
                Some(deadline) => {
                    self.changed.wait_until(&mut heap, deadline);
                }
                None => self.changed.wait(&mut heap),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
    use std::time::Duration;

    /// Runs a closure; always live.
    struct Call<F>(F);

    impl<F: FnOnce() + Send> TimerAction for Call<F> {
        fn fire(self: Box<Self>) {
            (self.0)()
        }
        fn is_live(&self) -> bool {
            true
        }
    }

    #[test]
    fn heap_fires_in_deadline_order() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut heap = TimerHeap::default();
        let base = Instant::now();
        for (i, ms) in [30u64, 10, 20, 10].into_iter().enumerate() {
            let order = order.clone();
            heap.push(
                base + Duration::from_millis(ms),
                Action::Run(Box::new(Call(move || order.lock().push(i)))),
            );
        }
        assert!(heap.pop_due(base).is_none());
        while let Some(action) = heap.pop_due(base + Duration::from_millis(30)) {
            action.fire();
        }
        assert_eq!(*order.lock(), vec![1, 3, 2, 0]);
    }

    /// Never live.
    struct Dead;

    impl TimerAction for Dead {
        fn fire(self: Box<Self>) {
            panic!("a dead timer fired");
        }
        fn is_live(&self) -> bool {
            false
        }
    }

    #[test]
    fn compaction_drops_dead_timers() {
        let mut heap = TimerHeap::default();
        let later = Instant::now() + Duration::from_secs(3600);
        for _ in 0..10 * MIN_COMPACTION {
            heap.push(later, Action::Run(Box::new(Dead)));
        }
        assert!(
            heap.heap.len() <= MIN_COMPACTION,
            "{} entries",
            heap.heap.len()
        );
    }

    /// Not run under Miri (left out of its filter in `.ci/run`): the timer thread lives for
    /// the whole process, and Miri fails a program whose main thread returns while another
    /// thread still runs.
    #[test]
    fn global_timer_thread_runs_callbacks() {
        let fired = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = std::sync::mpsc::channel();
        for ms in [5u64, 1, 3] {
            let fired = fired.clone();
            let tx = tx.clone();
            global().push(
                Instant::now() + Duration::from_millis(ms),
                Action::Run(Box::new(Call(move || {
                    fired.fetch_add(1, AtomicOrdering::SeqCst);
                    tx.send(()).unwrap();
                }))),
            );
        }
        for _ in 0..3 {
            rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        assert_eq!(fired.load(AtomicOrdering::SeqCst), 3);
    }
}
