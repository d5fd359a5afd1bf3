//! The gate of `Builder::max_goroutines`: one permit per goroutine that may still be admitted,
//! taken by a spawn and given back when the goroutine finishes.
//!
//! A counting gate on the wait kernel's queue, first come first served: a release hands its
//! permit straight to the first waiter (if one still waits), else puts it back in the count.
//! It sits in the scheduler, below the public `sync::Semaphore`, which has more to offer
//! (`select!` arms, contexts, time-outs) and belongs to the primitives above.

use super::wait::WaitHere;
use crate::wait::lock::Locked;
use crate::wait::waiter::{Waiter, WaiterQueue};
use crate::wait::{BlockKind, Site};

/// Permits and the spawners waiting for one, under one lock.
pub(crate) struct Admission {
    state: Locked<GateState>,
}

struct GateState {
    /// Permits free now.
    free: usize,
    /// Spawners waiting for a permit, in arrival order.
    waiters: WaiterQueue,
}

impl GateState {
    /// Takes a free permit, unless spawners already wait for one (first come, first served).
    fn take_free(&mut self) -> bool {
        if self.free > 0 && self.waiters.is_empty() {
            self.free -= 1;
            return true;
        }
        false
    }
}

impl Admission {
    /// A gate admitting `limit` goroutines at once.
    pub(crate) fn new(limit: usize) -> Admission {
        Admission {
            state: Locked::new(GateState {
                free: limit,
                waiters: WaiterQueue::new(),
            }),
        }
    }

    /// Takes a permit if one is free and nobody waits for one.
    pub(crate) fn try_admit(&self) -> bool {
        self.state.lock().take_free()
    }

    /// Takes a permit, parking the calling goroutine (or blocking the calling thread) until a
    /// goroutine finishes and hands its permit over. A goroutine waits at `site`: the line of
    /// the spawn.
    pub(crate) fn admit(&self, site: Site) {
        let waiter = {
            let mut state = self.state.lock();
            if state.take_free() {
                return;
            }
            let waiter = Waiter::for_current(BlockKind::Semaphore);
            state.waiters.push(&waiter, 0);
            waiter
        };
        // Ended only by a release, which handed us its permit. A cancelled goroutine unwinds
        // without one, after ending its wait: releases skip it.
        WaitHere::wait(&waiter, site);
    }

    /// Gives a permit back: to the first spawner still waiting, else to the count.
    pub(crate) fn release(&self) {
        let mut state = self.state.lock();
        if !state.waiters.notify_first() {
            state.free += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;

    /// On plain threads: a full gate blocks the next admission until a release hands over.
    #[test]
    fn a_release_hands_its_permit_to_the_waiting_spawner() {
        let gate = Arc::new(Admission::new(1));
        assert!(gate.try_admit());
        assert!(!gate.try_admit(), "one permit only");
        let waiting = {
            let gate = gate.clone();
            thread::spawn(move || gate.admit(std::panic::Location::caller()))
        };
        // The waiter queues (or is about to); the release goes to it, not to the count.
        while gate.state.lock().waiters.is_empty() {
            thread::yield_now();
        }
        gate.release();
        waiting.join().unwrap();
        assert!(!gate.try_admit(), "the permit went to the waiter");
        gate.release();
        assert!(gate.try_admit(), "and came back with its release");
    }
}
