//! A goroutine that overflows its stack ends the process with a message naming it and its
//! stack size, by SIGABRT; faults that are not a goroutine's overflow die as they did before
//! (std's message for a thread's own stack, a plain SIGSEGV otherwise).
//!
//! Each case crashes, so it runs in a child process: the test re-runs this test binary with
//! [`CHILD_ENV`] naming the case and only [`child_process_entry`] selected, and looks at how
//! the child died and what it wrote to stderr.

use std::hint::black_box;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};

use scheduler::{MIN_STACK_SIZE, Runtime};
use scheduler_tests::disable_core_dumps;

/// Names the case a child process runs; unset in the parent.
const CHILD_ENV: &str = "SCHEDULER_TEST_OVERFLOW_CHILD";

/// Recurses until the stack runs out. `black_box` keeps the frame and the call: no tail call,
/// no loop, no inlining it away.
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 32]);
    if black_box(depth) == u64::MAX {
        return 0;
    }
    black_box(recurse(depth + 1)) + frame[0]
}

/// Runs the child case `case`; returns how it ended and its stderr.
fn run_child(case: &str) -> (ExitStatus, String) {
    let out = Command::new(std::env::current_exe().expect("test binary path"))
        .args([
            "--exact",
            "child_process_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, case)
        .output()
        .expect("cannot run the test binary as a child");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The body of every child process; does nothing in a normal test run.
#[test]
fn child_process_entry() {
    let Ok(case) = std::env::var(CHILD_ENV) else {
        return;
    };
    disable_core_dumps();
    match case.as_str() {
        "goroutine" => overflow_spawned_goroutine(),
        "inline" => overflow_inline_joined_goroutine(),
        "thread" => overflow_plain_thread(),
        "fault" => fault_outside_any_guard(),
        "raise" => raise_sigsegv_in_goroutine(),
        other => panic!("unknown child case {other:?}"),
    }
    panic!("child case {case:?} survived");
}

/// A runtime of `procs` workers whose goroutines have the smallest stacks allowed, so that
/// a recursion overflows quickly.
fn small_stacks(procs: usize) -> Runtime {
    Runtime::builder()
        .procs(procs)
        .stack_size(MIN_STACK_SIZE)
        .build()
        .unwrap()
}

fn overflow_spawned_goroutine() {
    let rt = small_stacks(2);
    rt.block_on(|| {
        let (deep, go) = started_goroutine(|| {
            recurse(0);
        });
        eprintln!("child: goroutine {} recurses", deep.id());
        go.send(()).unwrap();
        let _ = deep.join();
    });
}

/// A goroutine run inline by `join` uses its joiner's stack: the joiner is the one named.
fn overflow_inline_joined_goroutine() {
    // One proc: nobody can steal the inner goroutine before its joiner runs it inline.
    let rt = small_stacks(1);
    rt.block_on(|| {
        let (joiner, go) = started_goroutine(|| {
            let inner = scheduler::spawn(|| recurse(0));
            eprintln!("child: inner goroutine {}", inner.id());
            let _ = inner.join();
        });
        eprintln!("child: goroutine {} joins", joiner.id());
        go.send(()).unwrap();
        let _ = joiner.join();
    });
}

/// Spawns a goroutine that runs `f` once it is sent the go-ahead, and returns when it has
/// started: on a stack of its own, not inline in the caller's `join`, and before `f` runs, so
/// that the caller can print its id first.
fn started_goroutine(
    f: impl FnOnce() + Send + 'static,
) -> (scheduler::JoinHandle<()>, scheduler::chan::Sender<()>) {
    let (started_tx, started_rx) = scheduler::chan::bounded::<()>(1);
    let (go_tx, go_rx) = scheduler::chan::bounded::<()>(1);
    let handle = scheduler::spawn(move || {
        started_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        f();
    });
    started_rx.recv().unwrap();
    (handle, go_tx)
}

fn overflow_plain_thread() {
    // A runtime exists, so the scheduler's handler is installed and must pass this one on.
    let rt = Runtime::builder().procs(2).build().unwrap();
    rt.block_on(|| scheduler::spawn(|| 1).join().unwrap());
    let thread = std::thread::Builder::new()
        .name("plain-thread".into())
        .stack_size(MIN_STACK_SIZE)
        .spawn(|| recurse(0))
        .unwrap();
    let _ = thread.join();
}

fn fault_outside_any_guard() {
    let rt = small_stacks(2);
    // SAFETY: a fresh anonymous mapping of one inaccessible page.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(page, libc::MAP_FAILED);
    let addr = page as usize;
    rt.block_on(move || {
        scheduler::spawn(move || store_byte(addr)).join().unwrap();
    });
}

/// Stores a byte at `addr` in assembly, so that the fault it raises there happens outside
/// anything the Rust compiler reasons about.
fn store_byte(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the store faults (the page is inaccessible) and the process dies; no Rust-visible
    // memory is touched.
    unsafe {
        std::arch::asm!("mov byte ptr [{0}], 0", in(reg) addr, options(nostack));
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above.
    unsafe {
        std::arch::asm!("strb wzr, [{0}]", in(reg) addr, options(nostack));
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    // SAFETY: no such store on this architecture: raise the signal the fault would have.
    unsafe {
        let _ = addr;
        libc::raise(libc::SIGSEGV);
    }
}

fn raise_sigsegv_in_goroutine() {
    let rt = small_stacks(2);
    rt.block_on(|| {
        scheduler::spawn(|| {
            // A sent SIGSEGV has no fault address and is no overflow: it goes to the handler
            // installed before the scheduler's. std's resets SIGSEGV to the default and
            // returns; the default action would have killed us at once. Either way, the second
            // one kills.
            // SAFETY: raise has no memory preconditions.
            unsafe { libc::raise(libc::SIGSEGV) };
            eprintln!("child: the first SIGSEGV returned");
            // SAFETY: as above.
            unsafe { libc::raise(libc::SIGSEGV) };
        })
        .join()
        .unwrap();
    });
}

/// The number after `prefix` on the child's line that starts with it.
fn number_after(stderr: &str, prefix: &str) -> u64 {
    let line = stderr
        .lines()
        .find_map(|line| line.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?} in stderr:\n{stderr}"));
    line.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after {prefix:?} in stderr:\n{stderr}"))
}

fn assert_signal(status: ExitStatus, signal: i32, stderr: &str) {
    assert_eq!(
        status.signal(),
        Some(signal),
        "child ended with {status}, expected signal {signal}; stderr:\n{stderr}"
    );
}

#[test]
fn goroutine_stack_overflow_names_the_goroutine_and_aborts() {
    let (status, stderr) = run_child("goroutine");
    assert_signal(status, libc::SIGABRT, &stderr);
    let id = number_after(&stderr, "child: goroutine ");
    let expected = format!(
        "scheduler: goroutine {id} overflowed its stack ({MIN_STACK_SIZE} bytes); \
         raise it with Builder::stack_size"
    );
    assert!(
        stderr.lines().any(|line| line == expected),
        "expected {expected:?} in stderr:\n{stderr}"
    );
}

#[test]
fn overflow_of_an_inline_joined_goroutine_names_its_joiner() {
    let (status, stderr) = run_child("inline");
    assert_signal(status, libc::SIGABRT, &stderr);
    let joiner = number_after(&stderr, "child: goroutine ");
    let inner = number_after(&stderr, "child: inner goroutine ");
    assert_ne!(joiner, inner);
    let expected = format!("scheduler: goroutine {joiner} overflowed its stack");
    assert!(
        stderr.contains(&expected),
        "expected {expected:?} in stderr:\n{stderr}"
    );
}

#[test]
fn thread_stack_overflow_still_gets_std_message() {
    let (status, stderr) = run_child("thread");
    assert_signal(status, libc::SIGABRT, &stderr);
    assert!(
        stderr.contains("thread 'plain-thread'") && stderr.contains("has overflowed its stack"),
        "expected std's overflow message in stderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("scheduler: goroutine"),
        "stderr:\n{stderr}"
    );
}

#[test]
fn fault_outside_any_guard_still_dies_by_sigsegv() {
    let (status, stderr) = run_child("fault");
    assert_signal(status, libc::SIGSEGV, &stderr);
    assert!(!stderr.contains("overflowed"), "stderr:\n{stderr}");
}

#[test]
fn raised_sigsegv_is_passed_on_not_reported_as_overflow() {
    let (status, stderr) = run_child("raise");
    assert_signal(status, libc::SIGSEGV, &stderr);
    assert!(!stderr.contains("overflowed"), "stderr:\n{stderr}");
}
