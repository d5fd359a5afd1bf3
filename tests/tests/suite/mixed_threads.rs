//! Every primitive shared by plain threads and goroutines at the same time: a goroutine that
//! waits parks, a thread that waits blocks, and either side wakes the other.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use scheduler::chan;
use scheduler::sync::{Condvar, Mutex, OnceLock, RwLock, Semaphore};
use scheduler::{JoinHandle, WaitGroup, select};
use scheduler_tests::{HANG_LIMIT, PROMPT_LIMIT, SPIN_LIMIT, runtime, spin_until, watchdog};

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}

#[test]
fn plain_thread_producer_feeds_goroutine_consumers() {
    const N: u64 = 3_000;
    watchdog("thread -> goroutines", HANG_LIMIT, || {
        let rt = runtime(2);
        for cap in [0, 4] {
            let (tx, rx) = chan::bounded::<u64>(cap);
            let consumers: Vec<JoinHandle<Vec<u64>>> = (0..4)
                .map(|_| {
                    let rx = rx.clone();
                    rt.spawn(move || rx.iter().collect())
                })
                .collect();
            drop(rx);
            let producer = thread::spawn(move || {
                for v in 0..N {
                    tx.send(v).unwrap();
                }
            });
            producer.join().unwrap();
            let all: Vec<u64> = consumers
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect();
            assert_eq!(sorted(all), (0..N).collect::<Vec<_>>(), "cap {cap}");
        }
    });
}

#[test]
fn goroutine_producers_feed_plain_thread_consumers() {
    const PER_PRODUCER: u64 = 1_000;
    watchdog("goroutines -> threads", HANG_LIMIT, || {
        let rt = runtime(2);
        for cap in [0, 4] {
            let (tx, rx) = chan::bounded::<u64>(cap);
            let consumers: Vec<thread::JoinHandle<Vec<u64>>> = (0..3)
                .map(|_| {
                    let rx = rx.clone();
                    thread::spawn(move || rx.iter().collect())
                })
                .collect();
            drop(rx);
            for p in 0..4 {
                let tx = tx.clone();
                drop(rt.spawn(move || {
                    for seq in 0..PER_PRODUCER {
                        tx.send(p * PER_PRODUCER + seq).unwrap();
                    }
                }));
            }
            drop(tx);
            let all: Vec<u64> = consumers
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect();
            assert_eq!(
                sorted(all),
                (0..4 * PER_PRODUCER).collect::<Vec<_>>(),
                "cap {cap}"
            );
        }
    });
}

#[test]
fn threads_and_goroutines_send_and_receive_on_one_channel() {
    // Both kinds on both ends of one rendezvous channel.
    const PER_SENDER: u64 = 500;
    watchdog("mixed on both ends", HANG_LIMIT, || {
        let rt = runtime(2);
        let (tx, rx) = chan::bounded::<u64>(0);
        let mut receivers: Vec<Box<dyn FnOnce() -> Vec<u64>>> = Vec::new();
        for _ in 0..2 {
            let thread_rx = rx.clone();
            let h = thread::spawn(move || thread_rx.iter().collect::<Vec<u64>>());
            receivers.push(Box::new(move || h.join().unwrap()));
            let goroutine_rx = rx.clone();
            let h = rt.spawn(move || goroutine_rx.iter().collect::<Vec<u64>>());
            receivers.push(Box::new(move || h.join().unwrap()));
        }
        drop(rx);
        let mut senders: Vec<Box<dyn FnOnce()>> = Vec::new();
        for s in 0..4u64 {
            let tx = tx.clone();
            let send_all = move || {
                for seq in 0..PER_SENDER {
                    tx.send(s * PER_SENDER + seq).unwrap();
                }
            };
            if s % 2 == 0 {
                let h = thread::spawn(send_all);
                senders.push(Box::new(move || h.join().unwrap()));
            } else {
                let h = rt.spawn(send_all);
                senders.push(Box::new(move || h.join().unwrap()));
            }
        }
        drop(tx);
        senders.into_iter().for_each(|join| join());
        let all: Vec<u64> = receivers.into_iter().flat_map(|join| join()).collect();
        assert_eq!(sorted(all), (0..4 * PER_SENDER).collect::<Vec<_>>());
    });
}

#[test]
fn plain_thread_select_is_woken_by_a_goroutine() {
    watchdog("thread select", HANG_LIMIT, || {
        let rt = runtime(2);
        for round in 0..200u32 {
            let (tx_a, rx_a) = chan::bounded::<u32>(0);
            let (tx_b, rx_b) = chan::bounded::<u32>(0);
            let tx = if round % 2 == 0 { tx_a } else { tx_b };
            let sender = rt.spawn(move || tx.send(round));
            let got = select! {
                recv(rx_a) -> v => ('a', v),
                recv(rx_b) -> v => ('b', v),
                default(PROMPT_LIMIT) => panic!("round {round}: the goroutine's send never arrived"),
            };
            let arm = if round % 2 == 0 { 'a' } else { 'b' };
            assert_eq!(got, (arm, Ok(round)));
            assert_eq!(sender.join().unwrap(), Ok(()));
        }
    });
}

#[test]
fn mutex_contended_by_threads_and_goroutines_counts_exactly() {
    // Contention between threads and goroutines makes waits over 1 ms likely, so starvation
    // mode comes and goes (see `mutex_counts_a_million_increments_exactly_on_two_procs` in
    // sync_primitives.rs); the count must stay exact.
    const THREADS: usize = 2;
    const GOROUTINES: usize = 6;
    const EACH: usize = 10_000;
    let total = watchdog("mixed mutex", HANG_LIMIT, || {
        let rt = runtime(2);
        let counter = Arc::new(Mutex::new(0usize));
        let goroutines: Vec<JoinHandle<()>> = (0..GOROUTINES)
            .map(|_| {
                let counter = counter.clone();
                rt.spawn(move || {
                    for i in 0..EACH {
                        *counter.lock() += 1;
                        if i % 256 == 0 {
                            scheduler::yield_now();
                        }
                    }
                })
            })
            .collect();
        let threads: Vec<thread::JoinHandle<()>> = (0..THREADS)
            .map(|_| {
                let counter = counter.clone();
                thread::spawn(move || {
                    for _ in 0..EACH {
                        *counter.lock() += 1;
                    }
                })
            })
            .collect();
        for h in goroutines {
            h.join().unwrap();
        }
        for t in threads {
            t.join().unwrap();
        }
        *counter.lock()
    });
    assert_eq!(total, (THREADS + GOROUTINES) * EACH);
}

#[test]
fn wait_group_done_by_a_thread_releases_goroutine_and_thread_waiters() {
    watchdog("mixed WaitGroup", HANG_LIMIT, || {
        let rt = runtime(2);
        for _ in 0..20 {
            let wg = WaitGroup::new();
            wg.add(3);
            let released = Arc::new(AtomicUsize::new(0));
            let goroutine_waiters: Vec<JoinHandle<()>> = (0..4)
                .map(|_| {
                    let (wg, released) = (wg.clone(), released.clone());
                    rt.spawn(move || {
                        wg.wait();
                        released.fetch_add(1, Ordering::SeqCst);
                    })
                })
                .collect();
            let thread_waiters: Vec<thread::JoinHandle<()>> = (0..2)
                .map(|_| {
                    let (wg, released) = (wg.clone(), released.clone());
                    thread::spawn(move || {
                        wg.wait();
                        released.fetch_add(1, Ordering::SeqCst);
                    })
                })
                .collect();
            // One done from a goroutine, one from a thread, the last from this thread.
            let w = wg.clone();
            rt.spawn(move || w.done()).join().unwrap();
            let w = wg.clone();
            thread::spawn(move || w.done()).join().unwrap();
            assert_eq!(
                released.load(Ordering::SeqCst),
                0,
                "released before the count hit 0"
            );
            wg.done();
            goroutine_waiters
                .into_iter()
                .for_each(|h| h.join().unwrap());
            thread_waiters.into_iter().for_each(|t| t.join().unwrap());
            assert_eq!(released.load(Ordering::SeqCst), 6);
        }
    });
}

/// Tokens to hand out and the number of waiters, with the condition "a token is there".
type Tokens = (Mutex<(VecDeque<usize>, usize)>, Condvar);

#[test]
fn condvar_wakes_goroutine_and_thread_waiters() {
    // A queue of tokens under a Mutex: each waiter, thread or goroutine, waits for a token.
    // Tokens are added one at a time with notify_one, then the rest at once with notify_all.
    const GOROUTINES: usize = 6;
    const THREADS: usize = 3;
    watchdog("mixed Condvar", HANG_LIMIT, || {
        let rt = runtime(2);
        let state = Arc::new((
            Mutex::new((VecDeque::<usize>::new(), 0usize)),
            Condvar::new(),
        ));
        let take = |state: Arc<Tokens>| {
            let (lock, cond) = &*state;
            let mut guard = lock.lock();
            guard.1 += 1; // waiting
            let mut guard = cond.wait_while(guard, |(tokens, _)| tokens.is_empty());
            guard.0.pop_front().unwrap()
        };
        let goroutines: Vec<JoinHandle<usize>> = (0..GOROUTINES)
            .map(|_| {
                let state = state.clone();
                rt.spawn(move || take(state))
            })
            .collect();
        let threads: Vec<thread::JoinHandle<usize>> = (0..THREADS)
            .map(|_| {
                let state = state.clone();
                thread::spawn(move || take(state))
            })
            .collect();
        spin_until("every waiter waits", SPIN_LIMIT, || {
            state.0.lock().1 == GOROUTINES + THREADS
        });
        let (lock, cond) = &*state;
        for token in 0..4 {
            lock.lock().0.push_back(token);
            cond.notify_one();
        }
        // From a goroutine this time.
        let s = state.clone();
        rt.spawn(move || {
            s.0.lock().0.extend(4..GOROUTINES + THREADS);
            s.1.notify_all();
        })
        .join()
        .unwrap();
        let mut got: Vec<usize> = goroutines.into_iter().map(|h| h.join().unwrap()).collect();
        got.extend(threads.into_iter().map(|t| t.join().unwrap()));
        got.sort_unstable();
        assert_eq!(got, (0..GOROUTINES + THREADS).collect::<Vec<_>>());
        assert!(lock.lock().0.is_empty());
    });
}

#[test]
fn semaphore_shared_by_threads_and_goroutines_bounds_and_conserves_permits() {
    const PERMITS: usize = 2;
    watchdog("mixed Semaphore", HANG_LIMIT, || {
        let rt = runtime(2);
        let sem = Arc::new(Semaphore::new(PERMITS));
        let inside = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let critical = {
            let (sem, inside, max) = (sem.clone(), inside.clone(), max.clone());
            move |i: usize| {
                let permit = if i.is_multiple_of(4) {
                    match sem.acquire_timeout(Duration::from_micros(50)) {
                        Some(p) => p,
                        None => return,
                    }
                } else {
                    sem.acquire()
                };
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(now, Ordering::SeqCst);
                scheduler::yield_now();
                inside.fetch_sub(1, Ordering::SeqCst);
                drop(permit);
            }
        };
        let goroutines: Vec<JoinHandle<()>> = (0..6)
            .map(|_| {
                let critical = critical.clone();
                rt.spawn(move || (0..300).for_each(&critical))
            })
            .collect();
        let threads: Vec<thread::JoinHandle<()>> = (0..2)
            .map(|_| {
                let critical = critical.clone();
                thread::spawn(move || (0..300).for_each(&critical))
            })
            .collect();
        goroutines.into_iter().for_each(|h| h.join().unwrap());
        threads.into_iter().for_each(|t| t.join().unwrap());
        let max = max.load(Ordering::SeqCst);
        assert!(
            max <= PERMITS,
            "{max} holders at once with {PERMITS} permits"
        );
        assert_eq!(sem.available_permits(), PERMITS);
    });
}

#[test]
fn rwlock_and_once_lock_shared_by_threads_and_goroutines() {
    watchdog("mixed RwLock/OnceLock", HANG_LIMIT, || {
        let rt = runtime(2);
        let lock = Arc::new(RwLock::new((0u64, 0u64)));
        let once = Arc::new(OnceLock::new());
        let inits = Arc::new(AtomicUsize::new(0));
        let work = {
            let (lock, once, inits) = (lock.clone(), once.clone(), inits.clone());
            move |id: u64| {
                let v = *once.get_or_init(|| {
                    inits.fetch_add(1, Ordering::SeqCst);
                    id
                });
                for i in 0..300u64 {
                    if (id + i).is_multiple_of(4) {
                        let mut guard = lock.write();
                        guard.0 += 1;
                        scheduler::yield_now();
                        guard.1 += 1;
                    } else {
                        let guard = lock.read();
                        assert_eq!(guard.0, guard.1, "a reader saw a half-done write");
                    }
                }
                v
            }
        };
        let goroutines: Vec<JoinHandle<u64>> = (0..6)
            .map(|id| {
                let work = work.clone();
                rt.spawn(move || work(id))
            })
            .collect();
        let threads: Vec<thread::JoinHandle<u64>> = (6..9)
            .map(|id| {
                let work = work.clone();
                thread::spawn(move || work(id))
            })
            .collect();
        let mut seen: Vec<u64> = goroutines.into_iter().map(|h| h.join().unwrap()).collect();
        seen.extend(threads.into_iter().map(|t| t.join().unwrap()));
        assert_eq!(inits.load(Ordering::SeqCst), 1);
        assert!(seen.iter().all(|&v| v == seen[0]));
        let writes: u64 = (0..9u64)
            .map(|id| (0..300u64).filter(|i| (id + i).is_multiple_of(4)).count() as u64)
            .sum();
        assert_eq!(*lock.read(), (writes, writes));
    });
}
