//! Execution traces (`Builder::trace`, `Runtime::start_trace`, `Runtime::stop_trace`): the runs
//! they show match what the goroutines did (in parallel on two workers, one at a time on one),
//! a blocked goroutine shows why and who woke it, and a trace holds only what happened while
//! it was recorded.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use scheduler::trace::{Run, Stop, Thread, Trace, WaitReason};
use scheduler::{Runtime, WaitGroup, chan};
use scheduler_tests::{HANG_LIMIT, spin_until, watchdog};

/// How long each busy goroutine computes.
const BUSY: Duration = Duration::from_millis(20);

fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

fn traced(procs: usize) -> Runtime {
    Runtime::builder()
        .procs(procs)
        .max_spare_workers(0)
        .trace(true)
        .build()
        .unwrap()
}

/// The runs of goroutine `id`.
fn runs_of(trace: &Trace, id: u64) -> Vec<Run> {
    trace.runs().filter(|r| r.goroutine == id).collect()
}

#[test]
fn two_busy_goroutines_on_two_workers_run_at_the_same_time() {
    let trace = watchdog("two busy goroutines", HANG_LIMIT, || {
        let rt = traced(2);
        let ids = rt.block_on(|| {
            let started = Arc::new(AtomicUsize::new(0));
            let wg = WaitGroup::new();
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let started = started.clone();
                    // Each waits (holding its worker) until both run, then computes: they can
                    // only both run on two workers at once.
                    wg.go(move || {
                        started.fetch_add(1, Ordering::SeqCst);
                        spin_until("both goroutines running", HANG_LIMIT, || {
                            started.load(Ordering::SeqCst) == 2
                        });
                        spin(BUSY);
                    })
                })
                .collect();
            wg.wait();
            // `done` comes before the end of a goroutine's run, a join after it is recorded.
            handles
                .into_iter()
                .map(|handle| {
                    let id = handle.id();
                    handle.join().unwrap();
                    id
                })
                .collect::<Vec<u64>>()
        });
        (rt.stop_trace(), ids)
    });
    let (trace, ids) = trace;
    let a = runs_of(&trace, ids[0]);
    let b = runs_of(&trace, ids[1]);
    assert_eq!(
        (a.len(), b.len()),
        (1, 1),
        "each ran once, to its end: {a:?} {b:?}"
    );
    let (a, b) = (a[0], b[0]);
    assert_ne!(a.worker, b.worker, "on two workers");
    assert!(a.end - a.start >= BUSY && b.end - b.start >= BUSY);
    assert!(
        a.start < b.end && b.start < a.end,
        "the runs overlap: {a:?} {b:?}"
    );
    assert_eq!((a.stop, b.stop), (Stop::Finished, Stop::Finished));
    assert_eq!(trace.workers(), 2);
    assert_eq!(trace.dropped(), 0);
}

#[test]
fn runs_on_one_worker_never_overlap() {
    let (trace, ids) = watchdog("busy goroutines on one worker", HANG_LIMIT, || {
        let rt = traced(1);
        let ids = rt.block_on(|| {
            let wg = WaitGroup::new();
            let ids: Vec<u64> = (0..2).map(|_| wg.go(|| spin(BUSY)).id()).collect();
            wg.wait();
            ids
        });
        (rt.stop_trace(), ids)
    });
    let runs: Vec<Run> = trace.runs().collect();
    for id in ids {
        let busy = runs_of(&trace, id);
        assert!(
            busy.iter().any(|r| r.end - r.start >= BUSY),
            "goroutine {id} computed in one run: {busy:?}"
        );
    }
    assert!(runs.iter().all(|r| r.worker == 0));
    for pair in runs.windows(2) {
        assert!(
            pair[0].end <= pair[1].start,
            "overlapping runs on one worker: {pair:?}"
        );
    }
}

#[test]
fn a_goroutine_blocked_on_a_channel_shows_why_and_who_woke_it() {
    let (trace, sender) = watchdog("a receive traced", HANG_LIMIT, || {
        let rt = traced(1);
        let sender = rt.block_on(|| {
            let (tx, rx) = chan::bounded(0);
            // On one worker the sender runs only once the main goroutine blocks in `recv`.
            let sender = scheduler::spawn(move || tx.send(7).unwrap());
            assert_eq!(rx.recv().unwrap(), 7);
            sender.id()
        });
        (rt.stop_trace(), sender)
    });
    let main = trace
        .spawns()
        .find(|s| s.parent.is_none())
        .expect("the main goroutine's spawn")
        .goroutine;
    assert!(
        trace
            .spawns()
            .any(|s| s.goroutine == sender && s.parent == Some(main))
    );
    let main_runs = runs_of(&trace, main);
    let blocked = main_runs
        .iter()
        .find(|r| r.stop == Stop::Blocked(WaitReason::ChannelReceive))
        .unwrap_or_else(|| panic!("main blocked on the channel: {main_runs:?}"));
    let wake = trace
        .wakes()
        .find(|w| w.goroutine == main)
        .expect("the main goroutine was woken");
    assert_eq!(wake.by, Some(sender));
    assert_eq!(wake.from, Thread::Worker(0));
    assert!(wake.at >= blocked.end);
    let sender_run = runs_of(&trace, sender)[0];
    assert!(sender_run.start >= blocked.end && wake.at <= sender_run.end);
    let after = main_runs
        .iter()
        .find(|r| r.start >= wake.at)
        .expect("main ran again after the wake");
    assert_eq!(after.stop, Stop::Finished);
}

#[test]
fn a_runtime_not_tracing_records_nothing() {
    let rt = Runtime::builder().procs(2).build().unwrap();
    rt.block_on(|| {
        let wg = WaitGroup::new();
        for _ in 0..4 {
            wg.go(scheduler::yield_now);
        }
        wg.wait();
    });
    let trace = rt.stop_trace();
    assert!(trace.is_empty());
    assert_eq!(trace.runs().count(), 0);
    assert_eq!(trace.duration(), Duration::ZERO);
    assert_eq!(trace.workers(), 2);
}

#[test]
fn a_trace_started_after_a_stop_holds_only_what_came_after() {
    let rt = traced(2);
    let spawn_three = || {
        rt.block_on(|| {
            let wg = WaitGroup::new();
            let ids: Vec<u64> = (0..3).map(|_| wg.go(scheduler::yield_now).id()).collect();
            wg.wait();
            ids
        })
    };
    let first_ids = spawn_three();
    let first = rt.stop_trace();
    assert!(
        first_ids
            .iter()
            .all(|id| first.goroutines().any(|g| g == *id))
    );
    let unseen = spawn_three(); // not traced
    rt.start_trace();
    let second_ids = spawn_three();
    let second = rt.stop_trace();
    // The main goroutine and its three: nothing of the first trace, nor of the untraced run.
    assert_eq!(
        second.spawns().count(),
        4,
        "{:?}",
        second.spawns().collect::<Vec<_>>()
    );
    for id in first_ids.iter().chain(&unseen) {
        assert!(
            second.goroutines().all(|g| g != *id),
            "goroutine {id} leaked in"
        );
    }
    for id in &second_ids {
        assert!(!runs_of(&second, *id).is_empty(), "goroutine {id} ran");
    }
    assert!(second.runs().all(|r| r.end <= second.duration()));
    assert!(rt.stop_trace().is_empty(), "a second stop has nothing");
}
