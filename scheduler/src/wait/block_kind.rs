//! What a parked goroutine waits for, and where.

use std::panic::Location;

/// Where a wait was called: the user's line, as `#[track_caller]` gives it to the public
/// blocking call, which hands it down to the park explicitly (closures, stored iterators and
/// spawn origins would break an implicit chain). Stored only when the goroutine parks, for the
/// goroutine dump.
pub(crate) type Site = &'static Location<'static>;

/// What a parked goroutine waits for, as counted in the scheduler's per-worker statistics,
/// summed by family in the metrics, and named in the goroutine dump. Given by the blocking
/// call when it makes its [`Waiter`](super::waiter::Waiter) (or, for the channel fast path,
/// when it parks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum BlockKind {
    /// A channel's `recv` (and its timed and context variants).
    ChannelReceive = 0,
    /// A channel's `send` (and its timed and context variants).
    ChannelSend = 1,
    /// `Mutex::lock`.
    Mutex = 2,
    /// `RwLock::read` and `write`.
    RwLock = 3,
    /// `Condvar::wait`.
    Condvar = 4,
    /// `Semaphore::acquire`, and a spawn waiting for room under `max_goroutines`.
    Semaphore = 5,
    /// `OnceLock` waiting for another caller's initialisation.
    Once = 6,
    /// `WaitGroup::wait`.
    WaitGroup = 7,
    /// `sleep`, `sleep_until`, `sleep_ctx`.
    Timer = 8,
    /// `JoinHandle::join`.
    Join = 9,
    /// A `select!` of the caller's own arms.
    Select = 10,
    /// `JoinHandle::join` of a `spawn_blocking` job.
    Blocking = 11,
    /// A socket or other file descriptor that is not ready (`scheduler::net`).
    Io = 12,
    /// Anything else.
    Other = 13,
}

/// How many [`BlockKind`]s there are.
pub(crate) const BLOCK_KINDS: usize = 14;

impl BlockKind {
    /// Every kind, in the order of their values.
    pub(crate) const ALL: [BlockKind; BLOCK_KINDS] = [
        BlockKind::ChannelReceive,
        BlockKind::ChannelSend,
        BlockKind::Mutex,
        BlockKind::RwLock,
        BlockKind::Condvar,
        BlockKind::Semaphore,
        BlockKind::Once,
        BlockKind::WaitGroup,
        BlockKind::Timer,
        BlockKind::Join,
        BlockKind::Select,
        BlockKind::Blocking,
        BlockKind::Io,
        BlockKind::Other,
    ];

    /// The kind stored as `value` by `kind as u8`; `Other` for anything else.
    pub(crate) fn from_u8(value: u8) -> BlockKind {
        BlockKind::ALL
            .get(usize::from(value))
            .copied()
            .unwrap_or(BlockKind::Other)
    }

    /// Whether the kind is one of the sync primitives' (the metrics' `sync` family).
    pub(crate) fn is_sync(self) -> bool {
        matches!(
            self,
            BlockKind::Mutex
                | BlockKind::RwLock
                | BlockKind::Condvar
                | BlockKind::Semaphore
                | BlockKind::Once
        )
    }

    /// How the goroutine dump names the wait, in Go's words where Go has one.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            BlockKind::ChannelReceive => "chan receive",
            BlockKind::ChannelSend => "chan send",
            BlockKind::Mutex => "mutex lock",
            BlockKind::RwLock => "rwlock",
            BlockKind::Condvar => "condvar wait",
            BlockKind::Semaphore => "semaphore acquire",
            BlockKind::Once => "once init",
            BlockKind::WaitGroup => "wait group",
            BlockKind::Timer => "sleep",
            BlockKind::Join => "join",
            BlockKind::Select => "select",
            BlockKind::Blocking => "blocking job",
            BlockKind::Io => "IO wait",
            BlockKind::Other => "wait",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_byte() {
        for (index, kind) in BlockKind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, index);
            assert_eq!(BlockKind::from_u8(*kind as u8), *kind);
        }
        assert_eq!(BlockKind::from_u8(200), BlockKind::Other);
    }
}
