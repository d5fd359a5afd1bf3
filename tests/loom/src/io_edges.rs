//! The edge-count protocol of an I/O registration: an edge-triggered poller reports each
//! arrival of data once, and a reader that found the socket empty must never sleep through
//! the edge of data that arrived after its look, nor keep sleeping once data is there.
//!
//! Mirrors `sched/io/registration.rs` (`edges`, `changed_since`, `enqueue`, `ready`) and the
//! read loop of `net/source.rs` (`run_counted`, `read_stream`'s rule that a read which drained
//! the socket lets the next read wait at once), with `select_one`'s `Mode::Block`. The kernel
//! is an atomic count of bytes; the poller's dispatch of an edge is a step of the writer's
//! thread after it added data, so every interleaving of the dispatch with the reader's steps
//! is explored (an edge dispatched late, before or after the reader queued itself). Waiters
//! are plain threads (`waiter.rs`'s model).

use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

use crate::block_kind::BlockKind;
use crate::check;
use crate::waiter::{Waiter, WaiterQueue};

/// One socket: the kernel's receive queue, and its registration.
struct Socket {
    /// Bytes the kernel holds for the reader.
    kernel: AtomicUsize,
    /// The read direction's edge count. Bumped under `waiters`; read before the "system
    /// call" without it (Acquire/Release as in registration.rs).
    edges: AtomicU64,
    waiters: Mutex<WaiterQueue>,
    /// `read_stream`'s hint: one more than the edge count at which a read drained the socket.
    drained: AtomicU64,
}

impl Socket {
    fn new() -> Socket {
        Socket {
            kernel: AtomicUsize::new(0),
            edges: AtomicU64::new(0),
            waiters: Mutex::new(WaiterQueue::default()),
            drained: AtomicU64::new(0),
        }
    }

    /// The peer writes `n` bytes, then the poller dispatches the edge it reports (later, as
    /// far as the reader can tell): `Registration::ready`.
    fn write_and_dispatch(&self, n: usize) {
        self.kernel.fetch_add(n, Ordering::SeqCst);
        let woken = {
            let mut waiters = self.waiters.lock().unwrap();
            // Release as in registration.rs; under the lock: see its module doc.
            self.edges.fetch_add(1, Ordering::Release);
            waiters.take_all()
        };
        woken.notify_all();
    }

    /// A `read` of at most `len` bytes that waits while the socket is empty: `read_stream`
    /// over `run_counted`, with `wait_ready`'s one-arm select.
    fn read(&self, len: usize) -> usize {
        loop {
            // Acquire as in registration.rs.
            let seen = self.edges.load(Ordering::Acquire);
            let skip = self.drained.load(Ordering::Relaxed) == seen + 1;
            if !skip {
                // The system call: takes what is there, up to `len`.
                let got = self
                    .kernel
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |k| {
                        (k > 0).then(|| k - k.min(len))
                    })
                    .map_or(0, |k| k.min(len));
                let drained = got == 0 || got < len;
                self.drained
                    .store(if drained { seen + 1 } else { 0 }, Ordering::Relaxed);
                if got > 0 {
                    return got;
                }
            }
            // Would block: queue a waiter unless an edge came since `seen`.
            let waiter = {
                let mut waiters = self.waiters.lock().unwrap();
                if self.edges.load(Ordering::Acquire) != seen {
                    continue;
                }
                let waiter = Waiter::for_thread(BlockKind::Other);
                waiters.push(&waiter, 0);
                waiter
            };
            assert_eq!(waiter.wait_thread_until(None), Some(0));
        }
    }
}

/// One write after the reader found the socket empty, or before: the reader gets the byte,
/// whenever the edge is dispatched.
#[test]
fn a_reader_never_sleeps_through_an_edge() {
    check(|| {
        let socket = Arc::new(Socket::new());
        let writer = {
            let socket = socket.clone();
            thread::spawn(move || socket.write_and_dispatch(1))
        };
        assert_eq!(socket.read(4), 1);
        writer.join().unwrap();
    });
}

/// A short read drains the socket, so the next read waits for the next edge without a system
/// call: the second write's edge must still wake it, and bytes that came with the first edge
/// but after the short read are not stranded.
#[test]
fn a_read_after_a_short_one_waits_for_the_next_edge() {
    check(|| {
        let socket = Arc::new(Socket::new());
        let writer = {
            let socket = socket.clone();
            thread::spawn(move || {
                socket.write_and_dispatch(1);
                socket.write_and_dispatch(1);
            })
        };
        let mut total = socket.read(4);
        if total < 2 {
            total += socket.read(4);
        }
        assert_eq!(total, 2);
        writer.join().unwrap();
    });
}
