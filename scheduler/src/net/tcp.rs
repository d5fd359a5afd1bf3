//! TCP: [`TcpListener`] and [`TcpStream`], std's API with waits that park the goroutine.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::panic::Location;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, Type};

use super::addr::{ToSocketAddrs, each_addr};
use super::source::Source;
use crate::context::Context;
use crate::sched::io::registration::Direction::{Read as R, Write as W};
use crate::wait::Site;

/// The listen backlog of [`TcpListener::bind`] (tokio's; Linux caps it at `somaxconn`).
const BACKLOG: i32 = 1024;

/// A TCP socket server, listening for connections: [`std::net::TcpListener`] whose
/// [`accept`](Self::accept) parks the calling goroutine until a connection comes (a plain
/// thread blocks).
///
/// # Examples
///
/// An echo server and a client, one goroutine each:
///
/// ```
/// use std::io::{Read, Write};
/// use scheduler::net::{TcpListener, TcpStream};
///
/// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
/// rt.block_on(|| {
///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     let server = scheduler::spawn(move || {
///         let (mut conn, _) = listener.accept().unwrap();
///         let mut buf = [0; 5];
///         conn.read_exact(&mut buf).unwrap();
///         conn.write_all(&buf).unwrap();
///     });
///     let mut client = TcpStream::connect(addr).unwrap();
///     client.write_all(b"hello").unwrap();
///     let mut reply = [0; 5];
///     client.read_exact(&mut reply).unwrap();
///     assert_eq!(&reply, b"hello");
///     server.join().unwrap();
/// });
/// ```
pub struct TcpListener {
    source: Source<std::net::TcpListener>,
}

impl TcpListener {
    /// Binds to `addr` (the first of its addresses that works) and listens, with
    /// `SO_REUSEADDR` set, as std's `bind` does. Port 0 picks a free port.
    ///
    /// # Errors
    ///
    /// The resolver's or the system calls' (`AddrInUse`, ...).
    #[track_caller]
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        each_addr(&addr, Location::caller(), |addr| {
            let socket = Socket::new(
                Domain::for_address(*addr),
                Type::STREAM.nonblocking(),
                Some(Protocol::TCP),
            )?;
            socket.set_reuse_address(true)?;
            socket.bind(&(*addr).into())?;
            socket.listen(BACKLOG)?;
            Ok(TcpListener {
                source: Source::new(socket.into()),
            })
        })
    }

    /// Accepts a connection, parking until one comes.
    ///
    /// # Errors
    ///
    /// The system call's (`EMFILE` when out of descriptors, ...). For a bounded wait, use
    /// [`accept_ctx`](Self::accept_ctx) with a context that has a deadline.
    #[track_caller]
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.accept_with(None, Location::caller())
    }

    /// [`accept`](Self::accept), unless `ctx` ends first: then its error (kind `TimedOut`
    /// for a deadline, `Other` for a cancellation; [`super::context_error`] gets it back).
    #[track_caller]
    pub fn accept_ctx(&self, ctx: &Context) -> io::Result<(TcpStream, SocketAddr)> {
        self.accept_with(Some(ctx), Location::caller())
    }

    /// An accept, waiting at `site`.
    fn accept_with(
        &self,
        ctx: Option<&Context>,
        site: Site,
    ) -> io::Result<(TcpStream, SocketAddr)> {
        let (fd, addr) = self.source.run(R, ctx, site, |listener| {
            accept_nonblocking(listener.as_raw_fd())
        })?;
        let addr = addr.as_socket().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "accepted a non-IP address")
        })?;
        Ok((TcpStream::from_owned(fd), addr))
    }

    /// An endless iterator of [`accept`](Self::accept)ed connections. Its accepts wait at
    /// the line that called `incoming`.
    #[track_caller]
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming {
            listener: self,
            site: Location::caller(),
        }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.source.get_ref().local_addr()
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("addr", &self.local_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

/// The iterator of [`TcpListener::incoming`]: never ends, yields each accept's result.
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
    /// Where it was made: its accepts wait there.
    site: Site,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        let accepted = self.listener.accept_with(None, self.site);
        Some(accepted.map(|(stream, _)| stream))
    }
}

/// `accept4` with the new descriptor non-blocking and close-on-exec: one system call.
fn accept_nonblocking(fd: RawFd) -> io::Result<(OwnedFd, SockAddr)> {
    // SAFETY: `try_init` hands a zeroed storage and its length; accept4 writes at most that
    // many bytes there and the real length back. The descriptor it returns is new and ours.
    unsafe {
        SockAddr::try_init(|storage, len| {
            let new = libc::accept4(
                fd,
                storage.cast(),
                len,
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            );
            if new < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(OwnedFd::from_raw_fd(new))
            }
        })
    }
}

/// A TCP connection: [`std::net::TcpStream`] whose reads, writes and connect park the calling
/// goroutine while the socket is not ready (a plain thread blocks).
///
/// `Read` and `Write` are implemented for `&TcpStream` too, so a reader goroutine and a
/// writer goroutine can share one connection (in an `Arc`). Beyond std, as Go's `net.Conn`:
/// deadlines ([`set_deadline`](Self::set_deadline)), which also end waits already under way,
/// and `_ctx` variants that return when a [`Context`] ends.
///
/// See [`TcpListener`] for an example.
pub struct TcpStream {
    source: Source<std::net::TcpStream>,
}

impl TcpStream {
    fn from_owned(fd: OwnedFd) -> TcpStream {
        TcpStream {
            source: Source::new(std::net::TcpStream::from(fd)),
        }
    }

    /// Connects to `addr`, trying each of its addresses in turn, parking while the handshake
    /// is under way.
    ///
    /// # Errors
    ///
    /// The last address's: `ConnectionRefused` for a closed port, and so on.
    #[track_caller]
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        let site = Location::caller();
        each_addr(&addr, site, |addr| {
            TcpStream::connect_addr(addr, None, None, site)
        })
    }

    /// Connects to one address, failing with `TimedOut` if the handshake takes longer than
    /// `timeout` (std's `connect_timeout`; a zero time-out is an error).
    #[track_caller]
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        let until = Instant::now().checked_add(timeout);
        TcpStream::connect_addr(addr, until, None, Location::caller())
    }

    /// [`connect`](Self::connect), unless `ctx` ends first: then its error (kind `TimedOut`
    /// for a deadline, `Other` for a cancellation).
    #[track_caller]
    pub fn connect_ctx<A: ToSocketAddrs>(addr: A, ctx: &Context) -> io::Result<TcpStream> {
        let site = Location::caller();
        each_addr(&addr, site, |addr| {
            TcpStream::connect_addr(addr, None, Some(ctx), site)
        })
    }

    /// Connects to one address, the handshake waiting at `site`.
    fn connect_addr(
        addr: &SocketAddr,
        until: Option<Instant>,
        ctx: Option<&Context>,
        site: Site,
    ) -> io::Result<TcpStream> {
        let socket = Socket::new(
            Domain::for_address(*addr),
            Type::STREAM.nonblocking(),
            Some(Protocol::TCP),
        )?;
        let stream = TcpStream {
            source: Source::new(socket.into()),
        };
        match SockRef::from(stream.source.get_ref()).connect(&(*addr).into()) {
            Ok(()) => return Ok(stream),
            Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(err) => return Err(err),
        }
        // Writable once the handshake ended, either way; SO_ERROR says which.
        stream.source.ready(W, until, ctx, site)?;
        if let Some(err) = stream.source.get_ref().take_error()? {
            return Err(err);
        }
        Ok(stream)
    }

    /// Reads like [`Read::read`], unless `ctx` ends first: then its error (kind `TimedOut`
    /// for a deadline, `Other` for a cancellation; [`super::context_error`] gets it back).
    #[track_caller]
    pub fn read_ctx(&self, buf: &mut [u8], ctx: &Context) -> io::Result<usize> {
        let len = buf.len();
        let site = Location::caller();
        self.source
            .read_stream(len, Some(ctx), site, |s| (&*s).read(buf))
    }

    /// Writes like [`Write::write`], unless `ctx` ends first (see [`read_ctx`](Self::read_ctx)).
    #[track_caller]
    pub fn write_ctx(&self, buf: &[u8], ctx: &Context) -> io::Result<usize> {
        let site = Location::caller();
        self.source.run(W, Some(ctx), site, |s| (&*s).write(buf))
    }

    /// Writes all of `buf` like [`Write::write_all`], unless `ctx` ends first.
    #[track_caller]
    pub fn write_all_ctx(&self, mut buf: &[u8], ctx: &Context) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write_ctx(buf, ctx)? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => buf = &buf[n..],
            }
        }
        Ok(())
    }

    /// Receives like `read` but leaves the bytes in the socket (`MSG_PEEK`).
    #[track_caller]
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.source
            .run(R, None, Location::caller(), |s| s.peek(buf))
    }

    /// The address of the peer.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.source.get_ref().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.source.get_ref().local_addr()
    }

    /// Shuts down the read half, the write half (the peer reads end of file), or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.source.get_ref().shutdown(how)
    }

    /// Sets `TCP_NODELAY` (off by default, as in std; Go turns it on).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.source.get_ref().set_nodelay(nodelay)
    }

    /// Reads `TCP_NODELAY`.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.source.get_ref().nodelay()
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("addr", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

socket_fd!(TcpListener, std::net::TcpListener);
socket_ttl!(TcpListener);
socket_fd!(TcpStream, std::net::TcpStream);
socket_ttl!(TcpStream);
socket_deadlines!(TcpStream);
stream_io!(TcpStream);
