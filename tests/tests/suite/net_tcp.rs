//! `scheduler::net` over TCP: echo servers with a goroutine per connection, a stream shared
//! by a reader and a writer goroutine, deadlines, time-outs and contexts, connection errors,
//! half-close, shutdown with goroutines parked on sockets, readiness under a CPU hog, the
//! `blocked.io` metric, plain threads, deadlock detection and name resolution. Loopback only.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::panic;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use scheduler::context::{Context, ContextError};
use scheduler::net::{TcpListener, TcpStream, context_error};
use scheduler::{Cancelled, JoinHandle};
use scheduler_tests::{
    DropCounter, HANG_LIMIT, PROMPT_LIMIT, SPIN_LIMIT, busy_work, describe_payload, runtime,
    settle, settle_parked, watchdog, yield_until,
};

/// The deadlines and time-outs the tests set: a wait must last at least this long.
const SHORT: Duration = Duration::from_millis(100);

/// A wait of [`SHORT`] (or one that should end at once) that lasts longer than this failed:
/// far above what a loaded two-core CI machine adds to a timer, far below "never".
const LATE: Duration = Duration::from_secs(5);

/// What `shutdown_timeout` waits for goroutines that will never finish.
const SHUTDOWN_WAIT: Duration = Duration::from_millis(50);

/// Joins a goroutine, resuming its panic (with its own message) on the caller.
fn join<T>(handle: JoinHandle<T>) -> T {
    handle.join().unwrap_or_else(|p| panic::resume_unwind(p))
}

/// A connected pair over loopback: `(client, server)`. Works in a goroutine and on a plain
/// thread (the handshake completes in the kernel's backlog before `accept`).
fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback listener");
    let addr = listener.local_addr().unwrap();
    let client = TcpStream::connect(addr).expect("connect to our own listener");
    let (server, peer) = listener.accept().expect("accept our own connection");
    assert_eq!(peer, client.local_addr().unwrap());
    (client, server)
}

/// `len` bytes that depend on `seed` and on their position: payloads that differ from each
/// other, so a byte sent on the wrong connection or out of order is caught.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
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
fn echo(conn: TcpStream) -> usize {
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
fn echo_server(listener: &TcpListener, conns: usize) -> usize {
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
fn first_difference(got: &[u8], want: &[u8]) -> Option<usize> {
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

/// Asserts that `result` failed with `TimedOut` no sooner than `at_least` after `start`, and
/// not [`LATE`].
fn assert_timed_out<T: std::fmt::Debug>(
    what: &str,
    result: io::Result<T>,
    start: Instant,
    at_least: Duration,
) {
    let elapsed = start.elapsed();
    let err = result.expect_err(what);
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{what}: {err}");
    assert!(
        elapsed >= at_least,
        "{what}: timed out after {elapsed:?}, before {at_least:?}"
    );
    assert!(elapsed < LATE, "{what}: timed out only after {elapsed:?}");
}

#[test]
fn read_deadline_expires_on_a_silent_peer() {
    watchdog("read deadline", HANG_LIMIT, || {
        runtime(2).block_on(|| {
            let (client, server) = tcp_pair();
            let mut buf = [0; 16];
            let start = Instant::now();
            client.set_read_deadline(Some(start + SHORT)).unwrap();
            assert_timed_out("read", (&client).read(&mut buf), start, SHORT);
            // Once passed, the deadline fails every read at once, data waiting or not.
            (&server).write_all(b"late").unwrap();
            let again = Instant::now();
            assert_timed_out(
                "read again",
                (&client).read(&mut buf),
                again,
                Duration::ZERO,
            );
            // The connection is intact: without the deadline the bytes are there.
            client.set_read_deadline(None).unwrap();
            let mut late = [0; 4];
            (&client).read_exact(&mut late).unwrap();
            assert_eq!(&late, b"late");
            // A read deadline leaves writes alone.
            (&client).write_all(b"still writable").unwrap();
        });
    });
}

#[test]
fn read_timeout_bounds_each_read() {
    watchdog("read timeout", HANG_LIMIT, || {
        runtime(2).block_on(|| {
            let (client, server) = tcp_pair();
            assert_eq!(client.read_timeout().unwrap(), None);
            client.set_read_timeout(Some(SHORT)).unwrap();
            assert_eq!(client.read_timeout().unwrap(), Some(SHORT));
            let mut buf = [0; 16];
            // Each read waits its own time-out: the second one as long as the first.
            for round in 0..2 {
                let start = Instant::now();
                let result = (&client).read(&mut buf);
                assert_timed_out(&format!("read {round}"), result, start, SHORT);
            }
            // Data that is there is read at once, time-out or not.
            (&server).write_all(b"data").unwrap();
            let mut data = [0; 4];
            (&client).read_exact(&mut data).unwrap();
            assert_eq!(&data, b"data");
            // A zero time-out is an error, as in std; the time-out set before stays.
            let err = client.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            assert_eq!(client.read_timeout().unwrap(), Some(SHORT));
            client.set_read_timeout(None).unwrap();
            assert_eq!(client.read_timeout().unwrap(), None);
        });
    });
}

#[test]
fn a_deadline_in_the_past_fails_at_once() {
    watchdog("past deadline", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            let (client, server) = tcp_pair();
            (&server).write_all(b"data").unwrap();
            // Wait until the bytes are there: the read below could succeed without waiting.
            let mut peeked = [0; 4];
            assert_eq!(client.peek(&mut peeked).unwrap(), 4);
            let start = Instant::now();
            client.set_read_deadline(Some(start)).unwrap();
            let result = (&client).read(&mut peeked);
            assert_timed_out("read past deadline", result, start, Duration::ZERO);
            // Writes, with room in the send buffer: the same.
            client.set_write_deadline(Some(Instant::now())).unwrap();
            let start = Instant::now();
            let result = (&client).write(b"x");
            assert_timed_out("write past deadline", result, start, Duration::ZERO);
            // Nothing was consumed or sent.
            client.set_deadline(None).unwrap();
            let mut data = [0; 4];
            (&client).read_exact(&mut data).unwrap();
            assert_eq!(&data, b"data");
            (&client).write_all(b"y").unwrap();
            let mut y = [0; 1];
            (&server).read_exact(&mut y).unwrap();
            assert_eq!(&y, b"y");
        });
    });
}

/// Starts a goroutine of `rt` that reads once from `client` and returns the result's kind and
/// how long it waited, then waits until it is parked on the socket.
fn park_a_reader(
    rt: &scheduler::Runtime,
    client: &Arc<TcpStream>,
    read: fn(&TcpStream, &mut [u8]) -> io::Result<usize>,
) -> JoinHandle<(io::Result<usize>, Instant)> {
    let c = client.clone();
    let reader = rt.spawn(move || {
        let mut buf = [0; 16];
        let result = read(&c, &mut buf);
        (result, Instant::now())
    });
    settle(rt, "the reader parks on the socket", |m| {
        m.blocked.io == 1 && m.blocked.total() == 1
    });
    reader
}

#[test]
fn a_past_deadline_set_by_another_goroutine_ends_a_waiting_read() {
    watchdog("deadline ends a waiting read", HANG_LIMIT, || {
        let rt = runtime(2);
        let (client, _server) = tcp_pair();
        let client = Arc::new(client);
        let reader = park_a_reader(&rt, &client, |c, buf| (&*c).read(buf));
        let c = client.clone();
        // Go's idiom for interrupting a blocked read.
        let set_at = join(rt.spawn(move || {
            let now = Instant::now();
            c.set_read_deadline(Some(now)).unwrap();
            now
        }));
        let (result, ended) = join(reader);
        let err = result.expect_err("the read ended without data");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        let took = ended.duration_since(set_at);
        assert!(
            took < LATE,
            "the read ended {took:?} after the deadline was set"
        );
    });
}

#[test]
fn a_nearer_deadline_set_while_waiting_ends_the_wait_then() {
    watchdog("deadline moved nearer", HANG_LIMIT, || {
        let rt = runtime(2);
        let (client, _server) = tcp_pair();
        client
            .set_read_deadline(Some(Instant::now() + HANG_LIMIT))
            .unwrap();
        let client = Arc::new(client);
        let reader = park_a_reader(&rt, &client, |c, buf| (&*c).read(buf));
        let c = client.clone();
        let set_at = join(rt.spawn(move || {
            let now = Instant::now();
            c.set_read_deadline(Some(now + SHORT)).unwrap();
            now
        }));
        let (result, ended) = join(reader);
        let err = result.expect_err("the read ended without data");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        let took = ended.duration_since(set_at);
        assert!(
            took >= SHORT,
            "the read ended {took:?} after, before the new deadline"
        );
        assert!(
            took < LATE,
            "the read ended only {took:?} after the new deadline was set"
        );
    });
}

#[test]
fn read_ctx_with_a_timeout_fails_with_deadline_exceeded() {
    watchdog("read_ctx timeout", HANG_LIMIT, || {
        runtime(2).block_on(|| {
            let (client, server) = tcp_pair();
            let mut buf = [0; 16];
            let start = Instant::now();
            let (ctx, _cancel) = Context::background().with_timeout(SHORT);
            let result = client.read_ctx(&mut buf, &ctx);
            let elapsed = start.elapsed();
            let err = result.expect_err("nothing to read");
            assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
            assert_eq!(context_error(&err), Some(ContextError::DeadlineExceeded));
            assert!(elapsed >= SHORT, "timed out after {elapsed:?}");
            assert!(elapsed < LATE, "timed out only after {elapsed:?}");
            // A deadline's error carries no context error.
            client.set_read_deadline(Some(Instant::now())).unwrap();
            let err = (&client).read(&mut buf).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::TimedOut);
            assert_eq!(context_error(&err), None);
            client.set_read_deadline(None).unwrap();
            // A live context reads what comes.
            (&server).write_all(b"data").unwrap();
            let n = client.read_ctx(&mut buf, &Context::background()).unwrap();
            assert_eq!(&buf[..n], &b"data"[..n]);
        });
    });
}

#[test]
fn read_ctx_cancelled_from_another_goroutine_returns_canceled() {
    watchdog("read_ctx cancelled", HANG_LIMIT, || {
        let rt = runtime(2);
        let (client, server) = tcp_pair();
        let client = Arc::new(client);
        let (ctx, cancel) = Context::background().with_cancel();
        let c = client.clone();
        let reader = rt.spawn(move || {
            let mut buf = [0; 16];
            let result = c.read_ctx(&mut buf, &ctx);
            (result, Instant::now())
        });
        settle(&rt, "the reader parks", |m| m.blocked.io == 1);
        let cancelled_at = join(rt.spawn(move || {
            let now = Instant::now();
            cancel.cancel();
            now
        }));
        let (result, ended) = join(reader);
        let err = result.expect_err("the read ended without data");
        assert_eq!(err.kind(), io::ErrorKind::Other, "{err}");
        assert_eq!(context_error(&err), Some(ContextError::Canceled));
        let took = ended.duration_since(cancelled_at);
        assert!(
            took < LATE,
            "the read ended {took:?} after the cancellation"
        );
        // The connection is still usable.
        let c = client.clone();
        let got = join(rt.spawn(move || {
            (&server).write_all(b"after").unwrap();
            let mut buf = [0; 5];
            (&*c).read_exact(&mut buf).unwrap();
            buf
        }));
        assert_eq!(&got, b"after");
    });
}

#[test]
fn write_all_ctx_cancelled_while_the_peer_does_not_read() {
    watchdog("write_all_ctx cancelled", HANG_LIMIT, || {
        let rt = runtime(2);
        let (client, _server) = tcp_pair();
        let (ctx, cancel) = Context::background().with_cancel();
        let writer = rt.spawn(move || {
            // Far more than the socket buffers hold: the writer parks once they are full.
            let data = vec![7_u8; 64 << 20];
            client.write_all_ctx(&data, &ctx)
        });
        settle(&rt, "the writer parks on a full buffer", |m| {
            m.blocked.io == 1
        });
        cancel.cancel();
        let err = join(writer).expect_err("the silent peer cannot take 64 MiB");
        assert_eq!(err.kind(), io::ErrorKind::Other, "{err}");
        assert_eq!(context_error(&err), Some(ContextError::Canceled));
    });
}

#[test]
fn accept_ctx_cancelled_from_another_goroutine_returns_canceled() {
    watchdog("accept_ctx cancelled", HANG_LIMIT, || {
        let rt = runtime(2);
        let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = listener.local_addr().unwrap();
        let (ctx, cancel) = Context::background().with_cancel();
        let l = listener.clone();
        let acceptor = rt.spawn(move || (l.accept_ctx(&ctx).map(|_| ()), Instant::now()));
        settle(&rt, "the acceptor parks", |m| m.blocked.io == 1);
        let cancelled_at = join(rt.spawn(move || {
            let now = Instant::now();
            cancel.cancel();
            now
        }));
        let (result, ended) = join(acceptor);
        let err = result.expect_err("nobody connected");
        assert_eq!(err.kind(), io::ErrorKind::Other, "{err}");
        assert_eq!(context_error(&err), Some(ContextError::Canceled));
        let took = ended.duration_since(cancelled_at);
        assert!(took < LATE, "accept ended {took:?} after the cancellation");
        // A timed-out context: DeadlineExceeded, no sooner than its deadline.
        let l = listener.clone();
        let (result, elapsed) = join(rt.spawn(move || {
            let start = Instant::now();
            let (ctx, _cancel) = Context::background().with_timeout(SHORT);
            (l.accept_ctx(&ctx).map(|_| ()), start.elapsed())
        }));
        let err = result.expect_err("nobody connected");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert_eq!(context_error(&err), Some(ContextError::DeadlineExceeded));
        assert!(
            elapsed >= SHORT && elapsed < LATE,
            "timed out after {elapsed:?}"
        );
        // The listener still accepts.
        let l = listener.clone();
        join(rt.spawn(move || {
            let client = TcpStream::connect(addr).unwrap();
            let (_, peer) = l.accept_ctx(&Context::background()).unwrap();
            assert_eq!(peer, client.local_addr().unwrap());
        }));
    });
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

/// Counts its drops, and holds the server side of a connection that a cancelled goroutine
/// unwinds.
struct Held {
    conn: TcpStream,
    _counted: scheduler_tests::Counted,
}

/// The identity of what `fd` refers to now (device and inode), or `None` if it is closed.
fn fd_identity(fd: RawFd) -> Option<(u64, u64)> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a `stat` into the buffer it is given, and nothing else; a closed
    // descriptor makes it fail with EBADF.
    let rc = unsafe { libc::fstat(fd, stat.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: fstat succeeded, so it filled the struct.
    let stat = unsafe { stat.assume_init() };
    Some((stat.st_dev, stat.st_ino))
}

fn shutdown_closes_the_sockets_of_parked_goroutines(procs: usize) {
    const CONNS: usize = 4;
    watchdog("shutdown with parked sockets", HANG_LIMIT, move || {
        let rt = runtime(procs);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let drops = DropCounter::new();
        let (fds_tx, fds_rx) = mpsc::channel();
        let counter = drops.clone();
        let acceptor = rt.spawn(move || {
            for id in 0.. {
                let (conn, _) = listener.accept().unwrap();
                let (counter, fds_tx) = (counter.clone(), fds_tx.clone());
                scheduler::spawn(move || {
                    let fd = conn.as_raw_fd();
                    fds_tx.send((fd, fd_identity(fd).unwrap())).unwrap();
                    let held = Held {
                        conn,
                        _counted: counter.value(id),
                    };
                    // The client never writes: parked here until cancelled, which drops
                    // `held` (and so closes the socket) while unwinding.
                    let _ = (&held.conn).read(&mut [0; 16]);
                });
            }
        });
        let clients: Vec<std::net::TcpStream> = (0..CONNS)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let fds: Vec<(RawFd, (u64, u64))> = (0..CONNS).map(|_| fds_rx.recv().unwrap()).collect();
        settle_parked(&rt, CONNS + 1, || true);
        assert_eq!(rt.metrics().blocked.io, CONNS + 1);

        let start = Instant::now();
        let err = rt
            .shutdown_timeout(SHUTDOWN_WAIT)
            .expect_err("goroutines parked on sockets cannot finish");
        let took = start.elapsed();
        assert_eq!(err.remaining(), CONNS + 1, "{err}");
        assert!(took < PROMPT_LIMIT, "shutdown_timeout took {took:?}");
        match acceptor.join() {
            Err(payload) => assert!(
                payload.is::<Cancelled>(),
                "the acceptor ended with {}",
                describe_payload(&*payload)
            ),
            Ok(()) => unreachable!("the accept loop never returns"),
        }
        // Every held connection was dropped by the unwinding, once.
        assert_eq!(drops.dropped(), CONNS);

        // The clients see the server side closed: end of file (or a reset), not silence.
        for (i, mut client) in clients.into_iter().enumerate() {
            client.set_read_timeout(Some(LATE)).unwrap();
            match client.read(&mut [0; 16]) {
                Ok(0) => {}
                Err(err) if err.kind() == io::ErrorKind::ConnectionReset => {}
                other => panic!("client {i}: the server side is still open: {other:?}"),
            }
        }
        // The listener is closed.
        let err = std::net::TcpStream::connect(addr).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
        // Each server socket's descriptor is closed: gone, or reused for something else.
        for (fd, identity) in &fds {
            assert_ne!(fd_identity(*fd), Some(*identity), "fd {fd} is still open");
        }
        // Descriptors opened now (the kernel hands out the lowest free numbers, those just
        // closed) are not closed behind our back by a stale second close.
        let fresh = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = std::net::TcpStream::connect(fresh.local_addr().unwrap()).unwrap();
        let (mut b, _) = fresh.accept().unwrap();
        let opened: Vec<(RawFd, Option<(u64, u64)>)> = [&a, &b]
            .iter()
            .map(|s| (s.as_raw_fd(), fd_identity(s.as_raw_fd())))
            .collect();
        a.write_all(b"fresh").unwrap();
        let mut buf = [0; 5];
        b.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"fresh");
        for (fd, identity) in opened {
            assert_eq!(fd_identity(fd), identity, "fd {fd} was closed under us");
        }
    });
}

#[test]
fn shutdown_timeout_closes_the_sockets_of_parked_goroutines_on_one_proc() {
    shutdown_closes_the_sockets_of_parked_goroutines(1);
}

#[test]
fn shutdown_timeout_closes_the_sockets_of_parked_goroutines_on_two_procs() {
    shutdown_closes_the_sockets_of_parked_goroutines(2);
}

#[test]
fn readiness_reaches_goroutines_while_a_checkpointing_hog_runs() {
    // Few: each wake-up of a goroutine waits for the worker's next look at its poller, which
    // comes only every so many turns of a hog that yields once a time slice.
    const ROUNDS: usize = 3;
    let hog_turns = watchdog("I/O beside a hog", HANG_LIMIT, || {
        let rt = scheduler::Runtime::builder()
            .procs(1)
            .max_spare_workers(0)
            .build()
            .unwrap();
        rt.block_on(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server = scheduler::spawn(move || echo_server(&listener, 1));
            let stop = Arc::new(AtomicBool::new(false));
            let turns = Arc::new(AtomicU64::new(0));
            let (s, t) = (stop.clone(), turns.clone());
            // Never blocks: only its checkpoints let the other goroutines of the (only) worker
            // run, so the worker never idles and must poll for readiness while busy.
            let hog = scheduler::spawn(move || {
                let mut x = 1_u64;
                while !s.load(Ordering::SeqCst) {
                    x = busy_work(x, 1000);
                    t.fetch_add(1, Ordering::SeqCst);
                    scheduler::checkpoint();
                }
                x
            });
            yield_until("the hog starts", SPIN_LIMIT, || {
                turns.load(Ordering::SeqCst) > 0
            });
            let before = turns.load(Ordering::SeqCst);
            let mut client = TcpStream::connect(addr).unwrap();
            for round in 0..ROUNDS {
                let start = Instant::now();
                let msg = pattern(round as u64, 100);
                client.write_all(&msg).unwrap();
                let mut back = [0; 100];
                client.read_exact(&mut back).unwrap();
                assert!(back[..] == msg[..], "round {round}: other bytes came back");
                eprintln!("round trip {round} beside the hog: {:?}", start.elapsed());
            }
            let during = turns.load(Ordering::SeqCst) - before;
            stop.store(true, Ordering::SeqCst);
            drop(client);
            join(server);
            join(hog);
            during
        })
    });
    assert!(hog_turns > 0, "the hog did not run during the round trips");
}

#[test]
fn blocked_io_counts_goroutines_parked_on_sockets() {
    const READERS: usize = 8;
    watchdog("blocked.io", HANG_LIMIT, || {
        let rt = runtime(2);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let readers: Vec<JoinHandle<usize>> = (0..READERS)
            .map(|_| {
                rt.spawn(move || {
                    let stream = TcpStream::connect(addr).unwrap();
                    (&stream).read(&mut [0; 16]).unwrap()
                })
            })
            .collect();
        // The silent peers, accepted on this plain thread.
        let peers: Vec<TcpStream> = (0..READERS).map(|_| listener.accept().unwrap().0).collect();
        let m = settle(&rt, "the readers park", |m| {
            m.blocked.io == READERS && m.live == READERS
        });
        assert_eq!(m.blocked.total(), READERS, "{m}");
        // One more, parked in accept; and one in read_ctx (a select with the context).
        let other = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let other_addr = other.local_addr().unwrap();
        let l = other.clone();
        let acceptor = rt.spawn(move || l.accept().map(|_| ()));
        let (ctx, cancel) = Context::background().with_cancel();
        let (ctx_client, _ctx_peer) = tcp_pair();
        let ctx_reader = rt.spawn(move || ctx_client.read_ctx(&mut [0; 16], &ctx).map(|_| ()));
        let m = settle(&rt, "two more park", |m| {
            m.blocked.io == READERS + 2 && m.live == READERS + 2
        });
        assert_eq!(m.blocked.total(), READERS + 2, "{m}");
        // Released: end of file for the readers, a connection for the acceptor.
        drop(peers);
        let _connected = std::net::TcpStream::connect(other_addr).unwrap();
        cancel.cancel();
        for reader in readers {
            assert_eq!(join(reader), 0);
        }
        join(acceptor).unwrap();
        let err = join(ctx_reader).unwrap_err();
        assert_eq!(context_error(&err), Some(ContextError::Canceled));
        let m = settle(&rt, "nothing waits any more", |m| m.live == 0);
        assert_eq!(m.blocked.io, 0, "{m}");
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
