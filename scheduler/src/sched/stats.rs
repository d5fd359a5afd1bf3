//! The counters behind [`Runtime::metrics`](crate::Runtime::metrics): one block per worker,
//! written only by that worker.
//!
//! Each worker owns a [`WorkerStats`] on a cache line pair of its own. It writes it with a
//! plain load and store (no read-modify-write, no lock), on its own thread only; readers
//! ([`crate::metrics::snapshot`]) load the fields and sum over the workers. So the counting
//! puts no shared cache line and no atomic RMW on the hot paths: a resume stores the
//! `running` flag twice, a park and its wake each update one `blocked` count, a start and a
//! finish each store the `started` count. The counters that change only when the worker is
//! idle (steals, worker parks, busy time) cost nothing while it runs goroutines.
//!
//! Every access is Relaxed: nobody derives anything but numbers from these fields, and a
//! reader that polls sees each worker's latest values eventually (coherence). A snapshot
//! taken while goroutines move is therefore approximate; once they stop moving it is exact.
//!
//! A new per-worker counter goes here, written the same way by its worker, and is summed in
//! `metrics::snapshot`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use crate::wait::block_kind::{BLOCK_KINDS, BlockKind};

/// One worker's counters. Written only by the owning worker thread (the worker loop, or a
/// goroutine it runs), each with a load and a store; read by anyone taking a snapshot.
///
/// What the counts mean, for the worker's *started* goroutines (those whose home it is):
/// every one is running (`running`), parked (`blocked`, by kind), or queued in `runnext`,
/// `ready` or the inbox. A parked goroutine is counted in `blocked` from its worker's park CAS
/// until its worker takes it back: into `runnext` when woken on this worker, or out of the
/// inbox when woken by another thread. So `started - running - blocked` is the number queued
/// in `runnext` and `ready`, and a yield, the hottest path, counts nothing.
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct WorkerStats {
    /// Set while the worker is inside a resume (a goroutine runs on it).
    running: AtomicBool,
    /// Started goroutines of this worker that have not finished: `started.len()`.
    started: AtomicUsize,
    /// Parked goroutines of this worker, by [`BlockKind`].
    blocked: [AtomicUsize; BLOCK_KINDS],
    /// Goroutines that a `join` made by a goroutine of this worker runs on the joiner's stack
    /// right now (they never start: no stack, no `started` entry).
    inline: AtomicUsize,
    /// Successful steals from other workers' deques.
    steals: AtomicU64,
    /// Goroutines taken by those steals.
    stolen: AtomicU64,
    /// Times the worker thread went to sleep.
    parks: AtomicU64,
    /// Time awake, as one word so that a reader sees a consistent pair: while asleep, the
    /// nanoseconds spent awake so far; while awake, [`AWAKE`] plus the wake time minus that
    /// total (both in nanoseconds since [`epoch`]), from which a reader gets the total up to
    /// now without the worker updating anything while it runs.
    busy: AtomicU64,
}

/// Marks [`WorkerStats::busy`] as holding an awake worker's offset.
const AWAKE: u64 = 1 << 63;

/// The time `busy` words are measured from: the first time any runtime asked.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since [`epoch`].
fn now_ns() -> u64 {
    u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(AWAKE - 1)
}

/// `*counter += 1` (or `-= 1`) by its only writer: a load and a store, no RMW.
#[inline]
fn add(counter: &AtomicUsize, delta: isize) {
    let n = counter.load(Ordering::Relaxed);
    counter.store(n.wrapping_add_signed(delta), Ordering::Relaxed);
}

#[inline]
fn add64(counter: &AtomicU64, delta: u64) {
    let n = counter.load(Ordering::Relaxed);
    counter.store(n.wrapping_add(delta), Ordering::Relaxed);
}

impl WorkerStats {
    /// A goroutine's resume begins (`true`) or ends (`false`).
    #[inline]
    pub(crate) fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::Relaxed);
    }

    /// The worker's list of started goroutines now holds `n`.
    #[inline]
    pub(crate) fn set_started(&self, n: usize) {
        self.started.store(n, Ordering::Relaxed);
    }

    /// A goroutine of this worker parked, waiting for `kind`.
    #[inline]
    pub(crate) fn parked(&self, kind: BlockKind) {
        add(&self.blocked[kind as usize], 1);
    }

    /// A goroutine of this worker that parked waiting for `kind` was taken back to run.
    #[inline]
    pub(crate) fn unparked(&self, kind: BlockKind) {
        add(&self.blocked[kind as usize], -1);
    }

    /// A `join` starts (`1`) or ends (`-1`) running a goroutine inline.
    pub(crate) fn add_inline(&self, delta: isize) {
        add(&self.inline, delta);
    }

    /// A steal from another worker succeeded, taking `goroutines`.
    pub(crate) fn stole(&self, goroutines: usize) {
        add64(&self.steals, 1);
        add64(&self.stolen, goroutines as u64);
    }

    /// The worker thread wakes (or starts). Returns the time, for [`asleep`](Self::asleep).
    pub(crate) fn awake(&self, busy_so_far: u64) -> u64 {
        let now = now_ns();
        // `busy_so_far` never exceeds `now`: all of it lies between the epoch and now.
        self.busy
            .store(AWAKE | now.saturating_sub(busy_so_far), Ordering::Relaxed);
        now
    }

    /// The worker thread goes to sleep (or exits) after being awake since `since`: counts the
    /// sleep if `parking`, and returns the new total time awake.
    pub(crate) fn asleep(&self, since: u64, busy_so_far: u64, parking: bool) -> u64 {
        let busy = busy_so_far + now_ns().saturating_sub(since);
        self.busy.store(busy, Ordering::Relaxed);
        if parking {
            add64(&self.parks, 1);
        }
        busy
    }

    /// Reads the counters.
    pub(crate) fn read(&self) -> StatsSnapshot {
        let busy_word = self.busy.load(Ordering::Relaxed);
        let busy_ns = if busy_word & AWAKE != 0 {
            now_ns().saturating_sub(busy_word & !AWAKE)
        } else {
            busy_word
        };
        StatsSnapshot {
            running: self.running.load(Ordering::Relaxed),
            started: self.started.load(Ordering::Relaxed),
            blocked: std::array::from_fn(|k| self.blocked[k].load(Ordering::Relaxed)),
            inline: self.inline.load(Ordering::Relaxed),
            steals: self.steals.load(Ordering::Relaxed),
            stolen: self.stolen.load(Ordering::Relaxed),
            parks: self.parks.load(Ordering::Relaxed),
            busy_ns,
        }
    }
}

/// The values of one [`WorkerStats`] at one reading.
pub(crate) struct StatsSnapshot {
    pub(crate) running: bool,
    pub(crate) started: usize,
    pub(crate) blocked: [usize; BLOCK_KINDS],
    pub(crate) inline: usize,
    pub(crate) steals: u64,
    pub(crate) stolen: u64,
    pub(crate) parks: u64,
    pub(crate) busy_ns: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_go_up_and_down() {
        let stats = WorkerStats::default();
        stats.set_running(true);
        stats.set_started(3);
        stats.parked(BlockKind::ChannelReceive);
        stats.parked(BlockKind::ChannelReceive);
        stats.parked(BlockKind::Timer);
        stats.unparked(BlockKind::ChannelReceive);
        stats.add_inline(1);
        stats.stole(5);
        let s = stats.read();
        assert!(s.running);
        assert_eq!(s.started, 3);
        assert_eq!(s.blocked[BlockKind::ChannelReceive as usize], 1);
        assert_eq!(s.blocked[BlockKind::Timer as usize], 1);
        assert_eq!(s.blocked.iter().sum::<usize>(), 2);
        assert_eq!((s.inline, s.steals, s.stolen), (1, 1, 5));
    }

    #[test]
    fn busy_time_counts_while_awake_and_stops_while_asleep() {
        let stats = WorkerStats::default();
        assert_eq!(stats.read().busy_ns, 0);
        let since = stats.awake(0);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let running = stats.read().busy_ns;
        assert!(running >= 2_000_000, "{running}");
        let busy = stats.asleep(since, 0, true);
        assert!(busy >= running);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let s = stats.read();
        assert_eq!(
            (s.busy_ns, s.parks),
            (busy, 1),
            "no time counts while asleep"
        );
        let since = stats.awake(busy);
        assert!(stats.read().busy_ns >= busy);
        assert!(stats.asleep(since, busy, false) >= busy);
        assert_eq!(stats.read().parks, 1, "an exit is not a park");
    }
}
