//! Loud stalls: the monitor's word to the user when one goroutine keeps its worker from the
//! goroutines queued behind it.
//!
//! The monitor (`super::monitor`) already sees a resume that lasts: a goroutine that has run
//! for a whole time slice without suspending. When such a resume has lasted the stall
//! threshold ([`Builder::stall_warnings`](crate::Builder::stall_warnings), 100 ms by default)
//! while other goroutines wait on the same worker (started ones can run nowhere else), that is
//! an *incident*, of one of two kinds:
//!
//! * **blocked**: the worker's thread sleeps in the kernel: a `std::thread::sleep`, a std lock
//!   or channel, blocking I/O. The fix is [`spawn_blocking`](crate::spawn_blocking), this
//!   crate's own primitives, or not holding a std lock across a wait;
//! * **busy**: the goroutine computes without a suspension point. The fix is a
//!   [`checkpoint`](crate::checkpoint) in the loop.
//!
//! Each incident is counted once (`Metrics::stalls_blocked`, `Metrics::stalls_busy`) and
//! reported once, as one line on stderr naming the goroutine (id, name, spawn site), the
//! worker, how long, how many goroutines wait behind it, and the fix. Lines are rate-limited
//! to one per [`WARNING_INTERVAL`] per runtime; the next line says how many incidents went
//! unreported meanwhile. `SCHEDULER_STALL_WARNINGS=0` turns the lines off (the counts stay)
//! unless the builder set a threshold explicitly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::shared::{Remote, Shared};

/// The default stall threshold: ten default time slices.
pub(crate) const DEFAULT_STALL_THRESHOLD: Duration = Duration::from_millis(100);

/// The environment variable that turns stall warnings off (`0`, `off`, `false`, `no`).
pub(crate) const STALL_WARNINGS_ENV: &str = "SCHEDULER_STALL_WARNINGS";

/// The shortest time between two warning lines of one runtime.
pub(crate) const WARNING_INTERVAL: Duration = Duration::from_secs(1);

/// What kept the worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StallKind {
    /// Its thread sleeps in the kernel.
    Blocked,
    /// Its goroutine computes without a suspension point.
    Busy,
}

/// One runtime's incident counts. Written by the monitor thread only.
#[derive(Default)]
pub(crate) struct StallCounts {
    blocked: AtomicU64,
    busy: AtomicU64,
}

impl StallCounts {
    fn count(&self, kind: StallKind) {
        let counter = match kind {
            StallKind::Blocked => &self.blocked,
            StallKind::Busy => &self.busy,
        };
        // Relaxed: a statistic, written by the monitor thread alone.
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Incidents of a goroutine blocking its worker's thread in the kernel.
    pub(crate) fn blocked(&self) -> u64 {
        // Relaxed: a statistic.
        self.blocked.load(Ordering::Relaxed)
    }

    /// Incidents of a goroutine computing without a suspension point.
    pub(crate) fn busy(&self) -> u64 {
        // Relaxed: a statistic.
        self.busy.load(Ordering::Relaxed)
    }
}

/// The monitor thread's side: the threshold and the rate limit.
pub(crate) struct StallWatch {
    threshold: Duration,
    /// Whether incidents are printed (they are always counted).
    print: bool,
    last_line: Option<Instant>,
    unreported: u64,
}

impl StallWatch {
    /// `threshold`: the builder's setting, `None` meaning "off"; `explicit`: whether the
    /// builder set it (then the environment variable is not read).
    pub(crate) fn new(threshold: Option<Duration>, explicit: bool) -> StallWatch {
        let print = threshold.is_some() && (explicit || !env_turns_off());
        StallWatch {
            threshold: threshold.unwrap_or(DEFAULT_STALL_THRESHOLD),
            print,
            last_line: None,
            unreported: 0,
        }
    }

    /// Looks at a resume of worker `worker` that has `lasted` so long (its thread asleep in
    /// the kernel if `blocked`): true if it is an incident, which is then counted and reported
    /// (the caller reports each resume once).
    pub(crate) fn check(
        &mut self,
        shared: &Shared,
        worker: usize,
        lasted: Duration,
        blocked: bool,
    ) -> bool {
        if lasted < self.threshold {
            return false;
        }
        let waiting = waiting_behind(&shared.remotes[worker]);
        if waiting == 0 {
            return false;
        }
        let kind = if blocked {
            StallKind::Blocked
        } else {
            StallKind::Busy
        };
        self.incident(shared, worker, kind, lasted, waiting);
        true
    }

    /// Counts an incident on worker `worker`, and prints it unless a line was printed less
    /// than [`WARNING_INTERVAL`] ago.
    fn incident(
        &mut self,
        shared: &Shared,
        worker: usize,
        kind: StallKind,
        lasted: Duration,
        waiting: usize,
    ) {
        shared.monitor.stalls.count(kind);
        if !self.print {
            return;
        }
        let now = Instant::now();
        if self
            .last_line
            .is_some_and(|last| now.duration_since(last) < WARNING_INTERVAL)
        {
            self.unreported += 1;
            return;
        }
        self.last_line = Some(now);
        let unreported = std::mem::take(&mut self.unreported);
        let goroutine = describe_running(shared, worker);
        let lasted = Duration::from_millis(u64::try_from(lasted.as_millis()).unwrap_or(u64::MAX));
        let mut line = match kind {
            StallKind::Blocked => format!(
                "scheduler: {goroutine} has blocked worker {worker} for {lasted:?} with \
                 {waiting} goroutine(s) waiting behind it: its thread waits in the kernel (a \
                 std lock, std::thread::sleep, blocking I/O). Run blocking calls with \
                 scheduler::spawn_blocking, use scheduler's own channels and locks, and do not \
                 hold a std lock across a wait."
            ),
            StallKind::Busy => format!(
                "scheduler: {goroutine} has run on worker {worker} for {lasted:?} without a \
                 suspension point, with {waiting} goroutine(s) waiting behind it. Call \
                 scheduler::checkpoint() in long loops, or run the computation with \
                 scheduler::spawn_blocking."
            ),
        };
        if unreported > 0 {
            line.push_str(&format!(
                " ({unreported} more stall(s) since the last warning.)"
            ));
        }
        eprintln!("{line}");
    }
}

/// Goroutines waiting for worker `remote` while it is held: not started in its deque, woken
/// in its inbox, ready in its own queues (started goroutines can run nowhere else).
fn waiting_behind(remote: &Remote) -> usize {
    let stats = remote.stats.read();
    let blocked: usize = stats.blocked.iter().sum();
    let ready = stats
        .started
        .saturating_sub(usize::from(stats.running) + blocked);
    remote.stealer.len() + remote.inbox.len() + ready
}

/// Whether `SCHEDULER_STALL_WARNINGS` says "off".
fn env_turns_off() -> bool {
    std::env::var(STALL_WARNINGS_ENV).is_ok_and(|value| {
        matches!(
            value.trim().to_ascii_lowercase().as_str(),
            "0" | "off" | "false" | "no"
        )
    })
}

/// `goroutine 7 "name" (spawned at src/main.rs:12:5)` for the goroutine worker `worker` runs,
/// or `a goroutine` if it finished meanwhile.
fn describe_running(shared: &Shared, worker: usize) -> String {
    let Some(id) = shared.remotes[worker].activity.goroutine() else {
        return "a goroutine".to_owned();
    };
    let mut found = None;
    shared.registry.for_each(|header| {
        if header.id == id {
            found = Some(header.describe());
        }
    });
    found.unwrap_or_else(|| format!("goroutine {id}"))
}
