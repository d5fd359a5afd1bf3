//! A worker's inbox: its started goroutines that other threads woke, which only it may run.
//!
//! Pushed by any thread, popped by the owning worker only. A single slot on a cache line of
//! its own takes one wake at a time; wakes that find it full go to a `crossbeam` queue
//! behind it. A pair of goroutines that talk across two workers wakes one goroutine at a
//! time, so every hand-off goes through the slot: the waker claims it and writes the
//! goroutine in one cache line that the watching worker then reads, where the queue's push
//! and steal touch its tail, its head and the block that holds the entry (one cache line
//! moving between two cores costs about as much as the rest of a hand-off).

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU8, Ordering};

use crossbeam_deque::{Injector, Steal};

const EMPTY: u8 = 0;
/// A pusher claimed the slot and is writing it.
const WRITING: u8 = 1;
const FULL: u8 = 2;

/// Goroutines (or any `T`) handed to one consumer by any number of producers.
pub(crate) struct Inbox<T> {
    slot: Slot<T>,
    queue: Injector<T>,
}

/// On cache lines of its own (128 bytes: adjacent-line prefetch pairs lines), away from the
/// queue's indices and from whatever lies next to the inbox.
#[repr(align(128))]
struct Slot<T> {
    state: AtomicU8,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: values move from producers to the consumer through the slot's state protocol (a
// value is written only by the pusher that claimed the slot, read only by the consumer once
// it is FULL), so sharing the inbox shares nothing but `T`s that are sent: `T: Send` is enough.
unsafe impl<T: Send> Sync for Inbox<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Inbox<T> {}

impl<T> Inbox<T> {
    pub(crate) fn new() -> Inbox<T> {
        Inbox {
            slot: Slot {
                state: AtomicU8::new(EMPTY),
                value: UnsafeCell::new(MaybeUninit::uninit()),
            },
            queue: Injector::new(),
        }
    }

    /// Adds `value`: into the slot if it is empty, else into the queue. Any thread.
    pub(crate) fn push(&self, value: T) {
        // Acquire: pairs with the consumer's Release store of EMPTY, so its read of the
        // previous value happened before this write over it. SeqCst: the claim is where the
        // push shows (`is_empty` counts WRITING), and the deadlock check's look at the inboxes
        // is ordered against the workers' parkers in the single total order, as the queue's
        // own push and `is_empty` are (`sched::deadlock`).
        if self
            .slot
            .state
            .compare_exchange(EMPTY, WRITING, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
        {
            // SAFETY: the CAS above gave this thread the slot: nobody reads or writes the
            // value until the store of FULL below.
            unsafe { (*self.slot.value.get()).write(value) };
            // Release: publishes the value to the consumer's Acquire load.
            self.slot.state.store(FULL, Ordering::Release);
        } else {
            self.queue.push(value);
        }
    }

    /// Takes one value, the slot's first. The consumer only (the contract of every caller:
    /// the owning worker).
    ///
    /// A push that has claimed the slot and not finished writing it is not seen: its pusher
    /// wakes the consumer after the push returns, as after any push.
    pub(crate) fn pop(&self) -> Option<T> {
        // Acquire: pairs with the pusher's Release store of FULL.
        if self.slot.state.load(Ordering::Acquire) == FULL {
            // SAFETY: FULL means a pusher wrote a value and gave the slot up; only the
            // consumer (this caller) moves from FULL, so the value is read exactly once.
            let value = unsafe { (*self.slot.value.get()).assume_init_read() };
            // Release: the read above happens before the next pusher's write (its Acquire CAS).
            self.slot.state.store(EMPTY, Ordering::Release);
            return Some(value);
        }
        loop {
            match self.queue.steal() {
                Steal::Success(value) => return Some(value),
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }

    /// Whether no value is there, nor being pushed into the slot. A hint from any thread other
    /// than the consumer (a push may land right after).
    pub(crate) fn is_empty(&self) -> bool {
        // SeqCst: see `push`; `pop` does the load that hands the value over.
        self.slot.state.load(Ordering::SeqCst) == EMPTY && self.queue.is_empty()
    }

    /// How many values are there (a hint, as `is_empty`).
    pub(crate) fn len(&self) -> usize {
        // Relaxed: a hint.
        usize::from(self.slot.state.load(Ordering::Relaxed) != EMPTY) + self.queue.len()
    }
}

impl<T> Drop for Inbox<T> {
    fn drop(&mut self) {
        if *self.slot.state.get_mut() == FULL {
            // SAFETY: FULL: the slot holds a value nobody took; `&mut self` excludes everyone.
            unsafe { self.slot.value.get_mut().assume_init_drop() };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::thread;

    use super::*;
    use crate::testing::ROUNDS;

    #[test]
    fn the_slot_then_the_queue_in_order() {
        let inbox = Inbox::new();
        assert!(inbox.is_empty());
        for i in 0..4 {
            inbox.push(Box::new(i));
        }
        assert_eq!(inbox.len(), 4);
        let taken: Vec<i32> = std::iter::from_fn(|| inbox.pop()).map(|b| *b).collect();
        assert_eq!(taken, [0, 1, 2, 3]);
        assert!(inbox.is_empty());
    }

    #[test]
    fn values_left_inside_are_dropped_with_it() {
        let value = Arc::new(());
        let inbox = Inbox::new();
        inbox.push(value.clone());
        inbox.push(value.clone());
        assert_eq!(Arc::strong_count(&value), 3);
        drop(inbox);
        assert_eq!(Arc::strong_count(&value), 1);
    }

    #[test]
    fn every_value_from_many_producers_arrives_once() {
        let producers = 3;
        let per_producer = ROUNDS;
        let inbox = Arc::new(Inbox::new());
        let sum = AtomicUsize::new(0);
        thread::scope(|s| {
            for p in 0..producers {
                let inbox = &inbox;
                s.spawn(move || {
                    for i in 0..per_producer {
                        inbox.push(Box::new(p * per_producer + i));
                    }
                });
            }
            let mut taken = 0;
            while taken < producers * per_producer {
                match inbox.pop() {
                    Some(value) => {
                        sum.fetch_add(*value, Ordering::Relaxed);
                        taken += 1;
                    }
                    None => thread::yield_now(),
                }
            }
        });
        let n = producers * per_producer;
        assert_eq!(sum.load(Ordering::Relaxed), n * (n - 1) / 2);
        assert!(inbox.pop().is_none());
    }
}
