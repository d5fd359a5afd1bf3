//! 10,000 TCP connections open at once over loopback, each served by a goroutine of its own
//! on two workers, then one round trip on every one of them.
//!
//! A binary of its own: it raises the process's limit on open descriptors (`RLIMIT_NOFILE`)
//! to the hard limit. The client ends live in a child process (this test binary run again,
//! with [`CLIENT_ENV`] set), so that each process needs one descriptor per connection: the
//! hard limit is often 20,000, too few for both ends in one process. Where the hard limit is
//! too low even so, it says so on stderr and passes without running.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::panic;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use scheduler::net::{TcpListener, TcpStream};
use scheduler::{JoinHandle, Runtime};
use scheduler_tests::{settle, watchdog};

/// Connections open at once.
const CONNECTIONS: usize = 10_000;

/// Goroutines that open the client ends, each a share of them, one after another.
const CLIENT_GOROUTINES: usize = 100;

/// Descriptors each process needs: one end of every connection, and room for the listener,
/// the pollers, the standard streams and the test harness.
const NEEDED_FDS: u64 = CONNECTIONS as u64 + 500;

/// Set in the child process to the server's address: the child opens the client ends.
const CLIENT_ENV: &str = "NET_MANY_CONNECTIONS_SERVER";

/// What the child prints once every client end is open.
const CONNECTED: &str = "net_many_connections: client ends open";

/// The whole test's bound: connecting, serving and tearing down 10,000 connections in a
/// debug build on two loaded cores takes a small part of it.
const LIMIT: Duration = Duration::from_secs(120);

/// Small stacks: 10,100 goroutines are alive at once, and none of them recurses.
const STACK_SIZE: usize = 128 * 1024;

/// Raises the soft limit on open descriptors to the hard limit; an error saying why the
/// test cannot run if the hard limit is below [`NEEDED_FDS`].
fn raise_fd_limit() -> Result<(), String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the limits into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(format!("getrlimit: {}", io::Error::last_os_error()));
    }
    if limit.rlim_max < NEEDED_FDS {
        return Err(format!(
            "the hard limit on open files (RLIMIT_NOFILE) is {}, below the {NEEDED_FDS} \
             that {CONNECTIONS} connections need",
            limit.rlim_max
        ));
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads the limits from a valid struct; raising the soft limit up to
        // the hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(format!("setrlimit: {}", io::Error::last_os_error()));
        }
    }
    Ok(())
}

fn runtime() -> Runtime {
    Runtime::builder()
        .procs(2)
        .stack_size(STACK_SIZE)
        .build()
        .expect("runtime")
}

/// Joins a goroutine, resuming its panic (with its own message) on the caller.
fn join<T>(handle: JoinHandle<T>) -> T {
    handle.join().unwrap_or_else(|p| panic::resume_unwind(p))
}

/// How many descriptors this process has open.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("cannot read /proc/self/fd")
        .count()
}

/// Serves one connection: echoes one 8-byte message, then waits for end of file. Returns
/// the message.
fn serve(conn: TcpStream) -> u64 {
    let mut message = [0; 8];
    (&conn).read_exact(&mut message).expect("server read");
    (&conn).write_all(&message).expect("server write");
    let rest = (&conn)
        .read(&mut [0; 8])
        .expect("server read to end of file");
    assert_eq!(rest, 0, "the client sent more than one message");
    u64::from_le_bytes(message)
}

/// The child's part: opens [`CONNECTIONS`] client ends from goroutines, says so on stdout,
/// waits for a line on stdin, then makes one round trip on every connection and exits.
fn run_clients(addr: &str) {
    let addr: std::net::SocketAddr = addr.parse().expect("the server's address");
    let rt = runtime();
    let per_client = CONNECTIONS / CLIENT_GOROUTINES;
    let opened: Vec<JoinHandle<Vec<(u64, TcpStream)>>> = (0..CLIENT_GOROUTINES)
        .map(|c| {
            rt.spawn(move || {
                (c * per_client..(c + 1) * per_client)
                    .map(|id| (id as u64, TcpStream::connect(addr).expect("connect")))
                    .collect()
            })
        })
        .collect();
    let streams: Vec<Vec<(u64, TcpStream)>> = opened.into_iter().map(join).collect();
    println!("{CONNECTED}");
    io::stdout().flush().unwrap();
    // Until the parent has seen every server goroutine parked.
    io::stdin()
        .read_line(&mut String::new())
        .expect("the parent's go");
    let round_trips: Vec<JoinHandle<()>> = streams
        .into_iter()
        .map(|streams| {
            rt.spawn(move || {
                for (id, stream) in &streams {
                    (&*stream)
                        .write_all(&id.to_le_bytes())
                        .expect("client write");
                    let mut back = [0; 8];
                    (&*stream).read_exact(&mut back).expect("client read");
                    assert_eq!(u64::from_le_bytes(back), *id, "another connection's bytes");
                }
            })
        })
        .collect();
    round_trips.into_iter().for_each(join);
}

#[test]
fn ten_thousand_connections_open_at_once_each_served_by_a_goroutine() {
    if let Err(why) = raise_fd_limit() {
        eprintln!("net_many_connections: skipped: {why}");
        return;
    }
    if let Ok(addr) = std::env::var(CLIENT_ENV) {
        run_clients(&addr);
        return;
    }
    let (served, fds_open) = watchdog("10,000 connections", LIMIT, || {
        let rt = runtime();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let a = accepted.clone();
        // One goroutine per connection, spawned as it is accepted.
        let server = rt.spawn(move || {
            let handlers: Vec<JoinHandle<u64>> = (0..CONNECTIONS)
                .map(|_| {
                    let (conn, _) = listener.accept().expect("accept");
                    a.fetch_add(1, Ordering::Relaxed);
                    scheduler::spawn(move || serve(conn))
                })
                .collect();
            // Every message once: the sum of 0..CONNECTIONS.
            handlers.into_iter().map(join).sum::<u64>()
        });
        let start = Instant::now();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "ten_thousand_connections_open_at_once_each_served_by_a_goroutine",
                "--nocapture",
            ])
            .env(CLIENT_ENV, addr.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the client process");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let connected = lines.by_ref().map_while(Result::ok).any(|l| l == CONNECTED);
        assert!(connected, "the client process ended before it connected");
        // Every server goroutine parked in its read: all the connections are open at once.
        settle(&rt, "10,000 server goroutines park in read", |m| {
            m.blocked.io == CONNECTIONS && m.blocked.join == 1
        });
        assert_eq!(accepted.load(Ordering::Relaxed), CONNECTIONS);
        let fds_open = open_fds();
        eprintln!(
            "net_many_connections: {CONNECTIONS} connections open after {:?}, {fds_open} \
             descriptors here",
            start.elapsed()
        );
        writeln!(child.stdin.take().unwrap(), "go").expect("tell the client to go on");
        let status = child.wait().expect("wait for the client process");
        assert!(status.success(), "the client process failed: {status}");
        let served = join(server);
        eprintln!(
            "net_many_connections: every round trip done after {:?}",
            start.elapsed()
        );
        rt.shutdown_timeout(LIMIT).expect("nothing left to run");
        (served, fds_open)
    });
    let n = CONNECTIONS as u64;
    assert_eq!(served, n * (n - 1) / 2, "the servers saw other messages");
    assert!(
        fds_open >= CONNECTIONS,
        "only {fds_open} descriptors open with {CONNECTIONS} connections"
    );
}
