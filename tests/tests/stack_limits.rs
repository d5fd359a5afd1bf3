//! Admission when stack memory runs out: `try_spawn` returns `SpawnError::Stacks` naming the
//! limit, `spawn` panics with the same message, nothing crashes, and once goroutines finish
//! their reserved stacks admit new ones again.
//!
//! The limit is made real with `RLIMIT_AS` (the address-space limit), so the case runs in a
//! child process: this test binary again, with [`CHILD_ENV`] set and only
//! [`child_process_entry`] selected.

use std::process::Command;

use scheduler::{MIN_STACK_SIZE, Runtime, SpawnError, WaitGroup};
use scheduler_tests::{HANG_LIMIT, watchdog};

/// Set in the child process.
const CHILD_ENV: &str = "SCHEDULER_TEST_STACK_LIMIT_CHILD";
/// Printed by the child when every check passed.
const CHILD_OK: &str = "stack-limit child: ok";

#[test]
fn running_out_of_stack_memory_is_refused_with_the_limit_named() {
    let out = watchdog("the stack-limit child", HANG_LIMIT, || {
        Command::new(std::env::current_exe().expect("test binary path"))
            .args([
                "--exact",
                "child_process_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1")
            // One malloc arena: worker threads would otherwise reserve 64 MiB of address space
            // each for their own, which the limit below would not leave room for.
            .env("MALLOC_ARENA_MAX", "1")
            .output()
            .expect("cannot run the test binary as a child")
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(CHILD_OK),
        "child failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

/// Virtual memory size of this process, in bytes.
fn vm_size() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmSize:"))
        .expect("VmSize in /proc/self/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmSize in kB");
    kib * 1024
}

/// The body of the child process; does nothing in a normal test run.
#[test]
fn child_process_entry() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let rt = Runtime::builder()
        .procs(2)
        .stack_size(MIN_STACK_SIZE)
        .build()
        .unwrap();
    // Warm up: every worker runs goroutines once, so that what they allocate for themselves
    // is there before the limit.
    rt.block_on(|| {
        let wg = WaitGroup::new();
        for _ in 0..64 {
            wg.go(scheduler::yield_now);
        }
        wg.wait();
    });
    // Room for a few dozen more regions of stacks, no more.
    let limit = vm_size() + 48 * 1024 * 1024;
    let rlimit = libc::rlimit {
        rlim_cur: limit,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: sets this process's own address-space limit from a valid struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &rlimit) }, 0);

    let admitted = rt.block_on(|| {
        let gate = WaitGroup::new();
        gate.add(1);
        let mut handles = Vec::new();
        let err = loop {
            let g = gate.clone();
            match scheduler::try_spawn(move || g.wait()) {
                Ok(handle) => handles.push(handle),
                Err(err) => break err,
            }
            assert!(handles.len() < 1_000_000, "the limit never bit");
        };
        let message = err.to_string();
        assert!(
            matches!(err, SpawnError::Stacks { .. }),
            "unexpected error: {message}"
        );
        assert!(message.contains("ulimit -v"), "{message}");
        assert!(message.contains("stack_size"), "{message}");
        // `spawn` refuses the same way, with a panic that says why.
        let panic = std::panic::catch_unwind(|| scheduler::spawn(|| ()))
            .expect_err("spawn must refuse too");
        let panic = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(panic.contains("cannot reserve"), "{panic}");
        // Everyone admitted runs: release them and wait.
        let admitted = handles.len();
        gate.done();
        for handle in handles {
            handle.join().unwrap();
        }
        // Their reservations are back: new goroutines are admitted again.
        let wg = WaitGroup::new();
        for _ in 0..admitted / 2 {
            let done = wg.clone();
            done.add(1);
            scheduler::try_spawn(move || done.done()).expect("admitted after the others ended");
        }
        wg.wait();
        admitted
    });
    assert!(admitted > 64, "only {admitted} goroutines admitted");
    println!("{CHILD_OK} ({admitted} admitted before the limit)");
}
