//! A worker out of work of its own looks in the others' deques, as a searcher (at most half
//! the workers search at once; see [`super::super::idle`]). Only goroutines that have not
//! started are there to take: a started one never changes thread.

use crossbeam_deque::Steal;

use super::WorkerLocal;
use crate::goroutine::home::Owner;
use crate::goroutine::task::TaskRef;
use crate::sched::trace::RawKind;

impl WorkerLocal {
    /// Looks for work in other workers' deques, as a searcher (see [`crate::sched::idle`]).
    pub(super) fn search(&self) -> Option<TaskRef> {
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
            let task = self
                .queues
                .steal_global(&self.shared.injector)
                .or_else(|| self.steal_from_others())?;
            // A goroutine that a joiner already ran inline left a stale entry, oldest first,
            // where thieves take: not work, so search on rather than give up the search
            // (Relaxed: a hint; `start` decides).
            if task.header().home.owner() != Owner::Unclaimed {
                continue;
            }
            self.stop_searching();
            return Some(task);
        }
    }

    /// Leaves the searching state, if in it, before running a goroutine found.
    pub(super) fn stop_searching(&self) {
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
            let before = self.queues.local().len();
            loop {
                match stealer.steal_batch_and_pop(self.queues.local()) {
                    Steal::Success(task) => {
                        // The batch landed in our deque (a thief may already have taken some
                        // of it back: then the count is low, never high).
                        let batch = self.queues.local().len().saturating_sub(before);
                        self.stats.stole(1 + batch);
                        if self.tracing() {
                            let count = 1 + batch;
                            self.trace(RawKind::Steal { victim, count });
                        }
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
}
