//! [`Pollable`]: any file descriptor that `epoll` can watch (a pipe, a character device, an
//! eventfd, a socket made elsewhere), waited on the way the crate's sockets are.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::panic::Location;

use super::source::Source;
use crate::context::Context;
use crate::sched::io::registration::Direction::{Read as R, Write as W};

/// A file descriptor whose readiness goroutines wait for, parking (plain threads block):
/// tokio's `AsyncFd`, smol's `Async`. The descriptor is put in non-blocking mode; use
/// [`read_with`](Self::read_with) and [`write_with`](Self::write_with) to run an operation
/// that returns `WouldBlock` until it does not, or [`readable`](Self::readable) and
/// [`writable`](Self::writable) to wait alone.
///
/// Regular files are always "ready" to epoll (and `epoll_ctl` refuses them): read files with
/// [`spawn_blocking`](crate::spawn_blocking), as Go reads them on a thread.
///
/// # Examples
///
/// A pipe between two goroutines:
///
/// ```
/// use std::io::{Read, Write};
/// use scheduler::net::Pollable;
///
/// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
/// rt.block_on(|| {
///     let (reader, writer) = std::io::pipe().unwrap();
///     let reader = Pollable::new(reader).unwrap();
///     let writer = Pollable::new(writer).unwrap();
///     let reading = scheduler::spawn(move || {
///         let mut buf = [0; 5];
///         let n = reader.read_with(|mut r| r.read(&mut buf)).unwrap();
///         buf[..n].to_vec()
///     });
///     writer.write_with(|mut w| w.write(b"hello")).unwrap();
///     assert_eq!(reading.join().unwrap(), b"hello");
/// });
/// ```
pub struct Pollable<T: AsFd> {
    source: Source<Fd<T>>,
}

/// `T` as a raw descriptor, for [`Source`].
struct Fd<T>(T);

impl<T: AsFd> AsRawFd for Fd<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl<T: AsFd> Pollable<T> {
    /// Takes `io` and puts its descriptor in non-blocking mode (`O_NONBLOCK`, shared by
    /// every duplicate of the descriptor).
    pub fn new(io: T) -> io::Result<Pollable<T>> {
        set_nonblocking(io.as_fd().as_raw_fd())?;
        Ok(Pollable {
            source: Source::new(Fd(io)),
        })
    }

    /// The I/O object.
    pub fn get_ref(&self) -> &T {
        &self.source.get_ref().0
    }

    /// The I/O object, out of the pollers (still non-blocking).
    pub fn into_inner(self) -> T {
        self.source.into_inner().0
    }

    /// Runs `op` until it does not fail with `WouldBlock`, waiting for readability in
    /// between.
    #[track_caller]
    pub fn read_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.source.run(R, None, Location::caller(), |fd| op(&fd.0))
    }

    /// [`read_with`](Self::read_with), unless `ctx` ends first.
    #[track_caller]
    pub fn read_with_ctx<R>(
        &self,
        ctx: &Context,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> io::Result<R> {
        self.source
            .run(R, Some(ctx), Location::caller(), |fd| op(&fd.0))
    }

    /// Runs `op` until it does not fail with `WouldBlock`, waiting for writability in
    /// between.
    #[track_caller]
    pub fn write_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.source.run(W, None, Location::caller(), |fd| op(&fd.0))
    }

    /// [`write_with`](Self::write_with), unless `ctx` ends first.
    #[track_caller]
    pub fn write_with_ctx<R>(
        &self,
        ctx: &Context,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> io::Result<R> {
        self.source
            .run(W, Some(ctx), Location::caller(), |fd| op(&fd.0))
    }

    /// Waits until the descriptor is readable (or has an error, or hung up).
    #[track_caller]
    pub fn readable(&self) -> io::Result<()> {
        self.source.ready(R, None, None, Location::caller())
    }

    /// [`readable`](Self::readable), unless `ctx` ends first.
    #[track_caller]
    pub fn readable_ctx(&self, ctx: &Context) -> io::Result<()> {
        self.source.ready(R, None, Some(ctx), Location::caller())
    }

    /// Waits until the descriptor is writable (or has an error, or hung up).
    #[track_caller]
    pub fn writable(&self) -> io::Result<()> {
        self.source.ready(W, None, None, Location::caller())
    }

    /// [`writable`](Self::writable), unless `ctx` ends first.
    #[track_caller]
    pub fn writable_ctx(&self, ctx: &Context) -> io::Result<()> {
        self.source.ready(W, None, Some(ctx), Location::caller())
    }
}

impl<T: AsFd> AsRawFd for Pollable<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.source.raw_fd()
    }
}

impl<T: AsFd + fmt::Debug> fmt::Debug for Pollable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pollable")
            .field("io", self.get_ref())
            .finish()
    }
}

/// Sets `O_NONBLOCK` on `fd`.
fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor the caller borrows; F_GETFL/F_SETFL touch only its flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
