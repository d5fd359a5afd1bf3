//! `spawn_blocking`: work that blocks its OS thread runs on the runtime's blocking pool, and
//! only the goroutine that joins it waits.
//!
//! Several tests count the process's `scheduler-blocking` threads (the kernel shows
//! `scheduler-block`), so every test here holds [`SERIAL`]: no other test of this process
//! starts or ends pool threads meanwhile. Worker threads of other test files live in other
//! processes.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, MutexGuard, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use scheduler::{Cancelled, Runtime, SpawnError, WaitGroup};
use scheduler_tests::{
    HANG_LIMIT, expect_panic, panic_message, runtime, thread_names, watchdog, worker_thread_count,
};

/// Held by every test of this file (see the module doc).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    // A test that failed while holding it leaves nothing behind that matters to the others.
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// How many threads of the blocking pools of this process exist now.
fn blocking_threads() -> usize {
    thread_names()
        .iter()
        .filter(|name| name.as_str() == "scheduler-block")
        .count()
}

/// Polls `count` until it equals `expected`, failing after [`HANG_LIMIT`]. Threads are
/// observed to go, with a bound that turns "never" into a failure: a joined thread may linger
/// in `/proc/self/task` for a moment after `pthread_join` returned.
fn settle(what: &str, expected: usize, count: impl Fn() -> usize) {
    let deadline = Instant::now() + HANG_LIMIT;
    loop {
        let now = count();
        if now == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {now} instead of {expected} after {HANG_LIMIT:?}"
        );
        thread::yield_now();
    }
}

fn builder(procs: usize) -> scheduler::Builder {
    Runtime::builder().procs(procs)
}

#[test]
fn a_blocking_job_does_not_stall_the_other_goroutines_of_its_worker() {
    const JOB: Duration = Duration::from_millis(200);
    const PERIOD: Duration = Duration::from_millis(10);
    let _serial = serial();
    let (window, ticks) = watchdog("blocking job beside a ticker", HANG_LIMIT, || {
        // One worker: a job that blocked it would stop the ticker too.
        let rt = runtime(1);
        rt.block_on(|| {
            let done = Arc::new(AtomicBool::new(false));
            let stop = done.clone();
            let ticker = scheduler::spawn(move || {
                let tick = scheduler::time::tick(PERIOD);
                let mut at = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    at.push(tick.recv().unwrap());
                }
                at
            });
            let sleeper = scheduler::spawn(|| {
                scheduler::spawn_blocking(|| {
                    let start = Instant::now();
                    thread::sleep(JOB);
                    (start, Instant::now())
                })
                .join()
                .unwrap()
            });
            let window = sleeper.join().unwrap();
            done.store(true, Ordering::SeqCst);
            (window, ticker.join().unwrap())
        })
    });
    let (start, end) = window;
    let inside: Vec<Instant> = ticks
        .iter()
        .copied()
        .filter(|t| *t >= start && *t <= end)
        .collect();
    // 20 periods fit in the job; a blocked worker would have delivered none of them.
    assert!(
        inside.len() >= 12,
        "only {} ticks during the {JOB:?} job",
        inside.len()
    );
    let mut edges = vec![start];
    edges.extend(&inside);
    edges.push(end);
    let max_gap = edges.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        max_gap < Duration::from_millis(100),
        "the ticker stalled for {max_gap:?} during the job"
    );
}

#[test]
fn join_returns_the_value_or_the_panic_payload() {
    let _serial = serial();
    watchdog("results and panics", HANG_LIMIT, || {
        let rt = runtime(2);
        rt.block_on(|| {
            let value = scheduler::spawn_blocking(|| vec![1, 2, 3]);
            let failed = scheduler::spawn_blocking(|| -> u32 { panic!("blocking boom") });
            assert_eq!(value.join().unwrap(), [1, 2, 3]);
            let payload = failed.join().unwrap_err();
            assert_eq!(panic_message(&*payload), Some("blocking boom"));
            // The job ran on a pool thread, never on a worker.
            let name = scheduler::spawn_blocking(|| thread::current().name().map(String::from));
            assert_eq!(name.join().unwrap().as_deref(), Some("scheduler-blocking"));
            let ok = scheduler::try_spawn_blocking(|| 5).expect("a running runtime admits it");
            assert_eq!(ok.join().unwrap(), 5);
        });
    });
}

#[test]
fn jobs_beyond_the_maximum_wait_for_a_thread_and_all_complete() {
    const MAX: usize = 2;
    const JOBS: usize = 24;
    let _serial = serial();
    let (done, most, threads) = watchdog("jobs beyond the maximum", HANG_LIMIT, || {
        let rt = builder(2).max_blocking_threads(MAX).build().unwrap();
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let names = Arc::new(Mutex::new(std::collections::HashSet::new()));
        let done = rt.block_on({
            let (running, most, names) = (running.clone(), most.clone(), names.clone());
            move || {
                let wg = WaitGroup::new();
                let handles: Vec<_> = (0..JOBS)
                    .map(|i| {
                        let (running, most, names) = (running.clone(), most.clone(), names.clone());
                        // From several goroutines at once.
                        wg.go(move || {
                            scheduler::spawn_blocking(move || {
                                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                                most.fetch_max(now, Ordering::SeqCst);
                                names.lock().unwrap().insert(thread::current().id());
                                thread::sleep(Duration::from_millis(2));
                                running.fetch_sub(1, Ordering::SeqCst);
                                i
                            })
                            .join()
                            .unwrap()
                        })
                    })
                    .collect();
                wg.wait();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap())
                    .sum::<usize>()
            }
        });
        let threads = names.lock().unwrap().len();
        (done, most.load(Ordering::SeqCst), threads)
    });
    assert_eq!(done, (0..JOBS).sum::<usize>(), "every job completed");
    assert!(most <= MAX, "{most} jobs ran at once, more than {MAX}");
    assert!(
        threads <= MAX,
        "{threads} threads ran jobs, more than {MAX}"
    );
}

#[test]
fn idle_blocking_threads_retire_after_the_keep_alive() {
    const JOBS: usize = 3;
    let _serial = serial();
    watchdog("idle threads retire", HANG_LIMIT, || {
        assert_eq!(blocking_threads(), 0, "no pool thread before the test");
        let rt = builder(1)
            .blocking_keep_alive(Duration::from_millis(50))
            .build()
            .unwrap();
        rt.block_on(|| {
            // The jobs wait for each other, so each has a thread of its own.
            let all = Arc::new(Barrier::new(JOBS));
            let jobs: Vec<_> = (0..JOBS)
                .map(|_| {
                    let all = all.clone();
                    scheduler::spawn_blocking(move || {
                        all.wait();
                    })
                })
                .collect();
            for job in jobs {
                job.join().unwrap();
            }
        });
        assert_eq!(blocking_threads(), JOBS, "one thread per concurrent job");
        settle("pool threads after the keep-alive", 0, blocking_threads);
        // The runtime lives on, and starts threads again when needed.
        assert_eq!(rt.spawn_blocking(|| 9).join().unwrap(), 9);
        drop(rt);
        assert_eq!(blocking_threads(), 0);
    });
}

#[test]
fn dropping_the_runtime_waits_for_blocking_jobs_and_joins_their_threads() {
    let _serial = serial();
    watchdog("drop joins the pool", HANG_LIMIT, || {
        assert_eq!(blocking_threads(), 0, "no pool thread before the test");
        let rt = runtime(2);
        let finished = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(Barrier::new(5));
        for _ in 0..4 {
            let (finished, started) = (finished.clone(), started.clone());
            // Detached: only the drop waits for them.
            drop(rt.spawn_blocking(move || {
                started.wait();
                thread::sleep(Duration::from_millis(50));
                finished.fetch_add(1, Ordering::SeqCst);
            }));
        }
        started.wait();
        assert_eq!(blocking_threads(), 4);
        drop(rt);
        assert_eq!(
            finished.load(Ordering::SeqCst),
            4,
            "the drop waited for every job"
        );
        // Joined: gone as soon as the kernel has reaped them.
        settle("pool threads after the drop", 0, blocking_threads);
    });
}

#[test]
fn from_a_plain_thread_join_blocks_that_thread() {
    let _serial = serial();
    watchdog("spawn_blocking from a plain thread", HANG_LIMIT, || {
        let rt = runtime(1);
        let (tx, rx) = mpsc::channel();
        let job = rt.spawn_blocking(move || rx.recv().unwrap() * 2);
        assert!(!job.is_finished());
        tx.send(21).unwrap();
        assert_eq!(job.join().unwrap(), 42);
        let panicked = rt.spawn_blocking(|| panic!("from a plain thread"));
        let payload = panicked.join().unwrap_err();
        assert_eq!(panic_message(&*payload), Some("from a plain thread"));
        // The free function needs a goroutine to know the runtime.
        let message = expect_panic(|| scheduler::spawn_blocking(|| ()));
        assert!(
            message.starts_with("scheduler: spawn_blocking called outside a runtime"),
            "{message}"
        );
    });
}

#[test]
fn refused_once_a_shutdown_began() {
    let _serial = serial();
    let (refused, message) = watchdog("refused after shutdown", HANG_LIMIT, || {
        let rt = runtime(1);
        let started = WaitGroup::new();
        started.add(1);
        let s = started.clone();
        let probe = rt.spawn(move || {
            s.done();
            // Until the shutdown begins; each accepted job is joined, so none is left.
            loop {
                match scheduler::try_spawn_blocking(|| ()) {
                    Ok(job) => job.join().unwrap(),
                    Err(SpawnError::ShuttingDown) => break,
                    Err(err) => panic!("unexpected refusal: {err}"),
                }
                scheduler::sleep(Duration::from_millis(1));
            }
            let message = panic::catch_unwind(AssertUnwindSafe(|| {
                scheduler::spawn_blocking(|| ());
            }))
            .map_err(|p| panic_message(&*p).map(String::from));
            (true, message.err().flatten())
        });
        started.wait();
        let (tx, rx) = mpsc::channel();
        let shutdown = thread::spawn(move || tx.send(rt.shutdown_timeout(HANG_LIMIT)).unwrap());
        // The probe returns once refused, which lets the shutdown finish.
        let result = rx.recv().unwrap();
        shutdown.join().unwrap();
        result.expect("the probe finished in time");
        probe.join().unwrap()
    });
    assert!(refused);
    assert_eq!(
        message.as_deref(),
        Some("scheduler: the runtime is shutting down: no new goroutines or blocking jobs")
    );
}

#[test]
fn shutdown_timeout_drops_queued_jobs_awaits_running_ones_and_counts_both() {
    let _serial = serial();
    watchdog("shutdown with blocking jobs", HANG_LIMIT, || {
        let rt = builder(1).max_blocking_threads(1).build().unwrap();
        let (started_tx, started) = mpsc::channel();
        let (open, gate) = mpsc::channel::<()>();
        let running = rt.spawn_blocking(move || {
            started_tx.send(()).unwrap();
            let _ = gate.recv();
            "finished"
        });
        started.recv().unwrap();
        let queued = rt.spawn_blocking(|| "never runs");
        let (tx, rx) = mpsc::channel();
        let shutdown = thread::spawn(move || {
            tx.send(rt.shutdown_timeout(Duration::from_millis(20)))
                .unwrap();
        });
        // At the deadline the queued job is dropped; the running one holds the shutdown.
        let payload = queued.join().unwrap_err();
        assert!(payload.is::<Cancelled>());
        assert!(
            rx.try_recv().is_err(),
            "a running job cannot be interrupted"
        );
        drop(open);
        assert_eq!(running.join().unwrap(), "finished");
        let err = rx.recv().unwrap().expect_err("two jobs were unfinished");
        shutdown.join().unwrap();
        assert_eq!(err.remaining(), 0);
        assert_eq!(err.remaining_blocking(), 2);
        assert!(err.to_string().contains("2 blocking job(s)"), "{err}");
        assert_eq!(blocking_threads(), 0, "the shutdown joined the pool");
    });
}

/// Moves `rt` into one of its own blocking jobs, runs `f(rt)` there, and returns what it
/// returned: for what a runtime does when a job of its own drops or shuts it down.
fn run_in_own_blocking_job<R: Send + 'static>(rt: Runtime, f: fn(Runtime) -> R) -> R {
    let slot = Arc::new(Mutex::new(None::<Runtime>));
    let (go, gate) = mpsc::channel::<()>();
    let job = {
        let slot = slot.clone();
        rt.spawn_blocking(move || {
            gate.recv().unwrap();
            let rt = slot.lock().unwrap().take().expect("handed over");
            f(rt)
        })
    };
    *slot.lock().unwrap() = Some(rt);
    go.send(()).unwrap();
    job.join().unwrap()
}

#[test]
fn dropped_by_its_own_blocking_job_the_runtime_winds_down() {
    let _serial = serial();
    watchdog("drop from a blocking job", HANG_LIMIT, || {
        let workers = worker_thread_count();
        // It cannot wait for this very job: it detaches, and returns at once.
        run_in_own_blocking_job(runtime(2), drop);
        settle(
            "workers of the detached runtime",
            workers,
            worker_thread_count,
        );
        settle("its pool threads", 0, blocking_threads);
    });
}

#[test]
fn shutdown_timeout_from_its_own_blocking_job_panics() {
    let _serial = serial();
    watchdog("shutdown from a blocking job", HANG_LIMIT, || {
        let workers = worker_thread_count();
        // The panic drops the runtime on the way out, which detaches it.
        let message = run_in_own_blocking_job(runtime(1), |rt| {
            expect_panic(move || rt.shutdown_timeout(HANG_LIMIT))
        });
        assert_eq!(
            message,
            "scheduler: shutdown_timeout called from one of the runtime's own blocking jobs \
             (it would wait for itself)"
        );
        settle(
            "workers of the detached runtime",
            workers,
            worker_thread_count,
        );
        settle("its pool threads", 0, blocking_threads);
    });
}

#[test]
fn max_blocking_threads_of_zero_is_rejected() {
    let err = Runtime::builder()
        .procs(1)
        .max_blocking_threads(0)
        .build()
        .expect_err("no thread for blocking jobs");
    assert_eq!(
        err.to_string(),
        "scheduler: max_blocking_threads must be at least 1, got 0"
    );
}
