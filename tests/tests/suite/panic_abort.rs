//! Under `panic = "abort"` nothing unwinds, so a forced shutdown cannot cancel a goroutine
//! parked in the middle of its code, and deadlock detection cannot unwind the sleepers. The
//! runtime then says so before the process aborts, instead of dying with a bare SIGABRT
//! (docs/caveats.md, "panic = abort").
//!
//! The program under test must itself be built with `panic = "abort"`, which the test harness
//! never is: this test builds `tests/abort_probe` (a workspace of its own, whose dev profile
//! sets it) with the cargo that runs the tests, into a directory of its own beside the
//! workspace's target directory, and runs each case as a child process.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Output};

/// Builds the probe once per test binary and returns the path of its executable.
fn probe() -> PathBuf {
    static PROBE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PROBE
        .get_or_init(|| {
            let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("abort_probe/Cargo.toml");
            // The test binary is `<target>/<profile>/deps/<name>`: build beside `<target>`'s
            // own profiles, so that a clean of the workspace cleans this too.
            let exe = std::env::current_exe().expect("test binary path");
            let target = exe
                .ancestors()
                .nth(3)
                .expect("the test binary lives in <target>/<profile>/deps")
                .join("abort-probe");
            let status = Command::new(env!("CARGO"))
                .args(["build", "--quiet", "--manifest-path"])
                .arg(&manifest)
                .arg("--target-dir")
                .arg(&target)
                .status()
                .expect("cannot run cargo to build the abort probe");
            assert!(
                status.success(),
                "building the abort probe failed: {status}"
            );
            target.join("debug/abort-probe")
        })
        .clone()
}

fn run(case: &str) -> Output {
    Command::new(probe())
        .arg(case)
        // The child dies on purpose: no core file, no backtrace noise.
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("cannot run the abort probe")
}

#[test]
fn an_abort_build_shuts_down_normally_when_every_goroutine_finishes() {
    let out = run("finish");
    assert!(
        out.status.success(),
        "status {}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "finished\n");
}

/// Runs `case`, which must end by SIGABRT, without returning, after printing every one of
/// `needles` on stderr.
fn assert_aborts_saying(case: &str, needles: &[&str]) {
    let out = run(case);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "case {case:?}: status {}; stderr: {stderr}",
        out.status
    );
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "case {case:?}: no {needle:?} in stderr: {stderr}"
        );
    }
    assert!(out.stdout.is_empty(), "case {case:?}: the call returned");
}

#[test]
fn a_forced_shutdown_under_panic_abort_says_why_before_it_aborts() {
    assert_aborts_saying(
        "shutdown",
        &["must cancel 1 started goroutine", "panic = \"abort\""],
    );
}

#[test]
fn a_deadlock_under_panic_abort_prints_go_s_message_before_it_aborts() {
    assert_aborts_saying(
        "deadlock",
        &["scheduler: all goroutines are asleep - deadlock!"],
    );
}
