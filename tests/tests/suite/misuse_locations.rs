//! A public function that panics on misuse reports the caller's line (`#[track_caller]`),
//! not a line inside the crate: the panic hook must be told this file and the line of the
//! call. Each expected line is taken with `line!()` in the statement of the call.

use std::time::Duration;

use scheduler::sync::Semaphore;
use scheduler::{GoroutineBuilder, Runtime, WaitGroup, chan, time, try_spawn, try_spawn_blocking};
use scheduler_tests::{HANG_LIMIT, panic_location, runtime, watchdog};

/// Asserts that a panic reported at `at` (file, line, message) happened at `line` of this
/// file, with a message that names the crate and contains `says`.
#[track_caller]
fn assert_panicked_at(at: (String, u32, String), line: u32, says: &str) {
    let (file, got, message) = at;
    assert!(
        file.ends_with("misuse_locations.rs"),
        "panicked at {file}:{got}, not in this file: {message}"
    );
    assert_eq!(got, line, "panicked at {file}:{got}: {message}");
    assert!(message.starts_with("scheduler: "), "message: {message}");
    assert!(message.contains(says), "message: {message}");
}

#[test]
fn spawning_outside_a_runtime_panics_at_the_call() {
    let (line, at) = (line!(), panic_location(|| scheduler::spawn(|| ())));
    assert_panicked_at(at, line, "spawn called outside a runtime");
    let (line, at) = (line!(), panic_location(|| try_spawn(|| ()).is_ok()));
    assert_panicked_at(at, line, "try_spawn called outside a runtime");
    let (line, at) = (line!(), panic_location(|| scheduler::spawn_blocking(|| ())));
    assert_panicked_at(at, line, "spawn_blocking called outside a runtime");
    let line = line!() + 1;
    let at = panic_location(|| try_spawn_blocking(|| ()).is_ok());
    assert_panicked_at(at, line, "try_spawn_blocking called outside a runtime");
    let wg = WaitGroup::new();
    let (line, at) = (line!(), panic_location(|| wg.go(|| ())));
    assert_panicked_at(at, line, "WaitGroup::go called outside a runtime");
    assert_eq!(wg.count(), 0, "a refused go adds nothing");
    let builder = GoroutineBuilder::new().name("x");
    let (line, at) = (line!(), panic_location(|| builder.spawn(|| ()).is_ok()));
    assert_panicked_at(at, line, "GoroutineBuilder::spawn called outside a runtime");
}

#[test]
fn runtime_queries_outside_a_runtime_panic_at_the_call() {
    let (line, at) = (line!(), panic_location(|| scheduler::procs()));
    assert_panicked_at(at, line, "procs called outside a runtime");
    let (line, at) = (line!(), panic_location(|| scheduler::num_goroutines()));
    assert_panicked_at(at, line, "num_goroutines called outside a runtime");
    let (line, at) = (line!(), panic_location(|| scheduler::metrics().live));
    assert_panicked_at(at, line, "metrics called outside a runtime");
    let (line, at) = (line!(), panic_location(|| scheduler::goroutines().len()));
    assert_panicked_at(at, line, "goroutines called outside a runtime");
}

#[test]
fn wait_group_counter_misuse_panics_at_the_call() {
    let wg = WaitGroup::new();
    let (line, at) = (line!(), panic_location(|| wg.done()));
    assert_panicked_at(at, line, "negative WaitGroup counter");
    assert_eq!(wg.count(), 0);
    wg.add(usize::MAX);
    let (line, at) = (line!(), panic_location(|| wg.add(1)));
    assert_panicked_at(at, line, "WaitGroup counter overflow");
    assert_eq!(wg.count(), usize::MAX, "an overflowing add changes nothing");
}

#[test]
fn bad_arguments_panic_at_the_call() {
    let (line, at) = (line!(), panic_location(|| time::tick(Duration::ZERO)));
    assert_panicked_at(at, line, "tick period must be non-zero");
    let (line, at) = (line!(), panic_location(|| Semaphore::new(usize::MAX)));
    assert_panicked_at(at, line, "too many semaphore permits");
}

#[test]
fn shutting_down_from_an_own_goroutine_panics_at_the_call() {
    let (line, at) = watchdog("shutdown_timeout from own goroutine", HANG_LIMIT, || {
        let rt = runtime(1);
        let (tx, rx) = chan::bounded::<Runtime>(1);
        let h = rt.spawn(move || {
            let rt = rx.recv().unwrap();
            // Recorded on this goroutine's worker thread, where it panics.
            let line = line!() + 1;
            let at = panic_location(move || rt.shutdown_timeout(Duration::ZERO).is_ok());
            (line, at)
        });
        tx.send(rt).unwrap();
        h.join().unwrap()
    });
    assert_panicked_at(
        at,
        line,
        "shutdown_timeout called from one of the runtime's own",
    );
}
