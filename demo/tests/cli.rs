//! End-to-end tests of the `demo` binary: its exact output, the order the runtime gives it on
//! one proc, the goroutine dump at the start line, and its command-line and file errors.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

const DEMO: &str = env!("CARGO_BIN_EXE_demo");

fn demo(args: &[&str]) -> Output {
    Command::new(DEMO)
        .args(args)
        .env_remove("SCHEDULER_PROCS")
        .output()
        .expect("run the demo binary")
}

/// Runs the demo, expects success and a clean stderr, and returns stdout's lines.
fn demo_lines(args: &[&str]) -> Vec<String> {
    let out = demo(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo {args:?}: {}\n{stderr}",
        out.status
    );
    assert!(
        stderr.is_empty(),
        "demo {args:?} wrote to stderr:\n{stderr}"
    );
    String::from_utf8(out.stdout)
        .expect("stdout is UTF-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn a_lines(count: u64) -> Vec<String> {
    (0..=count).rev().map(|n| format!("[A:{n}]")).collect()
}

fn b_lines(count: u64) -> Vec<String> {
    (0..=count).map(|n| format!("[B:{n}]")).collect()
}

/// The lines of one counter, in the order printed.
fn counter(lines: &[String], tag: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.starts_with(tag))
        .cloned()
        .collect()
}

/// Every expected line exactly once and nothing else; `Start Goroutines` first, then the
/// counters and `Waiting To Finish` in any order, then an empty line and `Terminating Program`.
fn assert_line_set(lines: &[String], count: u64) {
    assert!(lines.len() >= 3, "too few lines: {lines:?}");
    assert_eq!(lines[0], "Start Goroutines");
    assert_eq!(lines[lines.len() - 2], "");
    assert_eq!(lines[lines.len() - 1], "Terminating Program");

    let mut expected = vec!["Waiting To Finish".to_owned()];
    expected.extend(a_lines(count));
    expected.extend(b_lines(count));
    expected.sort();
    let mut middle = lines[1..lines.len() - 2].to_vec();
    middle.sort();
    assert_eq!(middle, expected);
}

/// Each counter prints its own lines in order: A strictly descending, B ascending.
fn assert_counters_in_order(lines: &[String], count: u64) {
    assert_eq!(counter(lines, "[A:"), a_lines(count));
    assert_eq!(counter(lines, "[B:"), b_lines(count));
}

#[test]
fn prints_every_line_once_on_one_proc() {
    assert_line_set(&demo_lines(&["--procs", "1"]), 100);
}

#[test]
fn prints_every_line_once_on_two_procs() {
    assert_line_set(&demo_lines(&["--procs", "2"]), 100);
}

#[test]
fn defaults_to_one_proc_and_count_100() {
    assert_eq!(
        demo_lines(&[]),
        demo_lines(&["--procs", "1", "--count", "100"])
    );
}

#[test]
fn one_proc_prints_each_counter_as_one_unbroken_block() {
    let lines = demo_lines(&["--procs", "1"]);
    assert_line_set(&lines, 100);
    for (tag, block) in [("[A:", a_lines(100)), ("[B:", b_lines(100))] {
        let first = lines.iter().position(|l| l.starts_with(tag)).unwrap();
        assert_eq!(lines[first..first + block.len()], block, "{tag} block");
    }
}

#[test]
fn one_proc_prints_what_go_prints_with_gomaxprocs_1() {
    // Not preempted and spawned last-in-first-out: B runs to the end, then A.
    let mut expected = vec![
        "Start Goroutines".to_owned(),
        "Waiting To Finish".to_owned(),
    ];
    expected.extend(b_lines(100));
    expected.extend(a_lines(100));
    expected.extend([String::new(), "Terminating Program".to_owned()]);
    assert_eq!(demo_lines(&["--procs", "1"]), expected);
}

#[test]
fn one_proc_with_yield_alternates_strictly() {
    // Each yield puts the goroutine behind the other one, so they take turns, B first.
    for count in [100, 5, 0] {
        let count_arg = count.to_string();
        let lines = demo_lines(&["--procs", "1", "--yield", "--count", &count_arg]);
        let mut expected = vec![
            "Start Goroutines".to_owned(),
            "Waiting To Finish".to_owned(),
        ];
        for (b, a) in b_lines(count).into_iter().zip(a_lines(count)) {
            expected.extend([b, a]);
        }
        expected.extend([String::new(), "Terminating Program".to_owned()]);
        assert_eq!(lines, expected, "--count {count}");
    }
}

#[test]
fn counters_stay_in_order_on_four_procs() {
    for args in [&["--procs", "4"][..], &["--procs", "4", "--yield"]] {
        for _ in 0..10 {
            let lines = demo_lines(args);
            assert_line_set(&lines, 100);
            assert_counters_in_order(&lines, 100);
        }
    }
}

#[test]
fn count_5_prints_six_lines_per_counter() {
    for procs in ["1", "2"] {
        let lines = demo_lines(&["--procs", procs, "--count", "5"]);
        assert_line_set(&lines, 5);
        assert_counters_in_order(&lines, 5);
        assert_eq!(counter(&lines, "[A:").len(), 6);
        assert_eq!(counter(&lines, "[B:").len(), 6);
        assert_eq!(lines.len(), 2 + 12 + 2);
    }
}

#[test]
fn stats_prints_a_summary_on_stderr_and_leaves_stdout_unchanged() {
    for procs in ["1", "2"] {
        let plain = demo_lines(&["--procs", procs, "--count", "20"]);
        let out = demo(&["--procs", procs, "--count", "20", "--stats"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}\n{stderr}", out.status);
        let stdout: Vec<String> = String::from_utf8(out.stdout)
            .expect("stdout is UTF-8")
            .lines()
            .map(str::to_owned)
            .collect();
        if procs == "1" {
            // One proc prints in a fixed order: the very same lines.
            assert_eq!(stdout, plain);
        } else {
            assert_line_set(&stdout, 20);
        }
        assert!(stderr.starts_with("runtime metrics at exit:"), "{stderr}");
        // The main goroutine and the two counters.
        assert!(stderr.contains("; 3 spawned"), "{stderr}");
        for word in [
            "goroutines:",
            "blocked on:",
            "global queue:",
            "blocking pool:",
            "stacks:",
            "steals",
            "busy",
        ] {
            assert!(stderr.contains(word), "--stats lacks {word}:\n{stderr}");
        }
        let worker_rows = stderr.lines().count() - 7;
        assert_eq!(
            worker_rows.to_string(),
            procs,
            "one row per worker:\n{stderr}"
        );
        assert!(stderr.lines().count() <= 25, "not one screen:\n{stderr}");
    }
}

#[test]
fn bad_arguments_exit_2_with_usage_and_no_output() {
    let cases: [(&[&str], &str); 6] = [
        (&["--procs", "0"], "--procs"),
        (&["--procs", "x"], "--procs"),
        (&["--procs", "4097"], "--procs"),
        (&["--procs"], "--procs"),
        (&["--count", "x"], "--count"),
        (&["--bogus"], "--bogus"),
    ];
    for (args, flag) in cases {
        let out = demo(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "demo {args:?}\n{stderr}");
        assert!(stderr.starts_with("error:"), "demo {args:?}:\n{stderr}");
        assert!(
            stderr.contains(flag),
            "demo {args:?} does not name {flag}:\n{stderr}"
        );
        assert!(
            stderr.contains("Usage: demo"),
            "demo {args:?} has no usage:\n{stderr}"
        );
        assert!(out.stdout.is_empty(), "demo {args:?} printed to stdout");
    }
}

#[test]
fn procs_error_names_the_valid_range() {
    let out = demo(&["--procs", "0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let range = format!("1..={}", scheduler::MAX_PROCS);
    assert!(stderr.contains(&range), "{stderr}");
}

#[test]
fn help_explains_concurrency_and_parallelism() {
    let out = demo(&["--help"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for word in [
        "Concurrency",
        "Parallelism",
        "start line",
        "--procs",
        "--yield",
        "--count",
        "--stats",
        "--dump",
        "--trace",
        "--timeline",
    ] {
        assert!(stdout.contains(word), "--help lacks {word}:\n{stdout}");
    }
}

#[test]
fn closed_stdout_ends_the_program_instead_of_hanging() {
    // Far more output than a pipe buffers, and the reader leaves after one line.
    let mut child = Command::new(DEMO)
        .args(["--procs", "2", "--count", "1000000"])
        .env_remove("SCHEDULER_PROCS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the demo binary");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "Start Goroutines\n");

    // A hang guard, not a timing assertion: the demo needs well under a second.
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || tx.send(child.wait_with_output()));
    let Ok(out) = rx.recv_timeout(Duration::from_secs(120)) else {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        panic!("demo kept running after its stdout closed");
    };
    let out = out.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}", out.status);
    assert!(stderr.is_empty(), "{stderr}");
}

/// The header lines of the goroutine dump the demo printed on stderr: `(name, state)`, as in
/// `goroutine 2 "A" [running on worker 0]:`.
fn dump_headers(stderr: &str) -> Vec<(String, String)> {
    stderr
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("goroutine ")?;
            let (_, rest) = rest.split_once(" \"")?;
            let (name, rest) = rest.split_once("\" [")?;
            let state = rest.strip_suffix("]:")?;
            Some((name.to_owned(), state.to_owned()))
        })
        .collect()
}

/// Runs the demo with `--dump` and `args`: its stdout lines and the dump's headers, by name.
fn demo_dump(args: &[&str]) -> (Vec<String>, Vec<(String, String)>) {
    let mut all = args.to_vec();
    all.push("--dump");
    let out = demo(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo {all:?}: {}\n{stderr}",
        out.status
    );
    assert!(
        stderr.starts_with("goroutine dump at the start line:"),
        "{stderr}"
    );
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    (lines, dump_headers(&stderr))
}

#[test]
fn dump_on_one_proc_shows_b_waiting_at_the_start_line_and_a_running() {
    let (lines, headers) = demo_dump(&["--procs", "1"]);
    // The dump goes to stderr: stdout is what it is without it.
    assert_eq!(lines, demo_lines(&["--procs", "1"]));
    let expected = [
        ("main", "wait group"),
        ("A", "running on worker 0"),
        ("B", "wait group"),
    ];
    assert_eq!(headers.len(), 3, "{headers:?}");
    for ((name, state), (want_name, want_state)) in headers.iter().zip(expected) {
        assert_eq!(name, want_name);
        // A blocked goroutine's state ends with how long it has waited.
        assert!(state.starts_with(want_state), "{name}: {state}");
    }
}

#[test]
fn dump_on_two_procs_shows_both_counters_running_on_two_workers() {
    // Not luck: on two procs the first counter at the start line spins there, running, until
    // the second arrives, and the second takes the dump before it lets the first go. Both run
    // at that moment, on two workers, since the spinner keeps its own.
    for _ in 0..10 {
        let (lines, headers) = demo_dump(&["--procs", "2"]);
        assert_line_set(&lines, 100);
        let state = |name: &str| {
            let found = headers.iter().find(|(n, _)| n == name);
            found
                .unwrap_or_else(|| panic!("no {name}: {headers:?}"))
                .1
                .clone()
        };
        let (a, b) = (state("A"), state("B"));
        assert!(a.starts_with("running on worker "), "A: {a}");
        assert!(b.starts_with("running on worker "), "B: {b}");
        assert_ne!(a, b, "A and B on one worker");
        assert!(state("main").starts_with("wait group"), "{headers:?}");
    }
}

#[test]
fn a_trace_or_timeline_path_that_cannot_be_written_exits_1_naming_it() {
    // Not creatable, and creatable but full.
    for path in ["/nonexistent-dir/run.out", "/dev/full"] {
        for (flag, what) in [("--trace", "trace"), ("--timeline", "timeline")] {
            let out = demo(&[flag, path]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{flag} {path}\n{stderr}");
            let message = format!("demo: cannot write the {what} to {path}: ");
            assert!(stderr.starts_with(&message), "{flag} {path}:\n{stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
}
