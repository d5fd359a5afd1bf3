//! The state a [`Timer`](super::Timer), a [`Ticker`](super::Ticker) or an
//! [`AfterFunc`](super::AfterFunc) shares with the timer callback it set: what keeps `stop` and
//! `reset` race-free against a callback that fires at the same moment.
//!
//! Every arming has a *generation*. A callback carries the generation it was set for and acts
//! only if that is still the current one, which it checks under the lock that `stop` and
//! `reset` take to end the arming. What the callback does (send the time on the channel,
//! decide to start the function's goroutine) happens under that same lock, so each `stop` or
//! `reset` comes wholly before or wholly after a firing:
//!
//! * before: the generation moved on, and the callback does nothing when it fires;
//! * after: the value is in the channel's buffer or was handed to a receiver, and the
//!   `stop` or `reset` drains a value still buffered, under the lock, before it returns.
//!
//! A callback of an old generation stays in its heap until it comes due or the heap is
//! compacted; it reports itself dead (`is_live`) so that compaction drops it.
//!
//! Invariant (under the lock): a callback whose generation is current and `pending` has not
//! fired; once it fires, `pending` is false, and nothing of its arming acts again.

use parking_lot::{Mutex, MutexGuard};

/// The lock around an [`Armed`] state.
pub(super) struct Arming {
    state: Mutex<Armed>,
}

/// The current arming. Written under [`Arming`]'s lock by the owner's `stop` and `reset` and by
/// the callback that fires; read under it by both.
pub(super) struct Armed {
    /// Moves on at every `stop` and `reset`: a callback set for an older one is stale.
    generation: u64,
    /// Whether the current generation's callback is still to fire (for a ticker: whether it
    /// is running).
    pending: bool,
}

impl Arming {
    /// Not armed.
    pub(super) fn new() -> Arming {
        Arming {
            state: Mutex::new(Armed {
                generation: 0,
                pending: false,
            }),
        }
    }

    /// Locks the state. Held only for a few steps that never block: a `try_send` or
    /// `try_recv` on the owner's channel, a compare.
    pub(super) fn lock(&self) -> MutexGuard<'_, Armed> {
        self.state.lock()
    }

    /// Whether a callback set for `generation` could still act, for its `is_live`. A lock
    /// held right now means the arming is changing: that answers "live", which is always safe
    /// (a live entry only stays in the heap until it is due).
    pub(super) fn may_fire(&self, generation: u64) -> bool {
        self.state
            .try_lock()
            .is_none_or(|armed| armed.is_current(generation))
    }
}

impl Armed {
    /// Ends the current arming: its callback, if still to fire, will do nothing. Returns
    /// whether it was still to fire.
    pub(super) fn disarm(&mut self) -> bool {
        self.generation += 1;
        std::mem::replace(&mut self.pending, false)
    }

    /// Starts a new arming (ending the current one) and returns its generation, for the
    /// callback to carry.
    pub(super) fn arm(&mut self) -> u64 {
        self.generation += 1;
        self.pending = true;
        self.generation
    }

    /// Whether the callback of `generation` is the current one, still to fire.
    pub(super) fn is_current(&self, generation: u64) -> bool {
        self.pending && self.generation == generation
    }

    /// The one-shot callback of `generation` fires: true if it is current, and then it no
    /// longer is. The caller acts on true before it lets the lock go.
    pub(super) fn fire_once(&mut self, generation: u64) -> bool {
        let current = self.is_current(generation);
        if current {
            self.pending = false;
        }
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callback_fires_once_and_only_for_its_own_generation() {
        let arming = Arming::new();
        let first = arming.lock().arm();
        assert!(arming.may_fire(first));
        let second = {
            let mut armed = arming.lock();
            assert!(armed.disarm(), "the first arming was pending");
            armed.arm()
        };
        assert!(
            !arming.may_fire(first),
            "a reset leaves the old callback stale"
        );
        assert!(!arming.lock().fire_once(first));
        assert!(arming.lock().fire_once(second));
        assert!(!arming.lock().fire_once(second), "fired twice");
        assert!(!arming.lock().disarm(), "nothing pending after the firing");
    }

    #[test]
    fn a_held_lock_reads_as_live() {
        let arming = Arming::new();
        let generation = arming.lock().arm();
        let _held = arming.lock();
        assert!(arming.may_fire(generation));
        assert!(arming.may_fire(generation + 1));
    }
}
