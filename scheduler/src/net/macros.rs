//! What the socket types have alike, written once: the raw descriptor, the non-blocking
//! switch, cloning and conversion to and from std (every type), `IP_TTL` (the IP ones),
//! time-outs and deadlines (the connected and datagram sockets), and `Read`/`Write` on the
//! type and on a shared reference to it (the streams).

/// For a type with a `source: Source<$std>` field: `AsRawFd`, `AsFd`, `set_nonblocking`,
/// `take_error`, `try_clone`, `into_std` and `TryFrom<$std>`.
macro_rules! socket_fd {
    ($socket:ident, $std:ty) => {
        impl $socket {
            /// With `true`, an operation that would wait fails with `WouldBlock` instead
            /// (std's meaning); `false` restores waiting. The socket itself is always
            /// non-blocking underneath.
            pub fn set_nonblocking(&self, nonblocking: bool) -> std::io::Result<()> {
                self.source.set_nonblocking(nonblocking);
                Ok(())
            }

            /// Takes the pending socket error (`SO_ERROR`).
            pub fn take_error(&self) -> std::io::Result<Option<std::io::Error>> {
                self.source.get_ref().take_error()
            }

            /// A second handle to the same socket (a duplicated descriptor), with the same
            /// time-outs, deadlines and non-blocking switch; each handle has its own from
            /// then on.
            pub fn try_clone(&self) -> std::io::Result<$socket> {
                let clone = $socket {
                    source: Source::new(self.source.get_ref().try_clone()?),
                };
                self.source.copy_settings_to(&clone.source);
                Ok(clone)
            }

            /// The std socket, out of the pollers and in blocking mode again.
            pub fn into_std(self) -> std::io::Result<$std> {
                let socket = self.source.into_inner();
                socket.set_nonblocking(false)?;
                Ok(socket)
            }
        }

        /// Takes a std socket (in any mode) over; it is put in non-blocking mode underneath.
        impl TryFrom<$std> for $socket {
            type Error = std::io::Error;

            fn try_from(socket: $std) -> std::io::Result<$socket> {
                socket.set_nonblocking(true)?;
                Ok($socket {
                    source: Source::new(socket),
                })
            }
        }

        impl std::os::fd::AsRawFd for $socket {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.source.raw_fd()
            }
        }

        impl std::os::fd::AsFd for $socket {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(self.source.get_ref())
            }
        }
    };
}

/// `IP_TTL` for a type with a `source: Source<_>` field over a std IP socket.
macro_rules! socket_ttl {
    ($socket:ident) => {
        impl $socket {
            /// Sets `IP_TTL`.
            pub fn set_ttl(&self, ttl: u32) -> std::io::Result<()> {
                self.source.get_ref().set_ttl(ttl)
            }

            /// Reads `IP_TTL`.
            pub fn ttl(&self) -> std::io::Result<u32> {
                self.source.get_ref().ttl()
            }
        }
    };
}

/// std's time-outs and Go's deadlines for a type with a `source: Source<_>` field.
macro_rules! socket_deadlines {
    ($socket:ident) => {
        impl $socket {
            /// Bounds the wait of every read (or receive), std's meaning (`None`: no bound):
            /// one that waits longer fails with `TimedOut`. A zero duration is an error.
            pub fn set_read_timeout(
                &self,
                timeout: Option<std::time::Duration>,
            ) -> std::io::Result<()> {
                self.source
                    .set_timeout($crate::sched::io::registration::Direction::Read, timeout)
            }

            /// Bounds the wait of every write (or send), as
            /// [`set_read_timeout`](Self::set_read_timeout).
            pub fn set_write_timeout(
                &self,
                timeout: Option<std::time::Duration>,
            ) -> std::io::Result<()> {
                self.source
                    .set_timeout($crate::sched::io::registration::Direction::Write, timeout)
            }

            /// The read time-out.
            pub fn read_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
                Ok(self
                    .source
                    .timeout($crate::sched::io::registration::Direction::Read))
            }

            /// The write time-out.
            pub fn write_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
                Ok(self
                    .source
                    .timeout($crate::sched::io::registration::Direction::Write))
            }

            /// Sets the read and write deadlines, Go's `SetDeadline`: see
            /// [`set_read_deadline`](Self::set_read_deadline).
            pub fn set_deadline(
                &self,
                deadline: Option<std::time::Instant>,
            ) -> std::io::Result<()> {
                self.set_read_deadline(deadline)?;
                self.set_write_deadline(deadline)
            }

            /// Go's `SetReadDeadline`: once `deadline` has passed, reads (receives) fail with
            /// `TimedOut`, also one waiting now (set a deadline in the past to end a read under
            /// way from another goroutine). `None` removes it; a later deadline extends it.
            pub fn set_read_deadline(
                &self,
                deadline: Option<std::time::Instant>,
            ) -> std::io::Result<()> {
                self.source
                    .set_deadline($crate::sched::io::registration::Direction::Read, deadline);
                Ok(())
            }

            /// Go's `SetWriteDeadline`, as [`set_read_deadline`](Self::set_read_deadline) for
            /// writes (sends).
            pub fn set_write_deadline(
                &self,
                deadline: Option<std::time::Instant>,
            ) -> std::io::Result<()> {
                self.source
                    .set_deadline($crate::sched::io::registration::Direction::Write, deadline);
                Ok(())
            }
        }
    };
}

/// `Read` and `Write` for a stream type and for a shared reference to it (a reader goroutine
/// and a writer goroutine can share one connection), on a `source: Source<S>` field whose `&S`
/// reads and writes.
///
/// Every method is `#[track_caller]`, so that a goroutine waits at the user's line; that works
/// for calls made on the type itself (not through `dyn Read`). `read_exact` and `write_all`
/// are written out for the same reason: std's provided ones call `read` and `write` from
/// std's own lines.
macro_rules! stream_io {
    ($stream:ident) => {
        impl std::io::Read for &$stream {
            #[track_caller]
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let len = buf.len();
                let site = std::panic::Location::caller();
                self.source
                    .read_stream(len, None, site, |s| std::io::Read::read(&mut &*s, buf))
            }

            #[track_caller]
            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                self.source.run(
                    $crate::sched::io::registration::Direction::Read,
                    None,
                    std::panic::Location::caller(),
                    |s| std::io::Read::read_vectored(&mut &*s, bufs),
                )
            }

            /// std's `read_exact`, each read waiting at the caller's line.
            #[track_caller]
            fn read_exact(&mut self, mut buf: &mut [u8]) -> std::io::Result<()> {
                while !buf.is_empty() {
                    match std::io::Read::read(self, buf) {
                        Ok(0) => {
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                "failed to fill whole buffer",
                            ));
                        }
                        Ok(n) => buf = &mut buf[n..],
                        Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(err) => return Err(err),
                    }
                }
                Ok(())
            }
        }

        impl std::io::Write for &$stream {
            #[track_caller]
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.source.run(
                    $crate::sched::io::registration::Direction::Write,
                    None,
                    std::panic::Location::caller(),
                    |s| std::io::Write::write(&mut &*s, buf),
                )
            }

            #[track_caller]
            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                self.source.run(
                    $crate::sched::io::registration::Direction::Write,
                    None,
                    std::panic::Location::caller(),
                    |s| std::io::Write::write_vectored(&mut &*s, bufs),
                )
            }

            /// std's `write_all`, each write waiting at the caller's line.
            #[track_caller]
            fn write_all(&mut self, mut buf: &[u8]) -> std::io::Result<()> {
                while !buf.is_empty() {
                    match std::io::Write::write(self, buf) {
                        Ok(0) => {
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::WriteZero,
                                "failed to write whole buffer",
                            ));
                        }
                        Ok(n) => buf = &buf[n..],
                        Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(err) => return Err(err),
                    }
                }
                Ok(())
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        impl std::io::Read for $stream {
            #[track_caller]
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                std::io::Read::read(&mut &*self, buf)
            }

            #[track_caller]
            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                std::io::Read::read_vectored(&mut &*self, bufs)
            }

            #[track_caller]
            fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
                std::io::Read::read_exact(&mut &*self, buf)
            }
        }

        impl std::io::Write for $stream {
            #[track_caller]
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                std::io::Write::write(&mut &*self, buf)
            }

            #[track_caller]
            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                std::io::Write::write_vectored(&mut &*self, bufs)
            }

            #[track_caller]
            fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
                std::io::Write::write_all(&mut &*self, buf)
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
    };
}
