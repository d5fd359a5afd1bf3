//! The goroutine dump names the user's line for every blocking call: a goroutine blocks on
//! each primitive, and its `waits_at()` must be the line of that call in this file, not a
//! line inside the crate. Also `spawned_at()`.
//!
//! Each expected line is taken with `line!()` in the statement of the call (a tuple on one
//! line), or as `line!() + n` right above it.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scheduler::context::Context;
use scheduler::net::{TcpListener, TcpStream, UdpSocket, UnixStream};
use scheduler::sync::{Condvar, Mutex, OnceLock, RwLock, Semaphore, SemaphorePermit};
use scheduler::{Runtime, WaitGroup, WaitReason, chan, select, time};
use scheduler_tests::{HANG_LIMIT, blocked_at, runtime, watchdog};

/// Long enough never to end during a test: those waits are ended by the test, or cancelled.
const FOREVER: Duration = Duration::from_secs(3600);

/// Asserts that goroutine `id` of `rt` blocks on `reason` at `line` of this file.
#[track_caller]
fn assert_waits_at(rt: &Runtime, id: u64, reason: WaitReason, line: u32) {
    let site = blocked_at(rt, id, reason);
    assert!(
        site.file().ends_with("wait_sites.rs"),
        "goroutine {id} waits at {site}, not in this file (expected line {line})"
    );
    assert_eq!(site.line(), line, "goroutine {id} waits at {site}");
}

/// Ends a test whose goroutines are left blocked for good (sleeps): they are cancelled.
fn cancel_the_rest(rt: Runtime) {
    assert!(
        rt.shutdown_timeout(Duration::ZERO).is_err(),
        "some were left"
    );
}

#[test]
fn channel_send_and_recv_wait_at_the_call() {
    watchdog("channel send and recv", HANG_LIMIT, || {
        let rt = runtime(1);
        let (tx, rx) = chan::bounded::<u32>(0);
        let (line, h) = (line!(), rt.spawn(move || rx.recv()));
        assert_waits_at(&rt, h.id(), WaitReason::ChannelReceive, line);
        tx.send(1).unwrap();
        assert_eq!(h.join().unwrap(), Ok(1));

        let (tx, rx) = chan::bounded::<u32>(0);
        let (line, h) = (line!(), rt.spawn(move || tx.send(2)));
        assert_waits_at(&rt, h.id(), WaitReason::ChannelSend, line);
        assert_eq!(rx.recv(), Ok(2));
        h.join().unwrap().unwrap();
    });
}

#[test]
fn timed_channel_waits_wait_at_the_call() {
    watchdog("timed channel waits", HANG_LIMIT, || {
        let rt = runtime(1);
        let (tx, rx) = chan::bounded::<u32>(0);
        let (line, wait) = (line!(), move || rx.recv_timeout(FOREVER).map(|_| ()));
        let h = rt.spawn(wait);
        assert_waits_at(&rt, h.id(), WaitReason::ChannelReceive, line);
        tx.send(1).unwrap();
        h.join().unwrap().unwrap();

        let (tx, rx) = chan::bounded::<u32>(0);
        let deadline = Instant::now() + FOREVER;
        let (line, wait) = (line!(), move || rx.recv_deadline(deadline).is_ok());
        let h = rt.spawn(wait);
        assert_waits_at(&rt, h.id(), WaitReason::ChannelReceive, line);
        tx.send(1).unwrap();
        assert!(h.join().unwrap());

        let (tx, rx) = chan::bounded::<u32>(0);
        let (line, wait) = (line!(), move || tx.send_timeout(3, FOREVER).is_ok());
        let h = rt.spawn(wait);
        assert_waits_at(&rt, h.id(), WaitReason::ChannelSend, line);
        assert_eq!(rx.recv(), Ok(3));
        assert!(h.join().unwrap());

        let (tx, rx) = chan::bounded::<u32>(0);
        let (line, wait) = (line!(), move || tx.send_deadline(4, deadline).is_ok());
        let h = rt.spawn(wait);
        assert_waits_at(&rt, h.id(), WaitReason::ChannelSend, line);
        assert_eq!(rx.recv(), Ok(4));
        assert!(h.join().unwrap());
    });
}

#[test]
fn context_waits_wait_at_the_call() {
    watchdog("context channel waits", HANG_LIMIT, || {
        let rt = runtime(1);
        let (ctx, cancel) = Context::background().with_cancel();
        let (_tx, rx) = chan::bounded::<u32>(0);
        let c = ctx.clone();
        let (line, recv) = (line!(), rt.spawn(move || rx.recv_ctx(&c).is_err()));
        assert_waits_at(&rt, recv.id(), WaitReason::ChannelReceive, line);
        let (tx, _rx) = chan::bounded::<u32>(0);
        let c = ctx.clone();
        let (line, send) = (line!(), rt.spawn(move || tx.send_ctx(5, &c).is_err()));
        assert_waits_at(&rt, send.id(), WaitReason::ChannelSend, line);
        let done = ctx.done();
        let (line, h) = (line!(), rt.spawn(move || done.recv().is_err()));
        assert_waits_at(&rt, h.id(), WaitReason::ChannelReceive, line);
        cancel.cancel();
        assert!(recv.join().unwrap() && send.join().unwrap() && h.join().unwrap());
    });
}

#[test]
fn channel_iterators_wait_at_the_line_that_made_them() {
    watchdog("channel iterators", HANG_LIMIT, || {
        let rt = runtime(1);
        let (tx, rx) = chan::bounded::<u32>(0);
        let line = line!() + 3;
        let h = rt.spawn(move || {
            let mut sum = 0;
            for v in &rx {
                sum += v;
            }
            sum
        });
        assert_waits_at(&rt, h.id(), WaitReason::ChannelReceive, line);
        tx.send(1).unwrap();
        drop(tx);
        assert_eq!(h.join().unwrap(), 1);

        let (tx, rx) = chan::bounded::<u32>(0);
        let (line, h) = (line!(), rt.spawn(move || rx.iter().sum::<u32>()));
        assert_waits_at(&rt, h.id(), WaitReason::ChannelReceive, line);
        drop(tx);
        assert_eq!(h.join().unwrap(), 0);

        let (tx, rx) = chan::bounded::<u32>(0);
        let (line, h) = (line!(), rt.spawn(move || rx.into_iter().count()));
        assert_waits_at(&rt, h.id(), WaitReason::ChannelReceive, line);
        drop(tx);
        assert_eq!(h.join().unwrap(), 0);
    });
}

#[test]
fn select_waits_at_the_macro() {
    watchdog("select!", HANG_LIMIT, || {
        let rt = runtime(1);
        let (tx, rx) = chan::bounded::<u32>(0);
        let (_quit_tx, quit) = chan::bounded::<()>(0);
        let line = line!() + 2;
        let h = rt.spawn(move || {
            select! {
                recv(rx) -> v => v.is_ok(),
                recv(quit) -> _ => false,
            }
        });
        assert_waits_at(&rt, h.id(), WaitReason::Select, line);
        tx.send(1).unwrap();
        assert!(h.join().unwrap());
    });
}

#[test]
fn time_waits_wait_at_the_call() {
    watchdog("sleeps and timer channels", HANG_LIMIT, || {
        let rt = runtime(1);
        let (line, h) = (line!(), rt.spawn(|| time::sleep(FOREVER)));
        assert_waits_at(&rt, h.id(), WaitReason::Sleep, line);
        let until = Instant::now() + FOREVER;
        let (line, h) = (line!(), rt.spawn(move || time::sleep_until(until)));
        assert_waits_at(&rt, h.id(), WaitReason::Sleep, line);
        let (ctx, cancel) = Context::background().with_cancel();
        let (line, wait) = (line!(), move || time::sleep_ctx(FOREVER, &ctx).is_err());
        let h = rt.spawn(wait);
        assert_waits_at(&rt, h.id(), WaitReason::Sleep, line);
        cancel.cancel();
        assert!(h.join().unwrap());
        let (line, h) = (line!(), rt.spawn(|| time::after(FOREVER).recv().is_ok()));
        assert_waits_at(&rt, h.id(), WaitReason::ChannelReceive, line);
        let (line, h) = (line!(), rt.spawn(|| time::tick(FOREVER).recv().is_ok()));
        assert_waits_at(&rt, h.id(), WaitReason::ChannelReceive, line);
        cancel_the_rest(rt);
    });
}

#[test]
fn locks_wait_at_the_call() {
    watchdog("Mutex and RwLock", HANG_LIMIT, || {
        let rt = runtime(1);
        let mutex = Arc::new(Mutex::new(0));
        let held = mutex.lock();
        let m = mutex.clone();
        let (line, h) = (line!(), rt.spawn(move || *m.lock() += 1));
        assert_waits_at(&rt, h.id(), WaitReason::Mutex, line);
        drop(held);
        h.join().unwrap();

        let lock = Arc::new(RwLock::new(0));
        let reading = lock.read();
        let l = lock.clone();
        let (line, h) = (line!(), rt.spawn(move || *l.write() += 1));
        assert_waits_at(&rt, h.id(), WaitReason::RwLock, line);
        drop(reading);
        h.join().unwrap();

        let writing = lock.write();
        let l = lock.clone();
        let (line, h) = (line!(), rt.spawn(move || *l.read()));
        assert_waits_at(&rt, h.id(), WaitReason::RwLock, line);
        drop(writing);
        assert_eq!(h.join().unwrap(), 1);
    });
}

#[test]
fn condvar_waits_wait_at_the_call() {
    watchdog("Condvar", HANG_LIMIT, || {
        let rt = runtime(1);
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let p = pair.clone();
        let line = line!() + 3;
        let h = rt.spawn(move || {
            let (ready, cond) = &*p;
            let guard = cond.wait_while(ready.lock(), |ready| !*ready);
            *guard
        });
        assert_waits_at(&rt, h.id(), WaitReason::Condvar, line);
        *pair.0.lock() = true;
        pair.1.notify_all();
        assert!(h.join().unwrap());

        let p = pair.clone();
        let line = line!() + 3;
        let h = rt.spawn(move || {
            let (lock, cond) = &*p;
            let (_guard, timed_out) = cond.wait_timeout(lock.lock(), FOREVER);
            timed_out
        });
        assert_waits_at(&rt, h.id(), WaitReason::Condvar, line);
        pair.1.notify_all();
        assert!(!h.join().unwrap());

        let p = pair.clone();
        let line = line!() + 3;
        let h = rt.spawn(move || {
            let (lock, cond) = &*p;
            drop(cond.wait(lock.lock()));
        });
        assert_waits_at(&rt, h.id(), WaitReason::Condvar, line);
        pair.1.notify_all();
        h.join().unwrap();
    });
}

/// Keeps a permit taken for good, so that the next acquire finds none.
fn keep(permit: SemaphorePermit<'_>) {
    permit.forget();
}

#[test]
fn semaphore_waits_wait_at_the_call() {
    watchdog("Semaphore", HANG_LIMIT, || {
        let rt = runtime(1);
        let sem = Arc::new(Semaphore::new(0));
        let s = sem.clone();
        let (line, h) = (line!(), rt.spawn(move || keep(s.acquire())));
        assert_waits_at(&rt, h.id(), WaitReason::Semaphore, line);
        sem.add_permits(1);
        h.join().unwrap();

        let s = sem.clone();
        let (line, wait) = (line!(), move || s.acquire_timeout(FOREVER).map(keep));
        let h = rt.spawn(wait);
        assert_waits_at(&rt, h.id(), WaitReason::Semaphore, line);
        sem.add_permits(1);
        assert_eq!(h.join().unwrap(), Some(()));

        let s = sem.clone();
        let until = Instant::now() + FOREVER;
        let (line, wait) = (line!(), move || s.acquire_deadline(until).map(keep));
        let h = rt.spawn(wait);
        assert_waits_at(&rt, h.id(), WaitReason::Semaphore, line);
        sem.add_permits(1);
        assert_eq!(h.join().unwrap(), Some(()));

        let s = sem.clone();
        let (ctx, cancel) = Context::background().with_cancel();
        let (line, h) = (line!(), rt.spawn(move || s.acquire_ctx(&ctx).is_err()));
        assert_waits_at(&rt, h.id(), WaitReason::Semaphore, line);
        cancel.cancel();
        assert!(h.join().unwrap());
    });
}

#[test]
fn once_lock_waits_at_the_call() {
    watchdog("OnceLock", HANG_LIMIT, || {
        let rt = runtime(1);
        let cell = Arc::new(OnceLock::new());
        let (release, hold) = chan::bounded::<u32>(0);
        let c = cell.clone();
        let first = rt.spawn(move || *c.get_or_init(|| hold.recv().unwrap()));
        let c = cell.clone();
        let (line, h) = (line!(), rt.spawn(move || *c.get_or_init(|| 0)));
        assert_waits_at(&rt, h.id(), WaitReason::Once, line);
        let c = cell.clone();
        let (line2, h2) = (line!(), rt.spawn(move || c.set(9).is_err()));
        assert_waits_at(&rt, h2.id(), WaitReason::Once, line2);
        release.send(7).unwrap();
        assert_eq!(first.join().unwrap(), 7);
        assert_eq!(h.join().unwrap(), 7);
        assert!(h2.join().unwrap());
    });
}

#[test]
fn wait_group_waits_wait_at_the_call() {
    watchdog("WaitGroup", HANG_LIMIT, || {
        let rt = runtime(1);
        let wg = WaitGroup::new();
        wg.add(1);
        let w = wg.clone();
        let (line, h) = (line!(), rt.spawn(move || w.wait()));
        assert_waits_at(&rt, h.id(), WaitReason::WaitGroup, line);
        let w = wg.clone();
        let (ctx, _cancel) = Context::background().with_cancel();
        let (line, h2) = (line!(), rt.spawn(move || w.wait_ctx(&ctx).is_ok()));
        assert_waits_at(&rt, h2.id(), WaitReason::WaitGroup, line);
        wg.done();
        h.join().unwrap();
        assert!(h2.join().unwrap());
    });
}

#[test]
fn joins_wait_at_the_call() {
    watchdog("JoinHandle::join", HANG_LIMIT, || {
        let rt = runtime(1);
        let (tx, rx) = chan::bounded::<u32>(0);
        let target = rt.spawn(move || rx.recv().unwrap());
        // Started and blocked, so that the join below cannot run it inline.
        blocked_at(&rt, target.id(), WaitReason::ChannelReceive);
        let (line, h) = (line!(), rt.spawn(move || target.join().unwrap()));
        assert_waits_at(&rt, h.id(), WaitReason::Join, line);
        tx.send(3).unwrap();
        assert_eq!(h.join().unwrap(), 3);

        let (tx, rx) = std::sync::mpsc::channel::<u32>();
        let job = rt.spawn_blocking(move || rx.recv().unwrap());
        let (line, h) = (line!(), rt.spawn(move || job.join().unwrap()));
        assert_waits_at(&rt, h.id(), WaitReason::BlockingJob, line);
        tx.send(4).unwrap();
        assert_eq!(h.join().unwrap(), 4);
    });
}

#[test]
fn a_spawn_waiting_for_room_waits_at_the_spawn() {
    watchdog("spawn under max_goroutines", HANG_LIMIT, || {
        let rt = Runtime::builder()
            .procs(1)
            .max_goroutines(2)
            .build()
            .unwrap();
        let (tx, rx) = chan::bounded::<()>(0);
        let holder = rt.spawn(move || rx.recv().unwrap());
        blocked_at(&rt, holder.id(), WaitReason::ChannelReceive);
        // This one and the holder fill the runtime: its spawn waits for room.
        let line = line!() + 2;
        let h = rt.spawn(|| {
            scheduler::spawn(|| ()).join().unwrap();
        });
        assert_waits_at(&rt, h.id(), WaitReason::Semaphore, line);
        tx.send(()).unwrap();
        holder.join().unwrap();
        h.join().unwrap();
    });
}

#[test]
fn socket_waits_wait_at_the_call() {
    watchdog("sockets", HANG_LIMIT, || {
        let rt = runtime(1);
        let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = listener.local_addr().unwrap();
        let l = listener.clone();
        let (line, wait) = (line!(), move || l.accept().map(|(s, _)| s).unwrap());
        let h = rt.spawn(wait);
        assert_waits_at(&rt, h.id(), WaitReason::Io, line);
        let client = rt
            .spawn(move || TcpStream::connect(addr).unwrap())
            .join()
            .unwrap();
        let server = h.join().unwrap();

        let line = line!() + 3;
        let h = rt.spawn(move || {
            let mut buf = [0u8; 4];
            (&server).read_exact(&mut buf).map(|()| buf)
        });
        assert_waits_at(&rt, h.id(), WaitReason::Io, line);
        std::io::Write::write_all(&mut &client, b"ping").unwrap();
        assert_eq!(h.join().unwrap().unwrap(), *b"ping");

        let (a, b) = UnixStream::pair().unwrap();
        let line = line!() + 3;
        let h = rt.spawn(move || {
            let mut buf = [0u8; 1];
            let n = (&a).read(&mut buf);
            n.unwrap()
        });
        assert_waits_at(&rt, h.id(), WaitReason::Io, line);
        std::io::Write::write_all(&mut &b, b"x").unwrap();
        assert_eq!(h.join().unwrap(), 1);

        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = socket.local_addr().unwrap();
        let line = line!() + 3;
        let h = rt.spawn(move || {
            let mut buf = [0u8; 8];
            socket.recv_from(&mut buf).unwrap().0
        });
        assert_waits_at(&rt, h.id(), WaitReason::Io, line);
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"dgram", to).unwrap();
        assert_eq!(h.join().unwrap(), 5);
    });
}

#[test]
fn spawned_at_is_the_line_of_the_spawn() {
    watchdog("spawned_at", HANG_LIMIT, || {
        let rt = runtime(1);
        let (tx, rx) = chan::bounded::<()>(0);
        let (line, h) = (line!(), rt.spawn(move || rx.recv().unwrap()));
        blocked_at(&rt, h.id(), WaitReason::ChannelReceive);
        let dump = rt.goroutines();
        let info = dump.get(h.id()).expect("a blocked goroutine is live");
        let site = info.spawned_at();
        assert!(site.file().ends_with("wait_sites.rs"), "spawned at {site}");
        assert_eq!(site.line(), line, "spawned at {site}");
        tx.send(()).unwrap();
        h.join().unwrap();
    });
}
