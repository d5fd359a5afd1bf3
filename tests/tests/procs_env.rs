//! `Runtime::new()` reads `SCHEDULER_PROCS`. Environment variables are process-wide, so each
//! case runs the `procs_env_probe` program in a child process with its own environment, one
//! case after another in a single test.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;

use scheduler::PROCS_ENV;

/// Runs the probe with `SCHEDULER_PROCS` set to `value` (or unset) and returns its exit code
/// and stdout.
fn probe(value: Option<&OsStr>) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_procs_env_probe"));
    match value {
        Some(v) => cmd.env(PROCS_ENV, v),
        None => cmd.env_remove(PROCS_ENV),
    };
    let out = cmd.output().expect("cannot run procs_env_probe");
    let stdout = String::from_utf8(out.stdout).expect("probe output is UTF-8");
    let code = out.status.code().unwrap_or_else(|| {
        panic!(
            "probe killed by a signal: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, stdout)
}

fn expect_ok(value: Option<&str>, procs: usize) {
    let (code, out) = probe(value.map(OsStr::new));
    assert_eq!(code, 0, "{PROCS_ENV}={value:?}: {out}");
    assert_eq!(
        out.trim(),
        format!("ok {procs} {procs}"),
        "{PROCS_ENV}={value:?}"
    );
}

fn expect_err(value: &OsStr, debug: &str) {
    let (code, out) = probe(Some(value));
    assert_eq!(code, 2, "{PROCS_ENV}={value:?}: {out}");
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some(format!("err {debug}").as_str()),
        "{value:?}"
    );
    let display = lines.next().unwrap_or_default();
    assert!(
        display.contains("procs") || display.contains(PROCS_ENV),
        "{PROCS_ENV}={value:?}: unclear message {display:?}"
    );
}

#[test]
fn scheduler_procs_env_is_read_and_validated() {
    // Unset: the CPUs this process may use.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    expect_ok(None, cpus);
    // Plain and padded numbers.
    expect_ok(Some("3"), 3);
    expect_ok(Some(" 2 "), 2);
    expect_ok(Some("1"), 1);

    // Not numbers: the message names the variable and quotes the value.
    expect_err(OsStr::new("abc"), r#"ProcsEnv("abc")"#);
    let (_, out) = probe(Some(OsStr::new("abc")));
    assert!(out.contains(PROCS_ENV) && out.contains("\"abc\""), "{out}");
    expect_err(OsStr::new(""), r#"ProcsEnv("")"#);
    expect_err(OsStr::new("-1"), r#"ProcsEnv("-1")"#);
    expect_err(OsStr::new("2.5"), r#"ProcsEnv("2.5")"#);
    // Not even UTF-8: reported lossily.
    expect_err(
        OsStr::from_bytes(b"\xff"),
        &format!("ProcsEnv({:?})", char::REPLACEMENT_CHARACTER.to_string()),
    );
    // Numbers out of range are the same errors as from the builder.
    expect_err(OsStr::new("0"), "ZeroProcs");
    expect_err(OsStr::new("4097"), "TooManyProcs(4097)");
}
