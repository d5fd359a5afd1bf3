//! Where a goroutine runs: the worker that started it, a joiner that ran it inline, or the
//! blocking pool, decided once by a CAS.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Who owns a goroutine's closure and, once it starts, the goroutine itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    /// Not started, not claimed: any worker (or a joiner) may claim it.
    Unclaimed,
    /// Started by the worker of this index, its home thread for good.
    Worker(usize),
    /// Claimed by a `join` that ran it on the joiner's own stack; any queue entry is stale.
    Inline,
    /// A blocking job (`crate::sched::blocking`): the pool runs it, never a worker or a join.
    Blocking,
}

/// The encoding of [`Owner`] in one word: a worker's index, or one of these sentinels above
/// every index (`MAX_PROCS` plus the spare slots are far below).
const UNCLAIMED: usize = usize::MAX;
const INLINE: usize = usize::MAX - 1;
const BLOCKING: usize = usize::MAX - 2;

fn encode(owner: Owner) -> usize {
    match owner {
        Owner::Unclaimed => UNCLAIMED,
        Owner::Worker(index) => {
            debug_assert!(index < BLOCKING, "a worker index is below the sentinels");
            index
        }
        Owner::Inline => INLINE,
        Owner::Blocking => BLOCKING,
    }
}

fn decode(word: usize) -> Owner {
    match word {
        UNCLAIMED => Owner::Unclaimed,
        INLINE => Owner::Inline,
        BLOCKING => Owner::Blocking,
        index => Owner::Worker(index),
    }
}

/// A goroutine's [`Owner`], in one atomic word. It leaves `Unclaimed` once: by
/// [`claim`](Self::claim) (a CAS: whoever wins owns the closure), by
/// [`claim_unshared`](Self::claim_unshared) when nobody else can race, or, for a blocking job,
/// at creation. [`unclaim`](Self::unclaim) undoes a worker's claim of a goroutine it could not
/// start yet.
pub(crate) struct Home(AtomicUsize);

impl Home {
    pub(crate) const fn unclaimed() -> Home {
        Home(AtomicUsize::new(UNCLAIMED))
    }

    /// The owner, as last seen. Relaxed: a hint for the reader's own decisions, except where
    /// the reader is the owner itself (it wrote the value) or has acquired the claim through
    /// another edge (a waker's Acquire CAS out of `PARKED` follows the worker's AcqRel CAS into
    /// it, which follows the claim).
    #[inline]
    pub(crate) fn owner(&self) -> Owner {
        decode(self.0.load(Ordering::Relaxed))
    }

    /// The index of the worker that started the goroutine, which must have started (a parked
    /// goroutine has). See [`owner`](Self::owner) for the ordering.
    #[inline]
    pub(crate) fn started_on(&self) -> usize {
        match self.owner() {
            Owner::Worker(index) => index,
            other => {
                unreachable!("scheduler: internal error: a started goroutine owned by {other:?}")
            }
        }
    }

    /// Claims an unclaimed goroutine for `owner`. False if it was claimed already: the caller
    /// must not run it.
    pub(crate) fn claim(&self, owner: Owner) -> bool {
        // AcqRel: the winner takes the closure next; the spawner's writes reached it through
        // the queue or the JoinHandle.
        self.0
            .compare_exchange(
                UNCLAIMED,
                encode(owner),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Claims for `owner` without a CAS: the caller holds the only reference to the goroutine,
    /// so nobody can claim it meanwhile, and has checked that it is unclaimed.
    pub(crate) fn claim_unshared(&self, owner: Owner) {
        debug_assert_eq!(self.owner(), Owner::Unclaimed);
        // Relaxed: no other thread can look before this reference is shared again, which
        // publishes it.
        self.0.store(encode(owner), Ordering::Relaxed);
    }

    /// Gives up a worker's claim of a goroutine it has not started (its closure untouched).
    pub(crate) fn unclaim(&self) {
        // Release: a later claimer, which acquires through its CAS, sees the goroutine as the
        // spawner left it.
        self.0.store(UNCLAIMED, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_round_trip_through_the_word() {
        for owner in [
            Owner::Unclaimed,
            Owner::Worker(0),
            Owner::Worker(4095),
            Owner::Inline,
            Owner::Blocking,
        ] {
            assert_eq!(decode(encode(owner)), owner);
        }
    }

    #[test]
    fn only_the_first_claim_wins() {
        let home = Home::unclaimed();
        assert!(home.claim(Owner::Worker(3)));
        assert!(!home.claim(Owner::Inline));
        assert_eq!(home.owner(), Owner::Worker(3));
        home.unclaim();
        assert!(home.claim(Owner::Inline));
        assert_eq!(home.owner(), Owner::Inline);
    }
}
