//! Deadlock detection under the default test harness: tests run in parallel threads of one
//! process, each with a runtime of its own, beside the harness's own threads. A test whose
//! goroutines deadlock gets "all goroutines are asleep - deadlock!" (with the dump of the
//! goroutines); the threads of other tests, and threads that never used the crate, do not
//! hide it; a thread that holds a value of the crate and will use it does.
//!
//! A missed deadlock would hang: every test runs under a watchdog, on a thread of its own
//! that has not used the crate before.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use scheduler::{GoroutineState, Runtime, WaitGroup, WaitReason, chan};
use scheduler_tests::{HANG_LIMIT, block_on_panic_message, watchdog};

const DEADLOCK: &str = "scheduler: all goroutines are asleep - deadlock!";

/// How long a test lets the runtime sit asleep while a thread outside could still wake it:
/// several of the `block_on` caller's looks, each of which would wrongly report a deadlock
/// if the rule ignored that thread.
const ASLEEP_FOR: Duration = Duration::from_millis(400);

fn runtime(procs: usize) -> Runtime {
    Runtime::builder().procs(procs).build().unwrap()
}

/// Waits until `rt`'s main goroutine (id 1 of a fresh runtime) is blocked on `reason`.
fn until_main_blocked_on(rt: &Runtime, reason: WaitReason) {
    let deadline = Instant::now() + HANG_LIMIT;
    while !rt
        .goroutines()
        .iter()
        .any(|g| g.name() == Some("main") && g.state() == GoroutineState::Blocked(reason))
    {
        assert!(
            Instant::now() < deadline,
            "the main goroutine never blocked"
        );
        thread::yield_now();
    }
}

#[test]
fn a_receive_nobody_sends_is_reported_with_the_dump() {
    watchdog("a receive nobody sends", HANG_LIMIT, || {
        for procs in [1, 2] {
            let rt = runtime(procs);
            // Called here, not through a helper, so that the spawn site is this file's.
            let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                rt.block_on(|| {
                    let (_tx, rx) = chan::bounded::<u32>(0);
                    let _ = rx.recv();
                })
            }))
            .expect_err("a deadlock was reported");
            let message = scheduler_tests::describe_payload(&*payload);
            assert!(message.starts_with(DEADLOCK), "{message}");
            assert!(
                message.contains("goroutine 1 \"main\" [chan receive"),
                "the dump names the main goroutine and its wait: {message}"
            );
            assert!(
                message.contains(&format!("spawned at {}", file!())),
                "the dump says where block_on was called: {message}"
            );
        }
    });
}

#[test]
fn a_cycle_of_goroutines_is_reported_in_parallel_with_other_tests() {
    watchdog("a cycle of goroutines", HANG_LIMIT, || {
        let rt = runtime(2);
        let message = block_on_panic_message(&rt, || {
            let (a_tx, a_rx) = chan::bounded::<u32>(0);
            let (b_tx, b_rx) = chan::bounded::<u32>(0);
            let first = scheduler::spawn(move || {
                let _ = a_rx.recv();
                let _ = b_tx.send(1);
            });
            let _ = b_rx.recv();
            let _ = a_tx.send(1);
            let _ = first.join();
        })
        .expect("a deadlock was reported");
        assert!(message.starts_with(DEADLOCK), "{message}");
        assert!(message.contains("goroutine 2 [chan receive"), "{message}");
    });
}

#[test]
fn a_wait_group_never_done_is_reported_beside_a_thread_that_never_used_the_crate() {
    watchdog("a wait group never done", HANG_LIMIT, || {
        // Started before this test's thread uses the crate: a bystander that holds nothing.
        let stop = Arc::new(AtomicBool::new(false));
        let bystander = {
            let stop = stop.clone();
            thread::spawn(move || {
                // Relaxed: a stop flag; the join orders the rest.
                while !stop.load(Ordering::Relaxed) {
                    thread::park_timeout(Duration::from_millis(5));
                }
            })
        };
        let rt = runtime(2);
        let message = block_on_panic_message(&rt, || {
            let wg = WaitGroup::new();
            wg.add(1);
            wg.wait();
        })
        .expect("a deadlock was reported");
        assert!(message.starts_with(DEADLOCK), "{message}");
        assert!(message.contains("[wait group"), "{message}");
        stop.store(true, Ordering::Relaxed);
        bystander.join().unwrap();
    });
}

#[test]
fn a_thread_that_holds_the_sender_is_not_a_deadlock() {
    watchdog("a thread holds the sender", HANG_LIMIT, || {
        let rt = runtime(2);
        let (tx, rx) = chan::bounded::<u32>(0);
        let got = thread::scope(|scope| {
            scope.spawn(|| {
                // Once the runtime sleeps, leave it asleep for a while: a rule that ignored this
                // thread would report a deadlock meanwhile.
                until_main_blocked_on(&rt, WaitReason::ChannelReceive);
                thread::sleep(ASLEEP_FOR);
                tx.send(11).unwrap();
            });
            rt.block_on(move || rx.recv().unwrap())
        });
        assert_eq!(got, 11);
    });
}

#[test]
fn a_thread_started_by_a_goroutine_is_not_a_deadlock() {
    watchdog("a thread started by a goroutine", HANG_LIMIT, || {
        let rt = runtime(1);
        let got = rt.block_on(|| {
            let (tx, rx) = chan::bounded::<u32>(0);
            // A plain thread that only touches the crate when it sends: it was given the sender
            // by the goroutine that created it.
            let sender = thread::spawn(move || {
                thread::sleep(ASLEEP_FOR);
                tx.send(13).unwrap();
            });
            let got = rx.recv().unwrap();
            sender.join().unwrap();
            got
        });
        assert_eq!(got, 13);
    });
}

#[test]
fn a_goroutine_of_a_busy_runtime_that_will_send_is_not_a_deadlock() {
    watchdog("another runtime will send", HANG_LIMIT, || {
        let waiting = runtime(1);
        let sending = runtime(1);
        let (tx, rx) = chan::bounded::<u32>(0);
        let (go_tx, go_rx) = chan::bounded::<()>(0);
        // The sender waits for a word from this thread, then computes before it sends: its
        // runtime is busy, not asleep.
        let sender = sending.spawn(move || {
            go_rx.recv().unwrap();
            let start = Instant::now();
            while start.elapsed() < ASLEEP_FOR {
                scheduler::checkpoint();
            }
            tx.send(17).unwrap();
        });
        let got = thread::scope(|scope| {
            scope.spawn(|| {
                until_main_blocked_on(&waiting, WaitReason::ChannelReceive);
                go_tx.send(()).unwrap();
            });
            waiting.block_on(move || rx.recv().unwrap())
        });
        assert_eq!(got, 17);
        sender.join().unwrap();
    });
}
