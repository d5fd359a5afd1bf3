//! The registry of a runtime's live goroutines, for the goroutine dump (Go's `runtime.Stack`
//! with `all`, pprof's goroutine profile), stall warnings, the deadlock report and the names
//! in a trace.
//!
//! A goroutine is listed from its spawn until it finishes (or is dropped unstarted by a forced
//! shutdown), started or not, wherever it runs, in the shard of the thread that spawned it:
//! one shard per worker slot, plus one for spawns from outside the runtime, each a `Vec` of
//! header pointers behind its own lock on its own cache line. The header keeps its shard and
//! its index in it (a removal moves the last entry into the hole and fixes its index).
//!
//! # Who removes a goroutine, and when
//!
//! The registry holds no reference count: whoever removes a goroutine holds a reference to it,
//! and the removal takes the shard's lock, so a header read under that lock is alive.
//!
//! * A goroutine that finishes on the worker that spawned it (nearly all: only goroutines that
//!   have not started are stolen) is removed as it finishes, before its result is published,
//!   under a lock only that worker takes on its hot path: uncontended and local.
//! * A goroutine that a thief started finishes on the thief's worker, and removing it there
//!   would take the spawner's lock from another thread at every such finish, which the
//!   spawning worker then fights for at every spawn: measured, that made a spawn at procs 2
//!   three times slower (and removing in batches of 64, twice slower). So the thief hands its
//!   reference to the finished goroutine (which keeps the header alive) back to the spawner's
//!   shard through a lock-free queue ([`Registry::finished_elsewhere`]); the spawner's worker
//!   removes what came back, under its own lock, every [`BATCH`] spawns, before it sleeps,
//!   when it runs out of work of its own, and when it exits ([`Registry::drain`]), and drops
//!   the references there, so that the goroutines' memory is freed on the thread that
//!   allocated it (the monitor drains the shards of spare slots that no spare occupies).
//!   Meanwhile the readers skip them: their state is `DONE`. Goroutines spawned
//!   from outside have no worker to drain their shard: they are removed at once.
//! * A goroutine dropped unstarted (a forced shutdown) or run inline by a joiner (rare paths)
//!   is removed at once, from whichever thread.
//!
//! Readers (the dump) take each shard's lock in turn; nothing is stopped.

use crossbeam_deque::{Injector, Steal};
use parking_lot::Mutex;

use crate::goroutine::task::{Header, TaskRef};

/// How many spawns a worker makes between two drains of the goroutines handed back to its
/// shard (module doc).
pub(crate) const BATCH: usize = 64;

/// Every live goroutine of one runtime, in shards (module doc).
pub(crate) struct Registry {
    shards: Box<[PaddedShard]>,
}

/// One shard: the headers it lists, in no order.
#[derive(Default)]
struct Shard {
    headers: Vec<*const Header>,
}

// SAFETY: the pointers are only dereferenced under the shard's lock, while the goroutine they
// point to is alive (module doc); a `Header` is `Sync`.
unsafe impl Send for Shard {}

/// A shard: its lock on a cache line of its own, so that two workers' spawns never share one,
/// and the queue of its goroutines that finished on other workers.
#[derive(Default)]
struct PaddedShard {
    lock: Padded<Mutex<Shard>>,
    returned: Injector<TaskRef>,
}

#[repr(align(128))]
#[derive(Default)]
struct Padded<T>(T);

impl Shard {
    /// Removes `header` from this shard (which lists it).
    fn remove(&mut self, header: &Header) {
        use std::sync::atomic::Ordering::Relaxed;
        // Relaxed: read and written only under this shard's lock, which orders it.
        let index = header.registry_index.load(Relaxed) as usize;
        debug_assert!(std::ptr::eq(self.headers[index], header));
        self.headers.swap_remove(index);
        if let Some(&moved) = self.headers.get(index) {
            // SAFETY: every listed header is alive while listed, and we hold the lock.
            unsafe { &*moved }
                .registry_index
                .store(index as u32, Relaxed);
        }
    }
}

/// An index in a shard, as a header keeps it.
fn index_u32(index: usize) -> u32 {
    u32::try_from(index).expect("fewer than 2^32 goroutines listed in one shard")
}

impl Registry {
    /// A registry with `shards` shards: one per worker slot, plus one for outside spawns.
    pub(crate) fn new(shards: usize) -> Registry {
        Registry {
            shards: (0..shards.max(1)).map(|_| PaddedShard::default()).collect(),
        }
    }

    /// The shard that lists goroutines spawned from outside the runtime.
    pub(crate) fn outside_shard(&self) -> usize {
        self.shards.len() - 1
    }

    /// Lists a goroutine just spawned, in the shard its header names.
    pub(crate) fn insert(&self, header: &Header) {
        let mut shard = self.shards[header.registry_shard()].lock.0.lock();
        // Relaxed: read and written only under this shard's lock, which orders it.
        header.registry_index.store(
            index_u32(shard.headers.len()),
            std::sync::atomic::Ordering::Relaxed,
        );
        shard.headers.push(header);
    }

    /// Removes a goroutine that finished, or was dropped unstarted. The caller holds a
    /// reference to it.
    pub(crate) fn remove(&self, header: &Header) {
        self.shards[header.registry_shard()]
            .lock
            .0
            .lock()
            .remove(header);
    }

    /// A goroutine of another worker's shard finished on the caller's worker: hands it back to
    /// its shard, to be removed by that shard's worker ([`drain`](Self::drain)); one spawned
    /// from outside is removed at once.
    pub(crate) fn finished_elsewhere(&self, task: TaskRef) {
        let shard = task.header().registry_shard();
        if shard == self.outside_shard() {
            self.remove(task.header());
        } else {
            self.shards[shard].returned.push(task);
        }
    }

    /// Removes the goroutines handed back to shard `shard`, and drops the references once the
    /// lock is released (dropping the last one runs the result's destructor, user code).
    /// Called by the shard's own worker, and by the monitor for a vacant spare slot's shard
    /// (two drains at once are safe: the queue is multi-consumer, the removal under the lock).
    pub(crate) fn drain(&self, shard: usize) {
        let padded = &self.shards[shard];
        if padded.returned.is_empty() {
            return;
        }
        let mut finished = Vec::new();
        loop {
            match padded.returned.steal() {
                Steal::Success(task) => finished.push(task),
                Steal::Retry => continue,
                Steal::Empty => break,
            }
        }
        let mut listed = padded.lock.0.lock();
        for task in &finished {
            listed.remove(task.header());
        }
        drop(listed);
        drop(finished);
    }

    /// Calls `f` with every listed goroutine that has not finished, one shard at a time, under
    /// that shard's lock: `f` must not spawn, finish or read the registry.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Header)) {
        for shard in self.shards.iter() {
            let shard = shard.lock.0.lock();
            for &header in &shard.headers {
                // SAFETY: listed, so alive, and we hold the shard's lock (module doc).
                let header = unsafe { &*header };
                if !header.state.is_finished() {
                    f(header);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goroutine::task::{Origin, Task};

    fn task(id: u64, shard: usize) -> TaskRef {
        Task::new(std::ptr::null(), id, Origin::here(), shard, || ())
    }

    fn ids(registry: &Registry) -> Vec<u64> {
        let mut ids = Vec::new();
        registry.for_each(|h| ids.push(h.id));
        ids.sort_unstable();
        ids
    }

    #[test]
    fn removals_keep_the_others_listed() {
        let registry = Registry::new(3);
        let tasks: Vec<TaskRef> = (1..=7).map(|id| task(id, id as usize % 3)).collect();
        for task in &tasks {
            registry.insert(task.header());
        }
        assert_eq!(ids(&registry), [1, 2, 3, 4, 5, 6, 7]);
        registry.remove(tasks[0].header());
        registry.remove(tasks[3].header());
        assert_eq!(ids(&registry), [2, 3, 5, 6, 7]);
        for task in [&tasks[1], &tasks[6], &tasks[4]] {
            registry.finished_elsewhere(task.clone());
        }
        // Shard 2, the outside shard here, removed 2 and 5 at once; 7 waits for shard 1's drain.
        assert_eq!(ids(&registry), [3, 6, 7]);
        registry.drain(1);
        assert_eq!(ids(&registry), [3, 6]);
    }

    #[test]
    fn finished_goroutines_waiting_for_their_drain_are_not_shown() {
        let registry = Registry::new(2);
        let (a, b) = (task(1, 0), task(2, 0));
        registry.insert(a.header());
        registry.insert(b.header());
        a.header().state.finish();
        registry.finished_elsewhere(a);
        assert_eq!(ids(&registry), [2]);
        registry.drain(0);
        assert_eq!(ids(&registry), [2]);
        assert_eq!(registry.shards[0].lock.0.lock().headers.len(), 1);
    }
}
