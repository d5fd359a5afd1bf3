//! Builds a runtime with `Runtime::new()` and reports the outcome on stdout, for the
//! `procs_env` test, which runs this program with different `SCHEDULER_PROCS` values: each
//! case gets a fresh process environment, so no test mutates its own.
//!
//! Output: `ok <rt.procs()> <scheduler::procs() inside a goroutine>` and exit code 0, or
//! `err <Debug of the BuildError>` then its Display on a second line, and exit code 2.

use std::process::ExitCode;

fn main() -> ExitCode {
    match scheduler::Runtime::new() {
        Ok(rt) => {
            let inside = rt.block_on(scheduler::procs);
            println!("ok {} {inside}", rt.procs());
            ExitCode::SUCCESS
        }
        Err(err) => {
            println!("err {err:?}\n{err}");
            ExitCode::from(2)
        }
    }
}
