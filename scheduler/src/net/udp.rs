//! UDP: [`UdpSocket`], std's API with waits that park the goroutine.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::panic::Location;

use socket2::{Domain, Protocol, Socket, Type};

use super::addr::{ToSocketAddrs, each_addr};
use super::source::Source;
use crate::context::Context;
use crate::sched::io::registration::Direction::{Read as R, Write as W};

/// A UDP socket: [`std::net::UdpSocket`] whose receives (and sends, when the send buffer is
/// full) park the calling goroutine (a plain thread blocks). Deadlines, time-outs and `_ctx`
/// variants as on [`TcpStream`](super::TcpStream).
///
/// # Examples
///
/// ```
/// use scheduler::net::UdpSocket;
///
/// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
/// rt.block_on(|| {
///     let a = UdpSocket::bind("127.0.0.1:0").unwrap();
///     let b = UdpSocket::bind("127.0.0.1:0").unwrap();
///     let b_addr = b.local_addr().unwrap();
///     let receiver = scheduler::spawn(move || {
///         let mut buf = [0; 16];
///         let (n, from) = b.recv_from(&mut buf).unwrap();
///         (buf[..n].to_vec(), from)
///     });
///     a.send_to(b"ping", b_addr).unwrap();
///     let (bytes, from) = receiver.join().unwrap();
///     assert_eq!(bytes, b"ping");
///     assert_eq!(from, a.local_addr().unwrap());
/// });
/// ```
pub struct UdpSocket {
    source: Source<std::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds to `addr` (the first of its addresses that works). Port 0 picks a free port.
    #[track_caller]
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        each_addr(&addr, Location::caller(), |addr| {
            let socket = Socket::new(
                Domain::for_address(*addr),
                Type::DGRAM.nonblocking(),
                Some(Protocol::UDP),
            )?;
            socket.bind(&(*addr).into())?;
            Ok(UdpSocket {
                source: Source::new(socket.into()),
            })
        })
    }

    /// Receives one datagram, parking until one comes; returns its length and sender.
    #[track_caller]
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.source
            .run(R, None, Location::caller(), |s| s.recv_from(buf))
    }

    /// [`recv_from`](Self::recv_from), unless `ctx` ends first.
    #[track_caller]
    pub fn recv_from_ctx(&self, buf: &mut [u8], ctx: &Context) -> io::Result<(usize, SocketAddr)> {
        self.source
            .run(R, Some(ctx), Location::caller(), |s| s.recv_from(buf))
    }

    /// Like `recv_from` but leaves the datagram queued.
    #[track_caller]
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.source
            .run(R, None, Location::caller(), |s| s.peek_from(buf))
    }

    /// Sends one datagram to `addr` (resolved at each call, as std does).
    #[track_caller]
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        // Taken here: the closure below would lose the caller's line.
        let site = Location::caller();
        each_addr(&addr, site, |addr| {
            self.source.run(W, None, site, |s| s.send_to(buf, addr))
        })
    }

    /// Sets the default peer: `send` and `recv` use it, and datagrams from others are
    /// dropped.
    #[track_caller]
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(&addr, Location::caller(), |addr| {
            self.source.get_ref().connect(addr)
        })
    }

    /// Sends to the connected peer.
    #[track_caller]
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.source
            .run(W, None, Location::caller(), |s| s.send(buf))
    }

    /// Receives from the connected peer.
    #[track_caller]
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.source
            .run(R, None, Location::caller(), |s| s.recv(buf))
    }

    /// [`recv`](Self::recv), unless `ctx` ends first.
    #[track_caller]
    pub fn recv_ctx(&self, buf: &mut [u8], ctx: &Context) -> io::Result<usize> {
        self.source
            .run(R, Some(ctx), Location::caller(), |s| s.recv(buf))
    }

    /// Like `recv` but leaves the datagram queued.
    #[track_caller]
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.source
            .run(R, None, Location::caller(), |s| s.peek(buf))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.source.get_ref().local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.source.get_ref().peer_addr()
    }

    /// Sets `SO_BROADCAST`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.source.get_ref().set_broadcast(on)
    }

    /// Reads `SO_BROADCAST`.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.source.get_ref().broadcast()
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("addr", &self.local_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

socket_fd!(UdpSocket, std::net::UdpSocket);
socket_ttl!(UdpSocket);
socket_deadlines!(UdpSocket);
