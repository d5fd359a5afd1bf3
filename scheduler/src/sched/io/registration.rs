//! One file descriptor as the pollers see it: an edge count and a queue of waiters per
//! direction, and the pollers it is registered with.
//!
//! The wait protocol, which loses no edge although the registration is edge-triggered: an
//! operation reads the direction's edge count ([`Registration::edges`]) *before* its system
//! call; if the call would block, it takes the registration's lock and queues its waiter only
//! if the count is unchanged ([`Registration::changed_since`]), else it tries again. A poller
//! that sees an edge bumps the count and takes the queue under the same lock
//! ([`Registration::ready`]). An edge that comes after the system call found nothing is thus
//! either counted before the waiter looks (it retries) or finds the waiter queued (it is
//! woken); one that came before the call is what the call would have seen.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::poller::Poller;
use crate::wait::lock::{Locked, RawLock};
use crate::wait::waiter::{Waiter, WaiterQueue};

/// Which way an operation waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Until the descriptor is readable (or has an error, or the peer hung up).
    Read = 0,
    /// Until it is writable (or has an error, or hung up).
    Write = 1,
}

/// One registered file descriptor. Owned by the I/O object that owns the descriptor (and by
/// the pollers it is registered with, until [`deregister`](Self::deregister)).
pub(crate) struct Registration {
    /// The token the pollers report it with: unique for the process's life, so a stale event
    /// for a deregistered descriptor finds nothing.
    id: usize,
    fd: RawFd,
    /// Edges seen, per [`Direction`]. Bumped under `waiters`' lock; read before a system call
    /// without it (Acquire pairs with the bump's Release, though only the count matters).
    edges: [AtomicU64; 2],
    /// Waiters per [`Direction`], each with its token.
    waiters: Locked<[WaiterQueue; 2]>,
    /// Set (for good) once a poller reported that the peer closed its writing half or an
    /// error: a read will not block again, whatever the edge count says (see
    /// [`is_read_closed`](Self::is_read_closed)). Release/Acquire: set before the edge that
    /// reports it is counted.
    read_closed: AtomicBool,
    /// The pollers this descriptor is registered with: usually one.
    pollers: Mutex<Vec<Arc<Poller>>>,
    /// The address of the poller registered last, so that a waiter finds its own worker's
    /// poller there without the lock (a registered poller lives as long as the registration,
    /// so its address cannot be reused meanwhile). Relaxed: a stale value only sends the
    /// waiter to the lock.
    last_poller: AtomicUsize,
}

impl Registration {
    /// A registration for `fd`, in no poller yet.
    pub(crate) fn new(fd: RawFd) -> Arc<Registration> {
        static NEXT_ID: AtomicUsize = AtomicUsize::new(0);
        Arc::new(Registration {
            // Relaxed: only uniqueness matters.
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            fd,
            edges: [AtomicU64::new(0), AtomicU64::new(0)],
            waiters: Locked::new([WaiterQueue::new(), WaiterQueue::new()]),
            read_closed: AtomicBool::new(false),
            pollers: Mutex::new(Vec::new()),
            last_poller: AtomicUsize::new(0),
        })
    }

    pub(crate) fn id(&self) -> usize {
        self.id
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd
    }

    /// The direction's edge count, read before the system call that may block.
    #[inline]
    pub(crate) fn edges(&self, direction: Direction) -> u64 {
        // Acquire: see the field.
        self.edges[direction as usize].load(Ordering::Acquire)
    }

    /// The lock a waiter holds while it checks [`changed_since`](Self::changed_since) and
    /// queues itself.
    pub(crate) fn lock(&self) -> &RawLock {
        self.waiters.raw()
    }

    /// Whether an edge came since the count was `seen`.
    pub(crate) fn changed_since(&self, direction: Direction, seen: u64) -> bool {
        self.edges(direction) != seen
    }

    /// Queues `waiter` for the next edge in `direction`.
    ///
    /// # Safety
    /// The caller holds [`lock`](Self::lock).
    pub(crate) unsafe fn enqueue(&self, direction: Direction, waiter: &Arc<Waiter>, token: usize) {
        // SAFETY: the caller holds the lock; the reference ends with this call.
        unsafe { self.waiters.data_mut()[direction as usize].push(waiter, token) };
    }

    /// Takes `waiter` out of the queue if it is still there.
    ///
    /// # Safety
    /// The caller holds [`lock`](Self::lock).
    pub(crate) unsafe fn withdraw(&self, direction: Direction, waiter: &Arc<Waiter>) {
        // SAFETY: the caller holds the lock; the reference ends with this call.
        unsafe { self.waiters.data_mut()[direction as usize].withdraw(waiter) };
    }

    /// Whether the peer closed its writing half (or the descriptor has an error), as a
    /// poller reported: reads return at once from then on.
    pub(crate) fn is_read_closed(&self) -> bool {
        self.read_closed.load(Ordering::Acquire)
    }

    /// Counts an edge in each direction that is ready and wakes its waiters: called by a
    /// poller for an event (`read_closed` when the peer closed its writing half or an error
    /// came), and by a deadline's change (the waiters look at it again).
    pub(crate) fn ready(&self, read: bool, write: bool, read_closed: bool) {
        if read_closed {
            self.read_closed.store(true, Ordering::Release);
        }
        // Usually one waiter per direction: taken out alone, the queue keeps its buffer.
        let mut first: [Option<(Arc<Waiter>, usize)>; 2] = [None, None];
        let mut rest = [WaiterQueue::new(), WaiterQueue::new()];
        {
            let mut waiters = self.waiters.lock();
            for (direction, ready) in [read, write].into_iter().enumerate() {
                if ready {
                    // Release: see the field. Under the lock: see the module doc.
                    self.edges[direction].fetch_add(1, Ordering::Release);
                    first[direction] = waiters[direction].pop_first();
                    if !waiters[direction].is_empty() {
                        rest[direction] = waiters[direction].take_all();
                    }
                }
            }
        }
        for (waiter, token) in first.into_iter().flatten() {
            waiter.notify(token);
        }
        for queue in rest {
            queue.notify_all();
        }
    }

    /// Registers the descriptor with `poller` unless it is already.
    pub(crate) fn register_with(self: &Arc<Self>, poller: &Arc<Poller>) -> io::Result<()> {
        let address = Arc::as_ptr(poller) as usize;
        if self.last_poller.load(Ordering::Relaxed) == address {
            return Ok(());
        }
        let mut pollers = self.pollers.lock();
        if !pollers.iter().any(|p| Arc::ptr_eq(p, poller)) {
            poller.register(self)?;
            pollers.push(poller.clone());
        }
        self.last_poller.store(address, Ordering::Relaxed);
        Ok(())
    }

    /// Takes the descriptor out of every poller. Must be called before it is closed (a
    /// duplicate of it would keep it in the kernel's interest lists otherwise).
    pub(crate) fn deregister(&self) {
        self.last_poller.store(0, Ordering::Relaxed);
        for poller in self.pollers.lock().drain(..) {
            poller.deregister(self);
        }
    }
}
