//! Network I/O that parks goroutines instead of threads: std's `net` types, with Go's
//! deadlines and `_ctx` variants.
//!
//! [`TcpListener`], [`TcpStream`], [`UdpSocket`], [`UnixListener`] and [`UnixStream`] mirror
//! `std::net` (and `std::os::unix::net`), so code ports by changing an import. When a socket
//! is not ready, the calling goroutine parks and its worker runs other goroutines; the
//! worker's readiness poller (epoll, through `mio`) wakes it when the kernel says the socket
//! is ready, and it resumes on its own worker. Called from a plain thread, the same types
//! block the thread. One goroutine per connection, written as plain blocking code, is the
//! intended style.
//!
//! Beyond std, as Go's `net.Conn` has them:
//!
//! * deadlines: [`TcpStream::set_deadline`] and its read and write halves; a wait past the
//!   deadline fails with [`io::ErrorKind::TimedOut`], and moving the deadline ends or extends
//!   waits already under way;
//! * `_ctx` variants ([`TcpListener::accept_ctx`], [`TcpStream::read_ctx`],
//!   [`TcpStream::write_ctx`], [`TcpStream::connect_ctx`], ...) that return promptly when a
//!   [`Context`](crate::context::Context) ends, with an error that [`context_error`] turns
//!   back into the [`ContextError`];
//! * [`Pollable`], for any other descriptor epoll can watch (pipes, character devices).
//!
//! Host names ([`ToSocketAddrs`]) are resolved on the blocking-thread pool from a goroutine:
//! the C library's resolver blocks. Regular files are not pollable: read and write them in
//! [`spawn_blocking`](crate::spawn_blocking), as Go does on a thread.
//!
//! Sockets are created non-blocking and close-on-exec; `TCP_NODELAY` is off, as in std (turn
//! it on with [`TcpStream::set_nodelay`] for request/response protocols, as Go does by
//! default). Linux only, as the crate.
//!
//! # Examples
//!
//! A server with one goroutine per connection, stopped through a context, and a client with a
//! deadline:
//!
//! ```
//! use std::io::{Read, Write};
//! use std::time::{Duration, Instant};
//! use scheduler::context::Context;
//! use scheduler::net::{TcpListener, TcpStream};
//!
//! let rt = scheduler::Runtime::builder().procs(2).build().unwrap();
//! rt.block_on(|| {
//!     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//!     let addr = listener.local_addr().unwrap();
//!     let (ctx, stop) = Context::background().with_cancel();
//!     let server = scheduler::spawn(move || {
//!         // Ends with the context's error once `stop` is used.
//!         while let Ok((mut conn, _peer)) = listener.accept_ctx(&ctx) {
//!             scheduler::spawn(move || {
//!                 let mut buf = [0; 1024];
//!                 while let Ok(n @ 1..) = conn.read(&mut buf) {
//!                     if conn.write_all(&buf[..n]).is_err() {
//!                         break;
//!                     }
//!                 }
//!             });
//!         }
//!     });
//!     let mut client = TcpStream::connect(addr).unwrap();
//!     client.set_read_deadline(Some(Instant::now() + Duration::from_secs(5))).unwrap();
//!     client.write_all(b"ping").unwrap();
//!     let mut reply = [0; 4];
//!     client.read_exact(&mut reply).unwrap();
//!     assert_eq!(&reply, b"ping");
//!     // Closing the client ends its connection's goroutine; cancelling ends the server's.
//!     drop(client);
//!     stop.cancel();
//!     server.join().unwrap();
//! });
//! ```

#[macro_use]
mod macros;

mod addr;
mod fd;
mod ready;
mod source;
mod tcp;
mod udp;
mod unix;

use std::io;

pub use crate::context::ContextError;
pub use addr::{Addrs, ToSocketAddrs};
pub use fd::Pollable;
pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixListener, UnixStream};

/// The [`ContextError`] inside an error that a `_ctx` operation returned because its context
/// ended; `None` for any other error.
///
/// ```
/// use scheduler::context::{Context, ContextError};
/// use scheduler::net::{TcpListener, context_error};
///
/// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
/// rt.block_on(|| {
///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
///     let (ctx, cancel) = Context::background().with_cancel();
///     cancel.cancel();
///     let err = listener.accept_ctx(&ctx).unwrap_err();
///     assert_eq!(context_error(&err), Some(ContextError::Canceled));
/// });
/// ```
pub fn context_error(err: &io::Error) -> Option<ContextError> {
    err.get_ref()?.downcast_ref::<ContextError>().copied()
}
