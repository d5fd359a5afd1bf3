//! `group::Group` and `group::ResultGroup`, Go's errgroup: the limit, the first error and the
//! context it cancels, `try_go`, `wait`, a re-raised panic; inside goroutines and from plain
//! threads.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use scheduler::chan;
use scheduler::context::{Context, ContextError};
use scheduler::group::{Group, ResultGroup};
use scheduler_tests::{
    HANG_LIMIT, SPIN_LIMIT, expect_panic, panic_location, panic_message, runtime, spin_until,
    watchdog, yield_times,
};

const TASKS: usize = 50;
const LIMIT: usize = 8;

/// Runs `TASKS` goroutines through `group` (limit `LIMIT`) and returns the most that were
/// inside at once. The first `LIMIT` to get in wait until `LIMIT` are inside together, so a
/// limit that admits fewer hangs (and the watchdog fails the test), and one that admits more
/// shows in the peak.
fn peak_under_the_limit(group: &Group<String>) -> usize {
    group.set_limit(Some(LIMIT));
    let inside = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let (full_tx, full) = chan::bounded::<()>(0);
    for _ in 0..TASKS {
        let (inside, peak, finished) = (inside.clone(), peak.clone(), finished.clone());
        let (full_tx, full) = (full_tx.clone(), full.clone());
        group.go(move || {
            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            if now == LIMIT {
                full_tx.close(); // opens the gate for good
            }
            let _ = full.recv(); // returns once closed
            yield_times(3);
            inside.fetch_sub(1, Ordering::SeqCst);
            finished.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
    }
    drop(full_tx);
    assert_eq!(group.wait(), Ok(()));
    assert_eq!(
        finished.load(Ordering::SeqCst),
        TASKS,
        "wait returned before all ended"
    );
    peak.load(Ordering::SeqCst)
}

#[test]
fn fifty_goroutines_under_a_limit_of_eight_never_exceed_it_inside_a_goroutine() {
    watchdog("errgroup limit in a goroutine", HANG_LIMIT, || {
        // One worker: without the limit, the goroutines queued behind the main one would all
        // get inside before any left, so a broken limit shows every time.
        let rt = runtime(1);
        let peak = rt.block_on(|| peak_under_the_limit(&Group::new()));
        assert_eq!(peak, LIMIT);
    });
}

#[test]
fn fifty_goroutines_under_a_limit_of_eight_never_exceed_it_from_a_thread() {
    watchdog("errgroup limit from a thread", HANG_LIMIT, || {
        let rt = runtime(4);
        assert_eq!(peak_under_the_limit(&Group::new_on(&rt)), LIMIT);
    });
}

/// Starts `TASKS` goroutines in a group with a context: number 17 fails, every other waits
/// for the context to end and then fails too. `wait` must return the first error, after
/// every goroutine saw the context cancelled.
fn first_error_cancels_the_rest(group: Group<String>, ctx: Context) {
    let observed = Arc::new(AtomicUsize::new(0));
    for i in 0..TASKS {
        let (ctx, observed) = (ctx.clone(), observed.clone());
        group.go(move || {
            if i == 17 {
                return Err("task 17 failed".to_owned());
            }
            let _ = ctx.done().recv();
            if ctx.err() == Some(ContextError::Canceled) {
                observed.fetch_add(1, Ordering::SeqCst);
            }
            Err(format!("task {i}: {:?}", ctx.err()))
        });
    }
    assert_eq!(group.wait(), Err("task 17 failed".to_owned()));
    assert_eq!(observed.load(Ordering::SeqCst), TASKS - 1);
    assert_eq!(ctx.err(), Some(ContextError::Canceled));
}

#[test]
fn the_first_error_is_returned_and_cancels_the_others_inside_a_goroutine() {
    watchdog("errgroup first error in a goroutine", HANG_LIMIT, || {
        let rt = runtime(2);
        rt.block_on(|| {
            let (group, ctx) = Group::with_context(&Context::background());
            first_error_cancels_the_rest(group, ctx);
        });
    });
}

#[test]
fn the_first_error_is_returned_and_cancels_the_others_from_a_thread() {
    watchdog("errgroup first error from a thread", HANG_LIMIT, || {
        let rt = runtime(2);
        let (group, ctx) = Group::with_context_on(&Context::background(), &rt);
        group.set_limit(Some(TASKS)); // room for all: those waiting on the context hold it
        first_error_cancels_the_rest(group, ctx);
    });
}

#[test]
fn try_go_fails_at_the_limit_and_succeeds_once_there_is_room() {
    watchdog("errgroup try_go", HANG_LIMIT, || {
        let rt = runtime(2);
        rt.block_on(|| {
            let group = Group::<()>::new();
            group.set_limit(Some(2));
            let (release, gate) = chan::bounded::<()>(0);
            for _ in 0..2 {
                let gate = gate.clone();
                assert!(group.try_go(move || gate.recv().map_err(drop)));
            }
            let ran = Arc::new(AtomicUsize::new(0));
            let counted = ran.clone();
            assert!(!group.try_go(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }));
            release.send(()).unwrap();
            release.send(()).unwrap();
            assert_eq!(group.wait(), Ok(()));
            assert_eq!(ran.load(Ordering::SeqCst), 0, "a refused closure ran");
            let counted = ran.clone();
            assert!(group.try_go(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }));
            assert_eq!(group.wait(), Ok(()));
            assert_eq!(ran.load(Ordering::SeqCst), 1);
        });
    });
}

#[test]
fn go_waits_for_room_at_the_limit() {
    watchdog("errgroup go waits", HANG_LIMIT, || {
        let rt = runtime(2);
        let group = Group::<()>::new_on(&rt);
        group.set_limit(Some(1));
        let (release, gate) = chan::bounded::<()>(0);
        group.go(move || gate.recv().map_err(drop));
        let second_started = Arc::new(AtomicUsize::new(0));
        let started = second_started.clone();
        // `go` blocks this thread until the first goroutine ends: release it from another.
        let releaser = std::thread::spawn(move || {
            release.send(()).unwrap();
        });
        group.go(move || {
            started.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        releaser.join().unwrap();
        assert_eq!(group.wait(), Ok(()));
        assert_eq!(second_started.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn wait_without_error_returns_ok_and_cancels_the_context() {
    watchdog("errgroup wait Ok", HANG_LIMIT, || {
        let rt = runtime(2);
        rt.block_on(|| {
            let (group, ctx) = Group::<String>::with_context(&Context::background());
            let done = Arc::new(AtomicUsize::new(0));
            for _ in 0..10 {
                let done = done.clone();
                group.go(move || {
                    done.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                });
            }
            // Goroutines that succeed do not end the context...
            assert_eq!(ctx.err(), None);
            assert_eq!(group.wait(), Ok(()));
            assert_eq!(done.load(Ordering::SeqCst), 10);
            // ...`wait` does.
            assert_eq!(ctx.err(), Some(ContextError::Canceled));
        });
    });
}

#[test]
fn the_context_stays_alive_while_the_goroutines_succeed() {
    watchdog("errgroup context alive", HANG_LIMIT, || {
        let rt = runtime(2);
        let (group, ctx) = Group::<String>::with_context_on(&Context::background(), &rt);
        let (release, gate) = chan::bounded::<()>(0);
        let finished = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let (gate, finished) = (gate.clone(), finished.clone());
            group.go(move || {
                let _ = gate.recv();
                finished.fetch_add(1, Ordering::SeqCst);
                Ok(())
            });
        }
        release.send(()).unwrap();
        release.send(()).unwrap();
        // Two succeeded (the third waits): the context is still alive.
        spin_until("two goroutines finish", SPIN_LIMIT, || {
            finished.load(Ordering::SeqCst) == 2
        });
        assert_eq!(ctx.err(), None);
        release.send(()).unwrap();
        assert_eq!(group.wait(), Ok(()));
        assert_eq!(ctx.err(), Some(ContextError::Canceled));
    });
}

#[test]
fn a_panic_is_re_raised_by_wait_after_every_goroutine_ended() {
    watchdog("errgroup panic", HANG_LIMIT, || {
        let rt = runtime(2);
        let ended = rt.block_on(|| {
            let (group, ctx) = Group::<String>::with_context(&Context::background());
            let ended = Arc::new(AtomicUsize::new(0));
            for _ in 0..4 {
                let (ctx, ended) = (ctx.clone(), ended.clone());
                group.go(move || {
                    // The panic cancels the context: the others stop.
                    let _ = ctx.done().recv();
                    yield_times(5);
                    ended.fetch_add(1, Ordering::SeqCst);
                    Err("stopped".to_owned())
                });
            }
            group.go(|| panic!("part exploded"));
            let payload = panic::catch_unwind(AssertUnwindSafe(|| group.wait())).unwrap_err();
            assert_eq!(panic_message(&*payload), Some("part exploded"));
            assert!(ctx.is_done());
            ended.load(Ordering::SeqCst)
        });
        assert_eq!(ended, 4, "wait re-raised before every goroutine ended");
    });
}

#[test]
fn a_panic_is_re_raised_by_wait_on_a_plain_thread() {
    watchdog("errgroup panic from a thread", HANG_LIMIT, || {
        let rt = runtime(2);
        let group = Group::<()>::new_on(&rt);
        group.go(|| Ok(()));
        group.go(|| panic!("from a goroutine"));
        let message = expect_panic(|| group.wait());
        assert_eq!(message, "from a goroutine");
        assert_eq!(group.wait(), Ok(()), "the panic is handed out once");
    });
}

#[test]
fn set_limit_while_goroutines_are_active_panics() {
    watchdog("errgroup set_limit misuse", HANG_LIMIT, || {
        let rt = runtime(2);
        let group = Group::<()>::new_on(&rt);
        group.set_limit(Some(3));
        let (release, gate) = chan::bounded::<()>(0);
        group.go(move || gate.recv().map_err(drop));
        let (file, line, message) = panic_location(|| group.set_limit(Some(5)));
        assert_eq!((file.ends_with("errgroup.rs"), line), (true, line!() - 1));
        assert!(message.contains("Group::set_limit"), "{message}");
        assert!(message.contains("1 goroutines"), "{message}");
        assert_eq!(group.limit(), Some(3), "the limit is unchanged");
        release.send(()).unwrap();
        assert_eq!(group.wait(), Ok(()));
        group.set_limit(None); // nothing active: allowed
        assert_eq!(group.limit(), None);
    });
}

#[test]
fn go_outside_a_goroutine_panics_for_a_group_of_the_callers_runtime() {
    let group = Group::<()>::new();
    let (file, line, message) = panic_location(|| group.go(|| Ok(())));
    assert_eq!((file.ends_with("errgroup.rs"), line), (true, line!() - 1));
    assert!(message.contains("Group::go"), "{message}");
    assert_eq!(group.wait(), Ok(()), "nothing was started");
}

#[test]
fn result_group_returns_values_in_the_order_started_not_finished() {
    watchdog("ResultGroup order", HANG_LIMIT, || {
        let rt = runtime(2);
        let group = ResultGroup::<usize, String>::from(Group::new_on(&rt));
        let mut gates = Vec::new();
        for i in 0..5 {
            let (open, gate) = chan::bounded::<()>(0);
            gates.push(open);
            group.go(move || {
                gate.recv().unwrap();
                Ok(i * 10)
            });
        }
        // Finish them last to first.
        for open in gates.iter().rev() {
            open.send(()).unwrap();
        }
        assert_eq!(group.wait(), Ok(vec![0, 10, 20, 30, 40]));
        assert_eq!(group.wait(), Ok(vec![]), "the values are handed out once");
    });
}

#[test]
fn result_group_returns_the_error_instead_of_the_values() {
    watchdog("ResultGroup error", HANG_LIMIT, || {
        let rt = runtime(2);
        let values = rt.block_on(|| {
            let group = ResultGroup::<u32, &str>::new();
            group.go(|| Ok(1));
            group.go(|| Err("no"));
            group.go(|| Ok(3));
            group.wait()
        });
        assert_eq!(values, Err("no"));
    });
}
