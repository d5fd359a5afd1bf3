//! The classic Go lesson on goroutines, on this crate's runtime.
//!
//! The main goroutine starts two goroutines, A counting down and B counting up, and waits
//! for both with a [`WaitGroup`]. Before counting, each counter goes to *the start line*: it
//! announces that it has started, then waits until both have.
//!
//! With one proc (`--procs 1`, the default) they run concurrently but not in parallel: the
//! first at the line parks, the second arrives, opens the line and yields once, so that the
//! one that waited leaves first; goroutines are not preempted, so that one counts to the end
//! before the other runs, and each counter prints as one unbroken block (B first, as Go
//! prints with `GOMAXPROCS=1`). With `--procs 2` or more the first at the line does not park
//! but spins, keeping its worker, so the second has to start on another worker (a started
//! goroutine never changes worker): both leave the line at the same moment, on two threads,
//! and their lines mix. `--yield` makes them take turns even on one proc.
//!
//! `--dump` prints the goroutine dump to stderr at the moment both counters stand at the
//! start line (the second to arrive takes it, before it opens the line): one counter waiting
//! or spinning, the other running, main waiting on the `WaitGroup`. `--trace` and
//! `--timeline` record the run and write it as Chrome trace-event JSON or as an SVG timeline.
//! `--stats` prints what the runtime counted (goroutines, steals, busy time) to stderr at exit.

use std::fmt;
use std::fs::File;
use std::hint;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use clap::builder::RangedU64ValueParser;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser};
use scheduler::{GoroutineBuilder, MAX_PROCS, Runtime, WaitGroup};

/// Two goroutines counting: concurrency on one proc, parallelism on more.
///
/// Concurrency is dealing with several things at once: on one proc the two goroutines take
/// turns on a single thread. Parallelism is doing several things at once: with two or more
/// procs they run at the same moment on different threads.
///
/// Both counters wait at the start line until both have started, then count. On one proc the
/// first to arrive parks there, and the counters still print one block each; on two or more
/// it spins there, so that the other starts on another worker and both count at once.
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

    /// Print the goroutine dump to stderr when both counters stand at the start line
    #[arg(long)]
    dump: bool,

    /// Write the run's execution trace to PATH as Chrome trace-event JSON (open it in
    /// https://ui.perfetto.dev or chrome://tracing)
    #[arg(long, value_name = "PATH")]
    trace: Option<PathBuf>,

    /// Draw the run's execution trace to PATH as an SVG timeline: a lane per worker, a
    /// coloured box per run of a goroutine
    #[arg(long, value_name = "PATH")]
    timeline: Option<PathBuf>,
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
        dump,
        trace,
        timeline,
    } = parse_args();
    // Created before the run, so that a path that cannot be written fails at once.
    let trace_file = trace.map(|path| Output::create(path, "trace"));
    let timeline_file = timeline.map(|path| Output::create(path, "timeline"));
    let tracing = trace_file.is_some() || timeline_file.is_some();

    let rt = match Runtime::builder().procs(procs).build() {
        Ok(rt) => rt,
        Err(err) => Cli::command().error(ErrorKind::Io, err).exit(),
    };
    let rt = Arc::new(rt);
    // The main goroutine starts and stops the trace itself, so that it shows the lesson from
    // its first line to its last, and not the main thread waking a worker for it and being
    // woken at its end, which on a loaded machine can take longer than the whole lesson.
    let tracer = tracing.then(|| Arc::clone(&rt));
    let line = StartLine::new(2, procs > 1, dump);
    let trace = rt.block_on(move || {
        if let Some(rt) = &tracer {
            rt.start_trace();
            // The trace records runs that start after it does: yield once, so that this
            // goroutine's own run starts again, in the trace. (Nothing else is runnable yet,
            // so it resumes at once.)
            scheduler::yield_now();
        }
        lesson(count, yield_each, line);
        tracer.map(|rt| rt.stop_trace())
    });

    if let Some(trace) = trace {
        if let Some(out) = trace_file {
            out.write(|w| trace.write_json(w));
        }
        if let Some(out) = timeline_file {
            out.write(|w| trace.write_svg(w));
        }
    }
    if stats {
        // stderr, so that stdout stays the lesson's output.
        eprintln!("runtime metrics at exit:\n{}", rt.metrics());
    }
}

/// The main goroutine: the lesson itself.
fn lesson(count: u64, yield_each: bool, line: StartLine) {
    say("Start Goroutines");

    let wg = WaitGroup::new();
    wg.add(2);
    let line = Arc::new(line);
    counter("A", (0..=count).rev(), yield_each, &line, &wg);
    counter("B", 0..=count, yield_each, &line, &wg);

    say("Waiting To Finish");
    wg.wait();

    say("\nTerminating Program");
}

/// Spawns the counter `name`: at the start line, then a line per number, then `wg.done()`.
/// The goroutine dump shows the caller's line as where it was spawned.
#[track_caller]
fn counter(
    name: &'static str,
    numbers: impl Iterator<Item = u64> + Send + 'static,
    yield_each: bool,
    line: &Arc<StartLine>,
    wg: &WaitGroup,
) {
    let (line, done) = (Arc::clone(line), wg.clone());
    let spawned = GoroutineBuilder::new().name(name).spawn(move || {
        line.arrive();
        for n in numbers {
            say(format_args!("[{name}:{n}]"));
            if yield_each {
                scheduler::yield_now();
            }
        }
        done.done();
    });
    if let Err(err) = spawned {
        eprintln!("demo: cannot start goroutine {name}: {err}");
        process::exit(1);
    }
}

/// The start line: each runner announces that it has started, then waits until all have.
///
/// How a runner waits depends on the procs. On one proc it parks, which lets the others
/// start on the only worker; the last to arrive opens the line and yields once, so that the
/// runners that waited leave first (on one proc: B, which started first, counts first). On
/// two or more procs a runner spins at the line instead: it keeps its worker, so every other
/// runner must start on another worker, and all leave the line at once, in parallel. (Never
/// spin on one proc: the spinning goroutine would hold the only worker, and the others could
/// never arrive.)
struct StartLine {
    runners: usize,
    /// How many runners have arrived.
    arrived: AtomicUsize,
    /// Set by the last runner to arrive; spinning runners watch it.
    open: AtomicBool,
    /// Down to zero when the last runner arrives; parked runners wait on it.
    gate: WaitGroup,
    spin: bool,
    /// Whether the last runner prints the goroutine dump before it opens the line.
    dump: bool,
}

impl StartLine {
    fn new(runners: usize, spin: bool, dump: bool) -> StartLine {
        let gate = WaitGroup::new();
        gate.add(1);
        StartLine {
            runners,
            arrived: AtomicUsize::new(0),
            open: AtomicBool::new(false),
            gate,
            spin,
            dump,
        }
    }

    /// Announces the caller at the line and returns when every runner has arrived.
    fn arrive(&self) {
        // AcqRel: the last runner reads every earlier arrival, so all that the others did
        // before arriving (their workers marking them as running, for the dump) happens
        // before it opens the line.
        let last = self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.runners;
        if last {
            if self.dump {
                print_dump();
            }
            // Release: pairs with the Acquire load of the spinning runners.
            self.open.store(true, Ordering::Release);
            self.gate.done();
            if !self.spin {
                scheduler::yield_now();
            }
        } else if self.spin {
            // Acquire: pairs with the last runner's Release store of `open`.
            while !self.open.load(Ordering::Acquire) {
                hint::spin_loop();
            }
        } else {
            self.gate.wait();
        }
    }
}

/// Prints the goroutine dump to stderr, as one write.
fn print_dump() {
    let text = format!(
        "goroutine dump at the start line:\n\n{}\n\n",
        scheduler::goroutines()
    );
    // A closed stderr loses the dump, not the lesson.
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// A file the trace goes to once the run is over: `--trace` or `--timeline`.
struct Output {
    path: PathBuf,
    file: File,
    what: &'static str,
}

impl Output {
    /// Creates the file, or exits with 1 and a message naming it.
    fn create(path: PathBuf, what: &'static str) -> Output {
        match File::create(&path) {
            Ok(file) => Output { path, file, what },
            Err(err) => fail(what, &path, &err),
        }
    }

    /// Writes the file with `write`, or exits with 1 and a message naming it.
    fn write(self, write: impl FnOnce(&File) -> io::Result<()>) {
        if let Err(err) = write(&self.file) {
            fail(self.what, &self.path, &err);
        }
    }
}

fn fail(what: &str, path: &Path, err: &io::Error) -> ! {
    eprintln!("demo: cannot write the {what} to {}: {err}", path.display());
    process::exit(1);
}

/// Prints one line with one `write(2)` of its own, so lines from parallel goroutines never
/// tear (the kernel writes a pipe's short writes whole, and a file's at their own offsets).
///
/// Not through `io::stdout()`, whose lock hands itself back to the thread that just released
/// it: a counter that prints in a loop would take it again and again while the other
/// counter's thread is still waking up, and two counters running in parallel would print
/// one block each all the same.
///
/// A closed stdout (`demo | head`) ends the program quietly, as SIGPIPE would end Go's: a
/// panicking goroutine would never reach its `wg.done()`, and `wg.wait()` would hang.
fn say(line: impl fmt::Display) {
    static STDOUT: OnceLock<File> = OnceLock::new();
    let stdout = STDOUT.get_or_init(|| match io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => File::from(fd),
        Err(err) => {
            eprintln!("demo: cannot write to stdout: {err}");
            process::exit(1);
        }
    });
    let text = format!("{line}\n");
    if let Err(err) = (&*stdout).write_all(text.as_bytes()) {
        if err.kind() == io::ErrorKind::BrokenPipe {
            process::exit(0);
        }
        eprintln!("demo: cannot write to stdout: {err}");
        process::exit(1);
    }
}
