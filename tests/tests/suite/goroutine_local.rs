//! Goroutine-local storage (`goroutine_local!`): every goroutine sees its own value, even two
//! that take turns on one worker thread or one run inline by a `join`; values are made lazily
//! and dropped when their goroutine finishes (or is cancelled); outside a goroutine there is
//! none.

use std::cell::{Cell, RefCell};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};
use std::time::Duration;

use scheduler::chan;
use scheduler_tests::{
    Counted, DropCounter, HANG_LIMIT, SPIN_LIMIT, expect_panic, runtime, settle_parked, watchdog,
    yield_until,
};

#[test]
fn two_goroutines_taking_turns_on_one_worker_keep_their_values_apart() {
    scheduler::goroutine_local! {
        static ID: Cell<u32> = Cell::new(0);
    }
    watchdog("two goroutines on one worker", HANG_LIMIT, || {
        let rt = runtime(1);
        let (threads, values) = rt.block_on(|| {
            // Each goroutine sets its value, then waits (yielding) until the other has set
            // its own on the same thread, then reads its value again.
            let set = Arc::new(AtomicUsize::new(0));
            let turn = |id: u32| {
                let set = set.clone();
                move || {
                    ID.set(id);
                    set.fetch_add(1, SeqCst);
                    yield_until("both values set", SPIN_LIMIT, || set.load(SeqCst) == 2);
                    let mut seen = Vec::new();
                    for _ in 0..3 {
                        seen.push(ID.get());
                        ID.set(ID.get() + 10);
                        scheduler::yield_now();
                    }
                    (thread::current().id(), seen)
                }
            };
            let (a, b) = (scheduler::spawn(turn(1)), scheduler::spawn(turn(2)));
            let (a, b) = (a.join().unwrap(), b.join().unwrap());
            ([a.0, b.0], [a.1, b.1])
        });
        assert_eq!(threads[0], threads[1], "one worker runs both");
        assert_eq!(values, [vec![1, 11, 21], vec![2, 12, 22]]);
    });
}

#[test]
fn a_value_is_made_at_the_first_access_of_each_goroutine_that_reaches_it() {
    static MADE: AtomicUsize = AtomicUsize::new(0);
    scheduler::goroutine_local! {
        static LAZY: Cell<usize> = Cell::new(MADE.fetch_add(1, SeqCst) + 100);
    }
    let rt = runtime(2);
    let firsts = rt.block_on(|| {
        let touching: Vec<_> = (0..3)
            .map(|_| {
                scheduler::spawn(|| {
                    let first = LAZY.get();
                    LAZY.set(first + 1);
                    assert_eq!(LAZY.get(), first + 1, "the second access makes no value");
                    first
                })
            })
            .collect();
        let idle: Vec<_> = (0..3).map(|_| scheduler::spawn(|| ())).collect();
        for h in idle {
            h.join().unwrap();
        }
        let mut firsts: Vec<_> = touching.into_iter().map(|h| h.join().unwrap()).collect();
        firsts.sort_unstable();
        firsts
    });
    assert_eq!(
        MADE.load(SeqCst),
        3,
        "one value per goroutine that reached the key"
    );
    assert_eq!(firsts, [100, 101, 102]);
}

/// A value that records, as it is dropped, its thread and whether its goroutine's keys can
/// still be reached.
struct Witness {
    log: Arc<Mutex<Vec<(ThreadId, bool)>>>,
    _counted: Counted,
}

scheduler::goroutine_local! {
    static WITNESS: RefCell<Option<Witness>> = RefCell::new(None);
    static OTHER: Cell<u8> = Cell::new(0);
}

impl Drop for Witness {
    fn drop(&mut self) {
        let reachable = OTHER.try_with(Cell::get).is_ok() || WITNESS.try_with(|_| ()).is_ok();
        self.log
            .lock()
            .unwrap()
            .push((thread::current().id(), reachable));
    }
}

#[test]
fn values_are_dropped_on_the_goroutines_thread_before_its_join_returns() {
    let drops = DropCounter::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let rt = runtime(2);
    let (d, l) = (drops.clone(), log.clone());
    let (ran_on, dropped_while_running) = rt.block_on(move || {
        let h = scheduler::spawn(move || {
            OTHER.set(1);
            WITNESS.set(Some(Witness {
                log: l,
                _counted: d.value(0),
            }));
            scheduler::yield_now();
            (thread::current().id(), d.dropped())
        });
        h.join().unwrap()
    });
    assert_eq!(dropped_while_running, 0);
    assert_eq!(drops.dropped(), 1, "dropped once, before join returned");
    let log = log.lock().unwrap();
    assert_eq!(
        *log,
        [(ran_on, false)],
        "dropped on the goroutine's thread, with its keys out of reach"
    );
}

#[test]
fn values_of_a_goroutine_cancelled_by_shutdown_timeout_are_dropped() {
    scheduler::goroutine_local! {
        static HELD: RefCell<Vec<Counted>> = RefCell::new(Vec::new());
    }
    watchdog("a cancelled goroutine's values", HANG_LIMIT, || {
        let drops = DropCounter::new();
        let rt = runtime(1);
        let (_keep, never) = chan::bounded::<u32>(0);
        let d = drops.clone();
        let handle = rt.spawn(move || {
            HELD.with_borrow_mut(|held| held.push(d.value(1)));
            let _ = never.recv(); // parks until cancelled
        });
        settle_parked(&rt, 1, || true);
        assert_eq!(drops.dropped(), 0);
        let err = rt
            .shutdown_timeout(Duration::from_millis(10))
            .expect_err("it waits forever");
        assert_eq!(err.remaining(), 1);
        assert!(handle.join().is_err(), "it was cancelled");
        assert_eq!(drops.dropped(), 1, "its value went with its unwind");
    });
}

#[test]
fn a_goroutine_run_inline_by_join_has_its_own_values() {
    scheduler::goroutine_local! {
        static NAME: RefCell<&'static str> = RefCell::new("none");
        static HELD: RefCell<Option<Counted>> = RefCell::new(None);
    }
    let drops = DropCounter::new();
    let rt = runtime(1);
    let d = drops.clone();
    let seen = rt.block_on(move || {
        NAME.set("joiner");
        NAME.with(|joiners| {
            let child = scheduler::spawn(move || {
                let before = NAME.with_borrow(|n| *n);
                NAME.set("child");
                HELD.set(Some(d.value(0)));
                // Inline: no stack of its own, and counted as such.
                let inline = scheduler::metrics().inline;
                (
                    before,
                    NAME.with_borrow(|n| *n),
                    inline,
                    HELD.with_borrow(Option::is_some),
                )
            });
            // Joined before any worker could start it: it runs right here.
            let child = child.join().unwrap();
            assert_eq!(
                drops.dropped(),
                1,
                "the child's value went before join returned"
            );
            (child, *joiners.borrow(), HELD.with_borrow(Option::is_some))
        })
    });
    let ((before, after, inline, held), joiners, joiner_held) = seen;
    assert_eq!(inline, 1, "the child ran inline");
    assert_eq!((before, after, held), ("none", "child", true));
    assert_eq!(joiners, "joiner", "the joiner's value is untouched");
    assert!(
        !joiner_held,
        "the joiner has a value of its own, still empty"
    );
}

#[test]
fn outside_a_goroutine_try_with_fails_and_with_panics_naming_the_key() {
    scheduler::goroutine_local! {
        static NOWHERE: Cell<u8> = Cell::new(0);
    }
    let error = NOWHERE.try_with(Cell::get).expect_err("a plain thread");
    assert_eq!(error.to_string(), "accessed outside a goroutine");
    let message = expect_panic(|| NOWHERE.with(Cell::get));
    assert!(
        message.contains("goroutine-local") && message.contains("NOWHERE"),
        "the panic names the key: {message}"
    );
    let rt = runtime(1);
    let in_job = rt
        .spawn_blocking(|| NOWHERE.try_with(Cell::get))
        .join()
        .unwrap();
    assert_eq!(in_job, Err(error), "a blocking job is no goroutine");
    assert_eq!(rt.block_on(|| NOWHERE.try_with(Cell::get)), Ok(0));
}

#[test]
fn two_keys_of_one_type_are_independent() {
    scheduler::goroutine_local! {
        static FIRST: Cell<u64> = Cell::new(1);
        static SECOND: Cell<u64> = Cell::new(2);
    }
    let rt = runtime(1);
    let values = rt.block_on(|| {
        FIRST.set(10);
        let after_first = SECOND.get();
        SECOND.replace(20);
        (FIRST.take(), SECOND.get(), after_first, FIRST.get())
    });
    assert_eq!(values, (10, 20, 2, 0));
}

#[test]
fn an_initialiser_that_sets_its_own_key_keeps_the_value_it_set() {
    scheduler::goroutine_local! {
        static SELF_SET: Cell<u32> = {
            SELF_SET.set(5); // reaches its own key: this value is made first, and stays
            Cell::new(1)
        };
    }
    let rt = runtime(1);
    assert_eq!(rt.block_on(|| SELF_SET.get()), 5);
}
