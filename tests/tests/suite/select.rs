//! `select!`: fairness between ready arms, default arms, exactly-once completion with every
//! other registration withdrawn, send arms, closed channels, timers and contexts as arms, and
//! control flow out of arm bodies.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use scheduler::chan::{self, RecvError, SendError, TryRecvError, TrySendError};
use scheduler::context::{Context, ContextError};
use scheduler::{JoinHandle, select, time};
use scheduler_tests::{
    DropCounter, HANG_LIMIT, PROMPT_LIMIT, SPIN_LIMIT, runtime, watchdog, yield_times, yield_until,
};

#[test]
fn two_always_ready_arms_are_chosen_about_equally() {
    // Binomial(n = 10_000, p = 0.5): 4_000..=6_000 is 20 standard deviations wide.
    const SELECTS: usize = 10_000;
    let (a, b) = watchdog("select fairness", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            let (tx_a, rx_a) = chan::unbounded::<u32>();
            let (tx_b, rx_b) = chan::unbounded::<u32>();
            for _ in 0..SELECTS {
                tx_a.send(0).unwrap();
                tx_b.send(1).unwrap();
            }
            let (mut a, mut b) = (0, 0);
            for _ in 0..SELECTS {
                select! {
                    recv(rx_a) -> v => { assert_eq!(v, Ok(0)); a += 1 },
                    recv(rx_b) -> v => { assert_eq!(v, Ok(1)); b += 1 },
                }
            }
            assert_eq!(rx_a.len() + rx_b.len(), SELECTS, "one value per select");
            (a, b)
        })
    });
    assert_eq!(a + b, SELECTS);
    assert!(
        (4_000..=6_000).contains(&a),
        "arm A chosen {a} times, arm B {b} times out of {SELECTS}"
    );
}

#[test]
fn ready_send_and_recv_arms_are_both_chosen() {
    const SELECTS: usize = 10_000;
    let (sent, received) = watchdog("send/recv fairness", HANG_LIMIT, || {
        let (out_tx, out_rx) = chan::unbounded::<u32>();
        let (in_tx, in_rx) = chan::unbounded::<u32>();
        for _ in 0..SELECTS {
            in_tx.send(7).unwrap();
        }
        let (mut sent, mut received) = (0, 0);
        for _ in 0..SELECTS {
            select! {
                send(out_tx, 1) -> r => { r.unwrap(); sent += 1 },
                recv(in_rx) -> v => { assert_eq!(v, Ok(7)); received += 1 },
            }
        }
        assert_eq!(out_rx.len(), sent);
        (sent, received)
    });
    assert!(
        (4_000..=6_000).contains(&sent),
        "send chosen {sent} times, recv {received} times"
    );
}

#[test]
fn default_arm_runs_only_when_nothing_is_ready() {
    watchdog("default arm", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            let (tx, rx) = chan::bounded::<u32>(1);
            let (full_tx, _full_rx) = chan::bounded::<u32>(0);
            let none = select! {
                recv(rx) -> _ => "recv",
                send(full_tx, 1) -> _ => "send",
                default => "default",
            };
            assert_eq!(none, "default");
            tx.send(5).unwrap();
            for _ in 0..100 {
                let got = select! {
                    recv(rx) -> v => v.unwrap(),
                    default => panic!("default chosen although a value was buffered"),
                };
                assert_eq!(got, 5);
                tx.send(5).unwrap();
            }
        });
    });
}

#[test]
fn default_with_timeout_waits_at_least_the_timeout() {
    const TIMEOUT: Duration = Duration::from_millis(40);
    watchdog("default(timeout)", HANG_LIMIT, || {
        let check = || {
            let (tx, rx) = chan::bounded::<u32>(0);
            let start = Instant::now();
            let got = select! {
                recv(rx) -> _ => 0,
                default(TIMEOUT) => 42,
            };
            let waited = start.elapsed();
            assert_eq!(got, 42, "the default value");
            assert!(waited >= TIMEOUT, "default(timeout) fired after {waited:?}");
            assert!(
                waited < PROMPT_LIMIT,
                "default(timeout) fired after {waited:?}"
            );
            // The receive that lost to the time-out left no registration behind.
            assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)));
        };
        check(); // a plain thread
        runtime(1).block_on(check);
    });
}

#[test]
fn default_with_timeout_takes_an_arm_that_becomes_ready_in_time() {
    watchdog("default(timeout) beaten", HANG_LIMIT, || {
        runtime(2).block_on(|| {
            let (tx, rx) = chan::bounded::<u32>(0);
            let sender = scheduler::spawn(move || tx.send(9));
            let got = select! {
                recv(rx) -> v => v.unwrap(),
                default(Duration::from_secs(3600)) => panic!("timed out"),
            };
            assert_eq!(got, 9);
            assert_eq!(sender.join().unwrap(), Ok(()));
        });
    });
}

#[test]
fn blocked_select_is_woken_once_and_withdraws_its_other_registrations() {
    // A select blocked on two rendezvous channels; one arm's sender wakes it. Afterwards the
    // other channel must hold no registration of it: a try_send there finds no receiver, and
    // a value sent there goes to the next plain recv.
    const ROUNDS: usize = 300;
    watchdog("select withdraws registrations", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            for round in 0..ROUNDS {
                let (tx_a, rx_a) = chan::bounded::<usize>(0);
                let (tx_b, rx_b) = chan::bounded::<usize>(0);
                let about_to_select = Arc::new(AtomicUsize::new(0));
                let selector: JoinHandle<(char, usize)> = {
                    let (rx_a, rx_b) = (rx_a.clone(), rx_b.clone());
                    let flag = about_to_select.clone();
                    scheduler::spawn(move || {
                        flag.store(1, Ordering::SeqCst);
                        select! {
                            recv(rx_a) -> v => ('a', v.unwrap()),
                            recv(rx_b) -> v => ('b', v.unwrap()),
                        }
                    })
                };
                yield_until("the selector blocks", SPIN_LIMIT, || {
                    about_to_select.load(Ordering::SeqCst) == 1
                });
                // The selector is parked in its select, registered on both channels.
                let (winner, loser, rx_loser, expect) = if round % 2 == 0 {
                    (&tx_a, &tx_b, &rx_b, 'a')
                } else {
                    (&tx_b, &tx_a, &rx_a, 'b')
                };
                assert_eq!(winner.try_send(round), Ok(()), "round {round}");
                assert_eq!(selector.join().unwrap(), (expect, round), "round {round}");
                assert_eq!(
                    loser.try_send(usize::MAX),
                    Err(TrySendError::Full(usize::MAX)),
                    "round {round}: the losing arm's registration still takes values"
                );
                let plain = {
                    let rx = rx_loser.clone();
                    scheduler::spawn(move || rx.recv())
                };
                loser.send(round + 1).unwrap();
                assert_eq!(plain.join().unwrap(), Ok(round + 1), "round {round}");
            }
        });
    });
}

#[test]
fn racing_senders_complete_exactly_one_arm_of_a_blocked_select() {
    // Two senders race for one select on two workers. Exactly one value goes into the select;
    // the other sender must still be waiting, and its value goes to a plain recv after.
    const ROUNDS: usize = 500;
    watchdog("select woken exactly once", HANG_LIMIT, || {
        let rt = runtime(2);
        rt.block_on(|| {
            for round in 0..ROUNDS {
                let (tx_a, rx_a) = chan::bounded::<(char, usize)>(0);
                let (tx_b, rx_b) = chan::bounded::<(char, usize)>(0);
                let a = scheduler::spawn(move || tx_a.send(('a', round)));
                let b = scheduler::spawn(move || tx_b.send(('b', round)));
                let (first, other_rx) = select! {
                    recv(rx_a) -> v => (v.unwrap(), rx_b),
                    recv(rx_b) -> v => (v.unwrap(), rx_a),
                };
                assert_eq!(first.1, round);
                let second = other_rx
                    .recv_timeout(PROMPT_LIMIT)
                    .unwrap_or_else(|e| panic!("round {round}: the other value is lost: {e}"));
                assert_ne!(first.0, second.0, "round {round}: one value per channel");
                assert_eq!(a.join().unwrap(), Ok(()));
                assert_eq!(b.join().unwrap(), Ok(()));
            }
        });
    });
}

#[test]
fn send_arms_complete_exactly_once_and_drop_the_unsent_values() {
    watchdog("send arms", HANG_LIMIT, || {
        runtime(2).block_on(|| {
            let drops = DropCounter::new();
            for round in 0..200 {
                let (tx_a, rx_a) = chan::bounded(0);
                let (tx_b, rx_b) = chan::bounded(0);
                let ra =
                    scheduler::spawn(move || rx_a.recv().map(|v: scheduler_tests::Counted| v.id));
                let rb =
                    scheduler::spawn(move || rx_b.recv().map(|v: scheduler_tests::Counted| v.id));
                let chosen = select! {
                    send(tx_a, drops.value(1)) -> r => { r.unwrap(); 'a' },
                    send(tx_b, drops.value(2)) -> r => { r.unwrap(); 'b' },
                };
                // The value of the arm not chosen was dropped by the select; the chosen one
                // went to its receiver.
                let (taken, other, other_rx_handle, other_tx) = if chosen == 'a' {
                    (ra, 2, rb, tx_b)
                } else {
                    (rb, 1, ra, tx_a)
                };
                assert_eq!(taken.join().unwrap(), Ok(if chosen == 'a' { 1 } else { 2 }));
                assert_eq!(drops.dropped(), 3 * round + 2, "round {round}: drops");
                // The other receiver gets nothing from the select: only what is sent now.
                other_tx.send(drops.value(other + 10)).unwrap();
                assert_eq!(other_rx_handle.join().unwrap(), Ok(other + 10));
            }
        });
    });
}

#[test]
fn send_arm_on_a_full_channel_waits_and_on_a_closed_one_returns_the_value() {
    watchdog("send arm states", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            let (tx, rx) = chan::bounded::<u32>(1);
            let r = select! { send(tx, 1) -> r => r };
            assert_eq!(r, Ok(()));
            let r = select! {
                send(tx, 2) -> _ => "sent",
                default => "full",
            };
            assert_eq!(r, "full");
            assert_eq!(
                rx.try_iter().collect::<Vec<_>>(),
                [1],
                "the unsent 2 is not buffered"
            );
            tx.close();
            let r = select! {
                send(tx, 3) -> r => r,
                default => panic!("a send on a closed channel is ready (with an error)"),
            };
            assert_eq!(r, Err(SendError(3)));
        });
    });
}

#[test]
fn select_on_a_closed_channel_is_ready_with_err() {
    watchdog("select on closed", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            let (tx, rx) = chan::bounded::<u32>(0);
            let (_never_tx, never) = chan::bounded::<u32>(0);
            tx.close();
            for _ in 0..50 {
                let got = select! {
                    recv(never) -> _ => panic!("nothing is ever sent"),
                    recv(rx) -> v => v,
                    default => panic!("a closed channel is ready"),
                };
                assert_eq!(got, Err(RecvError));
            }
        });
    });
}

#[test]
fn close_wakes_a_blocked_select() {
    watchdog("close wakes select", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            let (tx, rx) = chan::bounded::<u32>(0);
            let (_never_tx, never) = chan::bounded::<u32>(0);
            let flag = Arc::new(AtomicUsize::new(0));
            let selector = {
                let flag = flag.clone();
                scheduler::spawn(move || {
                    flag.store(1, Ordering::SeqCst);
                    select! {
                        recv(never) -> _ => None,
                        recv(rx) -> v => Some(v),
                    }
                })
            };
            yield_until("the selector blocks", SPIN_LIMIT, || {
                flag.load(Ordering::SeqCst) == 1
            });
            yield_times(5);
            assert!(!selector.is_finished());
            tx.close();
            assert_eq!(selector.join().unwrap(), Some(Err(RecvError)));
        });
    });
}

#[test]
fn send_and_recv_arms_on_one_channel_never_pair_with_each_other() {
    watchdog("same-channel arms", HANG_LIMIT, || {
        runtime(2).block_on(|| {
            let (tx, rx) = chan::bounded::<u32>(0);
            let got = select! {
                recv(rx) -> _ => "recv",
                send(tx, 1) -> _ => "send",
                default(Duration::from_millis(20)) => "timeout",
            };
            assert_eq!(got, "timeout", "a select cannot hand a value to itself");
            assert_eq!(
                rx.try_recv(),
                Err(TryRecvError::Empty),
                "nothing left behind"
            );
            // With a real counterpart, the arm it matches is chosen.
            let rx2 = rx.clone();
            let receiver = scheduler::spawn(move || rx2.recv());
            let got = select! {
                recv(rx) -> _ => "recv",
                send(tx, 2) -> r => { r.unwrap(); "send" },
            };
            assert_eq!(got, "send");
            assert_eq!(receiver.join().unwrap(), Ok(2));
            let tx2 = tx.clone();
            let sender = scheduler::spawn(move || tx2.send(3));
            let got = select! {
                recv(rx) -> v => { assert_eq!(v, Ok(3)); "recv" },
                send(tx, 4) -> _ => "send",
            };
            assert_eq!(got, "recv");
            assert_eq!(sender.join().unwrap(), Ok(()));
        });
    });
}

#[test]
fn after_fires_in_select() {
    const DELAY: Duration = Duration::from_millis(30);
    watchdog("time::after arm", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            let (_tx, rx) = chan::bounded::<u32>(0);
            let start = Instant::now();
            let fired = select! {
                recv(rx) -> _ => panic!("nothing is sent"),
                recv(time::after(DELAY)) -> t => t.expect("a timer channel is never closed"),
            };
            assert!(fired >= start + DELAY, "after fired early");
            let waited = start.elapsed();
            assert!(
                waited >= DELAY && waited < PROMPT_LIMIT,
                "waited {waited:?}"
            );
        });
    });
}

#[test]
fn context_done_in_select_reports_cancellation_from_another_goroutine() {
    watchdog("ctx.done() arm", HANG_LIMIT, || {
        runtime(2).block_on(|| {
            let (ctx, cancel) = Context::background().with_cancel();
            let (_tx, work) = chan::bounded::<u32>(0);
            let (armed_tx, armed_rx) = chan::bounded::<()>(0);
            let canceller = scheduler::spawn(move || {
                armed_rx.recv().unwrap();
                cancel.cancel();
            });
            armed_tx.send(()).unwrap();
            let start = Instant::now();
            let got = select! {
                recv(work) -> _ => panic!("no work is sent"),
                recv(ctx.done()) -> v => v,
            };
            assert_eq!(got, Err(RecvError), "done() is closed, not sent on");
            assert_eq!(ctx.err(), Some(ContextError::Canceled));
            assert!(start.elapsed() < PROMPT_LIMIT);
            canceller.join().unwrap();
        });
    });
}

#[test]
fn break_and_continue_in_select_bodies_steer_the_enclosing_loop() {
    watchdog("control flow", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            let (tx, rx) = chan::bounded::<u32>(16);
            let (quit_tx, quit) = chan::bounded::<&str>(1);
            for i in 0..10 {
                tx.send(i).unwrap();
            }
            let mut odd = Vec::new();
            let mut spins = 0;
            let reason = 'outer: loop {
                spins += 1;
                assert!(spins < 1_000, "the loop never ended");
                select! {
                    recv(rx) -> v => {
                        let v = v.unwrap();
                        if v % 2 == 0 {
                            continue;
                        }
                        odd.push(v);
                        if v == 9 {
                            quit_tx.send("nine").unwrap();
                        }
                    },
                    recv(quit) -> why => break 'outer why.unwrap(),
                    default => break "drained",
                }
            };
            // After 9 the data channel is empty and the quit arm is ready: it ends the loop,
            // having seen every odd value and skipped every even one.
            assert_eq!(reason, "nine");
            assert_eq!(odd, [1, 3, 5, 7, 9]);
            // With nothing ready, the default arm breaks out.
            let reason = loop {
                select! {
                    recv(rx) -> _ => continue,
                    recv(quit) -> _ => continue,
                    default => break "drained",
                }
            };
            assert_eq!(reason, "drained");
        });
    });
}

#[test]
fn select_loop_merges_two_producers_until_both_close() {
    // Go's idiom: once a channel closes, replace it with one that is never ready.
    watchdog("merge loop", HANG_LIMIT, || {
        runtime(2).block_on(|| {
            let (tx_a, rx_a) = chan::bounded::<u32>(0);
            let (tx_b, rx_b) = chan::bounded::<u32>(3);
            drop(scheduler::spawn(move || {
                (0..500).for_each(|v| tx_a.send(v).unwrap())
            }));
            drop(scheduler::spawn(move || {
                (500..1000).for_each(|v| tx_b.send(v).unwrap())
            }));
            let (_never_tx, never) = chan::bounded::<u32>(0);
            let (mut a, mut b) = (Some(rx_a), Some(rx_b));
            let mut got = Vec::new();
            while a.is_some() || b.is_some() {
                let ra = a.clone().unwrap_or_else(|| never.clone());
                let rb = b.clone().unwrap_or_else(|| never.clone());
                select! {
                    recv(ra) -> v => match v {
                        Ok(v) => got.push(v),
                        Err(_) => a = None,
                    },
                    recv(rb) -> v => match v {
                        Ok(v) => got.push(v),
                        Err(_) => b = None,
                    },
                }
            }
            got.sort_unstable();
            assert_eq!(got, (0..1000).collect::<Vec<_>>());
        });
    });
}

#[test]
fn select_with_many_arms_takes_the_one_that_becomes_ready() {
    watchdog("many arms", HANG_LIMIT, || {
        runtime(2).block_on(|| {
            let chans: Vec<_> = (0..5).map(|_| chan::bounded::<usize>(0)).collect();
            for round in 0..100 {
                let target = round % 5;
                let tx = chans[target].0.clone();
                let sender = scheduler::spawn(move || tx.send(round));
                let [r0, r1, r2, r3, r4] = [0, 1, 2, 3, 4].map(|i| &chans[i].1);
                let (arm, v) = select! {
                    recv(r0) -> v => (0, v),
                    recv(r1) -> v => (1, v),
                    recv(r2) -> v => (2, v),
                    recv(r3) -> v => (3, v),
                    recv(r4) -> v => (4, v),
                };
                assert_eq!((arm, v), (target, Ok(round)));
                assert_eq!(sender.join().unwrap(), Ok(()));
            }
        });
    });
}

#[test]
fn two_arms_on_one_receiver_share_the_values_and_lose_none() {
    watchdog("two arms, one channel", HANG_LIMIT, || {
        runtime(2).block_on(|| {
            let (tx, rx) = chan::bounded::<u32>(0);
            let sender = scheduler::spawn(move || {
                for v in 0..2_000 {
                    tx.send(v).unwrap();
                }
            });
            let (mut first, mut second) = (Vec::new(), Vec::new());
            loop {
                select! {
                    recv(rx) -> v => match v {
                        Ok(v) => first.push(v),
                        Err(_) => break,
                    },
                    recv(rx) -> v => match v {
                        Ok(v) => second.push(v),
                        Err(_) => break,
                    },
                }
            }
            sender.join().unwrap();
            assert!(
                !first.is_empty() && !second.is_empty(),
                "both arms are used"
            );
            let mut all: Vec<u32> = first.into_iter().chain(second).collect();
            all.sort_unstable();
            assert_eq!(all, (0..2_000).collect::<Vec<_>>());
        });
    });
}

#[test]
fn select_evaluates_each_operand_once_in_order() {
    let order = std::cell::RefCell::new(Vec::new());
    let note = |what: &'static str| order.borrow_mut().push(what);
    let (tx, rx) = chan::bounded::<u32>(1);
    let (_idle_tx, idle_rx) = chan::bounded::<u32>(0);
    tx.send(1).unwrap();
    let got = select! {
        recv({ note("rx"); &idle_rx }) -> _ => 0,
        send({ note("tx"); &tx }, { note("value"); 2 }) -> _ => 2,
        recv({ note("rx2"); &rx }) -> v => v.unwrap(),
    };
    // The buffer is full, so the send arm cannot complete: the receive of 1 is the only
    // ready arm.
    assert_eq!(got, 1);
    assert_eq!(*order.borrow(), ["rx", "tx", "value", "rx2"]);
}
