//! `scheduler::net` over TCP: echo servers with a goroutine per connection, a stream shared
//! by a reader and a writer goroutine, connection errors, half-close, plain threads, deadlock
//! detection, name resolution and conversions. Loopback only. The helpers here serve
//! `net_deadlines` and `net_shutdown` too.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::panic;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use scheduler::JoinHandle;
use scheduler::context::{Context, ContextError};
use scheduler::net::{TcpListener, TcpStream, context_error};
use scheduler_tests::{HANG_LIMIT, runtime, settle, watchdog};

use super::net_deadlines::assert_timed_out;

/// The deadlines and time-outs the tests set: a wait must last at least this long.
pub(super) const SHORT: Duration = Duration::from_millis(100);

/// A wait of [`SHORT`] (or one that should end at once) that lasts longer than this failed:
/// far above what a loaded two-core CI machine adds to a timer, far below "never".
pub(super) const LATE: Duration = Duration::from_secs(5);

/// What `shutdown_timeout` waits for goroutines that will never finish.
pub(super) const SHUTDOWN_WAIT: Duration = Duration::from_millis(50);

/// Joins a goroutine, resuming its panic (with its own message) on the caller.
pub(super) fn join<T>(handle: JoinHandle<T>) -> T {
    handle.join().unwrap_or_else(|p| panic::resume_unwind(p))
}

/// A connected pair over loopback: `(client, server)`. Works in a goroutine and on a plain
/// thread (the handshake completes in the kernel's backlog before `accept`).
pub(super) fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback listener");
    let addr = listener.local_addr().unwrap();
    let client = TcpStream::connect(addr).expect("connect to our own listener");
    let (server, peer) = listener.accept().expect("accept our own connection");
    assert_eq!(peer, client.local_addr().unwrap());
    (client, server)
}

/// `len` bytes that depend on `seed` and on their position: payloads that differ from each
/// other, so a byte sent on the wrong connection or out of order is caught.
pub(super) fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Echoes what `conn` reads until end of file, then returns how many bytes it echoed.
pub(super) fn echo(conn: TcpStream) -> usize {
    let mut buf = [0; 4096];
    let mut total = 0;
    loop {
        match (&conn).read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => {
                (&conn).write_all(&buf[..n]).expect("echo write");
                total += n;
            }
            Err(err) => panic!("echo read failed after {total} bytes: {err}"),
        }
    }
}

/// Accepts `conns` connections, echoes each in a goroutine of its own, and returns the total
/// number of bytes echoed once every connection ended.
pub(super) fn echo_server(listener: &TcpListener, conns: usize) -> usize {
    let handlers: Vec<JoinHandle<usize>> = listener
        .incoming()
        .take(conns)
        .map(|conn| {
            let conn = conn.expect("accept");
            scheduler::spawn(move || echo(conn))
        })
        .collect();
    handlers.into_iter().map(join).sum()
}

/// Where the first difference between `got` and `want` is, for failure messages.
pub(super) fn first_difference(got: &[u8], want: &[u8]) -> Option<usize> {
    got.iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .or((got.len() != want.len()).then(|| got.len().min(want.len())))
}

fn hundred_clients_get_their_own_bytes_back(procs: usize) {
    const CLIENTS: usize = 100;
    const ROUNDS: usize = 5;
    let (sent, echoed) = watchdog("100 echo clients", HANG_LIMIT, move || {
        runtime(procs).block_on(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server = scheduler::spawn(move || echo_server(&listener, CLIENTS));
            let clients: Vec<JoinHandle<usize>> = (0..CLIENTS)
                .map(|c| {
                    scheduler::spawn(move || {
                        let mut stream = TcpStream::connect(addr).expect("client connect");
                        let mut sent = 0;
                        for r in 0..ROUNDS {
                            // 1 byte to 8 KiB, different for every client and round.
                            let len = 1 + (c * 7919 + r * 104_729) % 8192;
                            let msg = pattern((c * ROUNDS + r) as u64, len);
                            stream.write_all(&msg).unwrap();
                            let mut back = vec![0; len];
                            stream.read_exact(&mut back).unwrap();
                            assert!(
                                back == msg,
                                "client {c}, round {r}: other bytes came back (first \
                                 difference at {:?} of {len})",
                                first_difference(&back, &msg)
                            );
                            sent += len;
                        }
                        // The server sees end of file and closes: nothing more comes back.
                        stream.shutdown(Shutdown::Write).unwrap();
                        let mut rest = Vec::new();
                        stream.read_to_end(&mut rest).unwrap();
                        assert!(rest.is_empty(), "client {c}: {} extra bytes", rest.len());
                        sent
                    })
                })
                .collect();
            let sent: usize = clients.into_iter().map(join).sum();
            (sent, join(server))
        })
    });
    assert_eq!(
        echoed, sent,
        "the server echoed a different number of bytes"
    );
}

#[test]
fn hundred_echo_clients_on_one_proc() {
    hundred_clients_get_their_own_bytes_back(1);
}

#[test]
fn hundred_echo_clients_on_two_procs() {
    hundred_clients_get_their_own_bytes_back(2);
}

fn reader_and_writer_goroutines_share_one_stream(procs: usize) {
    const TOTAL: usize = 1 << 20;
    watchdog("shared stream", HANG_LIMIT, move || {
        runtime(procs).block_on(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server = scheduler::spawn(move || echo_server(&listener, 1));
            let stream = Arc::new(TcpStream::connect(addr).unwrap());
            let data = Arc::new(pattern(42, TOTAL));
            let (s, d) = (stream.clone(), data.clone());
            // Enough to fill both socket buffers: the writer parks until the reader drains.
            let writer = scheduler::spawn(move || {
                let (mut offset, mut i) = (0, 0);
                while offset < TOTAL {
                    let len = (1 + i * 7919 % 8192).min(TOTAL - offset);
                    (&*s).write_all(&d[offset..offset + len]).unwrap();
                    offset += len;
                    i += 1;
                }
                s.shutdown(Shutdown::Write).unwrap();
            });
            let s = stream.clone();
            let reader = scheduler::spawn(move || {
                let mut got = Vec::with_capacity(TOTAL);
                let mut buf = [0; 3000];
                loop {
                    match (&*s).read(&mut buf).unwrap() {
                        0 => return got,
                        n => got.extend_from_slice(&buf[..n]),
                    }
                }
            });
            join(writer);
            let got = join(reader);
            assert_eq!(got.len(), TOTAL, "read back a different length");
            assert!(
                got == *data,
                "read back other bytes: first difference at {:?}",
                first_difference(&got, &data)
            );
            assert_eq!(join(server), TOTAL);
        });
    });
}

#[test]
fn reader_and_writer_goroutines_share_one_stream_on_one_proc() {
    reader_and_writer_goroutines_share_one_stream(1);
}

#[test]
fn reader_and_writer_goroutines_share_one_stream_on_two_procs() {
    reader_and_writer_goroutines_share_one_stream(2);
}

/// An address where nothing listens: a port the kernel just gave a listener that is gone.
fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[test]
fn connect_to_a_closed_port_is_refused() {
    watchdog("connect refused", HANG_LIMIT, || {
        let kinds = runtime(2).block_on(|| {
            let addr = closed_port();
            let kind = |r: io::Result<TcpStream>| r.map(|_| ()).map_err(|e| e.kind());
            [
                kind(TcpStream::connect(addr)),
                kind(TcpStream::connect_timeout(&addr, LATE)),
                kind(TcpStream::connect_ctx(addr, &Context::background())),
            ]
        });
        let refused = Err(io::ErrorKind::ConnectionRefused);
        assert_eq!(kinds, [refused, refused, refused], "from a goroutine");
        // From a plain thread too.
        let err = TcpStream::connect(closed_port()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    });
}

#[test]
fn connect_timeout_of_zero_is_invalid_input() {
    watchdog("connect_timeout zero", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let err = TcpStream::connect_timeout(&addr, Duration::ZERO).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
            // A real time-out connects.
            let client = TcpStream::connect_timeout(&addr, LATE).unwrap();
            let (_, peer) = listener.accept().unwrap();
            assert_eq!(peer, client.local_addr().unwrap());
        });
    });
}

#[test]
fn half_close_lets_the_server_read_to_eof_and_still_reply() {
    const SENT: usize = 200_000;
    watchdog("half close", HANG_LIMIT, || {
        runtime(2).block_on(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server = scheduler::spawn(move || {
                let (mut conn, _) = listener.accept().unwrap();
                let mut got = Vec::new();
                conn.read_to_end(&mut got).unwrap();
                // End of file stays end of file.
                assert_eq!(conn.read(&mut [0; 8]).unwrap(), 0);
                let reply = format!("got {} bytes", got.len());
                conn.write_all(reply.as_bytes()).unwrap();
                got
            });
            let mut client = TcpStream::connect(addr).unwrap();
            let data = pattern(7, SENT);
            client.write_all(&data).unwrap();
            client.shutdown(Shutdown::Write).unwrap();
            // Writing after the shutdown fails (without a SIGPIPE).
            let err = client.write(b"more").unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
            let mut reply = String::new();
            client.read_to_string(&mut reply).unwrap();
            assert_eq!(reply, format!("got {SENT} bytes"));
            let got = join(server);
            assert!(got == data, "the server read other bytes");
        });
    });
}

#[test]
fn sockets_work_on_plain_threads() {
    watchdog("plain threads", HANG_LIMIT, || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (conn, peer) = listener.accept().unwrap();
            (echo(conn), peer)
        });
        let mut client = TcpStream::connect(addr).unwrap();
        let mut sent = 0;
        for round in 0..5 {
            let msg = pattern(round, 10_000);
            client.write_all(&msg).unwrap();
            let mut back = vec![0; msg.len()];
            client.read_exact(&mut back).unwrap();
            assert!(back == msg, "round {round}: other bytes came back");
            sent += msg.len();
        }
        // The echo server stays silent now: deadlines and contexts on a plain thread.
        let mut buf = [0; 16];
        let start = Instant::now();
        client.set_read_deadline(Some(start + SHORT)).unwrap();
        assert_timed_out("thread read", client.read(&mut buf), start, SHORT);
        client.set_read_deadline(None).unwrap();
        let start = Instant::now();
        let (ctx, _cancel) = Context::background().with_timeout(SHORT);
        let result = client.read_ctx(&mut buf, &ctx);
        let err = result.as_ref().map(|_| ()).unwrap_err();
        assert_eq!(context_error(err), Some(ContextError::DeadlineExceeded));
        assert_timed_out("thread read_ctx", result, start, SHORT);
        // A context cancelled by another thread.
        let (ctx, cancel) = Context::background().with_cancel();
        let client = Arc::new(client);
        let c = client.clone();
        let reader = thread::spawn(move || c.read_ctx(&mut [0; 16], &ctx).map(|_| ()));
        cancel.cancel();
        let err = reader.join().unwrap().unwrap_err();
        assert_eq!(context_error(&err), Some(ContextError::Canceled));
        client.shutdown(Shutdown::Write).unwrap();
        let (echoed, peer) = server.join().unwrap();
        assert_eq!(echoed, sent);
        assert_eq!(peer, client.local_addr().unwrap());
    });
}

/// A `block_on` whose only goroutine waits on a socket that a plain thread writes to later
/// returns normally.
///
/// Deadlock detection only judges a process whose threads are all the runtime's own; here the
/// test harness's threads and the peer thread keep it off, so this checks the wake-up through
/// the runtime, not the detector's verdict. The verdict needs a process of its own with the
/// peer outside it (the `deadlock` test binary, with a child process as the peer).
#[test]
fn a_goroutine_waiting_on_a_socket_is_not_a_deadlock() {
    watchdog("waiting on a socket", HANG_LIMIT, || {
        let rt = runtime(1);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::scope(|scope| {
            let rt = &rt;
            scope.spawn(move || {
                let (mut conn, _) = listener.accept().unwrap();
                settle(rt, "the main goroutine parks in read", |m| {
                    m.blocked.io == 1
                });
                // Silent for a while with every goroutine asleep, then it writes.
                thread::sleep(SHORT);
                conn.write_all(b"late").unwrap();
            });
            let got = rt.block_on(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                let mut buf = [0; 4];
                stream.read_exact(&mut buf).unwrap();
                buf
            });
            assert_eq!(&got, b"late");
        });
        // The same with the main goroutine in accept.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::scope(|scope| {
            let rt = &rt;
            scope.spawn(move || {
                settle(rt, "the main goroutine parks in accept", |m| {
                    m.blocked.io == 1
                });
                thread::sleep(SHORT);
                std::net::TcpStream::connect(addr).unwrap()
            });
            let peer = rt.block_on(move || listener.accept().unwrap().1);
            assert_eq!(peer.ip(), addr.ip());
        });
    });
}

#[test]
fn connect_resolves_localhost_on_the_blocking_pool() {
    watchdog("connect to localhost", HANG_LIMIT, || {
        let rt = scheduler::Runtime::builder()
            .procs(2)
            .blocking_keep_alive(HANG_LIMIT)
            .build()
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (literal_threads, threads) = rt.block_on(move || {
            // A literal address is not looked up: no blocking thread starts for it.
            let first = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
            listener.accept().unwrap();
            let literal_threads = scheduler::metrics().blocking_threads;
            // A host name is, on the blocking pool (`localhost` may also name ::1, where
            // nothing listens: connect tries the next address).
            let mut second = TcpStream::connect(("localhost", port)).unwrap();
            let (mut conn, _) = listener.accept().unwrap();
            let threads = scheduler::metrics().blocking_threads;
            second.write_all(b"hi").unwrap();
            let mut buf = [0; 2];
            conn.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"hi");
            let third = TcpStream::connect(format!("localhost:{port}")).unwrap();
            let (_, peer) = listener.accept().unwrap();
            assert_eq!(peer, third.local_addr().unwrap());
            drop(first);
            (literal_threads, threads)
        });
        assert_eq!(
            literal_threads, 0,
            "a literal address went to the blocking pool"
        );
        assert!(
            threads >= 1,
            "the host name was not resolved on the blocking pool"
        );
    });
}

#[test]
fn std_conversions_nonblocking_mode_peek_and_clones() {
    watchdog("conversions", HANG_LIMIT, || {
        runtime(2).block_on(|| {
            let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = std_listener.local_addr().unwrap();
            let listener = TcpListener::try_from(std_listener).unwrap();
            // Non-blocking mode: WouldBlock at once instead of waiting.
            listener.set_nonblocking(true).unwrap();
            let err = listener.accept().unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
            listener.set_nonblocking(false).unwrap();
            let clone = listener.try_clone().unwrap();
            let std_client = std::net::TcpStream::connect(addr).unwrap();
            let client = TcpStream::try_from(std_client).unwrap();
            let (server, peer) = clone.accept().unwrap();
            assert_eq!(peer, client.local_addr().unwrap());
            assert_eq!(client.peer_addr().unwrap(), addr);
            client.set_nodelay(true).unwrap();
            assert!(client.nodelay().unwrap());
            // Peek leaves the bytes for the read.
            (&server).write_all(b"peek").unwrap();
            let mut buf = [0; 4];
            let n = client.peek(&mut buf).unwrap();
            assert_eq!(&buf[..n], &b"peek"[..n]);
            (&client).read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"peek");
            client.set_nonblocking(true).unwrap();
            let err = (&client).read(&mut buf).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
            client.set_nonblocking(false).unwrap();
            // A clone starts with the settings of the original, and has its own from then on.
            client.set_read_timeout(Some(SHORT)).unwrap();
            let twin = client.try_clone().unwrap();
            assert_eq!(twin.read_timeout().unwrap(), Some(SHORT));
            twin.set_read_timeout(None).unwrap();
            assert_eq!(client.read_timeout().unwrap(), Some(SHORT));
            (&server).write_all(b"twin").unwrap();
            (&twin).read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"twin");
            // Back to std, in blocking mode, and still connected.
            drop(twin);
            let mut std_client = client.into_std().unwrap();
            assert!(!is_nonblocking(std_client.as_raw_fd()));
            (&server).write_all(b"std!").unwrap();
            std_client.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"std!");
            let std_listener = listener.into_std().unwrap();
            assert!(!is_nonblocking(std_listener.as_raw_fd()));
        });
    });
}

/// Whether `O_NONBLOCK` is set on `fd`.
fn is_nonblocking(fd: RawFd) -> bool {
    // SAFETY: F_GETFL only reads the flags of a descriptor the caller holds open.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    assert!(flags >= 0, "fcntl: {}", io::Error::last_os_error());
    flags & libc::O_NONBLOCK != 0
}
