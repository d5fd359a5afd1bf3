//! The goroutine dump on `SIGQUIT`, Go's `kill -QUIT`, without changing the program: set
//! `SCHEDULER_SIGQUIT_DUMP=1` and send the process `SIGQUIT` (Ctrl-\ in a terminal); every
//! runtime of the process prints its goroutine dump to stderr, and the program goes on
//! (unlike Go's, which exits). Off by default: `SIGQUIT` keeps its usual meaning.

use std::sync::Once;

use signal_hook::consts::SIGQUIT;
use signal_hook::iterator::Signals;

use crate::dump::GoroutineDump;
use crate::sched::deadlock;
use crate::wait::census;

/// The environment variable that asks for the dump on `SIGQUIT`.
pub const SIGQUIT_DUMP_ENV: &str = "SCHEDULER_SIGQUIT_DUMP";

/// Starts the thread that prints the dump on `SIGQUIT`, once per process, if
/// [`SIGQUIT_DUMP_ENV`] is set to `1` (or `on`, `true`, `yes`) when the first runtime starts.
pub(crate) fn install_if_asked() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let asked = std::env::var(SIGQUIT_DUMP_ENV).is_ok_and(|value| {
            matches!(
                value.trim().to_ascii_lowercase().as_str(),
                "1" | "on" | "true" | "yes"
            )
        });
        if !asked {
            return;
        }
        let mut signals = match Signals::new([SIGQUIT]) {
            Ok(signals) => signals,
            Err(err) => {
                eprintln!(
                    "scheduler: {SIGQUIT_DUMP_ENV} is set, but SIGQUIT cannot be caught: {err}"
                );
                return;
            }
        };
        let started = std::thread::Builder::new()
            .name("scheduler-sigquit".into())
            .spawn(move || {
                let _census = census::crate_thread(census::SERVICE_THREADS);
                for _ in signals.forever() {
                    eprintln!("{}", dump_all());
                }
            });
        if let Err(err) = started {
            eprintln!("scheduler: cannot start the SIGQUIT dump thread: {err}");
        }
    });
}

/// Every live runtime's goroutine dump, each under a heading.
fn dump_all() -> String {
    let runtimes = deadlock::runtimes();
    let mut out = format!(
        "scheduler: SIGQUIT: goroutine dump of {} runtime(s)",
        runtimes.len()
    );
    for (index, shared) in runtimes.iter().enumerate() {
        let dump = GoroutineDump::of(shared);
        out.push_str(&format!(
            "\n\n=== runtime {index} (procs {}, {} goroutine(s)) ===\n\n{dump}",
            shared.procs,
            dump.len()
        ));
    }
    out
}
