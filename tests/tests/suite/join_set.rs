//! `JoinSet`: results in the order the goroutines finish, `len`, cancelling, and dropping,
//! inside goroutines and from plain threads.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use scheduler::context::{Context, ContextError};
use scheduler::{Cancelled, JoinSet, Runtime, chan};
use scheduler_tests::{
    DropCounter, HANG_LIMIT, SPIN_LIMIT, describe_payload, panic_location, panic_message, runtime,
    settle_parked, spin_until, watchdog, yield_times,
};

/// The order the goroutines are released in: not the order they were spawned.
const RELEASE_ORDER: [usize; 6] = [3, 0, 5, 1, 4, 2];

/// Spawns one goroutine per gate with `spawn`, each returning its index once its gate
/// opens, then opens the gates in `RELEASE_ORDER` and checks that `join_next` returns each
/// goroutine right after its gate opened.
fn results_follow_the_release_order(
    spawn: impl Fn(&mut JoinSet<usize>, chan::Receiver<()>, usize),
) {
    let mut set = JoinSet::new();
    let gates: Vec<_> = (0..RELEASE_ORDER.len())
        .map(|i| {
            let (open, gate) = chan::bounded::<()>(0);
            spawn(&mut set, gate, i);
            open
        })
        .collect();
    assert_eq!(set.len(), RELEASE_ORDER.len());
    for (joined, &i) in RELEASE_ORDER.iter().enumerate() {
        // A rendezvous: goroutine `i` has taken the value, and only it can finish now.
        gates[i].send(()).unwrap();
        let result = set.join_next().expect("goroutines are left");
        assert_eq!(result.unwrap(), i, "the goroutine released last came back");
        assert_eq!(set.len(), RELEASE_ORDER.len() - joined - 1);
    }
    assert!(set.is_empty());
    assert!(
        set.join_next().is_none(),
        "an empty set returns None at once"
    );
}

#[test]
fn join_next_yields_in_order_of_completion_inside_a_goroutine() {
    watchdog("JoinSet order in a goroutine", HANG_LIMIT, || {
        let rt = runtime(2);
        rt.block_on(|| {
            results_follow_the_release_order(|set, gate, i| {
                set.spawn(move || {
                    gate.recv().unwrap();
                    i
                });
            });
        });
    });
}

#[test]
fn join_next_yields_in_order_of_completion_on_a_plain_thread() {
    watchdog("JoinSet order on a thread", HANG_LIMIT, || {
        let rt = runtime(2);
        results_follow_the_release_order(|set, gate, i| {
            set.spawn_on(
                move || {
                    gate.recv().unwrap();
                    i
                },
                &rt,
            );
        });
    });
}

#[test]
fn join_all_returns_every_result_in_order_of_completion() {
    watchdog("JoinSet::join_all", HANG_LIMIT, || {
        // One worker: a goroutine runs from its last yield to its end without another
        // goroutine in between, so the log is the order in which they finished.
        let rt = runtime(1);
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut set = JoinSet::new();
        for (i, yields) in [5, 1, 4, 0, 3, 2].into_iter().enumerate() {
            let log = log.clone();
            set.spawn_on(
                move || {
                    yield_times(yields);
                    log.lock().unwrap().push(i);
                    i
                },
                &rt,
            );
        }
        let all: Vec<usize> = set.join_all().into_iter().map(Result::unwrap).collect();
        assert_eq!(all, *log.lock().unwrap());
        assert_eq!(all.len(), 6);
    });
}

#[test]
fn a_panic_comes_back_as_that_goroutines_result() {
    watchdog("JoinSet panic", HANG_LIMIT, || {
        let rt = runtime(2);
        let mut set = JoinSet::new();
        set.spawn_on(|| -> u32 { panic!("part failed") }, &rt);
        let payload = set.join_next().unwrap().unwrap_err();
        assert_eq!(panic_message(&*payload), Some("part failed"));
        assert!(set.is_empty());
    });
}

#[test]
fn cancel_all_ends_every_goroutine_with_cancelled() {
    watchdog("JoinSet::cancel_all", HANG_LIMIT, || {
        let rt = runtime(2);
        let (_never, rx) = chan::bounded::<u32>(0);
        let mut set = JoinSet::new();
        for _ in 0..4 {
            let rx = rx.clone();
            set.spawn_on(move || rx.recv(), &rt);
        }
        settle_parked(&rt, 4, || true);
        set.cancel_all();
        assert_eq!(set.len(), 4, "cancelling joins nothing");
        let mut cancelled = 0;
        while let Some(result) = set.join_next() {
            match result {
                Err(payload) => {
                    assert!(payload.is::<Cancelled>(), "{}", describe_payload(&*payload));
                    cancelled += 1;
                }
                Ok(value) => panic!("a cancelled goroutine returned {value:?}"),
            }
        }
        assert_eq!(cancelled, 4);
    });
}

#[test]
fn cancel_all_drops_goroutines_that_never_started() {
    watchdog("JoinSet::cancel_all before start", HANG_LIMIT, || {
        let rt = runtime(1);
        let drops = DropCounter::new();
        let outcome = rt.block_on({
            let drops = drops.clone();
            move || {
                let mut set = JoinSet::new();
                for i in 0..3 {
                    let held = drops.value(i);
                    // Queued behind this goroutine on the only worker: none starts before
                    // the joins below park it.
                    set.spawn(move || {
                        let _held = held;
                        "ran"
                    });
                }
                set.cancel_all();
                let all = set.join_all();
                all.iter()
                    .filter(|r| r.as_ref().is_err_and(|p| p.is::<Cancelled>()))
                    .count()
            }
        });
        assert_eq!(outcome, 3, "every unstarted goroutine comes back Cancelled");
        assert_eq!(drops.dropped(), 3, "their closures were dropped");
    });
}

#[test]
fn dropping_the_set_cancels_goroutines_parked_forever() {
    watchdog("JoinSet drop", HANG_LIMIT, || {
        let rt = runtime(2);
        let drops = DropCounter::new();
        let (_never, rx) = chan::bounded::<()>(0);
        let mut set = JoinSet::new();
        for i in 0..5 {
            let (rx, held) = (rx.clone(), drops.value(i));
            set.spawn_on(
                move || {
                    let _held = held;
                    rx.recv()
                },
                &rt,
            );
        }
        settle_parked(&rt, 5, || true);
        assert_eq!(drops.dropped(), 0);
        drop(set); // does not wait...
        // ...but each goroutine unwinds on its own, dropping what it held.
        spin_until("the cancelled goroutines unwind", SPIN_LIMIT, || {
            drops.dropped() == 5
        });
        // And nothing is left for the runtime's drop to wait for.
        rt.shutdown_timeout(HANG_LIMIT).expect("no goroutine left");
    });
}

#[test]
fn try_join_next_never_waits() {
    watchdog("JoinSet::try_join_next", HANG_LIMIT, || {
        let rt = runtime(2);
        let mut set = JoinSet::new();
        assert!(set.try_join_next().is_none(), "empty");
        let (open, gate) = chan::bounded::<()>(0);
        set.spawn_on(
            move || {
                gate.recv().unwrap();
                9
            },
            &rt,
        );
        settle_parked(&rt, 1, || true);
        assert!(set.try_join_next().is_none(), "nothing has finished");
        assert_eq!(set.len(), 1);
        open.send(()).unwrap();
        let mut result = None;
        spin_until("the goroutine finishes", SPIN_LIMIT, || {
            result = set.try_join_next();
            result.is_some()
        });
        assert_eq!(result.unwrap().unwrap(), 9);
        assert!(set.is_empty());
    });
}

#[test]
fn join_next_timeout_and_ctx_give_up_and_leave_the_goroutine_in_the_set() {
    watchdog("JoinSet bounded joins", HANG_LIMIT, || {
        let rt = runtime(2);
        let mut set = JoinSet::new();
        assert!(
            set.join_next_timeout(Duration::from_secs(3600)).is_none(),
            "empty: at once"
        );
        let (open, gate) = chan::bounded::<()>(0);
        set.spawn_on(
            move || {
                gate.recv().unwrap();
                "done"
            },
            &rt,
        );
        assert!(set.join_next_timeout(Duration::from_millis(20)).is_none());
        let (ctx, cancel) = Context::background().with_cancel();
        cancel.cancel();
        assert_eq!(set.join_next_ctx(&ctx).unwrap_err(), ContextError::Canceled);
        assert_eq!(set.len(), 1, "giving up leaves the goroutine in the set");
        open.send(()).unwrap();
        let (ctx, _cancel) = Context::background().with_cancel();
        let result = set
            .join_next_ctx(&ctx)
            .unwrap()
            .expect("one goroutine left");
        assert_eq!(result.unwrap(), "done");
        assert_eq!(set.join_next_ctx(&ctx).unwrap().map(|_| ()), None);
    });
}

#[test]
fn spawn_outside_a_goroutine_panics_at_the_callers_line() {
    let mut set = JoinSet::new();
    let (file, line, message) = panic_location(|| set.spawn(|| 1));
    assert!(message.contains("JoinSet::spawn"), "{message}");
    assert!(message.contains("outside a runtime"), "{message}");
    assert_eq!((file.ends_with("join_set.rs"), line), (true, line!() - 3));
    assert!(set.is_empty());
    // The refused goroutine leaves nothing behind: a later spawn and join work.
    let rt: Runtime = runtime(1);
    set.spawn_on(|| 2, &rt);
    assert_eq!(set.join_next().unwrap().unwrap(), 2);
}
