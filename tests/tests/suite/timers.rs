//! Time: sleeping goroutines (100,000 at once among them), sleep bounds, `sleep_until`, and the
//! timer channels `after` and `tick`, inside a runtime and on plain threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use scheduler::chan::{RecvTimeoutError, TryRecvError};
use scheduler::{SpawnError, WaitGroup, time};
use scheduler_tests::{HANG_LIMIT, PROMPT_LIMIT, runtime, watchdog};

#[test]
fn a_hundred_thousand_goroutines_sleep_at_once_and_all_wake() {
    // Every goroutine first parks on a gate, so all of them exist at once (each with its own
    // guarded stack: this must stay clear of the kernel's limit on memory mappings), then each
    // sleeps 200-299 ms and checks that it slept at least that long. 100,000 where guard pages
    // do not split mappings (Linux 6.13+); on older kernels the runtime refuses goroutines at
    // the mapping limit instead, and as many sleep as it admitted (as in live_goroutines.rs).
    const SLEEPERS: usize = 100_000;
    let (admitted, woke, short) = watchdog("100k sleepers", HANG_LIMIT, || {
        let rt = runtime(2);
        rt.block_on(|| {
            let gate = WaitGroup::new();
            gate.add(1);
            let sleepers = WaitGroup::new();
            let parked = WaitGroup::new();
            let woke = Arc::new(AtomicUsize::new(0));
            let short = Arc::new(AtomicUsize::new(0));
            let mut admitted = 0;
            for i in 0..SLEEPERS {
                let (g, p, d) = (gate.clone(), parked.clone(), sleepers.clone());
                let (woke, short) = (woke.clone(), short.clone());
                parked.add(1);
                sleepers.add(1);
                let spawned = scheduler::try_spawn(move || {
                    p.done();
                    g.wait();
                    let nap = Duration::from_millis(200 + (i % 100) as u64);
                    let start = Instant::now();
                    time::sleep(nap);
                    if start.elapsed() < nap {
                        short.fetch_add(1, Ordering::Relaxed);
                    }
                    woke.fetch_add(1, Ordering::Relaxed);
                    d.done();
                });
                match spawned {
                    Ok(_) => admitted += 1,
                    Err(err @ SpawnError::Stacks { .. }) => {
                        // Only where guard pages split mappings (older kernels).
                        let message = err.to_string();
                        assert!(message.contains("vm.max_map_count"), "{message}");
                        parked.done();
                        sleepers.done();
                        break;
                    }
                    Err(err) => panic!("unexpected refusal: {err}"),
                }
            }
            parked.wait();
            assert_eq!(
                scheduler::num_goroutines(),
                admitted + 1,
                "every sleeper is alive at once"
            );
            gate.done();
            sleepers.wait();
            (
                admitted,
                woke.load(Ordering::Relaxed),
                short.load(Ordering::Relaxed),
            )
        })
    });
    assert!(
        admitted >= SLEEPERS / 4,
        "only {admitted} sleepers were admitted"
    );
    assert_eq!(woke, admitted, "sleepers that woke");
    assert_eq!(short, 0, "sleepers that woke before their time was up");
}

#[test]
fn sleep_lasts_at_least_its_duration_in_goroutines_and_threads() {
    const NAP: Duration = Duration::from_millis(20);
    watchdog("sleep bounds", HANG_LIMIT, || {
        let check = || {
            for _ in 0..3 {
                let start = Instant::now();
                time::sleep(NAP);
                let slept = start.elapsed();
                assert!(slept >= NAP, "sleep({NAP:?}) returned after {slept:?}");
                assert!(
                    slept < Duration::from_secs(2),
                    "sleep({NAP:?}) took {slept:?}"
                );
            }
            let start = Instant::now();
            time::sleep(Duration::ZERO);
            assert!(start.elapsed() < PROMPT_LIMIT);
        };
        check(); // a plain thread
        let rt = runtime(2);
        rt.block_on(check);
        // Several goroutines at once, on both workers.
        let sleepers: Vec<_> = (0..8).map(|_| rt.spawn(check)).collect();
        for h in sleepers {
            h.join().unwrap();
        }
    });
}

#[test]
fn sleep_until_a_past_deadline_returns_at_once() {
    watchdog("sleep_until past", HANG_LIMIT, || {
        let check = || {
            let now = Instant::now();
            // Long past: an implementation that slept for |deadline - now| would take 5 s.
            let past = now.checked_sub(Duration::from_secs(5)).unwrap_or(now);
            time::sleep_until(past);
            time::sleep_until(now);
            let took = now.elapsed();
            assert!(took < Duration::from_secs(2), "took {took:?}");

            let deadline = Instant::now() + Duration::from_millis(15);
            time::sleep_until(deadline);
            assert!(Instant::now() >= deadline, "sleep_until woke early");
        };
        check();
        runtime(1).block_on(check);
    });
}

#[test]
fn sleeping_goroutine_leaves_its_worker_to_others() {
    // One worker. The sleeper starts and parks in its sleep first; then another goroutine,
    // spawned only now and waited for through a channel (so that no `join` runs it inline on
    // the waiter's stack), must run and finish while the sleeper still sleeps. If sleep
    // blocked the thread, nothing else could run until the sleeper woke (no spare worker may
    // take over the blocked one).
    watchdog("sleep parks", HANG_LIMIT, || {
        let rt = scheduler::Runtime::builder()
            .procs(1)
            .max_spare_workers(0)
            .build()
            .unwrap();
        rt.block_on(|| {
            let started = Arc::new(AtomicBool::new(false));
            let awake = Arc::new(AtomicBool::new(false));
            let sleeper = {
                let (started, awake) = (started.clone(), awake.clone());
                scheduler::spawn(move || {
                    started.store(true, Ordering::SeqCst);
                    time::sleep(Duration::from_millis(300));
                    awake.store(true, Ordering::SeqCst);
                })
            };
            // On one worker, the sleeper runs up to its sleep while we yield.
            while !started.load(Ordering::SeqCst) {
                scheduler::yield_now();
            }
            let (tx, rx) = scheduler::chan::bounded(1);
            {
                let awake = awake.clone();
                drop(scheduler::spawn(move || {
                    tx.send(awake.load(Ordering::SeqCst)).unwrap();
                }));
            }
            assert!(
                !rx.recv().unwrap(),
                "the other goroutine ran only after the sleeper woke"
            );
            sleeper.join().unwrap();
            assert!(awake.load(Ordering::SeqCst));
        });
    });
}

#[test]
fn tick_delivers_ticks_no_earlier_than_their_periods() {
    // The k-th tick is due k periods after the ticker started (missed periods are skipped,
    // never made up), so it can never carry an earlier time.
    const PERIOD: Duration = Duration::from_millis(15);
    watchdog("tick", HANG_LIMIT, || {
        let check = || {
            let start = Instant::now();
            let ticks = time::tick(PERIOD);
            let mut last = start;
            for k in 1..=5u32 {
                let t = ticks
                    .recv_timeout(PROMPT_LIMIT)
                    .expect("a ticker keeps ticking");
                assert!(
                    t >= start + PERIOD * k,
                    "tick {k} at {:?}, due no earlier than {:?}",
                    t - start,
                    PERIOD * k
                );
                assert!(t > last, "ticks go forward");
                last = t;
            }
            assert!(start.elapsed() >= PERIOD * 5);
        };
        check(); // a plain thread: the process-wide timer thread ticks
        runtime(2).block_on(check);
    });
}

#[test]
fn slow_tick_receiver_finds_one_tick_buffered_not_a_backlog() {
    const PERIOD: Duration = Duration::from_millis(10);
    watchdog("tick backlog", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            let ticks = time::tick(PERIOD);
            // Sleeping is the point here: ten periods pass unread.
            time::sleep(PERIOD * 10);
            let first = ticks.try_recv().expect("a tick is waiting");
            // The ticker fires on this goroutine's worker, which runs this goroutine now: no
            // tick can arrive between these two calls.
            assert_eq!(
                ticks.try_recv(),
                Err(TryRecvError::Empty),
                "missed ticks piled up"
            );
            let next = ticks.recv_timeout(PROMPT_LIMIT).expect("ticking resumes");
            assert!(next > first);
        });
    });
}

#[test]
fn after_from_a_plain_thread_outside_any_runtime() {
    const DELAY: Duration = Duration::from_millis(25);
    watchdog("after on a thread", HANG_LIMIT, || {
        let start = Instant::now();
        let rx = time::after(DELAY);
        let fired = rx.recv_timeout(PROMPT_LIMIT).expect("after delivers once");
        assert!(fired >= start + DELAY, "after fired early");
        assert!(start.elapsed() >= DELAY);
        // Like Go's, the channel is never closed: a second receive waits (and times out).
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(20)),
            Err(RecvTimeoutError::Timeout)
        );
        assert!(!rx.is_closed());
    });
}

#[test]
fn after_set_in_a_runtime_still_fires_once_the_runtime_is_gone() {
    // A pending timer of a worker moves to the process-wide timer thread when the runtime
    // stops; dropping the runtime must not wait for the timer either.
    watchdog("after outlives runtime", HANG_LIMIT, || {
        let rt = runtime(2);
        let (start, soon, never) = rt.block_on(|| {
            (
                Instant::now(),
                time::after(Duration::from_millis(100)),
                time::after(Duration::from_secs(3600)),
            )
        });
        let dropped = Instant::now();
        drop(rt);
        assert!(
            dropped.elapsed() < PROMPT_LIMIT,
            "dropping the runtime waited for a timer"
        );
        let fired = soon
            .recv_timeout(PROMPT_LIMIT)
            .expect("the timer was lost when its runtime stopped");
        assert!(fired >= start + Duration::from_millis(100));
        assert_eq!(never.try_recv(), Err(TryRecvError::Empty));
    });
}

#[test]
fn many_goroutines_waiting_on_after_each_get_their_own_time() {
    watchdog("after in many goroutines", HANG_LIMIT, || {
        runtime(2).block_on(|| {
            let handles: Vec<_> = (0..200u64)
                .map(|i| {
                    scheduler::spawn(move || {
                        let delay = Duration::from_millis(i % 20);
                        let start = Instant::now();
                        let fired = time::after(delay).recv().unwrap();
                        fired >= start + delay
                    })
                })
                .collect();
            for (i, h) in handles.into_iter().enumerate() {
                assert!(h.join().unwrap(), "after #{i} fired early");
            }
        });
    });
}
