//! Shared helpers for the scheduler integration tests.
//!
//! The tests live in `tests/tests/*.rs`, one file per theme. The helpers here keep them from
//! hanging (a lost wakeup must fail a test with a message, not stall CI), give them a way to
//! hold a worker thread on purpose (to force work stealing without relying on luck), and read
//! panic payloads and the process's thread list.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt::Debug;
use std::hint::black_box;
use std::panic::{self, Location};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use scheduler::{GoroutineState, Metrics, Runtime, WaitGroup, WaitReason};

/// The limit [`watchdog`] callers use for a test's whole body: generous, because CI runs the
/// suite in debug mode on two shared cores, yet it turns a hang into a failure with a message.
pub const HANG_LIMIT: Duration = Duration::from_secs(60);

/// How long [`spin_until`] waits for a condition that other workers must make true before it
/// declares the scheduler stuck.
pub const SPIN_LIMIT: Duration = Duration::from_secs(30);

/// Runs `f` on a fresh thread and returns its value, or fails the calling test if `f` has not
/// finished within `limit`.
///
/// Use it around anything that could hang on a lost wakeup or a deadlock: the test then fails
/// with a message naming `what` instead of stalling the whole suite. A panic inside `f` is
/// resumed on the caller, so assertions inside `f` fail the test as usual. On a timeout the
/// stuck thread is left behind (it cannot be killed); the test binary exits anyway once every
/// test has finished.
///
/// # Panics
///
/// If `f` panics, or does not finish within `limit`.
pub fn watchdog<T, F>(what: &str, limit: Duration, f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let thread = thread::Builder::new()
        .name(format!("watchdog: {what}"))
        .spawn(move || {
            let value = f();
            // The receiver is gone only if the watchdog already gave up on us.
            let _ = tx.send(value);
        })
        .expect("cannot start a watchdog thread");
    match rx.recv_timeout(limit) {
        Ok(value) => {
            thread
                .join()
                .expect("the watched thread panicked after it sent its value");
            value
        }
        // The sender was dropped without a value: `f` panicked.
        Err(mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
            Err(payload) => panic::resume_unwind(payload),
            Ok(()) => unreachable!("the watched thread ended without sending its value"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!(
            "{what}: did not finish within {limit:?}; the scheduler looks stuck \
             (a lost wakeup or a deadlock)"
        ),
    }
}

/// Spins the calling OS thread until `cond` returns true, failing with a message naming `what`
/// after `limit`.
///
/// Inside a goroutine this deliberately holds the worker thread: goroutines are not
/// preempted, so nothing else runs on that worker while it spins, and whatever `cond` waits
/// for must be done by *another* worker. The tests use that to make work stealing a
/// certainty rather than luck. Between polls it yields the OS thread (not the goroutine), so
/// it stays cheap on a single loaded CPU.
///
/// # Panics
///
/// If `cond` is still false after `limit`.
pub fn spin_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "{what}: still not true after {limit:?}"
        );
        thread::yield_now();
    }
}

/// Polls `rt.metrics()` until `done` accepts a snapshot, and returns it; fails naming `what`
/// with the last snapshot after [`SPIN_LIMIT`].
///
/// A snapshot is read field by field while goroutines move, so `done` should name every
/// field the caller relies on: one field can read the settled state while another still
/// reads the state before.
///
/// # Panics
///
/// If no snapshot is accepted within [`SPIN_LIMIT`].
pub fn settle(rt: &Runtime, what: &str, mut done: impl FnMut(&Metrics) -> bool) -> Metrics {
    let deadline = Instant::now() + SPIN_LIMIT;
    loop {
        let m = rt.metrics();
        if done(&m) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the metrics did not settle within {SPIN_LIMIT:?}; last snapshot:\n{m}"
        );
        thread::yield_now();
    }
}

/// How long something that should happen *promptly* (a cancelled wait returning, a timer that
/// is due firing) may take before a test calls it a failure: far longer than it takes even in
/// debug mode on two loaded cores, far shorter than the wait it cuts short.
pub const PROMPT_LIMIT: Duration = Duration::from_secs(10);

/// Polls `cond` until it is true, yielding the *goroutine* between polls (the thread, outside
/// a goroutine), and fails with a message naming `what` after `limit`.
///
/// Unlike [`spin_until`] it lets the other goroutines of the caller's worker run. On a runtime
/// with one worker that makes some orderings certain: goroutines are not preempted, so a
/// goroutine that records "I am about to block" and then blocks has parked by the time a
/// goroutine of the same worker sees the record.
///
/// # Panics
///
/// If `cond` is still false after `limit`.
pub fn yield_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "{what}: still not true after {limit:?}"
        );
        scheduler::yield_now();
    }
}

/// Yields the goroutine `times` times: on a runtime with one worker, every goroutine that is
/// ready runs (up to its next block) before this returns.
pub fn yield_times(times: usize) {
    for _ in 0..times {
        scheduler::yield_now();
    }
}

/// Counts how many [`Counted`] values it made have been dropped: for checking that a channel
/// neither leaks the values it holds nor drops one twice.
#[derive(Clone, Default, Debug)]
pub struct DropCounter {
    drops: Arc<AtomicUsize>,
}

impl DropCounter {
    /// A counter at zero.
    pub fn new() -> DropCounter {
        DropCounter::default()
    }

    /// A value with `id` that bumps this counter when dropped.
    pub fn value(&self, id: usize) -> Counted {
        Counted {
            id,
            drops: self.drops.clone(),
        }
    }

    /// How many values made by [`value`](Self::value) have been dropped so far.
    pub fn dropped(&self) -> usize {
        self.drops.load(Ordering::SeqCst)
    }
}

/// A value that counts its own drop on the [`DropCounter`] that made it.
#[derive(Debug)]
pub struct Counted {
    /// Which value this is.
    pub id: usize,
    drops: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// `rounds` rounds of xorshift64 from `seed`, hidden from the optimiser: CPU work of a
/// known, bounded size that cannot be skipped. Never returns 0 for a non-zero seed.
pub fn busy_work(seed: u64, rounds: u64) -> u64 {
    let mut x = seed | 1;
    for _ in 0..rounds {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = black_box(x);
    }
    x
}

/// The message of a panic payload, if it is a `&str` or a `String` (what `panic!` makes).
pub fn panic_message(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// What a panic payload says, for failure messages: its message, or the name of the crate's
/// `Cancelled` payload.
pub fn describe_payload(payload: &(dyn Any + Send)) -> String {
    match panic_message(payload) {
        _ if payload.is::<scheduler::Cancelled>() => "scheduler::Cancelled".to_owned(),
        Some(message) => message.to_owned(),
        None => "<non-string payload>".to_owned(),
    }
}

/// Waits until `rt` has exactly `blocked` goroutines, all parked, and `also` holds.
pub fn settle_parked(rt: &Runtime, blocked: usize, also: impl Fn() -> bool) {
    settle(rt, "the goroutines park", |m| {
        also() && (m.blocked.total(), m.running, m.runnable) == (blocked, 0, 0)
    });
}

/// For a child process that may die by a signal on purpose: no core file.
pub fn disable_core_dumps() {
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: sets this process's own core size limit from a valid struct.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
}

/// Runs `f`, expects it to panic, and returns the panic's message.
///
/// # Panics
///
/// If `f` returns normally, or panics with a payload that is not a string.
pub fn expect_panic<R: Debug>(f: impl FnOnce() -> R) -> String {
    match panic::catch_unwind(panic::AssertUnwindSafe(f)) {
        Ok(value) => panic!("expected a panic, got {value:?}"),
        Err(payload) => panic_message(&*payload)
            .expect("the panic payload is not a string")
            .to_owned(),
    }
}

/// Runs `f` as `rt`'s main goroutine and returns the panic message of `block_on`, if it
/// panicked (a non-string payload shows as `<not a string>`).
pub fn block_on_panic_message(rt: &Runtime, f: impl FnOnce() + Send + 'static) -> Option<String> {
    panic::catch_unwind(panic::AssertUnwindSafe(|| rt.block_on(f)))
        .err()
        .map(|payload| {
            panic_message(&*payload)
                .unwrap_or("<not a string>")
                .to_owned()
        })
}

/// A runtime with `procs` workers and default stacks.
///
/// # Panics
///
/// If the runtime cannot be built.
pub fn runtime(procs: usize) -> Runtime {
    Runtime::builder()
        .procs(procs)
        .build()
        .unwrap_or_else(|err| panic!("cannot build a runtime with {procs} procs: {err}"))
}

/// A set of OS threads, shared between goroutines: who ran what.
#[derive(Clone, Default)]
pub struct ThreadSet {
    inner: Arc<Mutex<HashSet<ThreadId>>>,
}

impl ThreadSet {
    /// An empty set.
    pub fn new() -> ThreadSet {
        ThreadSet::default()
    }

    /// Adds the calling thread and returns its id.
    pub fn record_current(&self) -> ThreadId {
        let id = thread::current().id();
        self.lock().insert(id);
        id
    }

    /// How many distinct threads were recorded.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no thread was recorded.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<ThreadId>> {
        // A poisoned set still holds valid ids; the panic that poisoned it fails its own test.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The names (`comm`, at most 15 bytes) of this process's threads, from `/proc/self/task`.
/// Threads that exit while it reads are skipped.
///
/// # Panics
///
/// If `/proc/self/task` cannot be read.
pub fn thread_names() -> Vec<String> {
    let dir = std::fs::read_dir("/proc/self/task").expect("cannot read /proc/self/task");
    dir.filter_map(|entry| {
        let path = entry.ok()?.path().join("comm");
        let name = std::fs::read_to_string(path).ok()?;
        Some(name.trim_end().to_owned())
    })
    .collect()
}

/// How many threads of this process are scheduler workers (named `scheduler-worker-N`; the
/// kernel keeps the first 15 bytes of a thread's name).
pub fn worker_thread_count() -> usize {
    thread_names()
        .iter()
        .filter(|name| name.starts_with("scheduler-work"))
        .count()
}

/// How many threads of this process are spare workers (named `scheduler-spare-N`, which the
/// kernel shortens to `scheduler-spare`).
pub fn spare_thread_count() -> usize {
    thread_names()
        .iter()
        .filter(|name| name.starts_with("scheduler-spar"))
        .count()
}

/// How many threads of this process are runtime monitors (named `scheduler-monitor`, which
/// the kernel shortens to `scheduler-monit`): one per live runtime.
pub fn monitor_thread_count() -> usize {
    thread_names()
        .iter()
        .filter(|name| name.starts_with("scheduler-moni"))
        .count()
}

/// Moves `rt` into one of its own goroutines, runs `f(rt)` there under `catch_unwind`, and
/// returns the caught panic's message, or `None` if `f` returned normally. For testing what a
/// runtime does when it is shut down or dropped by its own goroutine.
///
/// If `f` panics, the runtime's workers are left running afterwards (nobody can join them any
/// more); if it drops the runtime, the runtime winds down once its goroutines finish.
///
/// # Panics
///
/// If the goroutine itself fails (its `join` returns `Err`).
pub fn run_in_own_goroutine(rt: Runtime, f: fn(Runtime)) -> Option<String> {
    let slot: Arc<Mutex<Option<Runtime>>> = Arc::new(Mutex::new(None));
    let gate = WaitGroup::new();
    gate.add(1);
    let (s, g) = (slot.clone(), gate.clone());
    let h = rt.spawn(move || {
        g.wait();
        let rt = s
            .lock()
            .unwrap()
            .take()
            .expect("the runtime was handed over");
        panic::catch_unwind(panic::AssertUnwindSafe(move || f(rt)))
            .err()
            .map(|p| {
                panic_message(&*p)
                    .unwrap_or("<non-string payload>")
                    .to_owned()
            })
    });
    *slot.lock().unwrap() = Some(rt);
    gate.done();
    h.join().expect("catch_unwind caught the panic")
}

/// Polls the goroutine dump of `rt` until the goroutine `id` shows blocked on `reason`, and
/// returns where it waits; fails naming the goroutine's last state after [`SPIN_LIMIT`].
///
/// # Panics
///
/// If the goroutine is not blocked on `reason` within [`SPIN_LIMIT`], or is blocked without a
/// wait site.
pub fn blocked_at(rt: &Runtime, id: u64, reason: WaitReason) -> &'static Location<'static> {
    let mut last = None;
    let mut site = None;
    let deadline = Instant::now() + SPIN_LIMIT;
    loop {
        let dump = rt.goroutines();
        if let Some(goroutine) = dump.get(id) {
            if goroutine.state() == GoroutineState::Blocked(reason) {
                site = goroutine.waits_at();
                break;
            }
            last = Some(goroutine.to_string());
        }
        if Instant::now() >= deadline {
            break;
        }
        thread::yield_now();
    }
    match site {
        Some(site) => site,
        None => panic!(
            "goroutine {id} is not blocked on {reason} (with a wait site) after \
             {SPIN_LIMIT:?}; last seen as {last:?}"
        ),
    }
}

thread_local! {
    /// Where the panics of this thread happened, while [`panic_location`] records them.
    static PANIC_SITES: RefCell<Option<Vec<(String, u32)>>> = const { RefCell::new(None) };
}

/// Serialises [`panic_location`]: the panic hook is one for the whole process.
static PANIC_HOOK: Mutex<()> = Mutex::new(());

/// Runs `f`, expects it to panic, and returns where the panic hook was told it happened (file
/// and line) with its message: for checking that a misuse panic names the caller's line.
///
/// The hook is the process's, so the calls are serialised and the previous hook is put back
/// afterwards; while installed, the hook records the panics of the calling thread only and
/// hands every other thread's to the previous hook.
///
/// # Panics
///
/// If `f` returns normally, or its panic was not seen by the hook.
pub fn panic_location<R: Debug>(f: impl FnOnce() -> R) -> (String, u32, String) {
    let _serial = PANIC_HOOK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let previous = Arc::new(panic::take_hook());
    let forward = previous.clone();
    panic::set_hook(Box::new(move |info| {
        let recorded = PANIC_SITES.with(|sites| match sites.borrow_mut().as_mut() {
            Some(sites) => {
                if let Some(location) = info.location() {
                    sites.push((location.file().to_owned(), location.line()));
                }
                true
            }
            None => false,
        });
        if !recorded {
            forward(info);
        }
    }));
    PANIC_SITES.with(|sites| *sites.borrow_mut() = Some(Vec::new()));
    let result = panic::catch_unwind(panic::AssertUnwindSafe(f));
    let sites = PANIC_SITES.with(|sites| sites.borrow_mut().take().unwrap_or_default());
    // Our hook goes, and with it its reference to the previous one, which is put back.
    drop(panic::take_hook());
    match Arc::try_unwrap(previous) {
        Ok(previous) => panic::set_hook(previous),
        Err(_) => unreachable!("the hook that shared it is dropped"),
    }
    let message = match result {
        Ok(value) => panic!("expected a panic, got {value:?}"),
        Err(payload) => describe_payload(&*payload),
    };
    match sites.as_slice() {
        [(file, line)] => (file.clone(), *line, message),
        other => panic!("expected one panic on this thread, the hook saw {other:?}: {message}"),
    }
}
