//! Loud stalls: a goroutine that keeps its worker while others wait behind it is counted in
//! the metrics and named in one line on stderr, with the fix; `SCHEDULER_STALL_WARNINGS=0`
//! silences the line but not the count.
//!
//! Each scenario runs in a child process (this binary, re-run with `STALL_SCENARIO` set), so
//! that its stderr can be read and its environment set.

use std::process::Command;
use std::time::{Duration, Instant};

use scheduler::{Metrics, Runtime};

/// How long a scenario's goroutine holds its worker: well past the threshold below.
const HOLD: Duration = Duration::from_millis(300);
const THRESHOLD: Duration = Duration::from_millis(50);

/// Runs `scenario` in a child process; returns its stderr, after checking it succeeded.
fn run_child(scenario: &str, env: &[(&str, &str)]) -> String {
    let mut command = Command::new(std::env::current_exe().expect("test binary path"));
    command
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("STALL_SCENARIO", scenario)
        .env_remove("SCHEDULER_STALL_WARNINGS");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("the child runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "scenario {scenario} failed: {stderr}"
    );
    stderr
}

/// The scenarios, run by the child process.
#[test]
fn child() {
    let Ok(scenario) = std::env::var("STALL_SCENARIO") else {
        return;
    };
    let (builder, hold): (_, fn()) = match scenario.as_str() {
        "blocked" | "blocked-default" => (
            Runtime::builder().procs(1).stall_warnings(Some(THRESHOLD)),
            || std::thread::sleep(HOLD),
        ),
        "busy" => (
            Runtime::builder().procs(1).stall_warnings(Some(THRESHOLD)),
            || {
                let start = Instant::now();
                while start.elapsed() < HOLD {
                    std::hint::spin_loop();
                }
            },
        ),
        other => panic!("unknown scenario {other}"),
    };
    // With the default setting, only the environment decides.
    let builder = if scenario == "blocked-default" {
        Runtime::builder().procs(1)
    } else {
        builder
    };
    // No spare worker, which would take the goroutine waiting behind the holder away.
    let rt = builder.max_spare_workers(0).build().unwrap();
    let metrics: Metrics = rt.block_on(move || {
        let wg = scheduler::WaitGroup::new();
        wg.add(2);
        let done = wg.clone();
        // Queued behind the holder on the only worker (the newest spawn runs first).
        scheduler::GoroutineBuilder::new()
            .name("behind")
            .spawn(move || done.done())
            .unwrap();
        let done = wg.clone();
        scheduler::GoroutineBuilder::new()
            .name("holder")
            .spawn(move || {
                hold();
                done.done();
            })
            .unwrap();
        wg.wait();
        scheduler::metrics()
    });
    // The line is printed by the child; the parent reads it. The counts are checked here.
    match scenario.as_str() {
        "busy" => assert!(metrics.stalls_busy >= 1, "{metrics}"),
        _ => assert!(metrics.stalls_blocked >= 1, "{metrics}"),
    }
}

#[test]
fn a_goroutine_blocking_its_worker_is_named_with_the_fix() {
    let stderr = run_child("blocked", &[]);
    let line = stderr
        .lines()
        .find(|line| line.contains("has blocked worker 0"))
        .unwrap_or_else(|| panic!("no stall warning in: {stderr}"));
    assert!(line.starts_with("scheduler: goroutine "), "{line}");
    assert!(line.contains("\"holder\""), "names the goroutine: {line}");
    assert!(
        line.contains(&format!("spawned at {}", file!())),
        "says where it was spawned: {line}"
    );
    assert!(line.contains("goroutine(s) waiting behind it"), "{line}");
    assert!(line.contains("spawn_blocking"), "gives the fix: {line}");
    assert_eq!(
        stderr.matches("has blocked worker").count(),
        1,
        "one line per incident: {stderr}"
    );
}

#[test]
fn a_goroutine_computing_without_checkpoints_is_named_with_the_fix() {
    let stderr = run_child("busy", &[]);
    let line = stderr
        .lines()
        .find(|line| line.contains("without a suspension point"))
        .unwrap_or_else(|| panic!("no stall warning in: {stderr}"));
    assert!(line.contains("\"holder\""), "{line}");
    assert!(line.contains("checkpoint()"), "gives the fix: {line}");
}

#[test]
fn the_environment_silences_the_default_warnings_but_not_the_counts() {
    // The child asserts the count; the line must be absent.
    let stderr = run_child("blocked-default", &[("SCHEDULER_STALL_WARNINGS", "0")]);
    assert!(
        !stderr.contains("has blocked worker"),
        "warned despite SCHEDULER_STALL_WARNINGS=0: {stderr}"
    );
    // And without the variable, the default warns (after 100 ms; the holder takes 300).
    let stderr = run_child("blocked-default", &[]);
    assert!(stderr.contains("has blocked worker 0"), "{stderr}");
}
