//! The goroutine dump: every live goroutine of a runtime, what it does and where, as Go prints
//! them on `SIGQUIT` or with `runtime.Stack(buf, true)`, and as pprof's goroutine profile
//! counts them.

use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use crate::sched::Shared;
use crate::wait::BlockKind;

/// What a blocked goroutine waits for, in the words of Go's goroutine dump where Go has one
/// (`chan receive`, `select`, `IO wait`...).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WaitReason {
    /// A channel's `recv` (and its timed and context variants; `for v in &rx` too).
    ChannelReceive,
    /// A channel's `send` (and its timed and context variants).
    ChannelSend,
    /// A `select!` over several operations.
    Select,
    /// [`Mutex::lock`](crate::sync::Mutex::lock).
    Mutex,
    /// [`RwLock::read`](crate::sync::RwLock::read) or [`write`](crate::sync::RwLock::write).
    RwLock,
    /// [`Condvar::wait`](crate::sync::Condvar::wait).
    Condvar,
    /// [`Semaphore::acquire`](crate::sync::Semaphore::acquire), or a spawn waiting for room
    /// under [`Builder::max_goroutines`](crate::Builder::max_goroutines).
    Semaphore,
    /// A [`OnceLock`](crate::sync::OnceLock) being initialised by another caller.
    Once,
    /// [`WaitGroup::wait`](crate::WaitGroup::wait).
    WaitGroup,
    /// [`sleep`](crate::time::sleep) and its variants.
    Sleep,
    /// [`JoinHandle::join`](crate::JoinHandle::join) of a goroutine.
    Join,
    /// [`JoinHandle::join`](crate::JoinHandle::join) of a
    /// [`spawn_blocking`](crate::spawn_blocking) job.
    BlockingJob,
    /// A socket or other descriptor that is not ready ([`crate::net`]).
    Io,
    /// Anything else.
    Other,
}

impl WaitReason {
    pub(crate) fn from_kind(kind: BlockKind) -> WaitReason {
        match kind {
            BlockKind::ChannelReceive => WaitReason::ChannelReceive,
            BlockKind::ChannelSend => WaitReason::ChannelSend,
            BlockKind::Mutex => WaitReason::Mutex,
            BlockKind::RwLock => WaitReason::RwLock,
            BlockKind::Condvar => WaitReason::Condvar,
            BlockKind::Semaphore => WaitReason::Semaphore,
            BlockKind::Once => WaitReason::Once,
            BlockKind::WaitGroup => WaitReason::WaitGroup,
            BlockKind::Timer => WaitReason::Sleep,
            BlockKind::Join => WaitReason::Join,
            BlockKind::Select => WaitReason::Select,
            BlockKind::Blocking => WaitReason::BlockingJob,
            BlockKind::Io => WaitReason::Io,
            BlockKind::Other => WaitReason::Other,
        }
    }

    fn kind(self) -> BlockKind {
        match self {
            WaitReason::ChannelReceive => BlockKind::ChannelReceive,
            WaitReason::ChannelSend => BlockKind::ChannelSend,
            WaitReason::Mutex => BlockKind::Mutex,
            WaitReason::RwLock => BlockKind::RwLock,
            WaitReason::Condvar => BlockKind::Condvar,
            WaitReason::Semaphore => BlockKind::Semaphore,
            WaitReason::Once => BlockKind::Once,
            WaitReason::WaitGroup => BlockKind::WaitGroup,
            WaitReason::Sleep => BlockKind::Timer,
            WaitReason::Join => BlockKind::Join,
            WaitReason::Select => BlockKind::Select,
            WaitReason::BlockingJob => BlockKind::Blocking,
            WaitReason::Io => BlockKind::Io,
            WaitReason::Other => BlockKind::Other,
        }
    }
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind().describe())
    }
}

/// What a goroutine is doing at the moment of the dump.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoroutineState {
    /// Ready to run, waiting for its worker (or, if it has not started, for any worker).
    Runnable,
    /// Running on the worker numbered `worker` (`0..procs`; spare workers above). A goroutine
    /// blocked in a system call or a std lock shows as running: its worker is stuck with it.
    Running {
        /// The worker's number.
        worker: usize,
    },
    /// Parked in one of this crate's waits.
    Blocked(WaitReason),
}

/// One live goroutine in a [`GoroutineDump`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoroutineInfo {
    id: u64,
    name: Option<Arc<str>>,
    state: GoroutineState,
    blocked_for: Option<Duration>,
    spawned_at: &'static Location<'static>,
    waits_at: Option<&'static Location<'static>>,
}

impl GoroutineInfo {
    /// The goroutine's id: unique within its runtime, 1 for the first goroutine, in spawn
    /// order (as [`JoinHandle::id`](crate::JoinHandle::id) shows it).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The name given at spawn ([`GoroutineBuilder::name`](crate::GoroutineBuilder::name);
    /// `block_on`'s goroutine is `main`), if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// What it is doing.
    pub fn state(&self) -> GoroutineState {
        self.state
    }

    /// For a blocked goroutine, how long it has been blocked, to within a few milliseconds.
    pub fn blocked_for(&self) -> Option<Duration> {
        self.blocked_for
    }

    /// The line of code that spawned it.
    pub fn spawned_at(&self) -> &'static Location<'static> {
        self.spawned_at
    }

    /// For a blocked goroutine, the line of code that waits (the call of `recv`, `lock`,
    /// `join`, `select!`...).
    pub fn waits_at(&self) -> Option<&'static Location<'static>> {
        self.waits_at
    }
}

impl fmt::Display for GoroutineInfo {
    /// Go's header line, then where it waits and where it was spawned:
    ///
    /// ```text
    /// goroutine 7 "fetcher" [chan receive, 1.204s]:
    ///     waits at src/main.rs:42:17
    ///     spawned at src/main.rs:30:5
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "goroutine {}", self.id)?;
        if let Some(name) = &self.name {
            write!(f, " {name:?}")?;
        }
        match self.state {
            GoroutineState::Runnable => writeln!(f, " [runnable]:")?,
            GoroutineState::Running { worker } => writeln!(f, " [running on worker {worker}]:")?,
            GoroutineState::Blocked(reason) => match self.blocked_for {
                Some(time) => writeln!(f, " [{reason}, {}]:", Rounded(time))?,
                None => writeln!(f, " [{reason}]:")?,
            },
        }
        if let Some(site) = self.waits_at {
            writeln!(f, "    waits at {site}")?;
        }
        write!(f, "    spawned at {}", self.spawned_at)
    }
}

/// A duration to the millisecond, as `Debug` prints it (`1.204s`, `35ms`).
struct Rounded(Duration);

impl fmt::Display for Rounded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX);
        write!(f, "{:?}", Duration::from_millis(millis))
    }
}

/// A snapshot of every live goroutine of a runtime, by id: [`Runtime::goroutines`] and
/// [`goroutines`](crate::goroutines()).
///
/// Taken without stopping anything, so it is a set of snapshots, one per goroutine, each
/// consistent on its own: a goroutine that finishes or is spawned meanwhile may or may not
/// show. `Display` prints it the way Go prints its goroutine dump, one paragraph per
/// goroutine.
///
/// [`Runtime::goroutines`]: crate::Runtime::goroutines
///
/// # Examples
///
/// ```
/// use scheduler::{GoroutineState, WaitReason};
///
/// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
/// let (tx, rx) = scheduler::chan::bounded::<u32>(0);
/// let waiter = rt.spawn(move || rx.recv());
/// let dump = loop {
///     let dump = rt.goroutines();
///     if dump.iter().any(|g| g.state() == GoroutineState::Blocked(WaitReason::ChannelReceive)) {
///         break dump;
///     }
///     std::thread::yield_now();
/// };
/// println!("{dump}"); // goroutine 1 [chan receive, 0s]: ...
/// assert_eq!(dump.len(), 1);
/// tx.send(7).unwrap();
/// assert_eq!(waiter.join().unwrap(), Ok(7));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GoroutineDump {
    goroutines: Vec<GoroutineInfo>,
}

impl GoroutineDump {
    /// Every live goroutine of `shared`, by id.
    pub(crate) fn of(shared: &Shared) -> GoroutineDump {
        // Which goroutine each worker runs, read before the registry: a goroutine that starts
        // or stops running meanwhile shows as runnable or blocked, never on a wrong worker.
        let running: Vec<(usize, u64)> = shared
            .remotes
            .iter()
            .enumerate()
            .filter_map(|(index, remote)| Some((index, remote.activity.goroutine()?)))
            .collect();
        let mut goroutines = Vec::new();
        shared.registry.for_each(|header| {
            let parked = header.state.is_parked();
            let state = if parked {
                GoroutineState::Blocked(WaitReason::from_kind(header.parked_as()))
            } else {
                match running.iter().find(|(_, id)| *id == header.id) {
                    Some(&(worker, _)) => GoroutineState::Running { worker },
                    None => GoroutineState::Runnable,
                }
            };
            goroutines.push(GoroutineInfo {
                id: header.id,
                name: header.origin.name.clone(),
                state,
                blocked_for: parked.then(|| shared.clock.since(header.parked_at())),
                spawned_at: header.origin.site,
                waits_at: if parked { header.wait_site() } else { None },
            });
        });
        goroutines.sort_unstable_by_key(|g| g.id);
        GoroutineDump { goroutines }
    }

    /// The goroutines, by id.
    pub fn iter(&self) -> std::slice::Iter<'_, GoroutineInfo> {
        self.goroutines.iter()
    }

    /// How many goroutines the snapshot holds.
    pub fn len(&self) -> usize {
        self.goroutines.len()
    }

    /// Whether the snapshot holds no goroutine.
    pub fn is_empty(&self) -> bool {
        self.goroutines.is_empty()
    }

    /// The goroutine with id `id`, if it was live.
    pub fn get(&self, id: u64) -> Option<&GoroutineInfo> {
        self.goroutines
            .binary_search_by_key(&id, |g| g.id)
            .ok()
            .map(|index| &self.goroutines[index])
    }
}

impl<'a> IntoIterator for &'a GoroutineDump {
    type Item = &'a GoroutineInfo;
    type IntoIter = std::slice::Iter<'a, GoroutineInfo>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl IntoIterator for GoroutineDump {
    type Item = GoroutineInfo;
    type IntoIter = std::vec::IntoIter<GoroutineInfo>;

    fn into_iter(self) -> Self::IntoIter {
        self.goroutines.into_iter()
    }
}

impl fmt::Display for GoroutineDump {
    /// Every goroutine as [`GoroutineInfo`] prints it, a blank line between two.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, goroutine) in self.goroutines.iter().enumerate() {
            if index > 0 {
                f.write_str("\n\n")?;
            }
            write!(f, "{goroutine}")?;
        }
        Ok(())
    }
}
