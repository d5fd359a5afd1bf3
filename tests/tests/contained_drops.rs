//! User destructors that the runtime runs itself, on a worker's or a pool thread's own stack:
//! a panicking `Drop` of a value the runtime drops (a detached result, a closure that never
//! started, `WaitGroup::go`'s own guard, a detached blocking job's result) is contained: the
//! panic hook prints it and the runtime goes on. These used to crash or hang, so each case
//! runs in a child process: the test re-runs this test binary with [`CHILD_ENV`] naming the
//! case and only `child_process_entry` selected, and checks that the child printed
//! [`CHILD_OK`] and exited 0 within [`HANG_LIMIT`].

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use scheduler::chan::{self};
use scheduler::{Cancelled, Runtime, WaitGroup};
use scheduler_tests::{
    HANG_LIMIT, SPIN_LIMIT, describe_payload, disable_core_dumps, runtime, settle_parked,
    spin_until,
};

/// Names the case a child process runs; unset in the parent.
const CHILD_ENV: &str = "SCHEDULER_TEST_CANCELLATION_CHILD";
/// What a child prints on stderr once its case has run to the end.
const CHILD_OK: &str = "child: ok";

/// Bombs dropped so far in this process.
static BOMB_DROPS: AtomicUsize = AtomicUsize::new(0);

/// A value whose destructor panics, after counting itself in [`BOMB_DROPS`].
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        BOMB_DROPS.fetch_add(1, SeqCst);
        panic!("Bomb::drop");
    }
}

// --- Panicking destructors on the runtime's own stacks, each in a child process. ---

/// Runs the child case `case`; checks that it exited 0 after its whole case, within
/// [`HANG_LIMIT`], and that its stderr holds each of `expected`.
fn assert_child_survives(case: &str, expected: &[&str]) {
    let mut child = Command::new(std::env::current_exe().expect("test binary path"))
        .args(["--exact", "child_process_entry", "--nocapture"])
        .env(CHILD_ENV, case)
        .env("RUST_BACKTRACE", "0") // short failure messages; rerun by hand for more
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run the test binary as a child");
    let mut pipe = child.stderr.take().expect("piped stderr");
    let stderr = thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    });
    let deadline = Instant::now() + HANG_LIMIT;
    let status: Option<ExitStatus> = loop {
        if let Some(status) = child.try_wait().expect("cannot poll the child") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(10));
    };
    let stderr = stderr.join().unwrap();
    let Some(status) = status else {
        panic!("child case {case:?} hung: killed after {HANG_LIMIT:?}; stderr:\n{stderr}");
    };
    assert!(
        status.success(),
        "child case {case:?} died ({status}): the panicking destructor was not contained; \
         stderr:\n{stderr}"
    );
    for needle in [CHILD_OK].iter().chain(expected) {
        let found = stderr.contains(needle);
        assert!(
            found,
            "child case {case:?}: no {needle:?} in stderr:\n{stderr}"
        );
    }
}

/// The body of every child process; does nothing in a normal test run.
#[test]
fn child_process_entry() {
    let Ok(case) = std::env::var(CHILD_ENV) else {
        return;
    };
    disable_core_dumps();
    match case.as_str() {
        "detached_result" => drop_a_panicking_detached_result(),
        "unstarted_closure" => drop_panicking_unstarted_closures_at_shutdown(),
        "wait_group_extra_done" => wait_group_go_with_an_extra_done(false),
        "wait_group_extra_done_then_panic" => wait_group_go_with_an_extra_done(true),
        "blocking_result" => drop_a_panicking_detached_blocking_result(),
        other => panic!("unknown child case {other:?}"),
    }
    eprintln!("{CHILD_OK}");
}

fn bomb_dropped() -> bool {
    BOMB_DROPS.load(SeqCst) == 1
}

fn drop_a_panicking_detached_result() {
    let rt = runtime(1);
    let (tx, rx) = chan::bounded::<u32>(0);
    let receiver = rt.spawn(move || rx.recv().unwrap());
    settle_parked(&rt, 1, || true);
    // The bomb's goroutine waits for the go-ahead, so that its handle is surely dropped first
    // and the runtime, not this thread, drops the result.
    let (go_tx, go_rx) = chan::bounded::<()>(1);
    drop(rt.spawn(move || go_rx.recv().map(|()| Bomb)));
    go_tx.send(()).unwrap();
    spin_until("the result is dropped", SPIN_LIMIT, bomb_dropped);
    eprintln!("child: the detached result was dropped; sending to the parked receiver");
    tx.send(7).unwrap();
    assert_eq!(receiver.join().unwrap(), 7);
    eprintln!("child: the parked receiver got its value");
    assert_eq!(rt.block_on(|| 5), 5);
}

fn drop_panicking_unstarted_closures_at_shutdown() {
    const BOMBS: usize = 4;
    // One worker and no spares: nothing starts the bombs while the holder below keeps it.
    let builder = Runtime::builder().procs(1).max_spare_workers(0);
    let rt = builder.build().unwrap();
    // Blocked forever, so the shutdown has to cancel.
    let (_keep, never) = chan::bounded::<()>(0);
    let blocked = rt.spawn(move || never.recv().is_ok());
    settle_parked(&rt, 1, || true);
    // Holds the only worker thread (no suspension point) until spawns are refused: the
    // shutdown began. Its deadline is zero, so it moves on to cancelling at once; the sleep
    // lets it get there before the worker looks at its queues again. (Were the bombs started
    // after all, the case would test less, not fail: they forget their bomb.)
    let (holding_tx, holding_rx) = mpsc::channel();
    let holder = rt.spawn(move || {
        holding_tx.send(()).unwrap();
        while scheduler::try_spawn(|| ()).is_ok() {
            thread::sleep(Duration::from_millis(1));
        }
        thread::sleep(Duration::from_millis(200));
    });
    holding_rx.recv().unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let bombs: Vec<_> = (0..BOMBS)
        .map(|_| {
            let (bomb, started) = (Bomb, started.clone());
            rt.spawn(move || std::mem::forget((bomb, started.fetch_add(1, SeqCst))))
        })
        .collect();
    eprintln!("child: {BOMBS} goroutines holding a bomb are queued; shutting down");
    let err = rt
        .shutdown_timeout(Duration::ZERO)
        .expect_err("one is blocked");
    let started = started.load(SeqCst);
    eprintln!("child: shutdown returned: {err}; {started} bomb goroutine(s) had started");
    // The bombs and the blocked goroutine, at least.
    assert!(err.remaining() > BOMBS, "remaining: {}", err.remaining());
    assert!(blocked.join().unwrap_err().is::<Cancelled>());
    holder.join().expect("the holder returns normally");
    for bomb in bombs {
        // Cancelled unstarted (the bomb went off), or started and finished.
        if let Err(payload) = bomb.join() {
            assert!(payload.is::<Cancelled>(), "{}", describe_payload(&*payload));
        }
    }
    assert_eq!(BOMB_DROPS.load(SeqCst) + started, BOMBS);
}

fn wait_group_go_with_an_extra_done(then_panic: bool) {
    let rt = runtime(1);
    let message = rt.block_on(move || {
        let wg = WaitGroup::new();
        let extra = wg.clone();
        let handle = wg.go(move || {
            // One `done` too many: the group's own guard then takes the counter below zero.
            extra.done();
            assert!(!then_panic, "the goroutine panics after its extra done");
        });
        // The extra done brings the counter to zero: the goroutine has run.
        wg.wait();
        describe_payload(&*handle.join().expect_err("the goroutine's guard panics"))
    });
    eprintln!("child: the goroutine panicked with {message:?}");
    assert!(
        message.contains("negative WaitGroup counter")
            || (then_panic && message.contains("panics after its extra done")),
        "{message}"
    );
    assert_eq!(rt.block_on(|| 1), 1);
}

fn drop_a_panicking_detached_blocking_result() {
    let rt = runtime(1);
    // The job waits for the go-ahead, so that its handle is surely dropped first and the
    // pool, not this thread, drops the result.
    let (go_tx, go_rx) = mpsc::channel::<()>();
    drop(rt.spawn_blocking(move || go_rx.recv().map(|()| Bomb)));
    go_tx.send(()).unwrap();
    spin_until("the result is dropped", SPIN_LIMIT, bomb_dropped);
    eprintln!("child: the detached job's result was dropped");
    assert_eq!(rt.spawn_blocking(|| 6).join().unwrap(), 6);
    assert_eq!(rt.block_on(|| 5), 5);
    eprintln!("child: dropping the runtime");
    drop(rt);
}

#[test]
fn a_panicking_drop_of_a_detached_result_is_contained() {
    assert_child_survives("detached_result", &["Bomb::drop", "got its value"]);
}

#[test]
fn a_panicking_drop_of_an_unstarted_closure_does_not_hang_the_shutdown() {
    assert_child_survives("unstarted_closure", &["shutdown returned"]);
}

#[test]
fn wait_group_go_with_an_extra_done_panics_in_the_goroutine_not_the_worker() {
    assert_child_survives("wait_group_extra_done", &["negative WaitGroup counter"]);
}

#[test]
fn wait_group_go_with_an_extra_done_then_a_panic_does_not_abort() {
    assert_child_survives("wait_group_extra_done_then_panic", &[]);
}

#[test]
fn a_panicking_drop_of_a_detached_blocking_result_does_not_hang_the_runtime_drop() {
    assert_child_survives("blocking_result", &["Bomb::drop", "dropping the runtime"]);
}
