//! `bench <workload> <n> <procs>`: one workload on the scheduler, reported in the format the
//! reference programs in `shared/anchors` use, so that `run.sh` can run it beside Go, tokio,
//! may and rayon:
//!
//! `impl=scheduler workload=<w> procs=<p> n=<n> ns_per_op=<f> total_ms=<f> maxrss_kb=<i>`
//!
//! The clock starts on the root goroutine after the runtime is up and stops when the root has
//! seen the workload finish. Exit status: 2 for usage errors, 3 for an unknown workload, 4 for
//! a wrong result, 5 for a panic.

mod workloads;

use std::process::exit;
use std::time::Duration;

use workloads::{Outcome, WORKLOADS};

const IMPL: &str = "scheduler";

struct Args {
    workload: String,
    n: u64,
    procs: usize,
}

fn usage() -> ! {
    eprintln!(
        "usage: bench <workload> <n> <procs>\n  workloads: {}",
        WORKLOADS.join(", ")
    );
    exit(2);
}

fn parse_args() -> Args {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [workload, n, procs] = args.as_slice() else {
        usage();
    };
    if !WORKLOADS.contains(&workload.as_str()) {
        eprintln!("bench: unsupported workload {workload:?}");
        exit(3);
    }
    let n = n
        .replace('_', "")
        .parse::<u64>()
        .unwrap_or_else(|_| usage());
    let procs = procs.parse::<usize>().unwrap_or_else(|_| usage());
    if n == 0 || procs == 0 {
        usage();
    }
    if workload == "skynet" && !workloads::skynet_size_ok(n) {
        eprintln!("bench: skynet n must be a power of 10 between 1 and 10^9, got {n}");
        exit(2);
    }
    Args {
        workload: workload.clone(),
        n,
        procs,
    }
}

/// Peak resident set size of this process, in KiB.
pub(crate) fn maxrss_kb() -> i64 {
    // SAFETY: getrusage writes into the zeroed struct we own; RUSAGE_SELF is always valid.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    usage.ru_maxrss
}

fn report(args: &Args, elapsed: Duration, ops: u64, maxrss_kb: i64) {
    let ns = elapsed.as_nanos() as f64;
    println!(
        "impl={IMPL} workload={} procs={} n={} ns_per_op={:.2} total_ms={:.3} maxrss_kb={}",
        args.workload,
        args.procs,
        args.n,
        ns / ops as f64,
        ns / 1e6,
        maxrss_kb
    );
}

fn main() {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("{IMPL}: PANIC: {info}");
        exit(5);
    }));
    let args = parse_args();
    let rt = scheduler::Runtime::builder()
        .procs(args.procs)
        .build()
        .unwrap_or_else(|err| {
            eprintln!("bench: {err}");
            exit(2);
        });
    let (workload, n) = (args.workload.clone(), args.n);
    let outcome: Outcome = rt.block_on(move || workloads::run(&workload, n));
    if let Err(msg) = &outcome.check {
        eprintln!("{IMPL}: CHECK FAILED: {msg}");
        exit(4);
    }
    let rss = outcome.maxrss_kb.unwrap_or_else(maxrss_kb);
    report(&args, outcome.elapsed, outcome.ops, rss);
    drop(rt);
}
