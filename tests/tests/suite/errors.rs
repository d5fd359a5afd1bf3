//! Bad input gives clear errors: builder settings, and the free functions called outside a
//! runtime.

use std::error::Error;
use std::time::Duration;

use scheduler::{BuildError, MAX_PROCS, MAX_STACK_SIZE, MIN_STACK_SIZE, Runtime};
use scheduler_tests::expect_panic;

#[test]
fn zero_procs_is_rejected_with_a_message_about_procs() {
    let err = Runtime::builder().procs(0).build().unwrap_err();
    assert!(matches!(err, BuildError::ZeroProcs), "got {err:?}");
    let msg = err.to_string();
    assert!(msg.contains("procs"), "message: {msg:?}");
    assert!(err.source().is_none());
}

#[test]
fn too_many_procs_is_rejected_with_the_limit_in_the_message() {
    let err = Runtime::builder().procs(MAX_PROCS + 1).build().unwrap_err();
    assert!(
        matches!(err, BuildError::TooManyProcs(n) if n == MAX_PROCS + 1),
        "got {err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("procs"), "message: {msg:?}");
    assert!(msg.contains(&MAX_PROCS.to_string()), "message: {msg:?}");
}

#[test]
fn bad_stack_sizes_are_rejected_with_a_message_about_stack_size() {
    for bytes in [0, 1, MIN_STACK_SIZE - 1, MAX_STACK_SIZE + 1, usize::MAX] {
        let err = Runtime::builder()
            .procs(1)
            .stack_size(bytes)
            .build()
            .unwrap_err();
        assert!(
            matches!(err, BuildError::StackSize(n) if n == bytes),
            "stack_size({bytes}): got {err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("stack size"),
            "stack_size({bytes}): message {msg:?}"
        );
        assert!(msg.contains(&bytes.to_string()), "message {msg:?}");
    }
}

#[test]
fn zero_time_slice_is_rejected_with_a_message_about_the_time_slice() {
    let err = Runtime::builder()
        .procs(1)
        .time_slice(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::ZeroTimeSlice), "got {err:?}");
    let msg = err.to_string();
    assert!(msg.contains("time slice"), "message: {msg:?}");
    // The smallest positive slice is accepted.
    let rt = Runtime::builder()
        .procs(1)
        .time_slice(Duration::from_nanos(1))
        .build()
        .expect("any positive time slice is valid");
    assert_eq!(rt.block_on(|| 1 + 1), 2);
}

#[test]
fn stack_sizes_at_the_limits_are_accepted() {
    let rt = Runtime::builder()
        .procs(1)
        .stack_size(MIN_STACK_SIZE)
        .build()
        .expect("MIN_STACK_SIZE is valid");
    assert_eq!(
        rt.block_on(|| scheduler::spawn(|| 1 + 1).join().unwrap()),
        2
    );
    // Stacks are reserved lazily, so the largest size costs address space only.
    let rt = Runtime::builder()
        .procs(1)
        .stack_size(MAX_STACK_SIZE)
        .build()
        .expect("MAX_STACK_SIZE is valid");
    assert_eq!(rt.block_on(|| "big stack"), "big stack");
}

#[test]
fn spawn_outside_a_runtime_panics() {
    let msg = expect_panic(|| scheduler::spawn(|| ()));
    assert!(msg.contains("outside a runtime"), "message: {msg:?}");
}

#[test]
fn procs_and_num_goroutines_outside_a_runtime_panic() {
    let msg = expect_panic(scheduler::procs);
    assert!(msg.contains("outside a runtime"), "message: {msg:?}");
    let msg = expect_panic(scheduler::num_goroutines);
    assert!(msg.contains("outside a runtime"), "message: {msg:?}");
}

#[test]
fn free_functions_that_work_everywhere_do_so_outside_a_runtime() {
    assert!(!scheduler::in_goroutine());
    // Yields the thread instead of a goroutine.
    scheduler::yield_now();
}

#[test]
fn block_on_caller_stays_outside_a_runtime() {
    // block_on's caller is a plain thread, not a goroutine: the free functions still refuse.
    let rt = scheduler_tests::runtime(1);
    assert!(rt.block_on(scheduler::in_goroutine));
    assert!(!scheduler::in_goroutine());
    let msg = expect_panic(|| scheduler::spawn(|| ()));
    assert!(msg.contains("outside a runtime"), "message: {msg:?}");
}
