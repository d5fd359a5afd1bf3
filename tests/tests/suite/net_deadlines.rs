//! `scheduler::net` deadlines, time-outs and contexts: on reads, writes and accepts, set
//! before a wait or while it is under way. Loopback only.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use scheduler::context::{CancelHandle, Context, ContextError};
use scheduler::net::{TcpListener, TcpStream, context_error};
use scheduler::{JoinHandle, Runtime};
use scheduler_tests::{HANG_LIMIT, runtime, settle, watchdog};

use super::net_tcp::{LATE, SHORT, join, tcp_pair};

/// Asserts that `result` failed with `TimedOut` no sooner than `at_least` after `start`, and
/// not [`LATE`].
pub(super) fn assert_timed_out<T: std::fmt::Debug>(
    what: &str,
    result: io::Result<T>,
    start: Instant,
    at_least: Duration,
) -> io::Error {
    let elapsed = start.elapsed();
    let err = result.expect_err(what);
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{what}: {err}");
    assert!(
        elapsed >= at_least,
        "{what}: timed out after {elapsed:?}, before {at_least:?}"
    );
    assert!(elapsed < LATE, "{what}: timed out only after {elapsed:?}");
    err
}

/// Cancels `cancel` from a goroutine of `rt` (not the waiter's), returning when it did.
fn cancel_from_a_goroutine(rt: &Runtime, cancel: CancelHandle) -> Instant {
    join(rt.spawn(move || {
        let now = Instant::now();
        cancel.cancel();
        now
    }))
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
        let cancelled_at = cancel_from_a_goroutine(&rt, cancel);
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
        let cancelled_at = cancel_from_a_goroutine(&rt, cancel);
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
