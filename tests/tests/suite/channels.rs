//! Channels: Go's prime sieve, rendezvous hand-over, MPMC delivery, closing (explicitly and by
//! dropping either end), time-outs, and what the non-blocking calls report.
//!
//! Tests that need "every goroutine is blocked now" run on one worker: goroutines are not
//! preempted, so a goroutine that records that it is about to block and then blocks has parked
//! by the time another goroutine of that worker sees the record.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use scheduler::chan::{
    self, Receiver, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
use scheduler::{JoinHandle, WaitGroup};
use scheduler_tests::{
    DropCounter, HANG_LIMIT, PROMPT_LIMIT, SPIN_LIMIT, runtime, spin_until, watchdog, yield_times,
    yield_until,
};

/// The first `n` primes, by trial division: the reference for the sieve.
fn first_primes(n: usize) -> Vec<u64> {
    let mut primes: Vec<u64> = Vec::with_capacity(n);
    let mut candidate = 2;
    while primes.len() < n {
        if primes.iter().all(|p| candidate % p != 0) {
            primes.push(candidate);
        }
        candidate += 1;
    }
    primes
}

/// Go's concurrent prime sieve: a generator goroutine feeds 2, 3, 4, ... into a rendezvous
/// channel, and every prime found adds a filter goroutine to the chain that drops the prime's
/// multiples. Returns the first `n` primes once the whole chain has wound down: dropping the
/// last receiver makes the last filter's send fail, it returns and drops its receiver, and so
/// on up to the generator.
fn sieve(n: usize) -> Vec<u64> {
    let stages = WaitGroup::new();
    let (tx, mut rx) = chan::bounded::<u64>(0);
    drop(stages.go(move || {
        let mut i = 2;
        while tx.send(i).is_ok() {
            i += 1;
        }
    }));
    let mut primes = Vec::with_capacity(n);
    for _ in 0..n {
        let prime = rx
            .recv()
            .expect("the chain keeps running while its last receiver lives");
        primes.push(prime);
        let (out_tx, out_rx) = chan::bounded(0);
        let input: Receiver<u64> = std::mem::replace(&mut rx, out_rx);
        drop(stages.go(move || {
            for v in &input {
                if v % prime != 0 && out_tx.send(v).is_err() {
                    break;
                }
            }
        }));
    }
    assert_eq!(
        scheduler::num_goroutines(),
        n + 2,
        "generator, filters, main"
    );
    drop(rx);
    stages.wait();
    primes
}

#[test]
fn prime_sieve_finds_the_first_100_primes_on_one_proc() {
    let primes = watchdog("prime sieve, procs(1)", HANG_LIMIT, || {
        runtime(1).block_on(|| sieve(100))
    });
    assert_eq!(primes, first_primes(100));
    assert_eq!(primes[99], 541);
}

#[test]
fn prime_sieve_finds_the_first_100_primes_on_two_procs() {
    let primes = watchdog("prime sieve, procs(2)", HANG_LIMIT, || {
        runtime(2).block_on(|| sieve(100))
    });
    assert_eq!(primes, first_primes(100));
}

/// Spawns `n` goroutines running `f(i)`; each records that it is about to call `f`, and this
/// returns once all have. On one worker that means each has run `f` up to its first block.
fn spawn_blocked<T: Send + 'static>(
    n: usize,
    f: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<JoinHandle<T>> {
    let f = Arc::new(f);
    let arrived = Arc::new(AtomicUsize::new(0));
    let handles = (0..n)
        .map(|i| {
            let (f, arrived) = (f.clone(), arrived.clone());
            scheduler::spawn(move || {
                arrived.fetch_add(1, Ordering::SeqCst);
                f(i)
            })
        })
        .collect();
    yield_until("blocked goroutines start", SPIN_LIMIT, || {
        arrived.load(Ordering::SeqCst) == n
    });
    handles
}

#[test]
fn close_wakes_every_blocked_receiver_with_recv_error() {
    watchdog("close wakes receivers", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            for cap in [0, 3] {
                let (tx, rx) = chan::bounded::<u32>(cap);
                let receivers = spawn_blocked(6, move |_| rx.recv());
                yield_times(10);
                assert!(
                    receivers.iter().all(|h| !h.is_finished()),
                    "cap {cap}: a receiver returned from recv on an empty, open channel"
                );
                assert!(tx.close(), "the first close closes");
                for h in receivers {
                    assert_eq!(h.join().unwrap(), Err(RecvError), "cap {cap}");
                }
                assert!(!tx.close(), "closing twice reports that it was closed");
            }
        });
    });
}

#[test]
fn close_wakes_every_blocked_sender_with_its_value_and_receivers_drain_the_buffer_first() {
    watchdog("close wakes senders", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            for cap in [0usize, 2] {
                let (tx, rx) = chan::bounded::<usize>(cap);
                for i in 0..cap {
                    tx.send(1000 + i).unwrap();
                }
                assert_eq!(tx.len(), cap);
                let sender = tx.clone();
                let senders = spawn_blocked(5, move |i| sender.send(i));
                yield_times(10);
                assert!(
                    senders.iter().all(|h| !h.is_finished()),
                    "cap {cap}: a send completed on a full channel nobody reads"
                );
                tx.close();
                for (i, h) in senders.into_iter().enumerate() {
                    assert_eq!(
                        h.join().unwrap(),
                        Err(SendError(i)),
                        "cap {cap}: a blocked sender must get its own value back"
                    );
                }
                // What was buffered before the close is still delivered, in order, then the
                // channel reports closed; none of the rejected values shows up.
                let drained: Vec<usize> = rx.iter().collect();
                assert_eq!(drained, (1000..1000 + cap).collect::<Vec<_>>(), "cap {cap}");
                assert_eq!(rx.recv(), Err(RecvError));
            }
        });
    });
}

#[test]
fn receivers_drain_buffered_values_after_close_then_see_disconnected() {
    watchdog("drain after close", HANG_LIMIT, || {
        runtime(2).block_on(|| {
            let (tx, rx) = chan::bounded::<u32>(8);
            for v in 0..8 {
                tx.send(v).unwrap();
            }
            tx.close();
            assert!(rx.is_closed());
            assert_eq!(rx.len(), 8, "closing keeps what is buffered");
            // Four goroutines drain together: every buffered value exactly once.
            let drains: Vec<JoinHandle<Vec<u32>>> = (0..4)
                .map(|_| {
                    let rx = rx.clone();
                    scheduler::spawn(move || rx.iter().collect())
                })
                .collect();
            let mut all: Vec<u32> = drains.into_iter().flat_map(|h| h.join().unwrap()).collect();
            all.sort_unstable();
            assert_eq!(all, (0..8).collect::<Vec<_>>());
            assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
            assert_eq!(
                rx.recv_timeout(Duration::from_secs(3600)),
                Err(RecvTimeoutError::Disconnected)
            );
        });
    });
}

#[test]
fn close_racing_busy_producers_and_consumers_loses_and_duplicates_nothing() {
    // Producers send until the channel closes under them; whatever a send accepted must be
    // received exactly once, and whatever it rejected must come back to the producer.
    watchdog("close under load", HANG_LIMIT, || {
        let rt = runtime(2);
        for round in 0..20 {
            let (tx, rx) = chan::bounded::<u64>(round % 5);
            let producers: Vec<JoinHandle<(Vec<u64>, u64)>> = (0..4u64)
                .map(|p| {
                    let tx = tx.clone();
                    rt.spawn(move || {
                        let mut accepted = Vec::new();
                        for seq in 0.. {
                            let v = p << 32 | seq;
                            match tx.send(v) {
                                Ok(()) => accepted.push(v),
                                Err(SendError(back)) => return (accepted, back),
                            }
                            if seq % 16 == 0 {
                                scheduler::yield_now();
                            }
                        }
                        unreachable!()
                    })
                })
                .collect();
            let received_so_far = Arc::new(AtomicUsize::new(0));
            let consumers: Vec<JoinHandle<Vec<u64>>> = (0..3)
                .map(|_| {
                    let (rx, count) = (rx.clone(), received_so_far.clone());
                    rt.spawn(move || {
                        rx.iter()
                            .inspect(|_| {
                                count.fetch_add(1, Ordering::SeqCst);
                            })
                            .collect()
                    })
                })
                .collect();
            drop(rx);
            // Let values flow, then close from this plain thread while producers still send
            // (their sequences never end on their own).
            spin_until("values flow before the close", SPIN_LIMIT, || {
                received_so_far.load(Ordering::SeqCst) >= 100
            });
            tx.close();
            let mut accepted = Vec::new();
            for (p, h) in producers.into_iter().enumerate() {
                let (ok, back) = h.join().unwrap();
                assert_eq!(
                    back >> 32,
                    p as u64,
                    "round {round}: a producer got someone else's value back"
                );
                assert_eq!(
                    back & 0xffff_ffff,
                    ok.len() as u64,
                    "round {round}: the rejected value is the one after the accepted ones"
                );
                accepted.extend(ok);
            }
            let mut received: Vec<u64> = consumers
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect();
            accepted.sort_unstable();
            received.sort_unstable();
            assert_eq!(
                received, accepted,
                "round {round}: accepted values lost or duplicated"
            );
        }
    });
}

#[test]
fn dropping_every_sender_closes_the_channel_for_blocked_receivers() {
    watchdog("drop senders", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            let (tx, rx) = chan::bounded::<u32>(1);
            let tx2 = tx.clone();
            let receivers = spawn_blocked(4, move |_| rx.recv());
            yield_times(10);
            drop(tx);
            yield_times(10);
            assert!(
                receivers.iter().all(|h| !h.is_finished()),
                "a sender is still alive: the channel must stay open"
            );
            assert!(!tx2.is_closed());
            drop(tx2);
            for h in receivers {
                assert_eq!(h.join().unwrap(), Err(RecvError));
            }
        });
    });
}

#[test]
fn dropping_every_receiver_fails_blocked_and_later_sends() {
    watchdog("drop receivers", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            for cap in [0usize, 1] {
                let (tx, rx) = chan::bounded::<usize>(cap);
                if cap == 1 {
                    tx.send(99).unwrap();
                }
                let rx2 = rx.clone();
                let sender = tx.clone();
                let senders = spawn_blocked(4, move |i| sender.send(i));
                drop(rx);
                yield_times(10);
                assert!(
                    senders.iter().all(|h| !h.is_finished()),
                    "cap {cap}: a receiver is still alive: sends must keep waiting"
                );
                drop(rx2);
                for (i, h) in senders.into_iter().enumerate() {
                    assert_eq!(h.join().unwrap(), Err(SendError(i)), "cap {cap}");
                }
                assert!(tx.is_closed());
                assert_eq!(tx.send(7), Err(SendError(7)));
                assert_eq!(tx.try_send(8), Err(TrySendError::Disconnected(8)));
            }
        });
    });
}

#[test]
fn send_on_a_closed_channel_returns_the_value_everywhere() {
    watchdog("send on closed", HANG_LIMIT, || {
        let check = || {
            let (tx, rx) = chan::bounded::<String>(4);
            assert!(!tx.is_closed());
            assert!(tx.close());
            assert!(tx.is_closed() && rx.is_closed());
            assert_eq!(tx.send("a".into()), Err(SendError("a".to_string())));
            assert_eq!(
                tx.try_send("b".into()),
                Err(TrySendError::Disconnected("b".to_string()))
            );
            let err = tx
                .send_timeout("c".into(), Duration::from_secs(3600))
                .unwrap_err();
            assert!(matches!(err, SendTimeoutError::Disconnected(_)));
            assert_eq!(err.into_inner(), "c");
            assert_eq!(rx.recv(), Err(RecvError));
            assert!(rx.is_empty(), "a rejected value never enters the buffer");
        };
        check(); // a plain thread
        runtime(1).block_on(check);
    });
}

#[test]
fn rendezvous_send_completes_only_when_a_receiver_takes_the_value() {
    // One worker: after the receiver yields, the sender has run up to its next send and parked
    // there; its "sent" counter must not run ahead of what was received.
    const N: usize = 200;
    watchdog("rendezvous hand-over", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            let (tx, rx) = chan::bounded::<usize>(0);
            assert_eq!(tx.capacity(), Some(0));
            let sent = Arc::new(AtomicUsize::new(0));
            let sender = {
                let sent = sent.clone();
                scheduler::spawn(move || {
                    for i in 0..N {
                        tx.send(i).unwrap();
                        sent.store(i + 1, Ordering::SeqCst);
                    }
                })
            };
            for k in 0..N {
                yield_until("the sender reports its previous send", SPIN_LIMIT, || {
                    sent.load(Ordering::SeqCst) == k
                });
                yield_times(5);
                assert_eq!(
                    sent.load(Ordering::SeqCst),
                    k,
                    "send #{k} completed before any receiver took its value"
                );
                assert_eq!(rx.len(), 0, "a rendezvous channel buffers nothing");
                assert_eq!(rx.recv(), Ok(k), "values from one sender arrive in order");
            }
            sender.join().unwrap();
            assert_eq!(sent.load(Ordering::SeqCst), N);
        });
    });
}

#[test]
fn rendezvous_try_send_needs_a_waiting_receiver() {
    watchdog("rendezvous try_send", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            let (tx, rx) = chan::bounded::<u32>(0);
            assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)));
            assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
            let receiver = spawn_blocked(1, move |_| rx.recv()).pop().unwrap();
            // The receiver is parked in recv now: try_send hands straight to it.
            assert_eq!(tx.try_send(2), Ok(()));
            assert_eq!(receiver.join().unwrap(), Ok(2));
        });
    });
}

#[test]
fn mpmc_delivers_every_value_exactly_once_and_in_order_per_sender() {
    const SENDERS: u64 = 4;
    const RECEIVERS: usize = 4;
    const PER_SENDER: u64 = 1_500;
    watchdog("mpmc multiset", HANG_LIMIT, || {
        let rt = runtime(2);
        for cap in [Some(0), Some(1), Some(7), None] {
            let (tx, rx) = match cap {
                Some(cap) => chan::bounded::<u64>(cap),
                None => chan::unbounded::<u64>(),
            };
            assert_eq!(tx.capacity(), cap);
            let per_receiver = rt.block_on(move || {
                let receivers: Vec<JoinHandle<Vec<u64>>> = (0..RECEIVERS)
                    .map(|_| {
                        let rx = rx.clone();
                        scheduler::spawn(move || rx.iter().collect())
                    })
                    .collect();
                drop(rx);
                for s in 0..SENDERS {
                    let tx = tx.clone();
                    drop(scheduler::spawn(move || {
                        for seq in 0..PER_SENDER {
                            tx.send(s << 32 | seq).unwrap();
                        }
                    }));
                }
                drop(tx); // the channel closes when the last sender finishes
                receivers
                    .into_iter()
                    .map(|h| h.join().unwrap())
                    .collect::<Vec<_>>()
            });
            // Each receiver sees any one sender's values in the order they were sent.
            for (r, got) in per_receiver.iter().enumerate() {
                let mut last: HashMap<u64, u64> = HashMap::new();
                for &v in got {
                    let (s, seq) = (v >> 32, v & 0xffff_ffff);
                    if let Some(&prev) = last.get(&s) {
                        assert!(
                            seq > prev,
                            "cap {cap:?}: receiver {r} got {seq} after {prev} from sender {s}"
                        );
                    }
                    last.insert(s, seq);
                }
            }
            let mut all: Vec<u64> = per_receiver.into_iter().flatten().collect();
            all.sort_unstable();
            let expected: Vec<u64> = (0..SENDERS)
                .flat_map(|s| (0..PER_SENDER).map(move |seq| s << 32 | seq))
                .collect();
            assert_eq!(all.len(), expected.len(), "cap {cap:?}: value count");
            assert_eq!(all, expected, "cap {cap:?}: some value lost or duplicated");
        }
    });
}

#[test]
fn unbounded_sends_never_block() {
    watchdog("unbounded", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            let (tx, rx) = chan::unbounded::<usize>();
            for i in 0..10_000 {
                tx.try_send(i).expect("an unbounded channel is never full");
            }
            assert_eq!(rx.len(), 10_000);
            drop(tx);
            assert!(rx.into_iter().eq(0..10_000));
        });
    });
}

#[test]
fn len_capacity_and_try_iter_report_the_buffer() {
    let (tx, rx) = chan::bounded::<u32>(3);
    assert_eq!((tx.capacity(), rx.capacity()), (Some(3), Some(3)));
    assert!(tx.is_empty() && rx.is_empty());
    tx.send(1).unwrap();
    tx.try_send(2).unwrap();
    tx.send_timeout(3, Duration::ZERO).unwrap();
    assert_eq!((tx.len(), rx.len()), (3, 3));
    assert_eq!(tx.try_send(4), Err(TrySendError::Full(4)));
    assert!(TrySendError::Full(4).is_full());
    assert_eq!(
        tx.send_timeout(5, Duration::ZERO),
        Err(SendTimeoutError::Timeout(5))
    );
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(chan::unbounded::<u8>().0.capacity(), None);
}

#[test]
fn recv_timeout_and_send_timeout_give_up_after_the_timeout() {
    const TIMEOUT: Duration = Duration::from_millis(30);
    watchdog("channel time-outs", HANG_LIMIT, || {
        let check = || {
            let (tx, rx) = chan::bounded::<u32>(1);
            let start = Instant::now();
            assert_eq!(rx.recv_timeout(TIMEOUT), Err(RecvTimeoutError::Timeout));
            let waited = start.elapsed();
            assert!(waited >= TIMEOUT, "recv_timeout returned after {waited:?}");
            assert!(waited < PROMPT_LIMIT, "recv_timeout took {waited:?}");

            tx.send(1).unwrap();
            let start = Instant::now();
            assert_eq!(
                tx.send_timeout(2, TIMEOUT),
                Err(SendTimeoutError::Timeout(2)),
                "the value comes back with the time-out"
            );
            let waited = start.elapsed();
            assert!(waited >= TIMEOUT, "send_timeout returned after {waited:?}");
            assert!(waited < PROMPT_LIMIT, "send_timeout took {waited:?}");
            assert_eq!(
                rx.try_iter().collect::<Vec<_>>(),
                [1],
                "a timed-out send leaves nothing"
            );

            let start = Instant::now();
            let deadline = start + TIMEOUT;
            assert_eq!(rx.recv_deadline(deadline), Err(RecvTimeoutError::Timeout));
            assert!(Instant::now() >= deadline);
            // A deadline in the past still takes what is ready.
            tx.send(3).unwrap();
            assert_eq!(rx.recv_deadline(start), Ok(3));
            assert_eq!(tx.send_deadline(4, start), Ok(()));
            assert_eq!(
                tx.send_deadline(5, start),
                Err(SendTimeoutError::Timeout(5))
            );
        };
        check(); // a plain thread
        let rt = runtime(1);
        rt.block_on(check);
    });
}

#[test]
fn recv_timeout_takes_a_value_that_arrives_in_time() {
    watchdog("recv_timeout success", HANG_LIMIT, || {
        runtime(2).block_on(|| {
            for i in 0..100 {
                let (tx, rx) = chan::bounded::<u32>(0);
                let sender =
                    scheduler::spawn(move || tx.send_timeout(i, Duration::from_secs(3600)));
                assert_eq!(rx.recv_timeout(Duration::from_secs(3600)), Ok(i));
                assert_eq!(sender.join().unwrap(), Ok(()));
            }
        });
    });
}

#[test]
fn racing_time_outs_neither_lose_nor_duplicate_values() {
    // Short time-outs on both sides of a rendezvous race against the hand-over: a value is
    // either handed over (the sender sees Ok and the receiver gets it) or not at all (the
    // sender gets it back). Any other outcome means a wait ended twice.
    const ROUNDS: u32 = 3_000;
    watchdog("racing time-outs", HANG_LIMIT, || {
        let rt = runtime(2);
        let (tx, rx) = chan::bounded::<u32>(0);
        let stop = Arc::new(AtomicBool::new(false));
        let receiver = {
            let stop = stop.clone();
            rt.spawn(move || {
                let mut got = Vec::new();
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    match rx.recv_timeout(Duration::from_micros(n % 40)) {
                        Ok(v) => got.push(v),
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                got.extend(rx.try_iter());
                got
            })
        };
        let sender = rt.spawn(move || {
            let mut delivered = Vec::new();
            for v in 0..ROUNDS {
                match tx.send_timeout(v, Duration::from_micros(u64::from(v % 50))) {
                    Ok(()) => delivered.push(v),
                    Err(SendTimeoutError::Timeout(back)) => assert_eq!(back, v),
                    Err(SendTimeoutError::Disconnected(_)) => panic!("the receiver is alive"),
                }
            }
            delivered
        });
        let delivered = sender.join().unwrap();
        stop.store(true, Ordering::SeqCst);
        let got = receiver.join().unwrap();
        assert_eq!(
            got, delivered,
            "values the sender saw delivered vs values the receiver got"
        );
    });
}

#[test]
fn channel_drops_what_it_still_holds_exactly_once() {
    let drops = DropCounter::new();
    let (tx, rx) = chan::bounded(4);
    for i in 0..4 {
        tx.send(drops.value(i)).unwrap();
    }
    let first = rx.recv().unwrap();
    assert_eq!(first.id, 0);
    tx.send(drops.value(4)).unwrap();
    // A rejected value comes back to the caller, who owns it.
    let back = tx.try_send(drops.value(10)).unwrap_err().into_inner();
    assert_eq!(back.id, 10);
    let rejected = {
        tx.close();
        tx.send(drops.value(11)).unwrap_err().into_inner()
    };
    assert_eq!(
        drops.dropped(),
        0,
        "nothing dropped while everyone holds a value"
    );
    drop((first, back, rejected));
    assert_eq!(drops.dropped(), 3);
    drop(tx);
    assert_eq!(drops.dropped(), 3, "the receiver still holds the channel");
    drop(rx);
    assert_eq!(
        drops.dropped(),
        7,
        "the four buffered values are dropped with the channel"
    );
}

#[test]
fn goroutine_blocked_in_send_or_recv_leaves_its_worker_free() {
    // On one worker, a goroutine blocked in a channel operation parks; the only goroutine
    // that can unblock it runs on the same worker.
    watchdog("blocking parks", HANG_LIMIT, || {
        let rt = runtime(1);
        rt.block_on(|| {
            let (ping_tx, ping_rx) = chan::bounded::<u32>(0);
            let (pong_tx, pong_rx) = chan::bounded::<u32>(0);
            let echo: JoinHandle<()> = scheduler::spawn(move || {
                for v in &ping_rx {
                    pong_tx.send(v + 1).unwrap();
                }
            });
            for i in 0..1_000 {
                ping_tx.send(i).unwrap();
                assert_eq!(pong_rx.recv(), Ok(i + 1));
            }
            drop(ping_tx);
            echo.join().unwrap();
        });
    });
}
