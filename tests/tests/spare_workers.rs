//! Spare workers: when a goroutine blocks its worker's thread in a system call, the monitor
//! starts another worker for the goroutines queued behind it (`Builder::max_spare_workers`).
//!
//! Every test runs on one proc, where nothing but a spare can run a goroutine queued behind a
//! goroutine that blocks the only worker's thread: the tests fail (by the watchdog, or by a
//! timed-out std channel) if no spare starts. The tests of this file run one at a time, so
//! that the spare threads counted are their own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use scheduler::{Runtime, chan};
use scheduler_tests::{HANG_LIMIT, PROMPT_LIMIT, busy_work, settle, spare_thread_count, watchdog};

/// One test at a time: each counts the spare threads of the process.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn one_proc(max_spare_workers: Option<usize>) -> Runtime {
    let builder = Runtime::builder().procs(1);
    match max_spare_workers {
        Some(n) => builder.max_spare_workers(n),
        None => builder,
    }
    .build()
    .unwrap()
}

#[test]
fn a_goroutine_queued_behind_the_blocked_only_worker_runs_on_a_spare() {
    let _serial = serial();
    watchdog("goroutine behind a blocked worker", HANG_LIMIT, || {
        let rt = one_proc(None);
        let (main_thread, ran_on) = rt.block_on(|| {
            let (tx, rx) = mpsc::channel();
            // Queued on the only worker, which the wait below blocks.
            let queued = scheduler::spawn(move || tx.send(thread::current().id()).unwrap());
            let ran_on = rx
                .recv_timeout(PROMPT_LIMIT)
                .expect("no spare worker ran the goroutine queued behind a blocked worker");
            queued.join().unwrap();
            (thread::current().id(), ran_on)
        });
        assert_ne!(
            ran_on, main_thread,
            "it cannot have run on the blocked worker"
        );
        let m = rt.metrics();
        assert!(m.spare_workers_started >= 1, "{m}");
        // With nothing of its own left, the spare retires.
        // (Both fields: a snapshot reads the workers before the count.)
        settle(&rt, "the spare retires", |m| {
            m.spare_workers == 0 && m.workers.len() == 1
        });
        drop(rt);
        assert_eq!(spare_thread_count(), 0, "every spare thread was joined");
    });
}

#[test]
fn without_spares_the_queued_goroutine_waits_for_the_blocked_worker() {
    let _serial = serial();
    watchdog("no spares", HANG_LIMIT, || {
        let rt = one_proc(Some(0));
        let waited = rt.block_on(|| {
            let (tx, rx) = mpsc::channel();
            let queued = scheduler::spawn(move || tx.send(()).unwrap());
            // Ten time slices: a spare would have started long before.
            let waited = rx.recv_timeout(Duration::from_millis(100)).is_err();
            // Parking lets the worker run it.
            queued.join().unwrap();
            rx.recv().unwrap();
            waited
        });
        assert!(
            waited,
            "the goroutine ran while the only worker was blocked"
        );
        assert_eq!(rt.metrics().spare_workers_started, 0);
    });
}

#[test]
fn a_spare_stays_for_its_goroutines_which_never_change_thread() {
    let _serial = serial();
    watchdog("spare keeps its goroutines", HANG_LIMIT, || {
        let rt = one_proc(None);
        let (first_tx, first_rx) = mpsc::channel();
        let (wake_tx, wake_rx) = chan::bounded::<u32>(0);
        let (done_tx, done_rx) = mpsc::channel();
        let main = rt.spawn(move || {
            let main_thread = thread::current().id();
            let resident = scheduler::spawn(move || {
                let home = thread::current().id();
                first_tx.send(home).unwrap();
                // Parks on the spare; woken from the main goroutine's worker.
                for _ in 0..3 {
                    let _ = wake_rx.recv().unwrap();
                    assert_eq!(thread::current().id(), home, "a started goroutine moved");
                    scheduler::yield_now();
                    assert_eq!(thread::current().id(), home, "a started goroutine moved");
                }
                home
            });
            // Blocks the only worker until the goroutine has started: on a spare.
            let home: ThreadId = first_rx
                .recv_timeout(PROMPT_LIMIT)
                .expect("no spare worker started the queued goroutine");
            assert_ne!(home, main_thread);
            (resident, wake_tx, done_tx)
        });
        let (resident, wake_tx, done_tx) = main.join().unwrap();
        // The resident is parked on the spare: the spare must stay for it.
        let m = settle(&rt, "the resident parks on its spare", |m| {
            m.blocked.channel == 1 && m.running == 0
        });
        assert_eq!(m.spare_workers, 1, "{m}");
        assert_eq!(m.workers.len(), 2, "{m}");
        assert_eq!(m.workers[1].index, 1, "{m}");
        assert_eq!(m.workers[1].blocked, 1, "{m}");
        let sender = rt.spawn(move || {
            for i in 0..3 {
                wake_tx.send(i).unwrap();
            }
            done_tx.send(()).unwrap();
        });
        sender.join().unwrap();
        done_rx.recv().unwrap();
        let home = resident.join().unwrap();
        assert_ne!(home, thread::current().id());
        settle(&rt, "the spare retires once its goroutine finished", |m| {
            m.spare_workers == 0
        });
    });
}

#[test]
fn a_computing_goroutine_gets_no_spare() {
    let _serial = serial();
    watchdog("computing goroutine", HANG_LIMIT, || {
        let rt = one_proc(None);
        let ran_early = Arc::new(AtomicBool::new(false));
        let ran_early_in = ran_early.clone();
        rt.block_on(move || {
            let done = Arc::new(AtomicBool::new(false));
            let done_in = done.clone();
            let queued = scheduler::spawn(move || {
                // Relaxed: both flags are read after the join below.
                if !done_in.load(Ordering::Relaxed) {
                    ran_early_in.store(true, Ordering::Relaxed);
                }
            });
            // Ten time slices of computing, no checkpoint: the monitor asks it to yield but
            // starts no spare, since the thread computes rather than waits.
            let until = Instant::now() + Duration::from_millis(100);
            while Instant::now() < until {
                busy_work(1, 1_000);
            }
            done.store(true, Ordering::Relaxed);
            queued.join().unwrap();
        });
        assert!(
            !ran_early.load(Ordering::Relaxed),
            "a spare ran a goroutine beside one that only computed"
        );
        assert_eq!(rt.metrics().spare_workers_started, 0);
        assert!(rt.preemption_requests() > 0, "the long run was noticed");
    });
}

#[test]
fn shutdown_unwinds_goroutines_parked_on_a_spare_and_joins_it() {
    let _serial = serial();
    watchdog("shutdown with a spare", HANG_LIMIT, || {
        let rt = one_proc(None);
        let unwound = Arc::new(AtomicBool::new(false));
        let flag = unwound.clone();
        rt.block_on(move || {
            let (started_tx, started_rx) = mpsc::channel();
            scheduler::spawn(move || {
                struct SetOnDrop(Arc<AtomicBool>);
                impl Drop for SetOnDrop {
                    fn drop(&mut self) {
                        self.0.store(true, Ordering::SeqCst);
                    }
                }
                let _guard = SetOnDrop(flag);
                let (_tx, rx) = chan::bounded::<()>(0);
                started_tx.send(()).unwrap();
                // Parked for good, on the spare.
                let _ = rx.recv();
            });
            started_rx
                .recv_timeout(PROMPT_LIMIT)
                .expect("no spare worker started the queued goroutine");
        });
        assert_eq!(spare_thread_count(), 1, "the spare stays for its goroutine");
        let err = rt
            .shutdown_timeout(Duration::from_millis(10))
            .expect_err("one goroutine was parked for good");
        assert_eq!(err.remaining(), 1);
        assert!(
            unwound.load(Ordering::SeqCst),
            "the parked goroutine unwound"
        );
        assert_eq!(spare_thread_count(), 0, "shutdown joined the spare");
    });
}

#[test]
fn spare_workers_above_the_limit_are_rejected() {
    let err = Runtime::builder()
        .procs(1)
        .max_spare_workers(scheduler::MAX_PROCS + 1)
        .build()
        .expect_err("too many spares");
    assert!(
        err.to_string()
            .contains("max_spare_workers must be at most"),
        "{err}"
    );
}
