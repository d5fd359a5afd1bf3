//! The parking sync primitives: `Mutex` (exact counting, starvation mode, holding across a
//! block), `Condvar`, `Semaphore`, `RwLock` and `OnceLock`, used by goroutines.
//!
//! Tests that need "this goroutine is blocked now" run on one worker: goroutines are not
//! preempted, so a goroutine that records that it is about to block and then blocks has parked
//! by the time another goroutine of that worker sees the record.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use scheduler::sync::{Condvar, Mutex, OnceLock, RwLock, Semaphore};
use scheduler::{JoinHandle, WaitGroup, chan};
use scheduler_tests::{
    HANG_LIMIT, PROMPT_LIMIT, SPIN_LIMIT, expect_panic, runtime, spin_until, watchdog, yield_times,
    yield_until,
};

// ---------------------------------------------------------------------------------------------
// Mutex

#[test]
fn mutex_counts_a_million_increments_exactly_on_two_procs() {
    // Usually well under a second in debug. Starvation mode ends when a waiter is served
    // within 1 ms (Go's rule); it used to last as long as the wait queue was non-empty, which
    // with eight contenders made every later acquisition a hand-over to a parked goroutine
    // and a run take seconds. The count must stay exact either way.
    const GOROUTINES: usize = 8;
    const PER_GOROUTINE: usize = 125_000;
    let total = watchdog("1M mutex increments", HANG_LIMIT, || {
        let rt = runtime(2);
        let counter = Arc::new(Mutex::new(0usize));
        let c = counter.clone();
        rt.block_on(move || {
            let wg = WaitGroup::new();
            for _ in 0..GOROUTINES {
                let c = c.clone();
                drop(wg.go(move || {
                    for i in 0..PER_GOROUTINE {
                        *c.lock() += 1;
                        if i % 1024 == 0 {
                            // Interleave the goroutines of one worker too.
                            scheduler::yield_now();
                        }
                    }
                }));
            }
            wg.wait();
        });
        *counter.lock()
    });
    assert_eq!(total, GOROUTINES * PER_GOROUTINE);
}

#[test]
fn mutex_waiter_is_not_starved_by_a_goroutine_that_relocks_at_once() {
    // One worker. The hog locks, yields while holding the lock, unlocks and relocks at once,
    // without a yield in between. Its unlock wakes the waiter, but the waiter only runs at the
    // hog's next yield, by which time the hog holds the lock again: without starvation mode the
    // waiter loses every round, for ever. With it, the waiter has waited over 1 ms after a few
    // hundred rounds, and the next unlock hands it the lock.
    const CAP: usize = 200_000;
    watchdog("mutex starvation", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            let lock = Arc::new(Mutex::new(0u64));
            let waiter_done = Arc::new(AtomicBool::new(false));
            let hog: JoinHandle<usize> = {
                let (lock, waiter_done) = (lock.clone(), waiter_done.clone());
                scheduler::spawn(move || {
                    let mut rounds = 0;
                    while !waiter_done.load(Ordering::SeqCst) && rounds < CAP {
                        let mut guard = lock.lock();
                        *guard += 1;
                        scheduler::yield_now();
                        drop(guard);
                        rounds += 1;
                    }
                    rounds
                })
            };
            yield_until("the hog holds the lock", SPIN_LIMIT, || {
                lock.try_lock().is_none()
            });
            let start = Instant::now();
            let guard = lock.lock();
            let waited = start.elapsed();
            let hog_rounds = *guard;
            waiter_done.store(true, Ordering::SeqCst);
            drop(guard);
            let rounds = hog.join().unwrap();
            assert!(
                rounds < CAP,
                "the waiter was starved: the hog locked {rounds} times while it waited"
            );
            assert!(hog_rounds >= 1, "the waiter did wait behind the hog");
            assert!(waited < PROMPT_LIMIT, "the waiter waited {waited:?}");
        });
    });
}

#[test]
fn mutex_holder_may_block_while_others_wait_for_the_lock() {
    // One worker: the holder parks in a channel receive, a second goroutine parks in lock(),
    // and a third, which needs no lock, must still run to release the holder.
    watchdog("mutex across a block", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            let lock = Arc::new(Mutex::new(Vec::new()));
            let (release_tx, release_rx) = chan::bounded::<()>(0);
            let contender_trying = Arc::new(AtomicBool::new(false));
            let holder = {
                let lock = lock.clone();
                scheduler::spawn(move || {
                    let mut guard = lock.lock();
                    guard.push("holder");
                    release_rx.recv().unwrap();
                    guard.push("holder released");
                })
            };
            yield_until("the holder locks", SPIN_LIMIT, || lock.try_lock().is_none());
            let contender = {
                let (lock, trying) = (lock.clone(), contender_trying.clone());
                scheduler::spawn(move || {
                    trying.store(true, Ordering::SeqCst);
                    lock.lock().push("contender");
                })
            };
            yield_until("the contender blocks in lock", SPIN_LIMIT, || {
                contender_trying.load(Ordering::SeqCst)
            });
            assert!(!contender.is_finished());
            release_tx.send(()).unwrap();
            holder.join().unwrap();
            contender.join().unwrap();
            assert_eq!(
                *lock.lock(),
                ["holder", "holder released", "contender"],
                "the contender got the lock while the holder still held it"
            );
        });
    });
}

#[test]
fn mutex_try_lock_and_unlock_on_panic() {
    watchdog("mutex try_lock", HANG_LIMIT, || {
        let rt = runtime(1);
        let lock = Arc::new(Mutex::new(1));
        {
            let guard = lock.lock();
            assert!(lock.try_lock().is_none(), "try_lock while held");
            drop(guard);
        }
        *lock.try_lock().expect("try_lock when free") += 1;
        let l = lock.clone();
        let result = rt
            .spawn(move || {
                let _guard = l.lock();
                panic!("panic while holding the lock");
            })
            .join();
        assert!(result.is_err());
        // No poisoning: the lock was released by the unwinding guard.
        assert_eq!(*lock.try_lock().expect("the panic unlocked the mutex"), 2);
    });
}

// ---------------------------------------------------------------------------------------------
// Condvar

#[test]
fn condvar_producer_consumer_with_wait_while() {
    const ITEMS: usize = 2_000;
    const CAPACITY: usize = 4;
    struct Queue {
        items: Mutex<(VecDeque<usize>, bool)>,
        not_empty: Condvar,
        not_full: Condvar,
    }
    watchdog("condvar queue", HANG_LIMIT, || {
        let rt = runtime(2);
        let q = Arc::new(Queue {
            items: Mutex::new((VecDeque::new(), false)),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
        });
        let consumers: Vec<JoinHandle<Vec<usize>>> = (0..3)
            .map(|_| {
                let q = q.clone();
                rt.spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        let mut guard =
                            q.not_empty.wait_while(q.items.lock(), |(items, closed)| {
                                items.is_empty() && !*closed
                            });
                        let Some(v) = guard.0.pop_front() else {
                            return got; // closed and empty
                        };
                        assert!(guard.0.len() < CAPACITY);
                        drop(guard);
                        q.not_full.notify_one();
                        got.push(v);
                    }
                })
            })
            .collect();
        let producers: Vec<JoinHandle<()>> = (0..2)
            .map(|p| {
                let q = q.clone();
                rt.spawn(move || {
                    for v in (p..ITEMS).step_by(2) {
                        let mut guard = q
                            .not_full
                            .wait_while(q.items.lock(), |(items, _)| items.len() >= CAPACITY);
                        guard.0.push_back(v);
                        drop(guard);
                        q.not_empty.notify_one();
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        q.items.lock().1 = true;
        q.not_empty.notify_all();
        let mut all: Vec<usize> = consumers
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..ITEMS).collect::<Vec<_>>());
    });
}

/// Four goroutines parked in `Condvar::wait` on one worker, each counting its return from
/// `wait` (spurious or not); the caller runs on that worker too.
struct Waiters {
    state: Arc<(Mutex<usize>, Condvar)>,
    returned: Arc<AtomicUsize>,
    handles: Vec<JoinHandle<()>>,
}

fn park_waiters(n: usize) -> Waiters {
    let state = Arc::new((Mutex::new(0usize), Condvar::new()));
    let returned = Arc::new(AtomicUsize::new(0));
    let handles = (0..n)
        .map(|_| {
            let (state, returned) = (state.clone(), returned.clone());
            scheduler::spawn(move || {
                let (lock, cond) = &*state;
                let mut parked = lock.lock();
                *parked += 1;
                let guard = cond.wait(parked);
                returned.fetch_add(1, Ordering::SeqCst);
                drop(guard);
            })
        })
        .collect();
    yield_until("waiters park", SPIN_LIMIT, || *state.0.lock() == n);
    Waiters {
        state,
        returned,
        handles,
    }
}

#[test]
fn condvar_notify_one_wakes_one_waiter_and_notify_all_the_rest() {
    watchdog("condvar notify", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            let w = park_waiters(4);
            yield_times(10);
            assert_eq!(w.returned.load(Ordering::SeqCst), 0, "nobody notified yet");
            for expected in 1..=2 {
                w.state.1.notify_one();
                yield_until("a notified waiter returns", SPIN_LIMIT, || {
                    w.returned.load(Ordering::SeqCst) >= expected
                });
                yield_times(10);
                assert_eq!(
                    w.returned.load(Ordering::SeqCst),
                    expected,
                    "notify_one woke more than one waiter"
                );
            }
            w.state.1.notify_all();
            for h in w.handles {
                h.join().unwrap();
            }
            assert_eq!(w.returned.load(Ordering::SeqCst), 4);
            // Notifications with nobody waiting are not remembered.
            w.state.1.notify_one();
            let (guard, timed_out) = w
                .state
                .1
                .wait_timeout(w.state.0.lock(), Duration::from_millis(10));
            assert!(timed_out, "a notify before the wait woke it");
            drop(guard);
        });
    });
}

#[test]
fn condvar_wait_timeout_times_out_or_returns_when_notified() {
    const TIMEOUT: Duration = Duration::from_millis(30);
    watchdog("condvar wait_timeout", HANG_LIMIT, || {
        runtime(2).block_on(|| {
            let state = Arc::new((Mutex::new(false), Condvar::new()));
            let (lock, cond) = &*state;
            let start = Instant::now();
            let (guard, timed_out) = cond.wait_timeout(lock.lock(), TIMEOUT);
            let waited = start.elapsed();
            assert!(timed_out);
            assert!(
                waited >= TIMEOUT && waited < PROMPT_LIMIT,
                "waited {waited:?}"
            );
            drop(guard);

            let notifier = {
                let state = state.clone();
                scheduler::spawn(move || {
                    *state.0.lock() = true;
                    state.1.notify_all();
                })
            };
            let mut guard = lock.lock();
            let start = Instant::now();
            while !*guard {
                let (g, timed_out) = cond.wait_timeout(guard, Duration::from_secs(3600));
                assert!(!timed_out, "the notification was lost");
                guard = g;
            }
            assert!(start.elapsed() < PROMPT_LIMIT);
            drop(guard);
            notifier.join().unwrap();
        });
    });
}

// ---------------------------------------------------------------------------------------------
// Semaphore

#[test]
fn semaphore_never_admits_more_than_its_permits() {
    const PERMITS: usize = 3;
    watchdog("semaphore bound", HANG_LIMIT, || {
        let rt = runtime(2);
        let sem = Arc::new(Semaphore::new(PERMITS));
        let inside = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let handles: Vec<JoinHandle<()>> = (0..40)
            .map(|_| {
                let (sem, inside, max) = (sem.clone(), inside.clone(), max.clone());
                rt.spawn(move || {
                    for _ in 0..20 {
                        let permit = sem.acquire();
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        max.fetch_max(now, Ordering::SeqCst);
                        yield_times(3);
                        inside.fetch_sub(1, Ordering::SeqCst);
                        drop(permit);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let max = max.load(Ordering::SeqCst);
        assert!(max <= PERMITS, "{max} holders at once, {PERMITS} permits");
        assert!(max >= 1);
        assert_eq!(sem.available_permits(), PERMITS, "a permit leaked");
    });
}

#[test]
fn semaphore_try_acquire_fails_when_exhausted_and_succeeds_after_a_release() {
    let sem = Semaphore::new(2);
    let a = sem.try_acquire().expect("first permit");
    let b = sem.try_acquire().expect("second permit");
    assert_eq!(sem.available_permits(), 0);
    assert!(sem.try_acquire().is_none(), "no third permit");
    drop(a);
    let c = sem
        .try_acquire()
        .expect("a released permit is available again");
    drop((b, c));
    assert_eq!(sem.available_permits(), 2);
    sem.add_permits(1);
    assert_eq!(sem.available_permits(), 3);
    sem.try_acquire().unwrap().forget();
    assert_eq!(sem.available_permits(), 2, "a forgotten permit is gone");
}

#[test]
fn semaphore_acquire_timeout_gives_up_without_taking_a_permit() {
    const TIMEOUT: Duration = Duration::from_millis(30);
    watchdog("semaphore time-out", HANG_LIMIT, || {
        let check = || {
            let sem = Semaphore::new(1);
            let held = sem.acquire();
            let start = Instant::now();
            assert!(sem.acquire_timeout(TIMEOUT).is_none());
            let waited = start.elapsed();
            assert!(
                waited >= TIMEOUT && waited < PROMPT_LIMIT,
                "waited {waited:?}"
            );
            assert!(
                sem.acquire_deadline(Instant::now() + TIMEOUT).is_none(),
                "deadline variant"
            );
            drop(held);
            assert_eq!(
                sem.available_permits(),
                1,
                "the timed-out waits took nothing"
            );
            assert!(sem.acquire_timeout(TIMEOUT).is_some());
        };
        check(); // a plain thread
        runtime(1).block_on(check);
    });
}

#[test]
fn semaphore_time_outs_racing_releases_conserve_permits() {
    // Waiters with tiny time-outs race against releases handing them permits: a permit handed
    // to a waiter that has just timed out must go to the next waiter or back to the pool.
    const PERMITS: usize = 2;
    watchdog("semaphore time-out races", HANG_LIMIT, || {
        let rt = runtime(2);
        let sem = Arc::new(Semaphore::new(PERMITS));
        let got = Arc::new(AtomicUsize::new(0));
        let handles: Vec<JoinHandle<()>> = (0..8u64)
            .map(|g| {
                let (sem, got) = (sem.clone(), got.clone());
                rt.spawn(move || {
                    for i in 0..400u64 {
                        let timeout = Duration::from_micros((g * 7 + i) % 60);
                        if let Some(permit) = sem.acquire_timeout(timeout) {
                            got.fetch_add(1, Ordering::Relaxed);
                            if i % 3 == 0 {
                                scheduler::yield_now();
                            }
                            drop(permit);
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert!(got.load(Ordering::Relaxed) > 0);
        assert_eq!(sem.available_permits(), PERMITS, "permits lost or made up");
        let all: Vec<_> = (0..PERMITS)
            .map(|_| sem.try_acquire().expect("every permit can be taken"))
            .collect();
        assert!(sem.try_acquire().is_none());
        drop(all);
    });
}

#[test]
fn semaphore_serves_waiters_in_arrival_order() {
    const WAITERS: usize = 8;
    watchdog("semaphore FIFO", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            let sem = Arc::new(Semaphore::new(1));
            let order = Arc::new(Mutex::new(Vec::new()));
            let held = sem.try_acquire().unwrap();
            let mut handles = Vec::new();
            for i in 0..WAITERS {
                let arrived = Arc::new(AtomicBool::new(false));
                let (sem, order, flag) = (sem.clone(), order.clone(), arrived.clone());
                handles.push(scheduler::spawn(move || {
                    flag.store(true, Ordering::SeqCst);
                    let _permit = sem.acquire();
                    order.lock().push(i);
                    scheduler::yield_now();
                }));
                // Waiter i is queued before waiter i + 1 arrives.
                yield_until("a waiter queues", SPIN_LIMIT, || {
                    arrived.load(Ordering::SeqCst)
                });
            }
            // A newcomer does not overtake the queue.
            assert!(sem.try_acquire().is_none());
            drop(held);
            for h in handles {
                h.join().unwrap();
            }
            assert_eq!(*order.lock(), (0..WAITERS).collect::<Vec<_>>());
            assert_eq!(sem.available_permits(), 1);
        });
    });
}

// ---------------------------------------------------------------------------------------------
// RwLock

#[test]
fn rwlock_admits_several_readers_at_once() {
    // Each reader holds its worker (spinning, not yielding) until another reader is inside:
    // with exclusive readers that could never happen, and the spin fails.
    watchdog("concurrent readers", HANG_LIMIT, || {
        runtime(2).block_on(|| {
            let lock = Arc::new(RwLock::new(5));
            let inside = Arc::new(AtomicUsize::new(0));
            let readers: Vec<JoinHandle<i32>> = (0..2)
                .map(|_| {
                    let (lock, inside) = (lock.clone(), inside.clone());
                    scheduler::spawn(move || {
                        let guard = lock.read();
                        inside.fetch_add(1, Ordering::SeqCst);
                        spin_until("two readers inside at once", SPIN_LIMIT, || {
                            inside.load(Ordering::SeqCst) >= 2
                        });
                        *guard
                    })
                })
                .collect();
            for r in readers {
                assert_eq!(r.join().unwrap(), 5);
            }
            assert!(lock.try_write().is_some(), "every reader left");
        });
    });
}

#[test]
fn rwlock_writers_are_exclusive() {
    watchdog("exclusive writers", HANG_LIMIT, || {
        let rt = runtime(2);
        // Writers keep the two halves equal but change them one at a time with a yield in
        // between: a reader or writer that got in meanwhile sees them differ.
        let lock = Arc::new(RwLock::new((0u64, 0u64)));
        let writers_inside = Arc::new(AtomicUsize::new(0));
        let handles: Vec<JoinHandle<()>> = (0..8)
            .map(|g| {
                let (lock, writers_inside) = (lock.clone(), writers_inside.clone());
                rt.spawn(move || {
                    for i in 0..200 {
                        if (g + i) % 3 == 0 {
                            let mut guard = lock.write();
                            assert_eq!(writers_inside.fetch_add(1, Ordering::SeqCst), 0);
                            assert_eq!(guard.0, guard.1, "a writer saw a half-done write");
                            guard.0 += 1;
                            scheduler::yield_now();
                            guard.1 += 1;
                            writers_inside.fetch_sub(1, Ordering::SeqCst);
                        } else {
                            let guard = lock.read();
                            assert_eq!(writers_inside.load(Ordering::SeqCst), 0);
                            assert_eq!(guard.0, guard.1, "a reader saw a half-done write");
                            scheduler::yield_now();
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let total = *lock.read();
        let writes = (0..8u64)
            .map(|g| (0..200u64).filter(|i| (g + i) % 3 == 0).count() as u64)
            .sum::<u64>();
        assert_eq!(total, (writes, writes));
    });
}

#[test]
fn rwlock_writer_is_not_starved_by_a_stream_of_readers() {
    // Readers overlap without pause (each holds the lock across a yield while the others come
    // in), so the lock is never free of readers unless newcomers queue behind a waiting writer.
    watchdog("writer starvation", HANG_LIMIT, || {
        let rt = runtime(2);
        let lock = Arc::new(RwLock::new(0u64));
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicUsize::new(0));
        let readers: Vec<JoinHandle<()>> = (0..6)
            .map(|_| {
                let (lock, stop, reads) = (lock.clone(), stop.clone(), reads.clone());
                rt.spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let guard = lock.read();
                        reads.fetch_add(1, Ordering::SeqCst);
                        scheduler::yield_now();
                        drop(guard);
                    }
                })
            })
            .collect();
        spin_until("the readers get going", SPIN_LIMIT, || {
            reads.load(Ordering::SeqCst) > 200
        });
        let writer = {
            let lock = lock.clone();
            rt.spawn(move || {
                let start = Instant::now();
                *lock.write() += 1;
                start.elapsed()
            })
        };
        let waited = writer.join().unwrap();
        let before = reads.load(Ordering::SeqCst);
        spin_until("readers resume after the writer", SPIN_LIMIT, || {
            reads.load(Ordering::SeqCst) > before + 10
        });
        stop.store(true, Ordering::SeqCst);
        for r in readers {
            r.join().unwrap();
        }
        assert!(waited < PROMPT_LIMIT, "the writer waited {waited:?}");
        assert_eq!(*lock.read(), 1);
    });
}

// ---------------------------------------------------------------------------------------------
// OnceLock

#[test]
fn once_lock_runs_init_once_under_contention() {
    const CALLERS: usize = 16;
    watchdog("OnceLock contention", HANG_LIMIT, || {
        let rt = runtime(2);
        let cell = Arc::new(OnceLock::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let arrived = Arc::new(AtomicUsize::new(0));
        let handles: Vec<JoinHandle<usize>> = (0..CALLERS)
            .map(|i| {
                let (cell, runs, arrived) = (cell.clone(), runs.clone(), arrived.clone());
                rt.spawn(move || {
                    arrived.fetch_add(1, Ordering::SeqCst);
                    let v: &String = cell.get_or_init(|| {
                        runs.fetch_add(1, Ordering::SeqCst);
                        // Keep initialising until every caller has arrived.
                        yield_until("callers arrive", SPIN_LIMIT, || {
                            arrived.load(Ordering::SeqCst) == CALLERS
                        });
                        format!("init by {i}")
                    });
                    v as *const String as usize
                })
            })
            .collect();
        let addrs: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(runs.load(Ordering::SeqCst), 1, "init ran more than once");
        assert!(
            addrs.iter().all(|&a| a == addrs[0]),
            "callers saw different values"
        );
        assert!(cell.get().unwrap().starts_with("init by "));
        assert_eq!(cell.set(String::from("late")), Err(String::from("late")));
    });
}

#[test]
fn once_lock_init_that_panics_lets_a_waiting_caller_retry() {
    watchdog("OnceLock panic", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            let cell = Arc::new(OnceLock::<usize>::new());
            let waiting = Arc::new(AtomicUsize::new(0));
            let inits = Arc::new(AtomicUsize::new(0));
            let initialising = Arc::new(AtomicBool::new(false));
            let first = {
                let (cell, waiting) = (cell.clone(), waiting.clone());
                let initialising = initialising.clone();
                scheduler::spawn(move || {
                    expect_panic(|| {
                        cell.get_or_init(|| {
                            initialising.store(true, Ordering::SeqCst);
                            yield_until("the others wait", SPIN_LIMIT, || {
                                waiting.load(Ordering::SeqCst) == 3
                            });
                            yield_times(5);
                            panic!("init fails")
                        })
                    })
                })
            };
            yield_until("the first init runs", SPIN_LIMIT, || {
                initialising.load(Ordering::SeqCst)
            });
            let others: Vec<JoinHandle<usize>> = (1..=3)
                .map(|i| {
                    let (cell, waiting, inits) = (cell.clone(), waiting.clone(), inits.clone());
                    scheduler::spawn(move || {
                        waiting.fetch_add(1, Ordering::SeqCst);
                        *cell.get_or_init(|| {
                            inits.fetch_add(1, Ordering::SeqCst);
                            i * 100
                        })
                    })
                })
                .collect();
            assert_eq!(first.join().unwrap(), "init fails");
            let values: Vec<usize> = others.into_iter().map(|h| h.join().unwrap()).collect();
            assert_eq!(
                inits.load(Ordering::SeqCst),
                1,
                "exactly one retry succeeds"
            );
            assert!(values.iter().all(|&v| v == values[0]), "{values:?}");
            assert_eq!(cell.get(), Some(&values[0]));
        });
    });
}

#[test]
fn once_lock_retries_after_a_panic_with_no_one_waiting() {
    let cell = OnceLock::new();
    let msg = expect_panic(|| cell.get_or_init(|| -> u32 { panic!("first try") }));
    assert_eq!(msg, "first try");
    assert_eq!(cell.get(), None, "a failed init leaves the cell empty");
    assert_eq!(*cell.get_or_init(|| 7), 7);
    assert_eq!(cell.into_inner(), Some(7));
}
