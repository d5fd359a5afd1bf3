//! `scheduler::net` and the runtime: shutdown with goroutines parked on sockets, readiness
//! beside a goroutine that computes, and the `blocked.io` metric. Loopback only.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::panic;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use scheduler::context::{Context, ContextError};
use scheduler::net::{TcpListener, TcpStream, context_error};
use scheduler::{Cancelled, JoinHandle};
use scheduler_tests::{
    DropCounter, HANG_LIMIT, PROMPT_LIMIT, SPIN_LIMIT, busy_work, describe_payload, runtime,
    settle, settle_parked, watchdog, yield_until,
};

use super::net_tcp::{LATE, SHORT, SHUTDOWN_WAIT, echo_server, join, pattern, tcp_pair};

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
fn a_runtime_waiting_only_on_a_socket_burns_no_cpu() {
    let rt = runtime(1);
    let (client, server) = rt.block_on(tcp_pair);
    let reader = rt.spawn(move || {
        let mut byte = [0; 1];
        (&server).read(&mut byte).map(|n| (n, byte[0]))
    });
    settle(&rt, "the reader parks on its socket", |m| m.blocked.io == 1);
    let before = rt.metrics().workers[0].clone();
    // The measurement window: the worker sleeps in its poller the whole time, the monitor
    // with it. A poller that woke up for nothing would show as parks and busy time.
    thread::sleep(3 * SHORT);
    let after = rt.metrics().workers[0].clone();
    (&client).write_all(&[7]).unwrap();
    assert_eq!(join(reader).unwrap(), (1, 7));
    let busy = after.busy.saturating_sub(before.busy);
    assert!(
        busy < SHORT / 2,
        "the worker was busy for {busy:?} of {:?} while its only goroutine waited for a socket",
        3 * SHORT
    );
    assert!(
        after.parks - before.parks <= 1,
        "the worker woke {} times while nothing happened",
        after.parks - before.parks
    );
}

#[test]
fn a_socket_outlives_its_runtime() {
    let (client, server) = {
        let rt = runtime(2);
        rt.block_on(tcp_pair)
    };
    // The runtime is gone: its pollers live on for the sockets registered there, and this
    // thread's waits use the process-wide poller. Nothing the test owns was closed.
    let writer = thread::spawn(move || {
        (&client).write_all(b"after").unwrap();
        client
    });
    let mut buf = [0; 5];
    (&server).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"after");
    drop(writer.join().unwrap());
    assert_eq!(
        (&server).read(&mut buf).unwrap(),
        0,
        "end of file once the client is gone"
    );
}
