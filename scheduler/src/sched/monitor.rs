//! The monitor: one thread per runtime that watches the workers from outside, Go's `sysmon`.
//!
//! It notices a worker that has been inside one resume (one goroutine, without suspending)
//! for a whole time slice, and then:
//!
//! * asks that goroutine to yield at its next [`checkpoint`](crate::checkpoint), by storing
//!   the resume's epoch in the worker's [`Activity::request`];
//! * if goroutines that have not started wait in that worker's deque, calls `notify_work`, so
//!   that a parked worker wakes and steals them (the stuck worker may be blocked in a system
//!   call and never come back to its queue);
//! * if the worker is *blocked* (its thread asleep in the kernel and using almost no CPU, not
//!   computing) and goroutines wait in a stealable queue, wakes a parked worker even when
//!   `procs` count as awake, or else starts a spare worker ([`super::spare`]).
//!
//! # What a worker publishes
//!
//! Each worker owns one [`Activity`], on a cache line of its own: the epoch of its current
//! resume, stored with one Relaxed store per resume (`WorkerLocal::resume`), and marked idle
//! when the worker parks. The monitor reads every worker's epoch once per tick and remembers
//! when it last changed; an epoch that is unchanged and running after a time slice is a
//! goroutine that has run that long. No counter is shared between workers, and the monitor
//! writes to a worker's line only to ask for a yield, so the resume path stays on lines the
//! worker owns (the monitor's periodic read costs the worker one cache miss per tick).
//!
//! # Requests name a resume
//!
//! A request holds the epoch of the resume it was made for, and [`Activity::is_requested`]
//! compares it with the worker's current epoch. Any suspension ends the resume, and the next
//! resume has a new epoch, so a request left over from a goroutine that suspended anyway (it
//! blocked, yielded, finished) is void without anyone clearing it: a goroutine never yields
//! twice for one request, and the next goroutine is not charged for its predecessor.
//!
//! # Sleeping
//!
//! While some worker is unparked the monitor wakes every quarter time slice (so a goroutine
//! is asked to yield after one to one and a quarter slices). When every worker is parked there is
//! nothing to watch: it sleeps without a deadline on its condvar, and a worker that wakes up
//! (`WorkerLocal::park`, after `Idle::after_wake`) wakes it. Why no such wake is lost: the
//! monitor stores `sleeping` (SeqCst) before it reads the unparked count (SeqCst load in
//! `Idle::all_parked`); a worker's return to the unparked count is a SeqCst read-modify-write
//! of that count (its own `after_wake`, or a producer's `notify_work` that happens before
//! the worker's `after_wake`, through the sleepers lock), after which the worker reads
//! `sleeping` (SeqCst). In the single total order of these operations either the monitor's
//! read comes after the worker's increment (it sees an unparked worker and does not sleep) or
//! the worker's read of `sleeping` comes after the monitor's store (it sees the monitor asleep
//! and wakes it, under the monitor's lock, which the monitor holds from its store until it
//! waits, so the notification cannot slip in between). While the stack arena holds stacks
//! that a trim will release (below), it sleeps one trim period at a time instead.
//!
//! # Stack memory
//!
//! Every [`STACK_TRIM_PERIOD`] it calls [`StackArena::trim`](crate::goroutine::stack::StackArena::trim),
//! which releases the memory of the stacks of finished goroutines that were not reused during
//! the whole period (beyond a thousand kept warm): Go's background scavenger, for stacks. A
//! finishing goroutine pays no system call, and a burst that finishes together is released a
//! region (64 stacks) per call, off the workers' threads.
//!
//! # What it does not do
//!
//! It never interrupts a goroutine: there is no signal-based preemption (design.md, rejected
//! designs). A goroutine that never reaches a checkpoint or a suspension point keeps its
//! worker; the request only counts it. When every worker computes, the goroutines waiting in
//! their deques wait too: spares are only for blocked workers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::shared::{Phase, Shared};
use super::stall::{StallCounts, StallWatch};

/// The default time slice: how long a goroutine runs before the monitor asks it to yield
/// (Go's `forcePreemptNS`).
pub(crate) const DEFAULT_TIME_SLICE: Duration = Duration::from_millis(10);

/// The shortest pause between two looks at the workers, whatever the time slice (Go's sysmon
/// sleeps at least 20 us).
const MIN_TICK: Duration = Duration::from_micros(20);

/// How often the monitor releases the memory of stacks left unused (module doc): a stack
/// unused for between one and two periods is released.
pub(crate) const STACK_TRIM_PERIOD: Duration = Duration::from_secs(1);

/// The running bit of a published epoch: set while the worker runs the resume the rest of
/// the value counts.
const RUNNING: u64 = 1;

/// The epoch of the resume after the one of `epoch`: the resume count is the value shifted
/// right by one, and the running bit stays set.
#[inline]
pub(crate) fn next_epoch(epoch: u64) -> u64 {
    epoch + 2
}

/// What one worker publishes about its progress, and the monitor's requests to it.
///
/// On a cache line of its own: written by the worker at every resume, read by the monitor
/// once per tick, written by the monitor only to request a yield.
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct Activity {
    /// `n << 1 | RUNNING` while the worker runs its `n`-th resume; `n << 1` once it parks
    /// after it. Written only by the owning worker.
    epoch: AtomicU64,
    /// The epoch of the resume the monitor asks to yield (0: none; a running epoch is never
    /// 0). Written only by the monitor, read by the worker in `checkpoint`.
    request: AtomicU64,
    /// The worker thread's CPU-time clock (`pthread_getcpuclockid`), or 0 (`CLOCK_REALTIME`,
    /// never a thread's clock) until the worker publishes it. With `tid`, tells a worker
    /// blocked in a system call from one that computes.
    clock: AtomicI32,
    /// The worker thread's kernel thread id, or 0 until the worker publishes it.
    tid: AtomicI32,
    /// The id of the goroutine the worker runs or ran last, 0 while it sleeps. Written only by
    /// the owning worker, at the start of each resume and when it parks (not at the end of a
    /// resume: the next one follows at once, unless the worker parks); read by the goroutine
    /// dump, which takes it as running only while the goroutine is not parked, and by the
    /// monitor's stall warnings, which look only at a resume under way.
    goroutine: AtomicU64,
}

impl Activity {
    /// The worker starts the resume of `epoch` (from [`next_epoch`]). Only the owning worker
    /// calls this.
    #[inline]
    pub(crate) fn resuming(&self, epoch: u64) {
        debug_assert!(epoch & RUNNING != 0);
        // Relaxed: a progress hint for the monitor, which publishes nothing through it; the
        // worker's own later reads (`is_requested`) are ordered by program order.
        self.epoch.store(epoch, Ordering::Relaxed);
    }

    /// The worker, whose last resume was that of `epoch`, is about to park. Only the owning
    /// worker calls this.
    pub(crate) fn parking(&self, epoch: u64) {
        // Relaxed: as in `resuming`.
        self.epoch.store(epoch & !RUNNING, Ordering::Relaxed);
        self.set_goroutine(0);
    }

    /// The worker runs goroutine `id` from now on (0: none). Only the owning worker calls this.
    #[inline]
    pub(crate) fn set_goroutine(&self, id: u64) {
        // Relaxed: a snapshot for the dump and the monitor, which publish nothing through it.
        self.goroutine.store(id, Ordering::Relaxed);
    }

    /// The goroutine the worker runs, if any: a snapshot.
    pub(crate) fn goroutine(&self) -> Option<u64> {
        // Relaxed: see `set_goroutine`.
        Some(self.goroutine.load(Ordering::Relaxed)).filter(|&id| id != 0)
    }

    /// Whether the worker's published state is still the running resume of `epoch` (it has
    /// not parked since). Only the owning worker calls this.
    #[inline]
    pub(crate) fn is_running(&self, epoch: u64) -> bool {
        // Relaxed: only the calling worker writes `epoch`, so it reads its own last store.
        self.epoch.load(Ordering::Relaxed) == epoch
    }

    /// Whether the monitor asked the resume of `epoch`, the worker's current one, to yield.
    #[inline]
    pub(crate) fn is_requested(&self, epoch: u64) -> bool {
        // Relaxed: the request carries no data; coherence makes the monitor's store visible
        // to this loop soon, and a request for another resume compares unequal.
        self.request.load(Ordering::Relaxed) == epoch
    }

    /// The epoch a new occupant of this worker's slot counts its resumes from
    /// (`RUNNING` alone, never published as running, for a new slot): the last one an earlier occupant (a retired spare)
    /// published, so that every resume of the new one has an epoch the monitor has not seen.
    pub(crate) fn first_epoch(&self) -> u64 {
        self.epoch() | RUNNING
    }

    /// Publishes the calling thread's CPU-time clock and thread id: called by the worker
    /// thread before it runs anything.
    pub(crate) fn publish_thread(&self) {
        // SAFETY: `gettid` has no preconditions.
        let tid = unsafe { libc::gettid() };
        // Relaxed: until the monitor sees it, it reads 0 and judges nothing.
        self.tid.store(tid, Ordering::Relaxed);
        let mut clock: libc::clockid_t = 0;
        // SAFETY: `pthread_self` is the calling thread, alive; `clock` is a valid out pointer.
        let err = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) };
        if err == 0 {
            // Relaxed: as `tid`.
            self.clock.store(clock, Ordering::Relaxed);
        }
    }

    /// Whether the worker thread sleeps in the kernel right now (state `S` or `D` in
    /// `/proc`): waiting in a system call, not computing and not merely waiting for a CPU
    /// (`R`). `None` when the system does not tell (no `/proc`).
    fn thread_sleeps(&self) -> Option<bool> {
        // Relaxed: see `publish_thread`.
        let tid = self.tid.load(Ordering::Relaxed);
        if tid == 0 {
            return Some(false);
        }
        let stat = std::fs::read(format!("/proc/self/task/{tid}/stat")).ok()?;
        // `pid (comm) state ...`: the state follows the last ')', as comm may hold one.
        let close = stat.iter().rposition(|&b| b == b')')?;
        Some(matches!(stat.get(close + 2), Some(b'S' | b'D')))
    }

    /// CPU time the worker thread has used, if its clock is known.
    fn cpu_time(&self) -> Option<Duration> {
        // Relaxed: see `publish_clock`.
        let clock = self.clock.load(Ordering::Relaxed);
        if clock == 0 {
            return None;
        }
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid out pointer. A clock of a thread that has exited (a retired
        // spare's, read before its successor published its own) makes the call fail, which
        // is checked.
        if unsafe { libc::clock_gettime(clock, &mut now) } != 0 {
            return None;
        }
        Some(Duration::new(
            u64::try_from(now.tv_sec).ok()?,
            u32::try_from(now.tv_nsec).ok()?,
        ))
    }

    fn epoch(&self) -> u64 {
        // Relaxed: see `resuming`. A stale value only delays the monitor's verdict by a tick,
        // or makes it request a yield from a resume that has just ended (a void request).
        self.epoch.load(Ordering::Relaxed)
    }

    fn request(&self, epoch: u64) {
        // Relaxed: see `is_requested`.
        self.request.store(epoch, Ordering::Relaxed);
    }
}

/// The monitor's shared half: its settings, its sleep, and its counter.
pub(crate) struct Monitor {
    time_slice: Duration,
    /// Set by the monitor while it sleeps with no deadline (every worker parked); a worker
    /// that wakes up and finds it set wakes the monitor. SeqCst: see the module doc.
    sleeping: AtomicBool,
    lock: Mutex<()>,
    wakeup: Condvar,
    /// Yield requests made so far. Written only by the monitor thread.
    preemption_requests: AtomicU64,
    /// The stall threshold (`None`: warnings off), and whether the builder set it.
    stall_setting: (Option<Duration>, bool),
    /// Stall incidents so far (`super::stall`).
    pub(crate) stalls: StallCounts,
}

impl Monitor {
    /// `stall_setting`: the stall threshold (`None`: warnings off) and whether the builder
    /// set it explicitly (`super::stall`).
    pub(crate) fn new(time_slice: Duration, stall_setting: (Option<Duration>, bool)) -> Monitor {
        Monitor {
            time_slice,
            sleeping: AtomicBool::new(false),
            lock: Mutex::new(()),
            wakeup: Condvar::new(),
            preemption_requests: AtomicU64::new(0),
            stall_setting,
            stalls: StallCounts::default(),
        }
    }

    /// How many times the monitor asked a goroutine to yield.
    pub(crate) fn preemption_requests(&self) -> u64 {
        // Relaxed: a statistic; it orders nothing.
        self.preemption_requests.load(Ordering::Relaxed)
    }

    /// Called by a worker that is unparked again: wakes the monitor if it sleeps for good.
    #[inline]
    pub(crate) fn worker_awake(&self) {
        // SeqCst: the Dekker pair with the monitor's store and its read of the unparked count
        // (module doc).
        if self.sleeping.load(Ordering::SeqCst) {
            self.wake();
        }
    }

    /// Wakes the monitor from any sleep, so it looks at the workers and the phase now.
    pub(crate) fn wake(&self) {
        let _lock = self.lock.lock();
        // Under the lock, which the monitor holds from its own store of `true` until it
        // waits; SeqCst to stay in the order of the module doc.
        self.sleeping.store(false, Ordering::SeqCst);
        self.wakeup.notify_one();
    }

    /// The monitor's pause between looks. Returns false once the runtime stops.
    fn pause(&self, shared: &Shared) -> bool {
        let mut lock = self.lock.lock();
        // Checked under the lock: `set_phase` stores the phase before it calls `wake`, which
        // takes this lock, so the monitor either sees STOPPING here or is notified below.
        if shared.phase() == Phase::Stopping {
            return false;
        }
        // SeqCst: see the module doc.
        self.sleeping.store(true, Ordering::SeqCst);
        if shared.idle.all_parked() {
            if shared.stacks.has_surplus() {
                // Nothing runs, but stack memory waits for a trim: sleep until a worker wakes
                // up, or one period.
                self.wakeup.wait_for(&mut lock, STACK_TRIM_PERIOD);
                return true;
            }
            // Nothing runs: sleep until a worker wakes up (or the runtime stops).
            while self.sleeping.load(Ordering::SeqCst) {
                self.wakeup.wait(&mut lock);
            }
        } else {
            self.sleeping.store(false, Ordering::SeqCst);
            let tick = (self.time_slice / 4).max(MIN_TICK);
            self.wakeup.wait_for(&mut lock, tick);
        }
        true
    }
}

/// What the monitor last saw of one worker.
struct Seen {
    epoch: u64,
    /// When the monitor first saw `epoch`.
    since: Instant,
    /// Whether it already asked this resume to yield.
    requested: bool,
    /// Whether this resume was counted as a stall incident already.
    stalled: bool,
    /// The worker thread's CPU time at the previous tick of this resume, and when it was
    /// read: read only once the resume has run a whole slice.
    cpu: Option<(Duration, Instant)>,
}

impl Seen {
    fn new(epoch: u64, now: Instant) -> Seen {
        Seen {
            epoch,
            since: now,
            requested: false,
            stalled: false,
            cpu: None,
        }
    }

    /// Whether the worker, which has run the same resume for a whole slice, is blocked: it
    /// used less than a quarter of the time since the previous tick on a CPU, and its thread
    /// sleeps in the kernel now (a system call, a lock, a sleep), rather than computing or
    /// waiting for a CPU on a loaded machine. Unknown (false) on the first such tick.
    fn is_blocked(&mut self, activity: &Activity, now: Instant) -> bool {
        let Some(cpu) = activity.cpu_time() else {
            return false;
        };
        match self.cpu.replace((cpu, now)) {
            Some((before, then)) => {
                let wall = now.duration_since(then);
                // Without `/proc`, the CPU time alone decides.
                !wall.is_zero()
                    && cpu.saturating_sub(before) * 4 < wall
                    && activity.thread_sleeps().unwrap_or(true)
            }
            None => false,
        }
    }
}

/// The monitor thread's body: looks at the workers every tick until the runtime stops.
pub(crate) fn run(shared: Arc<Shared>) {
    let _census = crate::wait::census::crate_thread(shared.census_id());
    let monitor = &shared.monitor;
    let mut stalls = StallWatch::new(monitor.stall_setting.0, monitor.stall_setting.1);
    let now = Instant::now();
    let mut seen: Vec<Seen> = shared
        .remotes
        .iter()
        .map(|remote| Seen::new(remote.activity.epoch(), now))
        .collect();
    let mut last_trim = now;
    while monitor.pause(&shared) {
        let now = Instant::now();
        shared.clock.refresh();
        if now.duration_since(last_trim) >= STACK_TRIM_PERIOD {
            last_trim = now;
            shared.stacks.trim();
        }
        // A spare that retired drains its shard of the registry no more: goroutines it
        // spawned that finish elsewhere would wait there until the slot's next spare.
        for (index, remote) in shared.remotes.iter().enumerate().skip(shared.procs) {
            if !remote.is_occupied() {
                shared.registry.drain(index);
            }
        }
        let mut blocked = 0;
        let slots = shared.steal_slots();
        for (index, (remote, seen)) in shared.remotes[..slots].iter().zip(&mut seen).enumerate() {
            let epoch = remote.activity.epoch();
            if epoch != seen.epoch || epoch & RUNNING == 0 {
                *seen = Seen::new(epoch, now);
                continue;
            }
            if now.duration_since(seen.since) < monitor.time_slice {
                continue;
            }
            // One goroutine has run for a whole slice without suspending.
            if !seen.requested {
                seen.requested = true;
                remote.activity.request(epoch);
                let count = monitor.preemption_requests.load(Ordering::Relaxed);
                // Relaxed: only this thread writes it; readers want a statistic.
                monitor
                    .preemption_requests
                    .store(count + 1, Ordering::Relaxed);
            }
            let is_blocked = seen.is_blocked(&remote.activity, now);
            if is_blocked {
                blocked += 1;
            }
            // Held long enough to be a stall, if goroutines wait behind it: say so, once.
            if !seen.stalled {
                let lasted = now.duration_since(seen.since);
                seen.stalled = stalls.check(&shared, index, lasted, is_blocked);
            }
            // Its goroutines waiting for I/O would wait for its next look at its poller,
            // which comes with its picks, maybe a slice apart: look for it, as Go's sysmon
            // polls the network when nobody has for 10 ms. The wakes go to its inbox, which
            // it drains at its next pick.
            if let Some(poller) = remote.poller.get()
                && poller.has_waiters()
            {
                poller.try_poll_now();
            }
            // Its worker may be blocked in a system call, or compute for long: the goroutines
            // that have not started in its deque would wait for it. `notify_work` is what a
            // producer calls after it published stealable work, and calling it again is always
            // allowed (it wakes a parked worker as a searcher only if nobody searches, and the
            // searcher either takes work or parks after its final look), so it keeps the idle
            // protocol's invariants. It is needed because that protocol counts the stuck
            // worker as awake: work it moved into its own deque (a batch from the injector or
            // from a victim) after another worker's final look has no one else to take it.
            if !remote.stealer.is_empty() {
                shared.notify_work();
            }
        }
        if blocked > 0 && shared.has_stealable_work() {
            // A worker blocked in a system call runs nothing: wake a parked worker for the
            // queued goroutines even if `procs` count as awake, or, with none parked, start a
            // spare (module doc of `super::spare`).
            if let Some(index) = shared.idle.notify_for_blocked() {
                shared.unpark_worker(index);
            } else if wants_spare(&shared, blocked) {
                shared.spares.start(&shared);
            }
        }
    }
}

/// The rule for starting a spare worker (`super::spare`), on a tick that found `blocked`
/// workers blocked in the middle of a resume and goroutines waiting in a queue a spare could
/// take them from: no worker is parked (one would be woken for them instead), and fewer than
/// `procs` workers are left that are not blocked.
fn wants_spare(shared: &Shared, blocked: usize) -> bool {
    let workers = shared.procs + shared.spares.occupied();
    shared.idle.unparked() >= workers && workers - blocked.min(workers) < shared.procs
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::goroutine::task::{Origin, Runnable, Task};
    use crate::sched::current;
    use crate::sched::join_handle::JoinHandle;

    /// How long the tests below wait for what the monitor should do within a few time slices.
    const LIMIT: Duration = Duration::from_secs(10);

    /// Spawns `f` onto the calling goroutine's deque as `spawn` does, but wakes no idle worker
    /// for it: the state the idle protocol leaves behind when a worker moves a batch of
    /// goroutines into its own deque after the others have had their final look.
    fn spawn_unannounced<F: FnOnce() + Send + 'static>(f: F) -> JoinHandle<()> {
        current::with_worker(|worker| {
            let worker = worker.expect("called inside a goroutine");
            worker.reserve_stack().expect("a stack for the goroutine");
            let id = worker.count_spawned();
            let shard = worker.index();
            let task = Task::new(
                Arc::as_ptr(worker.shared()).cast(),
                id,
                Origin::here(),
                shard,
                f,
            );
            worker.shared().registry.insert(task.header());
            let handle = JoinHandle::new(task.clone());
            worker.push_unannounced(task);
            handle
        })
    }

    /// Runs `body` on a thread that has published itself in an `Activity`, and returns the
    /// activity once it has; the thread ends when `body` returns.
    fn published_thread(
        body: impl FnOnce() + Send + 'static,
    ) -> (Arc<Activity>, std::thread::JoinHandle<()>) {
        let activity = Arc::new(Activity::default());
        let (ready_tx, ready_rx) = mpsc::channel();
        let published = activity.clone();
        let thread = std::thread::spawn(move || {
            published.publish_thread();
            ready_tx.send(()).unwrap();
            body();
        });
        ready_rx.recv().unwrap();
        (activity, thread)
    }

    #[test]
    fn a_thread_waiting_in_the_kernel_is_judged_blocked() {
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (activity, thread) = published_thread(move || {
            let _ = release_rx.recv();
        });
        let deadline = Instant::now() + LIMIT;
        while activity.thread_sleeps() != Some(true) {
            assert!(
                Instant::now() < deadline,
                "the thread never showed as asleep"
            );
            std::thread::yield_now();
        }
        let mut seen = Seen::new(1, Instant::now());
        assert!(
            !seen.is_blocked(&activity, Instant::now()),
            "the first look only takes the CPU time"
        );
        let mut blocked = false;
        while !blocked {
            assert!(
                Instant::now() < deadline,
                "a waiting thread was never judged blocked"
            );
            std::thread::sleep(Duration::from_millis(2));
            blocked = seen.is_blocked(&activity, Instant::now());
        }
        release_tx.send(()).unwrap();
        thread.join().unwrap();
    }

    #[test]
    fn a_thread_that_computes_is_not_judged_blocked() {
        let stop = Arc::new(AtomicBool::new(false));
        let stop_in = stop.clone();
        let (activity, thread) = published_thread(move || {
            let mut x = 1_u64;
            // Relaxed: a stop flag; the join orders the rest.
            while !stop_in.load(Ordering::Relaxed) {
                x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005) + 1);
            }
        });
        let mut seen = Seen::new(1, Instant::now());
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(2));
            assert!(
                !seen.is_blocked(&activity, Instant::now()),
                "a thread that computes was judged blocked"
            );
        }
        stop.store(true, Ordering::Relaxed);
        thread.join().unwrap();
    }

    #[test]
    fn requests_name_one_resume() {
        let activity = Activity::default();
        let first = next_epoch(activity.first_epoch());
        activity.resuming(first);
        assert_ne!(activity.epoch() & RUNNING, 0, "running");
        assert!(!activity.is_requested(first), "no request yet");
        activity.request(activity.epoch());
        assert!(activity.is_requested(first));
        // The goroutine suspended and another resume began: the request is void.
        let second = next_epoch(first);
        activity.resuming(second);
        assert!(!activity.is_requested(second));
        activity.parking(second);
        assert_eq!(
            activity.epoch() & RUNNING,
            0,
            "a parked worker runs nothing"
        );
        assert!(!activity.is_requested(0), "0 is no request");
    }

    #[test]
    fn monitor_wakes_a_worker_for_goroutines_queued_behind_a_stuck_one() {
        let rt = crate::Runtime::builder().procs(2).build().unwrap();
        let received = rt.block_on(|| {
            let (shared, index) = current::with_worker(|w| {
                let worker = w.expect("in a goroutine");
                (worker.shared().clone(), worker.index())
            });
            let other = 1 - index;
            // Once the other worker sleeps, only a wake makes it look at our deque.
            let deadline = Instant::now() + LIMIT;
            while !shared.remotes[other].parker.is_parked_forever() {
                assert!(Instant::now() < deadline, "the other worker never slept");
                std::thread::yield_now();
            }
            let (tx, rx) = mpsc::channel();
            let handles: Vec<JoinHandle<()>> = (0..4)
                .map(|i| {
                    let tx = tx.clone();
                    spawn_unannounced(move || {
                        let _ = tx.send(i);
                    })
                })
                .collect();
            // Block this worker's thread: the goroutines can only run on the other worker.
            let mut received: Vec<i32> = (0..4)
                .map(|_| {
                    rx.recv_timeout(LIMIT)
                        .expect("nobody ran the goroutines queued behind the stuck worker")
                })
                .collect();
            for handle in handles {
                handle.join().unwrap();
            }
            received.sort();
            received
        });
        assert_eq!(received, [0, 1, 2, 3]);
        assert!(
            rt.preemption_requests() > 0,
            "the stuck goroutine was noticed"
        );
    }
}
