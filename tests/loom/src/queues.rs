//! crossbeam-deque's queues, reduced to what the idle protocol depends on: which atomic
//! operations, with which orderings, make a push visible to a later `is_empty` or steal.
//!
//! Goroutines are tokens here (a queue is two indices), and each take removes one: a batch
//! steal moves the rest into the thief's own deque, where others can steal them, which is the
//! case of a spawn into a deque. The orderings are crossbeam-deque 0.8's:
//!
//! - `Injector::push`: a SeqCst CAS of the tail index (modelled as a SeqCst `fetch_add`);
//!   `Injector::is_empty`: SeqCst loads of head and tail; `Injector::steal`: head (Acquire),
//!   a SeqCst fence, tail (Relaxed), then a SeqCst CAS of head.
//! - `Worker::push`: a Release fence and a Release store of back; `Worker::is_empty`: back
//!   (Relaxed) and front (SeqCst); `Stealer::is_empty`: front (Acquire), a SeqCst fence, back
//!   (Acquire); `Stealer::steal`: the same loads (the fence is crossbeam-epoch's `pin`), then a
//!   SeqCst CAS of front. The owner's `pop` is modelled as a steal by the owner: which end a
//!   token leaves by does not matter to the protocol.

use loom::sync::atomic::{AtomicIsize, AtomicUsize, Ordering, fence};

/// What a take found.
pub(crate) enum Steal {
    Empty,
    Success,
    Retry,
}

/// The global queue (`Shared::injector`).
pub(crate) struct Injector {
    head: AtomicUsize,
    tail: AtomicUsize,
}

impl Injector {
    pub(crate) fn new() -> Injector {
        let injector = Injector {
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
        };
        // Loom gives an atomic's initial value no place in the SeqCst order, so a SeqCst load
        // could still read it after a SeqCst store it has not otherwise seen; C11 forbids that
        // (the initialisation happens before every access). Storing the initial values again
        // with SeqCst, before any thread starts, gives them that place.
        injector.head.store(0, Ordering::SeqCst);
        injector.tail.store(0, Ordering::SeqCst);
        injector
    }

    pub(crate) fn push(&self) {
        // SeqCst as crossbeam's CAS that claims the tail slot.
        self.tail.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn is_empty(&self) -> bool {
        // SeqCst as crossbeam's `Injector::is_empty`: these loads, not a fence, order the
        // final look after the worker's SeqCst `before_park`.
        let head = self.head.load(Ordering::SeqCst);
        let tail = self.tail.load(Ordering::SeqCst);
        head == tail
    }

    pub(crate) fn steal(&self) -> Steal {
        // As crossbeam's `Injector::steal`: head Acquire, a SeqCst fence, tail Relaxed, then
        // the SeqCst CAS that claims the head slot.
        let head = self.head.load(Ordering::Acquire);
        fence(Ordering::SeqCst);
        let tail = self.tail.load(Ordering::Relaxed);
        if head == tail {
            return Steal::Empty;
        }
        match self
            .head
            .compare_exchange(head, head + 1, Ordering::SeqCst, Ordering::Acquire)
        {
            Ok(_) => Steal::Success,
            Err(_) => Steal::Retry,
        }
    }
}

/// A worker's local deque: [`push`](Deque::push) and [`worker_is_empty`](Deque::worker_is_empty)
/// are the owner's, the rest any thread's.
pub(crate) struct Deque {
    front: AtomicIsize,
    back: AtomicIsize,
}

impl Deque {
    pub(crate) fn new() -> Deque {
        Deque {
            front: AtomicIsize::new(0),
            back: AtomicIsize::new(0),
        }
    }

    pub(crate) fn push(&self) {
        // As crossbeam's `Worker::push`: only the owner writes back (Relaxed load); the
        // Release fence and store publish the slot to stealers. Nothing here is SeqCst, which
        // is why `notify_work` fences before it reads the idle counts.
        let back = self.back.load(Ordering::Relaxed);
        fence(Ordering::Release);
        self.back.store(back + 1, Ordering::Release);
    }

    pub(crate) fn worker_is_empty(&self) -> bool {
        // As crossbeam's `Worker::is_empty`: own back Relaxed, front SeqCst.
        let back = self.back.load(Ordering::Relaxed);
        let front = self.front.load(Ordering::SeqCst);
        back - front <= 0
    }

    pub(crate) fn stealer_is_empty(&self) -> bool {
        // As crossbeam's `Stealer::is_empty`: the SeqCst fence between the loads pairs with
        // `notify_work`'s fence, so a push before that fence is seen here or the pusher sees
        // this worker parked.
        let front = self.front.load(Ordering::Acquire);
        fence(Ordering::SeqCst);
        let back = self.back.load(Ordering::Acquire);
        back - front <= 0
    }

    pub(crate) fn steal(&self) -> Steal {
        // As crossbeam's `Stealer::steal`: front Acquire, a SeqCst fence (crossbeam-epoch's
        // pin), back Acquire, then the SeqCst CAS that claims the front slot.
        let front = self.front.load(Ordering::Acquire);
        fence(Ordering::SeqCst);
        let back = self.back.load(Ordering::Acquire);
        if back - front <= 0 {
            return Steal::Empty;
        }
        match self
            .front
            .compare_exchange(front, front + 1, Ordering::SeqCst, Ordering::Relaxed)
        {
            Ok(_) => Steal::Success,
            Err(_) => Steal::Retry,
        }
    }
}
