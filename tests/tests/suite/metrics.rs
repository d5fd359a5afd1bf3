//! `Runtime::metrics` and `scheduler::metrics`: the goroutine states add up, blocked
//! goroutines are counted by what they wait for, and the per-worker counters (steals, sleeps,
//! busy time, queue lengths) move when they should.
//!
//! A snapshot is exact only once nothing moves, so the tests that expect exact values either
//! poll until the runtime settles (a bounded spin that fails with the last snapshot), or read
//! at a moment the test holds every worker still: a goroutine that blocks its OS thread on a
//! std channel keeps its worker from doing anything else (with spare workers turned off).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use scheduler::context::Context;
use scheduler::sync::{Mutex, Semaphore};
use scheduler::{Metrics, Runtime, WaitGroup, chan, select};
use scheduler_tests::{HANG_LIMIT, expect_panic, runtime, settle, watchdog};

/// A runtime of one worker that a goroutine can hold still by blocking its thread: without
/// spare workers, which the monitor would otherwise start for the goroutines queued behind it.
fn held_still_runtime() -> Runtime {
    Runtime::builder()
        .procs(1)
        .max_spare_workers(0)
        .build()
        .unwrap()
}

/// The identity every settled snapshot satisfies.
fn assert_adds_up(m: &Metrics) {
    assert_eq!(
        m.live,
        m.runnable + m.running + m.blocked.total() + m.inline,
        "live != runnable + running + blocked + inline:\n{m}"
    );
    let per_worker_blocked: usize = m.workers.iter().map(|w| w.blocked).sum();
    assert_eq!(per_worker_blocked, m.blocked.total(), "{m}");
    let queued: usize = m
        .workers
        .iter()
        .map(|w| w.local_queue + w.ready_queue)
        .sum();
    assert_eq!(m.runnable, m.global_queue + queued, "{m}");
    assert_eq!(
        m.running,
        m.workers.iter().filter(|w| w.running).count(),
        "{m}"
    );
}

#[test]
fn metrics_add_up_with_goroutines_blocked_on_every_kind() {
    const RECEIVERS: usize = 5;
    const WAITERS: usize = 4;
    const SLEEPERS: usize = 3;
    const LOCKERS: usize = 2;
    watchdog("goroutines blocked on every kind", HANG_LIMIT, || {
        let rt = runtime(2);
        let mut handles = Vec::new();

        // Channel: receivers on a channel nobody sends to yet.
        let (tx, rx) = chan::bounded::<u32>(0);
        for _ in 0..RECEIVERS {
            let rx = rx.clone();
            handles.push(rt.spawn(move || {
                let _ = rx.recv();
            }));
        }
        // WaitGroup: waiters on a gate that is closed until the end.
        let gate = WaitGroup::new();
        gate.add(1);
        for _ in 0..WAITERS {
            let gate = gate.clone();
            handles.push(rt.spawn(move || gate.wait()));
        }
        // Timer: sleepers, woken at the end by cancelling their context.
        let (ctx, cancel) = Context::background().with_cancel();
        for _ in 0..SLEEPERS {
            let ctx = ctx.clone();
            handles.push(rt.spawn(move || {
                let _ = scheduler::time::sleep_ctx(Duration::from_secs(3600), &ctx);
            }));
        }
        // Sync: goroutines locking a mutex this thread holds, and one acquiring a semaphore
        // that has no permit.
        let mutex = Arc::new(Mutex::new(0_u32));
        let guard = mutex.lock();
        for _ in 0..LOCKERS {
            let mutex = mutex.clone();
            handles.push(rt.spawn(move || *mutex.lock() += 1));
        }
        let semaphore = Arc::new(Semaphore::new(0));
        let sem = semaphore.clone();
        handles.push(rt.spawn(move || drop(sem.acquire())));
        // Select: one goroutine waiting on two channels at once.
        let (a_tx, a_rx) = chan::bounded::<()>(0);
        let (b_tx, b_rx) = chan::bounded::<()>(0);
        handles.push(rt.spawn(move || {
            select! {
                recv(a_rx) -> _ => {},
                recv(b_rx) -> _ => {},
            }
        }));
        // Join: a goroutine joining one that has started and waits at the gate. The joined
        // one must have started first, or the join would run it inline.
        let joined = {
            let gate = gate.clone();
            rt.spawn(move || gate.wait())
        };
        settle(&rt, "the joined goroutine parks", |m| {
            m.blocked.wait_group == WAITERS + 1
        });
        handles.push(rt.spawn(move || joined.join().unwrap()));

        let m = settle(&rt, "every goroutine parks", |m| {
            m.blocked.total() == RECEIVERS + WAITERS + 1 + SLEEPERS + LOCKERS + 1 + 1 + 1
                && m.running == 0
                && m.runnable == 0
        });
        assert_adds_up(&m);
        let b = m.blocked;
        assert_eq!(b.channel, RECEIVERS, "{m}");
        assert_eq!(b.wait_group, WAITERS + 1, "{m}");
        assert_eq!(b.timer, SLEEPERS, "{m}");
        assert_eq!(b.sync, LOCKERS + 1, "{m}");
        assert_eq!(b.select, 1, "{m}");
        assert_eq!(b.join, 1, "{m}");
        assert_eq!(b.other, 0, "{m}");
        assert_eq!(m.live, b.total(), "{m}");
        assert_eq!((m.inline, m.global_queue), (0, 0), "{m}");
        assert_eq!(
            m.spawned, m.live as u64,
            "every goroutine came from outside: {m}"
        );
        assert_eq!((m.procs, m.workers.len()), (2, 2));

        // Release every one of them, and the counts go back to zero.
        drop(tx);
        gate.done();
        cancel.cancel();
        drop(guard);
        semaphore.add_permits(1);
        drop((a_tx, b_tx));
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(*mutex.lock(), LOCKERS as u32);
        let m = settle(&rt, "every goroutine finishes", |m| {
            m.live == 0 && m.running == 0 && m.blocked.total() == 0
        });
        assert_adds_up(&m);
        assert_eq!(m.runnable, 0, "{m}");
    });
}

#[test]
fn a_goroutine_joined_inline_counts_as_inline_and_blocks_its_joiner() {
    watchdog("inline join", HANG_LIMIT, || {
        // One proc: the joiner spawns and joins before anything else can start the joined
        // goroutine, so the join runs it on the joiner's stack.
        let rt = runtime(1);
        let gate = WaitGroup::new();
        gate.add(1);
        let g = gate.clone();
        let joiner = rt.spawn(move || {
            let joined = scheduler::spawn(move || g.wait());
            joined.join().unwrap();
        });
        let m = settle(&rt, "the joiner parks inside the inline goroutine", |m| {
            m.inline == 1 && m.blocked.total() == 1 && m.running == 0 && m.runnable == 0
        });
        assert_adds_up(&m);
        // The pair parked once, on what the inline goroutine waits for.
        assert_eq!(
            (m.live, m.blocked.wait_group, m.blocked.join),
            (2, 1, 0),
            "{m}"
        );
        gate.done();
        joiner.join().unwrap();
        let m = settle(&rt, "both finish", |m| m.live == 0 && m.running == 0);
        assert_eq!((m.inline, m.blocked.total(), m.spawned), (0, 0, 2), "{m}");
    });
}

#[test]
fn spawned_counts_goroutines_from_outside_and_inside() {
    watchdog("spawned total", HANG_LIMIT, || {
        let rt = runtime(2);
        assert_eq!(rt.metrics().spawned, 0);
        let handles: Vec<_> = (0..10)
            .map(|_| {
                rt.spawn(|| {
                    let inner: Vec<_> = (0..2).map(|_| scheduler::spawn(|| ())).collect();
                    for h in inner {
                        h.join().unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        // Counted at spawn, so exact as soon as the spawns returned.
        assert_eq!(rt.metrics().spawned, 30);
        rt.block_on(|| ());
        assert_eq!(
            rt.metrics().spawned,
            31,
            "block_on's main goroutine counts too"
        );
    });
}

#[test]
fn steals_are_counted_when_a_blocked_worker_fans_out() {
    const FANOUT: usize = 64;
    watchdog(
        "fan-out with the spawning worker blocked",
        HANG_LIMIT,
        || {
            let rt = runtime(2);
            let spawner = rt.spawn(|| {
                let (done_tx, done_rx) = mpsc::channel();
                for _ in 0..FANOUT {
                    let done = done_tx.clone();
                    scheduler::spawn(move || done.send(()).unwrap());
                }
                // Block this worker's OS thread: only the other worker can run the goroutines
                // queued here, and only by stealing them.
                for _ in 0..FANOUT {
                    done_rx.recv().unwrap();
                }
            });
            spawner.join().unwrap();
            let m = rt.metrics();
            let thieves: Vec<_> = m.workers.iter().filter(|w| w.steals > 0).collect();
            assert_eq!(thieves.len(), 1, "only the free worker steals: {m}");
            // Each goroutine was stolen once: the spawning worker never ran any of them.
            assert_eq!(thieves[0].stolen, FANOUT as u64, "{m}");
            assert!(thieves[0].steals <= FANOUT as u64, "{m}");
        },
    );
}

#[test]
fn parks_grow_when_workers_go_idle() {
    watchdog("worker parks", HANG_LIMIT, || {
        let rt = runtime(2);
        let parks = |m: &Metrics| m.workers.iter().map(|w| w.parks).sum::<u64>();
        // Both workers start, find nothing to do, and sleep.
        let before = parks(&settle(&rt, "both workers sleep once", |m| {
            m.workers.iter().all(|w| w.parks > 0)
        }));
        rt.spawn(|| ()).join().unwrap();
        // The spawn woke a worker; once it is done, it sleeps again.
        settle(&rt, "a woken worker sleeps again", |m| parks(m) > before);
    });
}

#[test]
fn metrics_add_up_under_a_steady_load() {
    // Goroutines that keep moving (ping-pong pairs across channels, yielders, short sleepers)
    // and none that starts or ends while the snapshots are taken. Every change to a worker's
    // counters is made by that worker, one at a time, so a snapshot taken in the middle of one
    // can count one goroutine twice or not at all on that worker: the sum is within `procs` of
    // `live`, which is exact.
    const PROCS: usize = 2;
    const PAIRS: usize = 3;
    const YIELDERS: usize = 2;
    const SLEEPERS: usize = 2;
    const GOROUTINES: usize = 2 * PAIRS + YIELDERS + SLEEPERS;
    const SNAPSHOTS: usize = 300;
    watchdog("metrics under load", HANG_LIMIT, || {
        let rt = runtime(PROCS);
        let stop = Arc::new(AtomicBool::new(false));
        let started = WaitGroup::new();
        started.add(GOROUTINES);
        let mut handles = Vec::new();
        let mut go = |f: Box<dyn FnOnce(&AtomicBool) + Send>| {
            let (stop, started) = (stop.clone(), started.clone());
            handles.push(rt.spawn(move || {
                started.done();
                f(&stop);
            }));
        };
        for _ in 0..PAIRS {
            let (ping_tx, ping_rx) = chan::bounded::<u64>(0);
            let (pong_tx, pong_rx) = chan::bounded::<u64>(0);
            go(Box::new(move |stop| {
                // Relaxed: a stop flag; the joins order the rest.
                while !stop.load(Ordering::Relaxed) {
                    ping_tx.send(1).unwrap();
                    pong_rx.recv().unwrap();
                }
                // Closing `ping` ends the echo.
            }));
            go(Box::new(move |_| {
                while let Ok(v) = ping_rx.recv() {
                    pong_tx.send(v).unwrap();
                }
            }));
        }
        for _ in 0..YIELDERS {
            go(Box::new(|stop| {
                while !stop.load(Ordering::Relaxed) {
                    scheduler::yield_now();
                }
            }));
        }
        for _ in 0..SLEEPERS {
            go(Box::new(|stop| {
                while !stop.load(Ordering::Relaxed) {
                    scheduler::sleep(Duration::from_micros(200));
                }
            }));
        }
        started.wait();
        let mut exact = 0;
        for _ in 0..SNAPSHOTS {
            let m = rt.metrics();
            assert_eq!(m.live, GOROUTINES, "{m}");
            assert_eq!((m.global_queue, m.inline), (0, 0), "all started: {m}");
            let sum = m.runnable + m.running + m.blocked.total();
            assert!(
                sum.abs_diff(m.live) <= PROCS,
                "live != runnable + running + blocked, by more than one per worker:\n{m}"
            );
            assert!(m.running <= PROCS, "{m}");
            exact += usize::from(sum == m.live);
        }
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.join().unwrap();
        }
        // Most snapshots fall between two changes: an off-by-one is a caught transition,
        // not a counter that drifts.
        assert!(
            exact > SNAPSHOTS / 2,
            "only {exact} of {SNAPSHOTS} snapshots added up exactly"
        );
    });
}

#[test]
fn busy_time_grows_under_load() {
    const LOAD: Duration = Duration::from_millis(30);
    watchdog("busy time", HANG_LIMIT, || {
        let rt = runtime(2);
        let busy = |m: &Metrics| m.workers.iter().map(|w| w.busy).sum::<Duration>();
        let before = busy(&rt.metrics());
        rt.spawn(|| {
            let start = Instant::now();
            while start.elapsed() < LOAD {
                std::hint::spin_loop();
            }
        })
        .join()
        .unwrap();
        let after = busy(&rt.metrics());
        assert!(
            after >= before + LOAD,
            "a worker ran a goroutine for {LOAD:?}, but busy time went from {before:?} to \
             {after:?}"
        );
    });
}

#[test]
fn global_queue_holds_outside_spawns_while_the_only_worker_is_held() {
    watchdog("global queue", HANG_LIMIT, || {
        let rt = held_still_runtime();
        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let holder = rt.spawn(move || {
            started_tx.send(()).unwrap();
            // Hold the only worker: nothing else runs until the test lets go.
            release_rx.recv().unwrap();
        });
        started_rx.recv().unwrap();
        let queued: Vec<_> = (0..5).map(|_| rt.spawn(|| ())).collect();
        // Exact at once: the worker is held still, and the spawns were made here.
        let m = rt.metrics();
        assert_adds_up(&m);
        assert_eq!(m.global_queue, 5, "{m}");
        assert_eq!((m.live, m.runnable, m.running), (6, 5, 1), "{m}");
        assert!(m.workers[0].running, "{m}");
        release_tx.send(()).unwrap();
        holder.join().unwrap();
        for h in queued {
            h.join().unwrap();
        }
        let m = settle(&rt, "the queue drains", |m| m.live == 0 && m.running == 0);
        assert_eq!((m.global_queue, m.runnable), (0, 0), "{m}");
    });
}

#[test]
fn woken_goroutines_count_as_ready_on_their_worker_or_blocked_until_it_looks() {
    watchdog("woken goroutines", HANG_LIMIT, || {
        let rt = held_still_runtime();
        let (local_tx, local_rx) = chan::bounded::<u32>(0);
        let (remote_tx, remote_rx) = chan::bounded::<u32>(0);
        let woken_here = rt.spawn(move || local_rx.recv().unwrap());
        let woken_from_outside = rt.spawn(move || remote_rx.recv().unwrap());
        settle(&rt, "both receivers park", |m| {
            m.blocked.channel == 2 && m.running == 0
        });

        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let holder = rt.spawn(move || {
            // Wakes a goroutine of this same worker: it goes to the worker's run-next slot.
            local_tx.send(1).unwrap();
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        });
        started_rx.recv().unwrap();
        // Wake the other from this plain thread: it lands in the worker's inbox, which the
        // held worker cannot look at yet.
        remote_tx.send(2).unwrap();

        let m = rt.metrics();
        assert_adds_up(&m);
        assert_eq!(m.live, 3, "{m}");
        assert_eq!((m.running, m.workers[0].ready_queue), (1, 1), "{m}");
        assert_eq!(
            m.blocked.channel, 1,
            "woken from outside, not yet taken back by its worker: {m}"
        );

        release_tx.send(()).unwrap();
        holder.join().unwrap();
        assert_eq!(woken_here.join().unwrap(), 1);
        assert_eq!(woken_from_outside.join().unwrap(), 2);
        let m = settle(&rt, "all finish", |m| m.live == 0 && m.running == 0);
        assert_eq!((m.blocked.total(), m.runnable), (0, 0), "{m}");
    });
}

#[test]
fn metrics_inside_a_goroutine_see_the_caller_running() {
    watchdog("metrics inside", HANG_LIMIT, || {
        let rt = runtime(2);
        let m = rt.block_on(scheduler::metrics);
        assert_eq!(m.procs, 2);
        assert!(m.running >= 1, "{m}");
        assert!(m.live >= 1, "{m}");
    });
}

#[test]
fn metrics_outside_a_goroutine_panics_naming_the_call() {
    let message = expect_panic(scheduler::metrics);
    assert!(
        message.contains("scheduler: metrics called outside a runtime"),
        "{message}"
    );
}

#[test]
fn display_summarises_the_states_and_every_worker() {
    let rt = runtime(3);
    let text = rt.metrics().to_string();
    assert!(text.contains("live ="), "{text}");
    assert!(text.contains("blocked on: channel"), "{text}");
    assert!(text.contains("blocking pool: 0 threads"), "{text}");
    assert!(text.contains("stacks: "), "{text}");
    assert_eq!(text.lines().count(), 6 + 3, "{text}");
}

#[test]
fn goroutines_waiting_for_blocking_jobs_and_the_pool_are_counted() {
    watchdog("blocking-pool metrics", HANG_LIMIT, || {
        let rt = Runtime::builder()
            .procs(2)
            .max_blocking_threads(2)
            .build()
            .unwrap();
        // Three jobs hold until released: two run (the pool's maximum), one waits in the queue.
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(std::sync::Mutex::new(release_rx));
        let joiners: Vec<_> = (0..3)
            .map(|_| {
                let rx = release_rx.clone();
                rt.spawn(move || {
                    scheduler::spawn_blocking(move || rx.lock().unwrap().recv().unwrap())
                        .join()
                        .unwrap()
                })
            })
            .collect();
        // The snapshot reads the global queue before the workers: a goroutine taken from it
        // and blocked in between is counted twice, so wait for the queue to read empty too.
        let m = settle(&rt, "three goroutines wait for jobs", |m| {
            m.blocked.blocking == 3
                && m.blocking_busy == 2
                && m.blocking_queued == 1
                && m.runnable == 0
        });
        assert_eq!(m.blocking_threads, 2, "{m}");
        assert_eq!(m.blocked.join, 0, "{m}");
        assert_adds_up(&m);
        for _ in 0..3 {
            release_tx.send(()).unwrap();
        }
        for joiner in joiners {
            joiner.join().unwrap();
        }
        let m = settle(&rt, "the jobs are done", |m| {
            m.blocked.total() == 0 && m.blocking_busy == 0 && m.live == 0
        });
        assert_eq!(m.blocking_queued, 0, "{m}");
    });
}

#[test]
fn the_monitor_releases_the_stacks_of_a_finished_burst() {
    // More goroutines alive at once than a worker caches (256) and the arena keeps resident
    // for good (1024): each takes a stack of its own and touches a page of it.
    const BURST: usize = 2500;
    let rt = Runtime::builder().procs(1).build().unwrap();
    rt.block_on(|| {
        let (release_tx, release_rx) = chan::bounded::<()>(0);
        let wg = WaitGroup::new();
        for _ in 0..BURST {
            let release_rx = release_rx.clone();
            wg.go(move || {
                let page = std::hint::black_box([1u8; 4096]);
                assert!(release_rx.recv().is_err());
                std::hint::black_box(page);
            });
        }
        drop(release_rx);
        // Every goroutine has started and waits (one worker runs them in order, and the
        // closing of the channel releases them only after they all parked on it)...
        scheduler_tests::yield_until("the burst parked", HANG_LIMIT, || {
            scheduler::metrics().blocked.channel == BURST
        });
        drop(release_tx);
        wg.wait();
    });
    let at_end = rt.metrics();
    assert!(at_end.stacks_mapped >= BURST, "{at_end}");
    // ... and finished: their stacks came back; the trims, a second apart, release the memory
    // of all but the 1024 kept resident (and the worker's own cache).
    let m = settle(&rt, "the burst's stacks released", |m| {
        m.stacks_free_resident <= 1024 && m.stacks_free_released >= BURST - 256 - 1024
    });
    assert!(
        m.stacks_free_resident + m.stacks_free_released <= m.stacks_mapped,
        "{m}"
    );
}
