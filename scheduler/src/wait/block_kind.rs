//! What a parked goroutine waits for.

/// What a parked goroutine waits for, as counted in the scheduler's per-worker statistics and
/// shown in the metrics. Given by the blocking call when it makes its
/// [`Waiter`](super::waiter::Waiter) (or, for the channel fast path, when it parks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum BlockKind {
    /// A channel's `send` or `recv` (and their timed and context variants).
    Channel = 0,
    /// `Mutex`, `RwLock`, `Condvar`, `Semaphore`, `OnceLock`.
    Sync = 1,
    /// `WaitGroup::wait`.
    WaitGroup = 2,
    /// `sleep`, `sleep_until`, `sleep_ctx`.
    Timer = 3,
    /// `JoinHandle::join`.
    Join = 4,
    /// A `select!` of the caller's own arms.
    Select = 5,
    /// `JoinHandle::join` of a `spawn_blocking` job.
    Blocking = 6,
    /// Anything else.
    Other = 7,
    /// A socket or other file descriptor that is not ready (`scheduler::net`).
    Io = 8,
}

/// How many [`BlockKind`]s there are.
pub(crate) const BLOCK_KINDS: usize = 9;
