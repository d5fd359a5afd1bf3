//! Unix domain sockets: [`UnixListener`] and [`UnixStream`], std's API with waits that park
//! the goroutine.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::net::{self, SocketAddr};
use std::panic::Location;
use std::path::Path;

use socket2::{Domain, SockAddr, Socket, Type};

use super::source::Source;
use crate::context::Context;
use crate::sched::io::registration::Direction::{Read as R, Write as W};
use crate::wait::Site;

/// A Unix domain socket server: [`std::os::unix::net::UnixListener`] whose
/// [`accept`](Self::accept) parks the calling goroutine.
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use scheduler::net::{UnixListener, UnixStream};
///
/// let dir = std::env::temp_dir().join(format!("scheduler-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("echo.sock");
/// let _ = std::fs::remove_file(&path);
/// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
/// rt.block_on(move || {
///     let listener = UnixListener::bind(&path).unwrap();
///     let server = scheduler::spawn(move || {
///         let (mut conn, _) = listener.accept().unwrap();
///         let mut buf = [0; 4];
///         conn.read_exact(&mut buf).unwrap();
///         conn.write_all(&buf).unwrap();
///     });
///     let mut client = UnixStream::connect(&path).unwrap();
///     client.write_all(b"ping").unwrap();
///     let mut reply = [0; 4];
///     client.read_exact(&mut reply).unwrap();
///     assert_eq!(&reply, b"ping");
///     server.join().unwrap();
///     std::fs::remove_file(&path).unwrap();
/// });
/// ```
pub struct UnixListener {
    source: Source<net::UnixListener>,
}

impl UnixListener {
    /// Binds to the socket file `path` (which must not exist) and listens.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        UnixListener::try_from(net::UnixListener::bind(path)?)
    }

    /// Accepts a connection, parking until one comes.
    #[track_caller]
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        self.accept_with(None, Location::caller())
    }

    /// [`accept`](Self::accept), unless `ctx` ends first.
    #[track_caller]
    pub fn accept_ctx(&self, ctx: &Context) -> io::Result<(UnixStream, SocketAddr)> {
        self.accept_with(Some(ctx), Location::caller())
    }

    /// An accept, waiting at `site`.
    fn accept_with(
        &self,
        ctx: Option<&Context>,
        site: Site,
    ) -> io::Result<(UnixStream, SocketAddr)> {
        let (stream, addr) = self.source.run(R, ctx, site, |l| l.accept())?;
        Ok((UnixStream::try_from(stream)?, addr))
    }

    /// An endless iterator of accepted connections. Its accepts wait at the line that called
    /// `incoming`.
    #[track_caller]
    pub fn incoming(&self) -> impl Iterator<Item = io::Result<UnixStream>> + '_ {
        let site = Location::caller();
        std::iter::repeat_with(move || self.accept_with(None, site).map(|(stream, _)| stream))
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.source.get_ref().local_addr()
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener")
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

/// A Unix domain stream: [`std::os::unix::net::UnixStream`] whose reads and writes park the
/// calling goroutine; `Read` and `Write` for `&UnixStream` too, deadlines and `_ctx`
/// variants as on [`TcpStream`](super::TcpStream).
pub struct UnixStream {
    source: Source<net::UnixStream>,
}

impl UnixStream {
    /// Connects to the socket file `path`.
    ///
    /// # Errors
    ///
    /// The system call's: `NotFound`, `ConnectionRefused`, or `WouldBlock` when the
    /// listener's backlog is full (Linux refuses at once then, as Go reports).
    #[track_caller]
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        UnixStream::connect_with(path.as_ref(), None, Location::caller())
    }

    /// [`connect`](Self::connect), unless `ctx` ends first.
    #[track_caller]
    pub fn connect_ctx<P: AsRef<Path>>(path: P, ctx: &Context) -> io::Result<UnixStream> {
        UnixStream::connect_with(path.as_ref(), Some(ctx), Location::caller())
    }

    /// Connects to `path`, a handshake that has to wait waiting at `site`.
    fn connect_with(path: &Path, ctx: Option<&Context>, site: Site) -> io::Result<UnixStream> {
        let socket = Socket::new(Domain::UNIX, Type::STREAM.nonblocking(), None)?;
        let stream = UnixStream {
            source: Source::new(net::UnixStream::from(std::os::fd::OwnedFd::from(socket))),
        };
        match socket2::SockRef::from(stream.source.get_ref()).connect(&SockAddr::unix(path)?) {
            Ok(()) => return Ok(stream),
            Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(err) => return Err(err),
        }
        stream.source.ready(W, None, ctx, site)?;
        if let Some(err) = stream.source.get_ref().take_error()? {
            return Err(err);
        }
        Ok(stream)
    }

    /// A connected pair of streams.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = net::UnixStream::pair()?;
        Ok((UnixStream::try_from(a)?, UnixStream::try_from(b)?))
    }

    /// Reads like [`Read::read`], unless `ctx` ends first.
    #[track_caller]
    pub fn read_ctx(&self, buf: &mut [u8], ctx: &Context) -> io::Result<usize> {
        let len = buf.len();
        let site = Location::caller();
        self.source
            .read_stream(len, Some(ctx), site, |s| (&*s).read(buf))
    }

    /// Writes like [`Write::write`], unless `ctx` ends first.
    #[track_caller]
    pub fn write_ctx(&self, buf: &[u8], ctx: &Context) -> io::Result<usize> {
        let site = Location::caller();
        self.source.run(W, Some(ctx), site, |s| (&*s).write(buf))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.source.get_ref().local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.source.get_ref().peer_addr()
    }

    /// Shuts down the read half, the write half, or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.source.get_ref().shutdown(how)
    }
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream")
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

socket_fd!(UnixListener, net::UnixListener);
socket_fd!(UnixStream, net::UnixStream);
socket_deadlines!(UnixStream);
stream_io!(UnixStream);
