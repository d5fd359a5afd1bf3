//! A non-blocking descriptor that goroutines wait on: its registration with the pollers, its
//! deadlines and time-outs, and the loop every operation runs (try the system call; if it
//! would block, wait for the next edge; try again).

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::ready::{timed_out, wait_ready};
use crate::context::Context;
use crate::sched::io::registration::{Direction, Registration};
use crate::wait::Site;

/// `io` (in non-blocking mode) with what its waiters need. Deregisters the descriptor before
/// `io` closes it.
pub(crate) struct Source<S: AsRawFd> {
    registration: Arc<Registration>,
    /// Per [`Direction`]: the deadline set by `set_*_deadline`, and the time-out set by
    /// `set_*_timeout`, both as [`Nanos`]; 0 for none. Relaxed: each is one independent value,
    /// and a change is announced to the waiters through the registration.
    deadlines: [AtomicU64; 2],
    timeouts: [AtomicU64; 2],
    /// Set by `set_nonblocking(true)`: an operation that would block fails with `WouldBlock`
    /// instead of waiting. Relaxed: a switch that publishes no other data.
    nonblocking: AtomicBool,
    /// One more than the read edge count at which the last read found the socket drained
    /// (see [`read_stream`](Self::read_stream)); 0 when it did not.
    drained: AtomicU64,
    io: S,
}

impl<S: AsRawFd> Source<S> {
    /// Wraps `io`, which must be in non-blocking mode already.
    pub(crate) fn new(io: S) -> Source<S> {
        let registration = Registration::new(io.as_raw_fd());
        Source {
            registration,
            deadlines: [AtomicU64::new(0), AtomicU64::new(0)],
            timeouts: [AtomicU64::new(0), AtomicU64::new(0)],
            nonblocking: AtomicBool::new(false),
            drained: AtomicU64::new(0),
            io,
        }
    }

    pub(crate) fn get_ref(&self) -> &S {
        &self.io
    }

    /// Takes `io` back out, deregistered (still in non-blocking mode).
    pub(crate) fn into_inner(self) -> S {
        self.registration.deregister();
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again; each field is read out once, and
        // the ones not returned are dropped here.
        unsafe {
            drop(std::ptr::read(&this.registration));
            std::ptr::read(&this.io)
        }
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }

    /// Runs `op` on `io` until it does not fail with `WouldBlock`, waiting for the next edge
    /// in `direction` in between: until the deadline or time-out (`TimedOut`) or `ctx` ends.
    /// Retries an `Interrupted` call. A goroutine waits at `site`, the user's call.
    pub(crate) fn run<R>(
        &self,
        direction: Direction,
        ctx: Option<&Context>,
        site: Site,
        op: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        self.run_until(direction, None, ctx, site, op)
    }

    /// [`run`](Self::run) with one more deadline, `until`, for this call only.
    pub(crate) fn run_until<R>(
        &self,
        direction: Direction,
        until: Option<Instant>,
        ctx: Option<&Context>,
        site: Site,
        mut op: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        self.run_counted(direction, until, ctx, site, |io, _| op(io))
    }

    /// A `read` of a stream socket (`len`: the buffer's length). A read that fills less than
    /// the buffer has drained the socket (tokio's rule), as has one that would block; the next
    /// read then waits for the next edge at once, without the system call that would fail,
    /// unless an edge came since or the peer has closed its half (the end of file is not an
    /// edge of its own once reported). Not for datagrams, where a short read drains nothing.
    pub(crate) fn read_stream(
        &self,
        len: usize,
        ctx: Option<&Context>,
        site: Site,
        mut op: impl FnMut(&S) -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.run_counted(Direction::Read, None, ctx, site, |io, seen| {
            // Relaxed: a hint about the edge count `seen`, which the wait checks again under
            // the registration's lock.
            if self.drained.load(Ordering::Relaxed) == seen + 1
                && !self.registration.is_read_closed()
            {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let result = op(io);
            let drained = match &result {
                Ok(n) => *n > 0 && *n < len,
                Err(err) => err.kind() == io::ErrorKind::WouldBlock,
            };
            self.drained
                .store(if drained { seen + 1 } else { 0 }, Ordering::Relaxed);
            result
        })
    }

    /// The loop of [`run`](Self::run); `op` also gets the edge count read before it.
    fn run_counted<R>(
        &self,
        direction: Direction,
        until: Option<Instant>,
        ctx: Option<&Context>,
        site: Site,
        mut op: impl FnMut(&S, u64) -> io::Result<R>,
    ) -> io::Result<R> {
        let d = direction as usize;
        // As Go: once the deadline has passed, the operation fails without trying.
        if let Some(deadline) = Nanos::to_instant(self.deadlines[d].load(Ordering::Relaxed))
            && deadline <= Instant::now()
        {
            return Err(timed_out());
        }
        let mut started: Option<Instant> = None;
        loop {
            let seen = self.registration.edges(direction);
            match op(&self.io, seen) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                result => return result,
            }
            if self.nonblocking.load(Ordering::Relaxed) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            // Read again at every turn: a deadline changed by another goroutine wakes us.
            let timeout = Nanos::to_duration(self.timeouts[d].load(Ordering::Relaxed));
            let deadline = Nanos::to_instant(self.deadlines[d].load(Ordering::Relaxed));
            let until = if timeout.is_none() && deadline.is_none() && until.is_none() {
                None
            } else {
                let now = Instant::now();
                let timeout = timeout.and_then(|t| started.get_or_insert(now).checked_add(t));
                let until = [timeout, deadline, until].into_iter().flatten().min();
                if until.is_some_and(|until| until <= now) {
                    return Err(timed_out());
                }
                until
            };
            wait_ready(&self.registration, direction, seen, until, ctx, site)?;
        }
    }

    /// Waits until the descriptor is ready in `direction` (or `until`, or `ctx` ends), without
    /// an operation: the kernel's state is checked by a `poll(2)` of zero time-out after the
    /// edge count is read, and the wait is for the next edge if it is not ready.
    pub(crate) fn ready(
        &self,
        direction: Direction,
        until: Option<Instant>,
        ctx: Option<&Context>,
        site: Site,
    ) -> io::Result<()> {
        self.run_until(direction, until, ctx, site, |io| {
            if poll_now(io.as_raw_fd(), direction)? {
                Ok(())
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            }
        })
    }

    /// Sets the deadline of `direction` (`None`: none) and wakes its waiters, who look at it
    /// again.
    pub(crate) fn set_deadline(&self, direction: Direction, deadline: Option<Instant>) {
        self.deadlines[direction as usize].store(Nanos::from_instant(deadline), Ordering::Relaxed);
        self.wake(direction);
    }

    /// Sets the time-out of every wait in `direction` (`None`: none), as std's
    /// `set_read_timeout`: a zero duration is an error.
    pub(crate) fn set_timeout(
        &self,
        direction: Direction,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        if timeout == Some(Duration::ZERO) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        let nanos = timeout.map_or(0, |t| {
            u64::try_from(t.as_nanos()).unwrap_or(u64::MAX).max(1)
        });
        self.timeouts[direction as usize].store(nanos, Ordering::Relaxed);
        self.wake(direction);
        Ok(())
    }

    pub(crate) fn timeout(&self, direction: Direction) -> Option<Duration> {
        Nanos::to_duration(self.timeouts[direction as usize].load(Ordering::Relaxed))
    }

    pub(crate) fn set_nonblocking(&self, nonblocking: bool) {
        self.nonblocking.store(nonblocking, Ordering::Relaxed);
    }

    /// Copies the deadlines, time-outs and non-blocking flag to `other` (a `try_clone`).
    pub(crate) fn copy_settings_to<T: AsRawFd>(&self, other: &Source<T>) {
        for d in 0..2 {
            let deadline = self.deadlines[d].load(Ordering::Relaxed);
            other.deadlines[d].store(deadline, Ordering::Relaxed);
            let timeout = self.timeouts[d].load(Ordering::Relaxed);
            other.timeouts[d].store(timeout, Ordering::Relaxed);
        }
        let nonblocking = self.nonblocking.load(Ordering::Relaxed);
        other.nonblocking.store(nonblocking, Ordering::Relaxed);
    }

    fn wake(&self, direction: Direction) {
        self.registration.ready(
            direction == Direction::Read,
            direction == Direction::Write,
            false,
        );
    }
}

impl<S: AsRawFd> Drop for Source<S> {
    fn drop(&mut self) {
        // Out of every poller before `io` closes the descriptor (fields drop after this).
        self.registration.deregister();
    }
}

/// Whether `fd` is ready in `direction` right now (an error or hang-up counts as ready).
fn poll_now(fd: RawFd, direction: Direction) -> io::Result<bool> {
    let events = match direction {
        Direction::Read => libc::POLLIN,
        Direction::Write => libc::POLLOUT,
    };
    let mut pollfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd, for the length given; a zero time-out does not block.
    let n = unsafe { libc::poll(&mut pollfd, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n > 0 && pollfd.revents != 0)
}

/// Instants and durations as nanoseconds in one `u64` (0 for none), so that a deadline is one
/// atomic: instants count from a process-wide base.
struct Nanos;

impl Nanos {
    fn base() -> Instant {
        static BASE: OnceLock<Instant> = OnceLock::new();
        *BASE.get_or_init(Instant::now)
    }

    fn from_instant(instant: Option<Instant>) -> u64 {
        instant.map_or(0, |instant| {
            let since = instant.saturating_duration_since(Nanos::base()).as_nanos();
            u64::try_from(since).unwrap_or(u64::MAX - 1) + 1
        })
    }

    fn to_instant(nanos: u64) -> Option<Instant> {
        (nanos != 0).then(|| Nanos::base() + Duration::from_nanos(nanos - 1))
    }

    fn to_duration(nanos: u64) -> Option<Duration> {
        (nanos != 0).then(|| Duration::from_nanos(nanos))
    }
}
