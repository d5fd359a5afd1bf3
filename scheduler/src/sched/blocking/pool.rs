//! The pool itself: its queue, its threads' loop, and how it closes.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::job::JobRef;
use crate::sched::Shared;
use crate::sched::deadlock;
use crate::sched::spawn_error::SpawnError;

/// The most blocking threads a runtime starts unless [`Builder::max_blocking_threads`] says
/// otherwise.
///
/// [`Builder::max_blocking_threads`]: crate::Builder::max_blocking_threads
pub(crate) const DEFAULT_MAX_THREADS: usize = 512;

/// How long a blocking thread waits idle before it exits, unless
/// [`Builder::blocking_keep_alive`](crate::Builder::blocking_keep_alive) says otherwise.
pub(crate) const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// The name of every pool thread (the kernel shows its first 15 bytes, `scheduler-block`).
const THREAD_NAME: &str = "scheduler-blocking";

/// The pool's settings, fixed when the runtime is built.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    /// At least 1 (checked by the builder).
    pub(crate) max_threads: usize,
    pub(crate) keep_alive: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_threads: DEFAULT_MAX_THREADS,
            keep_alive: DEFAULT_KEEP_ALIVE,
        }
    }
}

/// The size of a pool at one instant, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolStats {
    /// Threads started and not retired: running a job or idle.
    pub(crate) threads: usize,
    /// Threads running a job.
    pub(crate) busy: usize,
    /// Jobs waiting for a thread.
    pub(crate) queued: usize,
}

/// What [`Pool::quiet`] saw: how many threads, and a version that changes whenever a job is
/// submitted or a thread retires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quiet {
    pub(crate) threads: usize,
    epoch: u64,
}

/// The runtime's blocking pool. Lives in [`Shared`]; its threads hold an `Arc<Shared>`.
pub(crate) struct Pool {
    config: Config,
    state: Mutex<State>,
    /// Idle threads wait here to be claimed, until their keep-alive passes or the pool closes.
    work: Condvar,
    /// [`close_and_join`](Self::close_and_join) waits here for `running` and the queue to
    /// reach zero; notified by the thread that makes them so.
    drained: Condvar,
}

/// Everything under the pool's lock.
struct State {
    /// Jobs not started yet, oldest first.
    queue: VecDeque<JobRef>,
    /// Threads started and not retired.
    threads: Vec<thread::JoinHandle<()>>,
    /// Threads that retired (or are about to exit) and were not joined yet.
    retired: Vec<thread::JoinHandle<()>>,
    /// Threads waiting on `work` that no submitter has claimed.
    idle: usize,
    /// Claims not yet taken: a submitter that claims an idle thread adds one, the first woken
    /// thread takes it.
    wakes: usize,
    /// Jobs running now.
    running: usize,
    /// Incremented on every submit and every retirement (see [`Quiet`]).
    epoch: u64,
    /// Set by the shutdown (or a detached runtime's end): no submit is accepted, idle threads
    /// exit once the queue is empty.
    closed: bool,
}

impl Pool {
    pub(crate) fn new(config: Config) -> Pool {
        Pool {
            config,
            state: Mutex::new(State {
                queue: VecDeque::new(),
                threads: Vec::new(),
                retired: Vec::new(),
                idle: 0,
                wakes: 0,
                running: 0,
                epoch: 0,
                closed: false,
            }),
            work: Condvar::new(),
            drained: Condvar::new(),
        }
    }

    /// Threads alive, threads busy, jobs queued.
    pub(crate) fn stats(&self) -> PoolStats {
        let state = self.state.lock();
        PoolStats {
            threads: state.threads.len(),
            busy: state.running,
            queued: state.queue.len(),
        }
    }

    /// Queues `job`, and claims an idle thread for it or starts one if the maximum allows.
    pub(super) fn submit(&self, shared: &Arc<Shared>, job: JobRef) -> Result<(), SpawnError> {
        let mut state = self.state.lock();
        if state.closed {
            return Err(SpawnError::ShuttingDown);
        }
        if state.idle > 0 {
            state.idle -= 1;
            state.wakes += 1;
            self.work.notify_one();
        } else if state.threads.len() < self.config.max_threads
            && let Err(err) = start_thread(&mut state, shared)
            // With a thread left, that one takes the job when it is done with its own.
            && state.threads.is_empty()
        {
            return Err(SpawnError::BlockingThread(err));
        }
        state.queue.push_back(job);
        state.epoch += 1;
        Ok(())
    }

    /// For the deadlock check: `None` while a job runs or waits; otherwise the number of pool
    /// threads in the process, after joining the retired ones (so that none of them is still
    /// on its way out).
    pub(crate) fn quiet(&self) -> Option<Quiet> {
        let mut state = self.state.lock();
        if state.running > 0 || !state.queue.is_empty() {
            return None;
        }
        let retired = std::mem::take(&mut state.retired);
        let quiet = Quiet {
            threads: state.threads.len(),
            epoch: state.epoch,
        };
        drop(state);
        join_all(retired);
        Some(quiet)
    }

    /// Waits until no job runs or waits, or until `deadline`; then closes the pool, drops the
    /// jobs still queued (their `join` returns `Cancelled`) and joins every thread, which
    /// waits for the jobs still running. Returns the number of jobs unfinished at the deadline
    /// (running or queued). Called by the shutdown once no goroutine is left.
    pub(crate) fn close_and_join(&self, deadline: Option<Instant>) -> usize {
        let mut state = self.state.lock();
        let mut unfinished = 0;
        while state.running > 0 || !state.queue.is_empty() {
            match deadline {
                Some(deadline) => {
                    if self.drained.wait_until(&mut state, deadline).timed_out() {
                        unfinished = state.running + state.queue.len();
                        break;
                    }
                }
                None => self.drained.wait(&mut state),
            }
        }
        state.closed = true;
        let cancelled: Vec<JobRef> = state.queue.drain(..).collect();
        let mut threads = std::mem::take(&mut state.threads);
        threads.append(&mut state.retired);
        drop(state);
        self.work.notify_all();
        for job in cancelled {
            job.cancel();
        }
        join_all(threads);
        unfinished
    }

    /// Whether the calling thread is one of this pool's (running a job: the only code of the
    /// runtime's users that runs there).
    pub(crate) fn is_current_thread(&self) -> bool {
        let me = thread::current().id();
        self.state
            .lock()
            .threads
            .iter()
            .any(|h| h.thread().id() == me)
    }

    /// Closes the pool of a detached runtime whose last goroutine finished: the threads run
    /// what is queued and exit by themselves; nobody joins them.
    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
        self.work.notify_all();
    }
}

/// Starts a pool thread; under the lock, so that its handle is in `threads` before it can
/// look at the pool (and before the deadlock check can count it).
fn start_thread(state: &mut State, shared: &Arc<Shared>) -> io::Result<()> {
    let shared = shared.clone();
    let handle = thread::Builder::new()
        .name(THREAD_NAME.to_owned())
        .spawn(move || run_thread(shared))?;
    state.threads.push(handle);
    Ok(())
}

/// Joins pool threads that are exiting or about to. A pool thread never panics (jobs run under
/// `catch_unwind`), so there is no error to report.
fn join_all(handles: Vec<thread::JoinHandle<()>>) {
    for handle in handles {
        let _ = handle.join();
    }
}

/// Why an idle thread stopped waiting.
enum Woken {
    /// A submitter claimed it (or another thread's claim, which it took in that one's place).
    Claimed,
    Closed,
    TimedOut,
}

/// The loop of a pool thread: run queued jobs, idle, retire.
fn run_thread(shared: Arc<Shared>) {
    let _census = crate::wait::census::crate_thread(shared.census_id());
    let pool = &shared.blocking;
    let mut state = pool.state.lock();
    loop {
        if let Some(job) = state.queue.pop_front() {
            state.running += 1;
            // The job is dropped out of the lock too: with a detached handle, that drops the
            // result, whose destructor may do anything, submitting a job included.
            MutexGuard::unlocked(&mut state, move || {
                job.run();
                drop(job);
            });
            state.running -= 1;
            if state.running == 0 && state.queue.is_empty() {
                pool.drained.notify_all();
                MutexGuard::unlocked(&mut state, || poke(&shared));
            }
            continue;
        }
        if state.closed {
            // The closer took our handle and joins us (in a detached runtime, nobody does).
            return;
        }
        match wait_idle(pool, &mut state) {
            Woken::Claimed | Woken::Closed => continue,
            // A job may have come with another thread's claim: take it rather than retire.
            Woken::TimedOut if !state.queue.is_empty() => continue,
            Woken::TimedOut => break,
        }
    }
    // Retire: hand our own handle to whoever joins next, and join those who retired before.
    let me = thread::current().id();
    let position = state
        .threads
        .iter()
        .position(|h| h.thread().id() == me)
        .expect("scheduler: internal error: a blocking thread lost its handle");
    let handle = state.threads.swap_remove(position);
    let older = std::mem::replace(&mut state.retired, vec![handle]);
    state.epoch += 1;
    drop(state);
    join_all(older);
    poke(&shared);
}

/// Waits on `work` as an idle thread until claimed, closed or the keep-alive passes.
fn wait_idle(pool: &Pool, state: &mut MutexGuard<'_, State>) -> Woken {
    state.idle += 1;
    // A keep-alive too long to add to `now` never ends.
    let deadline = Instant::now().checked_add(pool.config.keep_alive);
    loop {
        let timed_out = match deadline {
            Some(deadline) => pool.work.wait_until(state, deadline).timed_out(),
            None => {
                pool.work.wait(state);
                false
            }
        };
        if state.wakes > 0 {
            // The claimer took our `idle` count already.
            state.wakes -= 1;
            return Woken::Claimed;
        }
        if state.closed {
            state.idle -= 1;
            return Woken::Closed;
        }
        if timed_out {
            state.idle -= 1;
            return Woken::TimedOut;
        }
    }
}

/// The pool went quiet or shrank: if every worker sleeps for good, ask the `block_on` callers
/// watching this runtime to check for a deadlock again (see the module doc).
fn poke(shared: &Shared) {
    if deadlock::all_asleep(shared) {
        shared.deadlock.stalled();
    }
}

/// The pool on plain threads, with a runtime's shared state but no workers and no goroutine,
/// so that Miri can run them: every `join` here blocks the test's thread.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::goroutine::stack::MIN_STACK_SIZE;
    use crate::sched::blocking::spawn;
    use std::sync::mpsc;

    /// A runtime's shared state without a single worker (not even a deque: dropping one makes
    /// Miri warn about crossbeam-epoch's integer-to-pointer casts).
    fn shared(max_threads: usize, keep_alive: Duration) -> Arc<Shared> {
        let config = Config {
            max_threads,
            keep_alive,
        };
        // A runtime without workers: only its blocking pool is used here.
        let runtime = crate::sched::config::Config {
            procs: 0,
            max_spare_workers: 0,
            stack_size: MIN_STACK_SIZE,
            max_goroutines: None,
            blocking: config,
            time_slice: crate::sched::monitor::DEFAULT_TIME_SLICE,
            stall_warnings: (None, true),
            trace: false,
        };
        Arc::new(Shared::new(&runtime, Vec::new(), Vec::new()))
    }

    /// Polls the pool until `cond` holds (a pool thread gets there on its own, with nothing to
    /// signal it); fails after a minute.
    fn until(shared: &Shared, what: &str, cond: impl Fn(&State) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !cond(&shared.blocking.state.lock()) {
            assert!(Instant::now() < deadline, "{what}: not true after a minute");
            thread::yield_now();
        }
    }

    /// A job that blocks until `gate` is dropped (or sent to), and reports that it started.
    fn gated(
        started: &mpsc::Sender<()>,
        gate: &Arc<Mutex<Option<mpsc::Receiver<()>>>>,
    ) -> impl FnOnce() + Send + 'static {
        let (started, gate) = (started.clone(), gate.clone());
        move || {
            started.send(()).unwrap();
            let rx = gate.lock().take().expect("one gated job at a time");
            let _ = rx.recv();
        }
    }

    #[test]
    fn join_returns_the_value_or_the_panic() {
        let shared = shared(2, DEFAULT_KEEP_ALIVE);
        let ok = spawn(&shared, || 6 * 7).unwrap();
        let bad = spawn(&shared, || -> u32 { panic!("boom") }).unwrap();
        assert_eq!(ok.join().unwrap(), 42);
        let payload = bad.join().unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
        assert_eq!(shared.blocking.close_and_join(None), 0);
    }

    #[test]
    fn jobs_beyond_the_maximum_wait_their_turn_in_order() {
        let shared = shared(1, DEFAULT_KEEP_ALIVE);
        let (started_tx, started) = mpsc::channel();
        let (open, gate) = mpsc::channel();
        let gate = Arc::new(Mutex::new(Some(gate)));
        let first = spawn(&shared, gated(&started_tx, &gate)).unwrap();
        started.recv().unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let queued: Vec<_> = (0..3)
            .map(|i| {
                let order = order.clone();
                spawn(&shared, move || order.lock().push(i)).unwrap()
            })
            .collect();
        let stats = shared.blocking.stats();
        assert_eq!((stats.threads, stats.busy, stats.queued), (1, 1, 3));
        drop(open);
        first.join().unwrap();
        for handle in queued {
            handle.join().unwrap();
        }
        assert_eq!(*order.lock(), [0, 1, 2]);
        assert_eq!(shared.blocking.close_and_join(None), 0);
    }

    #[test]
    fn a_burst_does_not_count_on_one_idle_thread() {
        let shared = shared(2, DEFAULT_KEEP_ALIVE);
        spawn(&shared, || ()).unwrap().join().unwrap();
        until(&shared, "the first thread idles", |s| s.idle == 1);
        // Both jobs wait for each other: they finish only if each has a thread of its own.
        let both = Arc::new(std::sync::Barrier::new(2));
        let jobs: Vec<_> = (0..2)
            .map(|_| {
                let both = both.clone();
                spawn(&shared, move || {
                    both.wait();
                })
                .unwrap()
            })
            .collect();
        for job in jobs {
            job.join().unwrap();
        }
        assert_eq!(shared.blocking.stats().threads, 2);
        assert_eq!(shared.blocking.close_and_join(None), 0);
    }

    #[test]
    fn idle_threads_retire_after_the_keep_alive() {
        let shared = shared(4, Duration::from_millis(1));
        let jobs: Vec<_> = (0..3).map(|i| spawn(&shared, move || i).unwrap()).collect();
        let sum: i32 = jobs.into_iter().map(|j| j.join().unwrap()).sum();
        assert_eq!(sum, 3);
        until(&shared, "every thread retired", |s| s.threads.is_empty());
        let quiet = shared.blocking.quiet().expect("no job runs");
        assert_eq!(quiet.threads, 0);
        assert!(
            shared.blocking.state.lock().retired.is_empty(),
            "quiet joins the retired"
        );
        // The pool starts threads again when needed.
        assert_eq!(spawn(&shared, || 7).unwrap().join().unwrap(), 7);
        assert_eq!(shared.blocking.close_and_join(None), 0);
    }

    #[test]
    fn quiet_only_while_no_job_runs_or_waits() {
        let shared = shared(1, DEFAULT_KEEP_ALIVE);
        assert_eq!(shared.blocking.quiet().map(|q| q.threads), Some(0));
        let (started_tx, started) = mpsc::channel();
        let (open, gate) = mpsc::channel();
        let gate = Arc::new(Mutex::new(Some(gate)));
        let before = shared.blocking.quiet().expect("no job yet");
        let job = spawn(&shared, gated(&started_tx, &gate)).unwrap();
        started.recv().unwrap();
        assert_eq!(shared.blocking.quiet(), None);
        drop(open);
        job.join().unwrap();
        until(&shared, "the job's thread is done with it", |s| {
            s.running == 0
        });
        let after = shared.blocking.quiet().expect("no job runs");
        assert_eq!(after.threads, 1);
        assert_ne!(after.epoch, before.epoch, "a submit changes the version");
        assert_eq!(
            shared.blocking.quiet(),
            Some(after),
            "nothing changed since"
        );
        assert_eq!(shared.blocking.close_and_join(None), 0);
    }

    #[test]
    fn close_past_the_deadline_cancels_queued_jobs_and_awaits_running_ones() {
        let shared = shared(1, DEFAULT_KEEP_ALIVE);
        let (started_tx, started) = mpsc::channel();
        let (open, gate) = mpsc::channel();
        let gate = Arc::new(Mutex::new(Some(gate)));
        let running = spawn(&shared, gated(&started_tx, &gate)).unwrap();
        started.recv().unwrap();
        let queued: Vec<_> = (0..2).map(|i| spawn(&shared, move || i).unwrap()).collect();
        thread::scope(|s| {
            let closer = s.spawn(|| shared.blocking.close_and_join(Some(Instant::now())));
            for job in queued {
                let payload = job.join().unwrap_err();
                assert!(payload.is::<crate::wait::Cancelled>());
            }
            assert!(!closer.is_finished(), "the running job holds the close");
            drop(open);
            assert_eq!(closer.join().unwrap(), 3, "one running and two queued");
        });
        running.join().unwrap();
        assert!(matches!(
            spawn(&shared, || ()),
            Err(SpawnError::ShuttingDown)
        ));
        let stats = shared.blocking.stats();
        assert_eq!((stats.threads, stats.busy, stats.queued), (0, 0, 0));
    }
}
