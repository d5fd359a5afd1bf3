//! The classic Go lesson on goroutines, on this crate's runtime.
//!
//! The main goroutine starts two goroutines, A counting down and B counting up, and waits
//! for both with a [`WaitGroup`]. With one proc (`--procs 1`, the default) they run
//! concurrently but not in parallel: goroutines are not preempted, so each counter prints as
//! one unbroken block (B first, as Go prints with `GOMAXPROCS=1`). With `--procs 2` or more
//! they run in parallel and their lines mix; `--yield` makes them take turns even on one proc.
//! `--stats` prints what the runtime counted (goroutines, steals, busy time) to stderr at exit.

use std::fmt;
use std::io::{self, Write};
use std::process;

use clap::builder::RangedU64ValueParser;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser};
use scheduler::{MAX_PROCS, Runtime, WaitGroup};

/// Two goroutines counting: concurrency on one proc, parallelism on more.
///
/// Concurrency is dealing with several things at once: on one proc the two goroutines take
/// turns on a single thread. Parallelism is doing several things at once: with two or more
/// procs they run at the same moment on different threads.
#[derive(Debug, Parser)]
#[command(name = "demo", version)]
struct Cli {
    /// Worker threads running goroutines (Go's GOMAXPROCS); 1 is concurrent, 2+ parallel
    #[arg(long, default_value_t = 1, value_parser = procs_range())]
    procs: usize,

    /// Make each goroutine yield (Go's runtime.Gosched) after every line it prints
    #[arg(long = "yield")]
    yield_each: bool,

    /// Where A starts counting down from and B stops counting up at
    #[arg(long, default_value_t = 100)]
    count: u64,

    /// After the program, print a summary of the runtime's metrics (goroutines, queues,
    /// steals, worker sleeps and busy time) to stderr
    #[arg(long)]
    stats: bool,
}

fn procs_range() -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(1..=MAX_PROCS as u64)
}

/// Parses the command line; on a usage error prints it with the usage line and exits with 2.
fn parse_args() -> Cli {
    Cli::try_parse().unwrap_or_else(|mut err| {
        if err.use_stderr() && err.get(ContextKind::Usage).is_none() {
            let usage = Cli::command().render_usage();
            err.insert(ContextKind::Usage, ContextValue::StyledStr(usage));
        }
        err.exit()
    })
}

fn main() {
    let Cli {
        procs,
        yield_each,
        count,
        stats,
    } = parse_args();
    let rt = match Runtime::builder().procs(procs).build() {
        Ok(rt) => rt,
        Err(err) => Cli::command().error(ErrorKind::Io, err).exit(),
    };

    rt.block_on(move || {
        say("Start Goroutines");

        let wg = WaitGroup::new();
        wg.add(2);

        let done = wg.clone();
        scheduler::spawn(move || {
            for n in (0..=count).rev() {
                say(format_args!("[A:{n}]"));
                if yield_each {
                    scheduler::yield_now();
                }
            }
            done.done();
        });

        let done = wg.clone();
        scheduler::spawn(move || {
            for n in 0..=count {
                say(format_args!("[B:{n}]"));
                if yield_each {
                    scheduler::yield_now();
                }
            }
            done.done();
        });

        say("Waiting To Finish");
        wg.wait();

        say("\nTerminating Program");
    });

    if stats {
        // stderr, so that stdout stays the lesson's output.
        eprintln!("runtime metrics at exit:\n{}", rt.metrics());
    }
}

/// Prints one line under a single stdout lock, so lines from parallel goroutines never tear.
///
/// A closed stdout (`demo | head`) ends the program quietly, as SIGPIPE would end Go's: a
/// panicking goroutine would never reach its `wg.done()`, and `wg.wait()` would hang.
fn say(line: impl fmt::Display) {
    if let Err(err) = writeln!(io::stdout().lock(), "{line}") {
        if err.kind() == io::ErrorKind::BrokenPipe {
            process::exit(0);
        }
        eprintln!("demo: cannot write to stdout: {err}");
        process::exit(1);
    }
}
