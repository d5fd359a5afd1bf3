//! `scheduler::net` beyond TCP: UDP sockets, Unix domain streams, and [`Pollable`] over a
//! pipe. Loopback and temporary socket files only.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::panic;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use scheduler::context::{Context, ContextError};
use scheduler::net::{Pollable, UdpSocket, UnixListener, UnixStream, context_error};
use scheduler::{JoinHandle, Runtime};
use scheduler_tests::{HANG_LIMIT, runtime, settle, watchdog};

use super::net_deadlines::assert_timed_out;
use super::net_tcp::SHORT;

/// Joins a goroutine, resuming its panic (with its own message) on the caller.
fn join<T>(handle: JoinHandle<T>) -> T {
    handle.join().unwrap_or_else(|p| panic::resume_unwind(p))
}

/// Waits until exactly `n` goroutines of `rt` are parked, all of them on I/O.
fn settle_io(rt: &Runtime, n: usize) {
    settle(rt, "the goroutines park on I/O", |m| {
        m.blocked.io == n && m.blocked.total() == n && m.live == n
    });
}

#[test]
fn udp_send_to_and_recv_from_between_goroutines() {
    const ROUNDS: usize = 20;
    watchdog("udp ping-pong", HANG_LIMIT, || {
        runtime(2).block_on(|| {
            let a = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").unwrap();
            let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
            // Each datagram comes back reversed, to its sender.
            let responder = scheduler::spawn(move || {
                let mut buf = [0; 1500];
                for _ in 0..ROUNDS {
                    let (n, from) = b.recv_from(&mut buf).unwrap();
                    assert_eq!(from, a_addr);
                    buf[..n].reverse();
                    assert_eq!(b.send_to(&buf[..n], from).unwrap(), n);
                }
            });
            let mut buf = [0; 1500];
            for round in 0..ROUNDS {
                let msg = format!("datagram {round} from a").into_bytes();
                assert_eq!(a.send_to(&msg, b_addr).unwrap(), msg.len());
                let (n, from) = a.recv_from(&mut buf).unwrap();
                assert_eq!(from, b_addr);
                let mut want = msg.clone();
                want.reverse();
                assert_eq!(&buf[..n], &want[..], "round {round}");
            }
            join(responder);
        });
    });
}

#[test]
fn udp_connected_sockets_send_recv_and_filter_other_senders() {
    watchdog("udp connect", HANG_LIMIT, || {
        runtime(2).block_on(|| {
            let a = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").unwrap();
            let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
            let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
            a.connect(b_addr).unwrap();
            b.connect(a_addr).unwrap();
            assert_eq!(a.peer_addr().unwrap(), b_addr);
            assert_eq!(b.peer_addr().unwrap(), a_addr);
            let receiver = scheduler::spawn(move || {
                let mut buf = [0; 64];
                let n = b.recv(&mut buf).unwrap();
                let got = buf[..n].to_vec();
                b.send(b"reply from b").unwrap();
                got
            });
            // Sent first, but `b` only takes datagrams from `a` now.
            stranger.send_to(b"from a stranger", b_addr).unwrap();
            a.send(b"from a").unwrap();
            assert_eq!(join(receiver), b"from a");
            let mut buf = [0; 64];
            let n = a.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"reply from b");
        });
    });
}

#[test]
fn udp_receive_deadlines_timeouts_and_contexts() {
    watchdog("udp deadlines", HANG_LIMIT, || {
        let rt = runtime(2);
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let addr: SocketAddr = socket.local_addr().unwrap();
        let s = socket.clone();
        rt.block_on(move || {
            let mut buf = [0; 16];
            let start = Instant::now();
            s.set_read_deadline(Some(start + SHORT)).unwrap();
            assert_timed_out("recv_from", s.recv_from(&mut buf), start, SHORT);
            s.set_read_deadline(None).unwrap();
            s.set_read_timeout(Some(SHORT)).unwrap();
            assert_eq!(s.read_timeout().unwrap(), Some(SHORT));
            let start = Instant::now();
            assert_timed_out(
                "recv_from with a time-out",
                s.recv_from(&mut buf),
                start,
                SHORT,
            );
            s.set_read_timeout(None).unwrap();
            let start = Instant::now();
            let (ctx, _cancel) = Context::background().with_timeout(SHORT);
            let err = assert_timed_out(
                "recv_from_ctx",
                s.recv_from_ctx(&mut buf, &ctx),
                start,
                SHORT,
            );
            assert_eq!(context_error(&err), Some(ContextError::DeadlineExceeded));
        });
        // A receive cancelled from another goroutine while it waits.
        let (ctx, cancel) = Context::background().with_cancel();
        let s = socket.clone();
        let receiver = rt.spawn(move || s.recv_from_ctx(&mut [0; 16], &ctx).map(|_| ()));
        settle_io(&rt, 1);
        join(rt.spawn(move || cancel.cancel()));
        let err = join(receiver).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Other, "{err}");
        assert_eq!(context_error(&err), Some(ContextError::Canceled));
        // Still receives.
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"still", addr).unwrap();
        let s = socket.clone();
        let got = join(rt.spawn(move || {
            let mut buf = [0; 16];
            let (n, _) = s.recv_from(&mut buf).unwrap();
            buf[..n].to_vec()
        }));
        assert_eq!(got, b"still");
    });
}

/// A fresh directory for socket files, named after this process and the test, removed with
/// everything in it when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("scheduler-net-{}-{test}", std::process::id()));
        // Left over by an earlier process with the same pid: not ours to keep.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).expect("create a temporary directory");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn unix_listener_and_streams_echo() {
    const CLIENTS: usize = 20;
    const ROUNDS: usize = 3;
    let dir = TempDir::new("echo");
    let path = dir.path().join("echo.sock");
    watchdog("unix echo", HANG_LIMIT, move || {
        runtime(2).block_on(move || {
            // Nothing listens yet.
            let err = UnixStream::connect(&path).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
            let listener = UnixListener::bind(&path).unwrap();
            let server = scheduler::spawn(move || {
                let handlers: Vec<JoinHandle<usize>> = listener
                    .incoming()
                    .take(CLIENTS)
                    .map(|conn| {
                        let conn = conn.unwrap();
                        scheduler::spawn(move || {
                            let (mut buf, mut total) = ([0; 1024], 0);
                            loop {
                                match (&conn).read(&mut buf).unwrap() {
                                    0 => return total,
                                    n => {
                                        (&conn).write_all(&buf[..n]).unwrap();
                                        total += n;
                                    }
                                }
                            }
                        })
                    })
                    .collect();
                handlers.into_iter().map(join).sum::<usize>()
            });
            let clients: Vec<JoinHandle<usize>> = (0..CLIENTS)
                .map(|c| {
                    let path = path.clone();
                    scheduler::spawn(move || {
                        let mut stream = UnixStream::connect(&path).unwrap();
                        let mut sent = 0;
                        for r in 0..ROUNDS {
                            let msg = format!("client {c} round {r} ").repeat(1 + c * r);
                            stream.write_all(msg.as_bytes()).unwrap();
                            let mut back = vec![0; msg.len()];
                            stream.read_exact(&mut back).unwrap();
                            assert!(back == msg.as_bytes(), "client {c}, round {r}");
                            sent += msg.len();
                        }
                        stream.shutdown(std::net::Shutdown::Write).unwrap();
                        let mut rest = Vec::new();
                        stream.read_to_end(&mut rest).unwrap();
                        assert!(rest.is_empty());
                        sent
                    })
                })
                .collect();
            let sent: usize = clients.into_iter().map(join).sum();
            assert_eq!(join(server), sent);
        });
    });
    drop(dir);
}

#[test]
fn unix_stream_pair_between_goroutines() {
    watchdog("unix pair", HANG_LIMIT, || {
        let rt = runtime(2);
        let (a, b) = UnixStream::pair().unwrap();
        let b = Arc::new(b);
        let peer = b.clone();
        let responder = rt.spawn(move || {
            let mut request = [0; 7];
            (&*peer).read_exact(&mut request).unwrap();
            assert_eq!(&request, b"request");
            (&*peer).write_all(b"response").unwrap();
        });
        settle_io(&rt, 1);
        let asker = rt.spawn(move || {
            (&a).write_all(b"request").unwrap();
            let mut response = [0; 8];
            (&a).read_exact(&mut response).unwrap();
            assert_eq!(&response, b"response");
            // Deadlines and contexts as on TCP.
            let start = Instant::now();
            a.set_read_deadline(Some(start + SHORT)).unwrap();
            assert_timed_out("unix read", (&a).read(&mut [0; 4]), start, SHORT);
            a.set_read_deadline(None).unwrap();
            let start = Instant::now();
            let (ctx, _cancel) = Context::background().with_timeout(SHORT);
            let err =
                assert_timed_out("unix read_ctx", a.read_ctx(&mut [0; 4], &ctx), start, SHORT);
            assert_eq!(context_error(&err), Some(ContextError::DeadlineExceeded));
            a
        });
        join(responder);
        let a = join(asker);
        // Dropping one end is end of file for the other.
        drop(b);
        let mut rest = Vec::new();
        let n = join(rt.spawn(move || (&a).read_to_end(&mut rest).unwrap()));
        assert_eq!(n, 0);
    });
}

#[test]
fn pollable_pipe_reader_waits_until_a_writer_goroutine_writes() {
    watchdog("pollable pipe", HANG_LIMIT, || {
        let rt = runtime(2);
        let (reader, writer) = io::pipe().unwrap();
        let reading = rt.spawn(move || {
            let reader = Pollable::new(reader).unwrap();
            let mut buf = [0; 16];
            let n = reader.read_with(|mut r| r.read(&mut buf)).unwrap();
            buf[..n].to_vec()
        });
        // The reader waits on the empty pipe before anything is written.
        settle_io(&rt, 1);
        let writing = rt.spawn(move || {
            let writer = Pollable::new(writer).unwrap();
            writer.write_with(|mut w| w.write(b"hello")).unwrap()
        });
        assert_eq!(join(writing), 5);
        assert_eq!(join(reading), b"hello");
    });
}

#[test]
fn pollable_readable_ctx_with_a_timed_out_context() {
    watchdog("pollable readable_ctx", HANG_LIMIT, || {
        let rt = runtime(2);
        let (reader, writer) = io::pipe().unwrap();
        let reader = Arc::new(Pollable::new(reader).unwrap());
        let r = reader.clone();
        rt.block_on(move || {
            let start = Instant::now();
            let (ctx, _cancel) = Context::background().with_timeout(SHORT);
            let err = assert_timed_out("readable_ctx", r.readable_ctx(&ctx), start, SHORT);
            assert_eq!(context_error(&err), Some(ContextError::DeadlineExceeded));
            let start = Instant::now();
            let (ctx, _cancel) = Context::background().with_timeout(SHORT);
            let result = r.read_with_ctx(&ctx, |mut f| f.read(&mut [0; 4]));
            let err = assert_timed_out("read_with_ctx", result, start, SHORT);
            assert_eq!(context_error(&err), Some(ContextError::DeadlineExceeded));
        });
        // Cancelled while waiting.
        let (ctx, cancel) = Context::background().with_cancel();
        let r = reader.clone();
        let waiting = rt.spawn(move || r.readable_ctx(&ctx));
        settle_io(&rt, 1);
        cancel.cancel();
        let err = join(waiting).unwrap_err();
        assert_eq!(context_error(&err), Some(ContextError::Canceled));
        // Readable once written to.
        let r = reader.clone();
        let waiting = rt.spawn(move || r.readable());
        settle_io(&rt, 1);
        (&writer).write_all(b"x").unwrap();
        join(waiting).unwrap();
        // A closed write end is readable (end of file) too.
        let mut pipe: &io::PipeReader = reader.get_ref();
        assert_eq!(pipe.read(&mut [0; 1]).unwrap(), 1);
        let r = reader.clone();
        let waiting = rt.spawn(move || r.readable());
        settle_io(&rt, 1);
        drop(writer);
        join(waiting).unwrap();
    });
}

#[test]
fn pollable_writer_parks_on_a_full_pipe_until_the_reader_drains_it() {
    const TOTAL: usize = 1 << 20;
    watchdog("pollable full pipe", HANG_LIMIT, || {
        runtime(2).block_on(|| {
            let (reader, writer) = io::pipe().unwrap();
            let data: Arc<Vec<u8>> = Arc::new((0..TOTAL).map(|i| (i % 251) as u8).collect());
            let d = data.clone();
            // Far more than a pipe holds (64 KiB by default): the writer parks again and again.
            let writing = scheduler::spawn(move || {
                let writer = Pollable::new(writer).unwrap();
                writer.writable().unwrap();
                let mut offset = 0;
                while offset < TOTAL {
                    offset += writer.write_with(|mut w| w.write(&d[offset..])).unwrap();
                }
                // Dropping the write end: end of file for the reader.
            });
            let reading = scheduler::spawn(move || {
                let reader = Pollable::new(reader).unwrap();
                let mut got = Vec::with_capacity(TOTAL);
                let mut buf = [0; 4000];
                loop {
                    match reader.read_with(|mut r| r.read(&mut buf)).unwrap() {
                        0 => return got,
                        n => got.extend_from_slice(&buf[..n]),
                    }
                }
            });
            join(writing);
            let got = join(reading);
            assert_eq!(got.len(), TOTAL);
            assert!(got == *data, "the pipe delivered other bytes");
        });
    });
}
