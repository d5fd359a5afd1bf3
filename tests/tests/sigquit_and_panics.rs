//! What a process prints to stderr about its goroutines without any code of its own: the
//! goroutine dump on `SIGQUIT` when `SCHEDULER_SIGQUIT_DUMP=1`, and the goroutine named in a
//! goroutine's panic message.
//!
//! Each scenario runs in a child process (this binary, re-run with `SCENARIO` set), whose
//! stderr the parent reads line by line and whose stdin tells it when to finish.

use std::io::{BufRead, BufReader, Lines, Write};
use std::process::{Child, ChildStderr, Command, Stdio};

use scheduler::{GoroutineBuilder, GoroutineState, Runtime, WaitGroup, WaitReason};

/// Starts this binary's `child` test with `SCENARIO=scenario` and the environment `env`.
fn start_child(scenario: &str, env: &[(&str, &str)]) -> (Child, Lines<BufReader<ChildStderr>>) {
    let mut command = Command::new(std::env::current_exe().expect("test binary path"));
    command
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("SCENARIO", scenario)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("the child runs");
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    (child, lines)
}

/// Reads lines until one contains `marker`; returns everything read.
fn read_until(lines: &mut Lines<BufReader<ChildStderr>>, marker: &str) -> String {
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(marker) {
            return seen;
        }
    }
    panic!("the child ended without printing {marker:?}: {seen}");
}

#[test]
fn child() {
    let Ok(scenario) = std::env::var("SCENARIO") else {
        return;
    };
    let rt = Runtime::builder().procs(1).build().unwrap();
    match scenario.as_str() {
        "sigquit" => {
            let gate = WaitGroup::new();
            gate.add(1);
            let waiter = gate.clone();
            GoroutineBuilder::new()
                .name("sleeper")
                .spawn_on(&rt, move || waiter.wait())
                .unwrap();
            while !rt
                .goroutines()
                .iter()
                .any(|g| g.state() == GoroutineState::Blocked(WaitReason::WaitGroup))
            {
                std::thread::yield_now();
            }
            eprintln!("child: ready");
            // Until the parent has read the dump.
            std::io::stdin().read_line(&mut String::new()).unwrap();
            gate.done();
        }
        "panic" => {
            let handle = GoroutineBuilder::new()
                .name("doomed")
                .spawn_on(&rt, || panic!("on purpose"))
                .unwrap();
            assert!(handle.join().is_err());
        }
        other => panic!("unknown scenario {other}"),
    }
    eprintln!("child: done");
}

#[test]
fn sigquit_prints_the_goroutine_dump_when_asked() {
    let (mut child, mut lines) = start_child("sigquit", &[("SCHEDULER_SIGQUIT_DUMP", "1")]);
    read_until(&mut lines, "child: ready");
    // SAFETY: `kill` has no memory preconditions; the pid is our live child's.
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGQUIT) };
    assert_eq!(sent, 0);
    let dump = read_until(&mut lines, "spawned at");
    assert!(
        dump.contains("scheduler: SIGQUIT: goroutine dump of 1 runtime(s)"),
        "{dump}"
    );
    assert!(
        dump.contains("goroutine 1 \"sleeper\" [wait group"),
        "{dump}"
    );
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
    drop(stdin);
    read_until(&mut lines, "child: done");
    assert!(
        child.wait().unwrap().success(),
        "the program went on after the dump"
    );
}

#[test]
fn sigquit_keeps_its_meaning_unless_asked() {
    let (mut child, mut lines) = start_child("sigquit", &[]);
    read_until(&mut lines, "child: ready");
    // SAFETY: as above.
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGQUIT) };
    assert_eq!(sent, 0);
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGQUIT), "{status:?}");
}

#[test]
fn a_goroutine_panic_names_the_goroutine() {
    let (mut child, mut lines) = start_child("panic", &[]);
    let stderr = read_until(&mut lines, "child: done");
    assert!(child.wait().unwrap().success(), "{stderr}");
    let note = stderr
        .lines()
        .position(|l| l.starts_with("scheduler: panic in goroutine 1 \"doomed\" (spawned at"))
        .unwrap_or_else(|| panic!("no note: {stderr}"));
    let message = stderr
        .lines()
        .skip(note + 1)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    assert!(
        message.contains("panicked at"),
        "std's message follows: {stderr}"
    );
    assert!(stderr.contains(file!()), "{stderr}");
}
