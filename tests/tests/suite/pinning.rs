//! A started goroutine never changes OS thread: not across `yield_now`, not across a join,
//! not across a `WaitGroup` wait, even while idle workers steal goroutines around it. This
//! is what makes thread-locals, `RefCell` borrows and `!Send` values held across a blocking
//! call sound.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::thread::{self, ThreadId};

use scheduler::{JoinHandle, WaitGroup};
use scheduler_tests::{HANG_LIMIT, SPIN_LIMIT, ThreadSet, runtime, spin_until, watchdog};

/// Fails with a message if the goroutine is no longer on `home`.
fn assert_still_on(home: ThreadId, goroutine: usize, round: usize, after: &str) {
    let now = thread::current().id();
    assert_eq!(
        now, home,
        "goroutine {goroutine} moved from {home:?} to {now:?} after {after} (round {round})"
    );
}

/// `goroutines` goroutines, all spawned by the main goroutine, each doing `rounds` rounds of
/// yield, join and wait, checking its thread after each. Returns how many threads ran them.
fn pinned_across_blocking_calls(procs: usize, goroutines: usize, rounds: usize) -> usize {
    let rt = runtime(procs);
    rt.block_on(move || {
        let main_home = thread::current().id();
        let threads = ThreadSet::new();
        let handles: Vec<JoinHandle<()>> = (0..goroutines)
            .map(|g| {
                let threads = threads.clone();
                scheduler::spawn(move || {
                    let home = threads.record_current();
                    // Hold this worker until a goroutine has started on another one, so the
                    // rounds below certainly run while goroutines are spread over (and being
                    // stolen by) several workers.
                    spin_until("waiting for a second worker to steal", SPIN_LIMIT, || {
                        threads.len() >= 2
                    });
                    for round in 0..rounds {
                        scheduler::yield_now();
                        assert_still_on(home, g, round, "yield_now");

                        // A child that yields first, so the join usually parks; the child is
                        // stealable, so the wake often comes from another worker.
                        let child = scheduler::spawn(move || {
                            scheduler::yield_now();
                            g * round
                        });
                        assert_eq!(child.join().unwrap(), g * round);
                        assert_still_on(home, g, round, "join");

                        let wg = WaitGroup::new();
                        for _ in 0..2 {
                            wg.go(scheduler::yield_now);
                        }
                        wg.wait();
                        assert_still_on(home, g, round, "WaitGroup::wait");
                    }
                })
            })
            .collect();
        for (g, h) in handles.into_iter().enumerate() {
            h.join()
                .unwrap_or_else(|_| panic!("goroutine {g} failed (see its panic message)"));
            assert_still_on(main_home, usize::MAX, g, "main goroutine's join");
        }
        threads.len()
    })
}

#[test]
fn goroutine_stays_on_its_thread_while_two_workers_steal() {
    let threads = watchdog("pinning on 2 procs", HANG_LIMIT, || {
        pinned_across_blocking_calls(2, 64, 30)
    });
    assert_eq!(threads, 2, "goroutines ran on {threads} thread(s)");
}

#[test]
fn goroutine_stays_on_its_thread_while_four_workers_steal() {
    let threads = watchdog("pinning on 4 procs", HANG_LIMIT, || {
        pinned_across_blocking_calls(4, 64, 30)
    });
    assert!(
        (2..=4).contains(&threads),
        "goroutines ran on {threads} thread(s)"
    );
}

thread_local! {
    static PER_THREAD: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

#[test]
fn rc_refcell_and_thread_local_survive_yields_and_joins() {
    watchdog("!Send values across yields", HANG_LIMIT, || {
        let rt = runtime(2);
        rt.block_on(|| {
            let threads = ThreadSet::new();
            let handles: Vec<JoinHandle<()>> = (0..32)
                .map(|g| {
                    let threads = threads.clone();
                    scheduler::spawn(move || {
                        threads.record_current();
                        spin_until("waiting for a second worker to steal", SPIN_LIMIT, || {
                            threads.len() >= 2
                        });
                        // `!Send` values created inside the goroutine and held across every
                        // kind of suspension.
                        let rc = Rc::new(Cell::new(g));
                        let rc2 = Rc::clone(&rc);
                        let cell = RefCell::new(Vec::new());
                        let mut borrow = cell.borrow_mut();
                        PER_THREAD.with(|v| {
                            // A reference to this thread's thread-local, held across yields
                            // and joins: only sound because the goroutine cannot move.
                            let local: &RefCell<Vec<usize>> = v;
                            let addr = local as *const RefCell<Vec<usize>>;
                            local.borrow_mut().push(g);
                            for round in 0..20 {
                                scheduler::yield_now();
                                let child = scheduler::spawn(move || round + 1);
                                borrow.push(child.join().unwrap());
                                let wg = WaitGroup::new();
                                wg.go(scheduler::yield_now);
                                wg.wait();

                                rc2.set(rc2.get() + 1);
                                assert_eq!(Rc::strong_count(&rc), 2);
                                assert!(
                                    local.borrow().contains(&g),
                                    "goroutine {g} lost its entry in the thread-local"
                                );
                                PER_THREAD.with(|again| {
                                    assert_eq!(
                                        again as *const RefCell<Vec<usize>>, addr,
                                        "goroutine {g}: the thread-local moved"
                                    );
                                });
                            }
                            local.borrow_mut().retain(|&x| x != g);
                        });
                        assert_eq!(rc.get(), g + 20);
                        assert_eq!(*borrow, (1..=20).collect::<Vec<usize>>());
                        drop(borrow);
                        assert_eq!(cell.into_inner().len(), 20);
                    })
                })
                .collect();
            for (g, h) in handles.into_iter().enumerate() {
                h.join()
                    .unwrap_or_else(|_| panic!("goroutine {g} failed (see its panic message)"));
            }
            assert_eq!(threads.len(), 2);
        });
    });
}
