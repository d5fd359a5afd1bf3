//! What a worker reserves in blocks so that spawning stays off shared counters: goroutine
//! ids, and stack reservations from the runtime's arena.

use std::cell::Cell;
use std::io;

use crate::goroutine::stack::StackArena;

/// How many stack reservations a worker takes from the arena at a time.
const STACK_BLOCK: usize = 64;
/// How many goroutine ids a worker reserves at a time.
pub(super) const ID_BLOCK: u64 = 1024;

/// A worker's reserved ids and stacks. Owned by its thread.
#[derive(Default)]
pub(super) struct Budgets {
    /// Goroutine ids reserved for spawns on this worker: the next one, and the end of the
    /// block.
    ids: Cell<(u64, u64)>,
    /// Stack reservations taken from the arena and not yet given to a goroutine.
    stacks: Cell<usize>,
}

impl Budgets {
    /// The next id, taking a new block from `take_block` (which returns its first id) when
    /// this one is used up.
    #[inline]
    pub(super) fn next_id(&self, take_block: impl FnOnce(u64) -> u64) -> u64 {
        let (mut next, mut end) = self.ids.get();
        if next == end {
            next = take_block(ID_BLOCK);
            end = next + ID_BLOCK;
        }
        self.ids.set((next + 1, end));
        next
    }

    /// Reserves a stack for a goroutine about to be spawned here (see `StackArena::reserve`),
    /// from this worker's batch of reservations.
    #[inline]
    pub(super) fn reserve_stack(&self, arena: &StackArena) -> io::Result<()> {
        match self.stacks.get() {
            0 => {
                // A batch at a time keeps the arena's lock off most spawns; near the limit,
                // one at a time.
                if arena.reserve(STACK_BLOCK).is_ok() {
                    self.stacks.set(STACK_BLOCK - 1);
                    Ok(())
                } else {
                    arena.reserve(1)
                }
            }
            budget => {
                self.stacks.set(budget - 1);
                Ok(())
            }
        }
    }

    /// Takes back the reservation of a goroutine that finished here, giving a batch back to
    /// the arena when two are unused.
    #[inline]
    pub(super) fn release_stack(&self, arena: &StackArena) {
        let mut budget = self.stacks.get() + 1;
        if budget > 2 * STACK_BLOCK {
            arena.release(STACK_BLOCK);
            budget -= STACK_BLOCK;
        }
        self.stacks.set(budget);
    }

    /// Gives every unused stack reservation back: for a spare worker that leaves its slot.
    pub(super) fn give_back_stacks(&self, arena: &StackArena) {
        let budget = self.stacks.replace(0);
        if budget > 0 {
            arena.release(budget);
        }
    }
}
