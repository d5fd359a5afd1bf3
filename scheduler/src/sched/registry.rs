//! The registry of a runtime's live goroutines, for the goroutine dump (Go's `runtime.Stack`
//! with `all`, pprof's goroutine profile), stall warnings and the deadlock report.
//!
//! A goroutine is listed from its spawn until it finishes (or is dropped unstarted by a forced
//! shutdown), started or not, wherever it runs. The registry holds the goroutine's header by
//! pointer, with no reference count: whoever removes a goroutine holds a reference to it (its
//! worker, or the joiner that ran it inline), and the removal takes the shard's lock, so a
//! header read under that lock is alive.
//!
//! # Cost
//!
//! One shard per worker slot, plus one for spawns from outside the runtime, each behind its
//! own lock on its own cache line. A spawn locks the spawner's shard; the finish locks the
//! same shard, from the thread the goroutine finished on: the spawner's own worker unless the
//! goroutine was stolen before it started. So the lock is almost always uncontended and local
//! (two uncontended lock/unlock pairs per goroutine's life); the dump, which is rare, takes
//! each shard's lock in turn.

use parking_lot::Mutex;

use crate::goroutine::task::Header;

/// Every live goroutine of one runtime, in shards (module doc).
pub(crate) struct Registry {
    shards: Box<[PaddedShard]>,
}

/// A shard's lock on a cache line of its own, so that two workers' spawns never share one.
#[repr(align(128))]
#[derive(Default)]
struct PaddedShard(Mutex<Shard>);

impl std::ops::Deref for PaddedShard {
    type Target = Mutex<Shard>;

    fn deref(&self) -> &Mutex<Shard> {
        &self.0
    }
}

/// One shard: the headers it lists, in no order.
#[derive(Default)]
struct Shard {
    headers: Vec<*const Header>,
}

// SAFETY: the pointers are only dereferenced under the shard's lock, while the goroutine they
// point to is alive (module doc); a `Header` is `Sync`.
unsafe impl Send for Shard {}

impl Registry {
    /// A registry with `shards` shards: one per worker slot, plus one for outside spawns.
    pub(crate) fn new(shards: usize) -> Registry {
        Registry {
            shards: (0..shards.max(1)).map(|_| PaddedShard::default()).collect(),
        }
    }

    /// The shard that lists goroutines spawned from outside the runtime.
    pub(crate) fn outside_shard(&self) -> u32 {
        u32::try_from(self.shards.len() - 1).expect("fewer than 2^32 worker slots")
    }

    /// Lists a goroutine just spawned, in the shard its header names.
    pub(crate) fn insert(&self, header: &Header) {
        let mut shard = self.shards[header.registry_shard as usize].lock();
        let index = u32::try_from(shard.headers.len()).expect("fewer than 2^32 goroutines");
        // Relaxed: read and written only under this shard's lock, which orders it.
        header
            .registry_index
            .store(index, std::sync::atomic::Ordering::Relaxed);
        shard.headers.push(header);
    }

    /// Removes a goroutine that finished (or was dropped unstarted). The caller holds a
    /// reference to it.
    pub(crate) fn remove(&self, header: &Header) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut shard = self.shards[header.registry_shard as usize].lock();
        // Relaxed: under the shard's lock (see `insert`).
        let index = header.registry_index.load(Relaxed) as usize;
        debug_assert!(std::ptr::eq(shard.headers[index], header));
        shard.headers.swap_remove(index);
        if let Some(&moved) = shard.headers.get(index) {
            // SAFETY: every listed header is alive while listed, and we hold the lock.
            unsafe { &*moved }
                .registry_index
                .store(index as u32, Relaxed);
        }
    }

    /// Calls `f` with every live goroutine, one shard at a time, under that shard's lock: `f`
    /// must not spawn, finish or dump.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Header)) {
        for shard in self.shards.iter() {
            let shard = shard.lock();
            for &header in &shard.headers {
                // SAFETY: listed, so alive, and we hold the shard's lock (module doc).
                f(unsafe { &*header });
            }
        }
    }

    /// How many goroutines are listed: a snapshot.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().headers.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goroutine::task::Origin;

    fn header(id: u64, shard: u32) -> Box<Header> {
        Box::new(Header::new(std::ptr::null(), id, Origin::here(), shard))
    }

    fn ids(registry: &Registry) -> Vec<u64> {
        let mut ids = Vec::new();
        registry.for_each(|h| ids.push(h.id));
        ids.sort_unstable();
        ids
    }

    #[test]
    fn removal_keeps_the_others_listed() {
        let registry = Registry::new(3);
        let headers: Vec<Box<Header>> = (1..=5).map(|id| header(id, (id % 3) as u32)).collect();
        for h in &headers {
            registry.insert(h);
        }
        assert_eq!(ids(&registry), [1, 2, 3, 4, 5]);
        registry.remove(&headers[0]);
        registry.remove(&headers[3]);
        assert_eq!(ids(&registry), [2, 3, 5]);
        assert_eq!(registry.len(), 3);
        for h in [&headers[1], &headers[2], &headers[4]] {
            registry.remove(h);
        }
        assert_eq!(registry.len(), 0);
    }
}
