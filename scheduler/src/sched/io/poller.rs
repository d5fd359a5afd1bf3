//! One readiness poller: `mio`'s epoll instance, the registrations it reports, and the count
//! of goroutines waiting on it. Polled by its owner (a worker, or the global poller's
//! thread), and without blocking by the monitor for a worker busy with one goroutine.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use parking_lot::{Mutex, MutexGuard};

use super::registration::Registration;

/// The token of the poller's own waker.
const WAKER: Token = Token(usize::MAX);

/// How many events one poll takes at most; more wait for the next.
const EVENTS_PER_POLL: usize = 256;

/// What polling needs, reused from poll to poll.
struct Polling {
    poll: Poll,
    events: Events,
    /// The registrations an event named, with its readiness: dispatched once the table's
    /// lock is released.
    ready: Vec<(Arc<Registration>, bool, bool, bool)>,
}

/// A readiness poller and what it reports on.
pub(crate) struct Poller {
    /// The epoll instance and the owner's buffers. Locked by the owner to poll, and tried by
    /// the monitor (see [`try_poll_now`](Poller::try_poll_now)).
    poll: Mutex<Polling>,
    /// Registers descriptors from any thread.
    registry: Registry,
    /// Ends the owner's wait in [`poll`](Self::poll) from another thread.
    waker: Waker,
    /// The registrations by token, holding them alive while they are registered, so that an
    /// event already taken from the kernel never finds a freed one.
    sources: Mutex<HashMap<usize, Arc<Registration>, BuildHasherDefault<TokenHasher>>>,
    /// Waiters of this poller waiting for an edge now. A worker's poller: changed and read by
    /// the worker's thread only (its goroutines never change thread), so Relaxed; the monitor
    /// reads it too, as a hint whether a poll is worth trying (a stale value costs one
    /// empty poll, or delays one poll by a tick). The
    /// process-wide poller: changed by every waiting thread, read by the deadlock check after
    /// a SeqCst load that saw the waiting goroutine's worker asleep (which orders the
    /// increment the goroutine made before it parked).
    waiting: AtomicUsize,
}

impl Poller {
    pub(crate) fn new() -> io::Result<Arc<Poller>> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = Waker::new(&registry, WAKER)?;
        Ok(Arc::new(Poller {
            poll: Mutex::new(Polling {
                poll,
                events: Events::with_capacity(EVENTS_PER_POLL),
                ready: Vec::with_capacity(EVENTS_PER_POLL),
            }),
            registry,
            waker,
            sources: Mutex::new(HashMap::default()),
            waiting: AtomicUsize::new(0),
        }))
    }

    /// Adds `registration`'s descriptor, edge-triggered, for both directions. An edge for a
    /// descriptor that is ready already is reported at once.
    pub(crate) fn register(&self, registration: &Arc<Registration>) -> io::Result<()> {
        let id = registration.id();
        self.sources.lock().insert(id, registration.clone());
        let fd: RawFd = registration.fd();
        let result = self.registry.register(
            &mut SourceFd(&fd),
            Token(id),
            Interest::READABLE | Interest::WRITABLE,
        );
        if result.is_err() {
            self.sources.lock().remove(&id);
        }
        result
    }

    /// Removes `registration`'s descriptor; its events still in flight find nothing.
    pub(crate) fn deregister(&self, registration: &Registration) {
        let fd: RawFd = registration.fd();
        // An error means the descriptor is not in this epoll instance (any more): nothing to
        // undo.
        let _ = self.registry.deregister(&mut SourceFd(&fd));
        self.sources.lock().remove(&registration.id());
    }

    /// Waits up to `timeout` (rounded up to a millisecond by epoll; `None` for no limit) for
    /// events, or for [`wake`](Self::wake), and dispatches them to their registrations.
    /// Returns how many descriptors were reported. Called by the owner only.
    pub(crate) fn poll(&self, timeout: Option<Duration>) -> usize {
        self.poll_locked(self.poll.lock(), timeout)
    }

    fn poll_locked(&self, mut guard: MutexGuard<'_, Polling>, timeout: Option<Duration>) -> usize {
        let Polling {
            poll,
            events,
            ready,
        } = &mut *guard;
        match poll.poll(events, timeout) {
            Ok(()) => {}
            // A signal: return as for a spurious wake-up; the caller looks again.
            Err(err) if err.kind() == io::ErrorKind::Interrupted => return 0,
            Err(err) => panic!("scheduler: polling for readiness failed: {err}"),
        }
        {
            let sources = self.sources.lock();
            for event in events.iter() {
                if event.token() == WAKER {
                    continue;
                }
                if let Some(registration) = sources.get(&event.token().0) {
                    let closed = event.is_read_closed() || event.is_error();
                    let read = event.is_readable() || closed;
                    let write = event.is_writable() || event.is_write_closed() || event.is_error();
                    ready.push((registration.clone(), read, write, closed));
                }
            }
        }
        // Under the poll lock (only this poller's owner, or the monitor by `try_lock`, takes
        // it, and a wake takes no poller's lock), so the buffer is reused.
        let n = ready.len();
        for (registration, read, write, closed) in ready.drain(..) {
            registration.ready(read, write, closed);
        }
        n
    }

    /// Polls without blocking for the owner, from another thread (the monitor, for a worker
    /// busy with one goroutine), unless the owner is polling now. Returns how many
    /// descriptors were reported.
    pub(crate) fn try_poll_now(&self) -> usize {
        match self.poll.try_lock() {
            Some(guard) => self.poll_locked(guard, Some(Duration::ZERO)),
            None => 0,
        }
    }

    /// Ends the owner's current (or next) [`poll`](Self::poll) at once.
    pub(crate) fn wake(&self) {
        // Fails only if the eventfd's counter is full, and then a wake is pending anyway.
        let _ = self.waker.wake();
    }

    /// Counts a waiter waiting for an edge here until the guard drops.
    pub(crate) fn waiting(&self) -> Waiting<'_> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(self)
    }

    /// Whether a waiter waits for an edge here: a worker then sleeps in its poller.
    pub(crate) fn has_waiters(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) > 0
    }
}

/// A goroutine waiting on a [`Poller`]: see [`Poller::waiting`].
pub(crate) struct Waiting<'a>(&'a Poller);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Hashes a token, a counter no one outside chooses, with one multiplication (Fibonacci
/// hashing) instead of SipHash: the table is looked up once per event.
#[derive(Default)]
struct TokenHasher(u64);

impl Hasher for TokenHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 << 8 | u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_usize(&mut self, token: usize) {
        self.0 = (token as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
