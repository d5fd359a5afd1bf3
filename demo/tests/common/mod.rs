//! What the demo's test files share: running the built binary, and files for it to write.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The demo binary that Cargo built for these tests.
pub const DEMO: &str = env!("CARGO_BIN_EXE_demo");

/// Runs the demo with `args`, its stdout discarded, and returns its status and stderr.
pub fn demo_quiet(args: &[&str]) -> Output {
    Command::new(DEMO)
        .args(args)
        .env_remove("SCHEDULER_PROCS")
        .stdout(Stdio::null())
        .output()
        .expect("run the demo binary")
}

/// A new path for a file the demo writes, unique to this call (tests run in parallel), in
/// Cargo's scratch directory for integration tests; `name` ends it.
pub fn scratch(name: &str) -> PathBuf {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let file = format!("demo-{}-{call}-{name}", std::process::id());
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(file)
}

/// Runs the demo with `args` and `--trace` or `--timeline` (`flag`) and returns the file it
/// wrote; panics unless it succeeded. (Its stderr is not looked at: under a heavy load the
/// runtime may rightly warn of a stall there.)
pub fn demo_file(flag: &str, name: &str, args: &[&str]) -> Vec<u8> {
    let path = scratch(name);
    let path_arg = path.to_str().expect("a UTF-8 scratch path");
    let mut all = args.to_vec();
    all.extend([flag, path_arg]);
    let out = demo_quiet(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo {all:?}: {}\n{stderr}",
        out.status
    );
    let bytes = std::fs::read(&path).unwrap_or_else(|err| panic!("read {path:?}: {err}"));
    std::fs::remove_file(&path).unwrap();
    bytes
}
