//! The workloads, as `shared/anchors/README.md` defines them, plus `pingpong-split` and
//! `select-split`, which have no peer (see their functions). Each runs on the root goroutine.

use std::hint::black_box;
use std::time::{Duration, Instant};

use scheduler::{WaitGroup, chan};

pub(crate) const WORKLOADS: &[&str] = &[
    "spawn",
    "yield",
    "pingpong",
    "fib",
    "fanout",
    "live",
    "skynet",
    "pingpong-split",
    "select-split",
];

/// What a workload measured.
pub(crate) struct Outcome {
    pub(crate) elapsed: Duration,
    /// The divisor for ns_per_op.
    pub(crate) ops: u64,
    /// `live` samples memory while its goroutines are blocked; the others after the run.
    pub(crate) maxrss_kb: Option<i64>,
    /// A wrong result, described.
    pub(crate) check: Result<(), String>,
}

impl Outcome {
    fn timed(start: Instant, ops: u64) -> Outcome {
        Outcome {
            elapsed: start.elapsed(),
            ops,
            maxrss_kb: None,
            check: Ok(()),
        }
    }
}

/// Runs `workload` of size `n` on the current (root) goroutine.
pub(crate) fn run(workload: &str, n: u64) -> Outcome {
    match workload {
        "spawn" => spawn(n),
        "yield" => yield_(n),
        "pingpong" => pingpong(n),
        "pingpong-split" => pingpong_split(n),
        "select-split" => select_split(n),
        "fib" => fib_workload(n),
        "fanout" => fanout(n),
        "live" => live(n),
        "skynet" => skynet_workload(n),
        other => unreachable!("workload {other} was checked"),
    }
}

/// A WaitGroup for the whole run: leaked, as a Go closure captures `&wg`, so that spawns do
/// not pay for reference counting.
fn wait_group(n: u64) -> &'static WaitGroup {
    let wg = Box::leak(Box::new(WaitGroup::new()));
    wg.add(usize::try_from(n).expect("n fits in usize"));
    wg
}

fn spawn(n: u64) -> Outcome {
    let wg = wait_group(n);
    let start = Instant::now();
    for _ in 0..n {
        scheduler::spawn(move || wg.done());
    }
    wg.wait();
    Outcome::timed(start, n)
}

fn yield_(n: u64) -> Outcome {
    let start = Instant::now();
    let handles: Vec<_> = (0..2)
        .map(|_| {
            scheduler::spawn(move || {
                for _ in 0..n {
                    scheduler::yield_now();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("yielder panicked");
    }
    Outcome::timed(start, 2 * n)
}

fn pingpong(n: u64) -> Outcome {
    let (ping_tx, ping_rx) = chan::bounded::<u64>(0);
    let (pong_tx, pong_rx) = chan::bounded::<u64>(0);
    let start = Instant::now();
    let echo = scheduler::spawn(move || echo(n, &ping_rx, &pong_tx));
    let check = ping_rounds(n, &ping_tx, &pong_rx, "pingpong");
    echo.join().expect("echo panicked");
    Outcome {
        check,
        ..Outcome::timed(start, n)
    }
}

/// The echo side of a ping-pong: `n` times, receives a value on `ping` and sends it back on
/// `pong`.
fn echo(n: u64, ping: &chan::Receiver<u64>, pong: &chan::Sender<u64>) {
    for _ in 0..n {
        let v = ping.recv().expect("ping open");
        pong.send(v).expect("pong open");
    }
}

/// The root's side of a ping-pong: sends `0..n` on `ping`, each one once the previous came
/// back on `pong`; the first value that came back wrong, described.
fn ping_rounds(
    n: u64,
    ping: &chan::Sender<u64>,
    pong: &chan::Receiver<u64>,
    workload: &str,
) -> Result<(), String> {
    let mut check = Ok(());
    for i in 0..n {
        ping.send(i).expect("ping open");
        let v = pong.recv().expect("pong open");
        if v != i && check.is_ok() {
            check = Err(format!("{workload}: sent {i}, got {v} back"));
        }
    }
    check
}

/// Spawns `body` so that it starts on another worker, where it stays: the root holds its own
/// worker's thread until `body` has started, so another worker (procs >= 2) starts it. Returns
/// when it has started; `done` joins it and tells whether it really ran on another thread.
fn spawn_on_another_worker(body: impl FnOnce() + Send + 'static) -> impl FnOnce() -> bool {
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let handle = scheduler::spawn(move || {
        started_tx
            .send(std::thread::current().id())
            .expect("root waits");
        body();
    });
    // Blocks this worker's thread, so the goroutine starts elsewhere.
    let thread = started_rx.recv().expect("goroutine started");
    move || {
        handle
            .join()
            .expect("the goroutine on the other worker panicked");
        thread != std::thread::current().id()
    }
}

/// `pingpong` with the two goroutines started on two different workers, where they stay
/// ([`spawn_on_another_worker`]). Every hand-off is then a wake across threads, the case that
/// peers which move goroutines (Go's `runnext`, tokio's and may's stealing) avoid by migration,
/// and that this runtime meets with a worker that watches its inbox, then its parker, briefly
/// before it sleeps. Needs procs >= 2 (with one proc, a spare worker starts the echo after a
/// time slice).
fn pingpong_split(n: u64) -> Outcome {
    let (ping_tx, ping_rx) = chan::bounded::<u64>(0);
    let (pong_tx, pong_rx) = chan::bounded::<u64>(0);
    let done = spawn_on_another_worker(move || echo(n, &ping_rx, &pong_tx));
    let start = Instant::now();
    let mut check = ping_rounds(n, &ping_tx, &pong_rx, "pingpong-split");
    if !done() {
        check = Err("pingpong-split: both goroutines ran on one thread".to_owned());
    }
    Outcome {
        check,
        ..Outcome::timed(start, n)
    }
}

/// Go's `test/chan/select2.go` with its two goroutines on two workers: a sender sends `n`
/// values on a rendezvous channel, and the root receives each in a `select!` between that
/// channel and a second one nobody sends on. The sender starts elsewhere, as the echo of
/// [`pingpong_split`]. Needs procs >= 2. One op is one value.
fn select_split(n: u64) -> Outcome {
    let (tx, rx) = chan::bounded::<u64>(0);
    let (_silent_tx, silent_rx) = chan::bounded::<u64>(0);
    let done = spawn_on_another_worker(move || {
        for i in 0..n {
            tx.send(i).expect("receiver open");
        }
    });
    let start = Instant::now();
    let mut check = Ok(());
    for i in 0..n {
        scheduler::select! {
            recv(rx) -> v => {
                if v != Ok(i) && check.is_ok() {
                    check = Err(format!("select-split: expected {i}, got {v:?}"));
                }
            }
            recv(silent_rx) -> v => {
                check = Err(format!("select-split: the silent channel gave {v:?}"));
            }
        }
    }
    if !done() {
        check = Err("select-split: both goroutines ran on one thread".to_owned());
    }
    Outcome {
        check,
        ..Outcome::timed(start, n)
    }
}

fn fib(k: u64) -> u64 {
    if k < 2 {
        return k;
    }
    let child = scheduler::spawn(move || fib(k - 1));
    let b = fib(k - 2);
    child.join().expect("fib child panicked") + b
}

/// fib(k) computed sequentially, to check the result.
fn fib_reference(k: u64) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..k {
        (a, b) = (b, a + b);
    }
    a
}

fn fib_workload(k: u64) -> Outcome {
    let start = Instant::now();
    let got = fib(k);
    let spawns = if k < 2 { 0 } else { fib_reference(k + 1) - 1 };
    let want = fib_reference(k);
    Outcome {
        check: if got == want {
            Ok(())
        } else {
            Err(format!("fib({k}) = {got}, expected {want}"))
        },
        ..Outcome::timed(start, spawns.max(1))
    }
}

/// 200 rounds of xorshift64, the fan-out's per-goroutine work.
fn xorshift_work(seed: u64) -> u64 {
    let mut x = black_box(seed | 1);
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    black_box(x)
}

fn fanout(n: u64) -> Outcome {
    let wg = wait_group(n);
    let start = Instant::now();
    for i in 0..n {
        scheduler::spawn(move || {
            xorshift_work(i);
            wg.done();
        });
    }
    wg.wait();
    Outcome::timed(start, n)
}

fn live(n: u64) -> Outcome {
    let ready = wait_group(n);
    let finished = wait_group(n);
    let start = Instant::now();
    let mut releases = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let (tx, rx) = chan::bounded::<()>(0);
        releases.push(tx);
        scheduler::spawn(move || {
            ready.done();
            let _ = rx.recv();
            finished.done();
        });
    }
    ready.wait();
    let rss = crate::maxrss_kb();
    for tx in releases {
        tx.close();
    }
    finished.wait();
    Outcome {
        maxrss_kb: Some(rss),
        ..Outcome::timed(start, n)
    }
}

const SKYNET_FANOUT: u64 = 10;

/// Whether `n` is a power of 10 up to 10^9 (a valid skynet size).
pub(crate) fn skynet_size_ok(n: u64) -> bool {
    let mut m = n;
    while m >= SKYNET_FANOUT && m.is_multiple_of(SKYNET_FANOUT) {
        m /= SKYNET_FANOUT;
    }
    m == 1 && n <= 1_000_000_000
}

/// A node covering leaves `num..num + size`: a leaf returns its ordinal; an inner node spawns
/// its ten children and sums their results through their join handles, in order.
fn skynet(num: u64, size: u64) -> u64 {
    if size == 1 {
        return num;
    }
    let child = size / SKYNET_FANOUT;
    let children: Vec<_> = (0..SKYNET_FANOUT)
        .map(|i| scheduler::spawn(move || skynet(num + i * child, child)))
        .collect();
    children
        .into_iter()
        .map(|h| h.join().expect("skynet child panicked"))
        .sum()
}

fn skynet_workload(n: u64) -> Outcome {
    let start = Instant::now();
    let got = scheduler::spawn(move || skynet(0, n))
        .join()
        .expect("skynet root panicked");
    let want = n * (n - 1) / 2;
    let tasks = (SKYNET_FANOUT * n - 1) / (SKYNET_FANOUT - 1);
    Outcome {
        check: if got == want {
            Ok(())
        } else {
            Err(format!("skynet({n}) = {got}, expected {want}"))
        },
        ..Outcome::timed(start, tasks)
    }
}
