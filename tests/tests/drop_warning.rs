//! A runtime dropped while goroutines are still live waits for them, as documented, but not in
//! silence: after a while it says which goroutines it waits for and where they wait.
//!
//! The scenario runs in a child process (this binary, re-run with `DROP_SCENARIO` set), so
//! that its stderr can be read: the parent lets the stuck goroutine go on (a line on the
//! child's stdin) once it has read the warning.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use scheduler::{Runtime, WaitGroup};

#[test]
fn child() {
    if std::env::var("DROP_SCENARIO").is_err() {
        return;
    }
    let rt = Runtime::builder().procs(1).build().unwrap();
    let gate = WaitGroup::new();
    gate.add(1);
    let opened = gate.clone();
    let waiter = gate.clone();
    scheduler::GoroutineBuilder::new()
        .name("stuck")
        .spawn_on(&rt, move || waiter.wait())
        .unwrap();
    // Opens the gate when the parent says so, once it has read the drop's warning.
    let opener = std::thread::spawn(move || {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).unwrap();
        opened.done();
    });
    drop(rt);
    opener.join().unwrap();
    drop(gate);
    eprintln!("child: the drop returned");
}

#[test]
fn a_drop_that_waits_long_names_the_goroutines_it_waits_for() {
    let mut child = Command::new(std::env::current_exe().expect("test binary path"))
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("DROP_SCENARIO", "1")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("the child runs");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut stderr = String::new();
    // Everything up to the warning's dump, which ends with its spawn site.
    for line in lines.by_ref() {
        let line = line.unwrap();
        stderr.push_str(&line);
        stderr.push('\n');
        if line.contains("spawned at") {
            break;
        }
    }
    assert!(
        stderr.contains("scheduler: dropping the runtime has waited"),
        "no warning: {stderr}"
    );
    assert!(
        !stderr.contains("child: the drop returned"),
        "the warning came while it waited: {stderr}"
    );
    assert!(
        stderr.contains("goroutine 1 \"stuck\" [wait group"),
        "names the goroutine and its wait: {stderr}"
    );
    assert!(
        stderr.contains(&format!("spawned at {}", file!())),
        "{stderr}"
    );
    // Let the goroutine finish: the drop returns.
    stdin.write_all(b"go\n").unwrap();
    drop(stdin);
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(child.wait().unwrap().success(), "{}", rest.join("\n"));
    assert!(
        rest.iter().any(|l| l == "child: the drop returned"),
        "{}",
        rest.join("\n")
    );
}
