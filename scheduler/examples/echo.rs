//! An echo server with one goroutine per connection: the first server to read.
//!
//! Each connection gets a goroutine that reads and writes back with plain blocking calls.
//! While its socket has nothing to read (or no room to write), the goroutine parks and its
//! worker thread runs the other connections. The lesson's design rules, in a few lines:
//!
//! * **Back pressure.** A client that sends but does not read its echo fills its socket's
//!   buffers; its goroutine then waits in `write_all` and stops reading, so TCP slows the
//!   client down. `max_goroutines` bounds the connections: at the limit, `spawn` parks the
//!   accept loop, and new clients wait in the kernel's listen backlog.
//! * **A timeout on every wait.** A connection that stays silent, or does not read its echo,
//!   for [`IDLE_TIMEOUT`] is closed: no goroutine waits for ever on a client that left.
//! * **Clean start-up.** A bad flag or an address in use fails at once with a message and a
//!   non-zero exit status, before `listening on` is printed.
//!
//! ```text
//! cargo run --release --example echo -- --addr 127.0.0.1:7000 --procs 2
//! nc 127.0.0.1 7000
//! ```
//!
//! `examples/http.rs` adds load shedding, per-request deadlines and a graceful shutdown.

use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use scheduler::Runtime;
use scheduler::context::Context;
use scheduler::net::{self, TcpListener, TcpStream};

/// How long a connection may stay silent, or leave its echo unread, before it is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The most connections served at once (plus the accept loop itself).
const MAX_CONNECTIONS: usize = 10_000;

/// An echo server: one goroutine per connection.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:7000")]
    addr: String,

    /// Worker threads (default: SCHEDULER_PROCS, else the number of CPUs)
    #[arg(long)]
    procs: Option<usize>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut builder = Runtime::builder().max_goroutines(MAX_CONNECTIONS + 1);
    if let Some(procs) = args.procs {
        builder = builder.procs(procs);
    }
    let rt = match builder.build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("echo: {err}");
            return ExitCode::FAILURE;
        }
    };
    let addr = args.addr.clone();
    let result = rt.block_on(move || {
        let listener = TcpListener::bind(&args.addr)?;
        println!("listening on {}", listener.local_addr()?);
        // Runs until the process is killed; `serve` takes a context so that tests can stop it.
        serve(&listener, &Context::background());
        Ok::<(), io::Error>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("echo: {addr}: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Accepts connections until `ctx` ends, each served by a goroutine of its own.
fn serve(listener: &TcpListener, ctx: &Context) {
    loop {
        let conn = match listener.accept_ctx(ctx) {
            Ok((conn, _peer)) => conn,
            Err(err) if net::context_error(&err).is_some() => return,
            Err(err) => {
                // Out of descriptors, a connection reset before it was accepted...: the
                // listener itself is fine. Pause a moment rather than spin on the error.
                eprintln!("echo: accept: {err}");
                let _ = scheduler::time::sleep_ctx(Duration::from_millis(10), ctx);
                continue;
            }
        };
        // At `max_goroutines`, this waits for a connection to end: back pressure.
        scheduler::spawn(move || {
            // An error is a client that vanished or went silent: nothing more to do for it.
            let _ = echo(conn);
        });
    }
}

/// Writes back everything the client sends, until it closes or times out.
fn echo(mut conn: TcpStream) -> io::Result<()> {
    conn.set_read_timeout(Some(IDLE_TIMEOUT))?;
    conn.set_write_timeout(Some(IDLE_TIMEOUT))?;
    let mut buf = [0; 4096];
    loop {
        match conn.read(&mut buf)? {
            0 => return Ok(()),
            n => conn.write_all(&buf[..n])?,
        }
    }
}

#[cfg(test)]
#[path = "common/within_limit.rs"]
mod limit;

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::thread;
    use std::time::Duration;

    use super::*;

    use super::limit::within_limit;

    #[test]
    fn several_clients_get_their_bytes_back() {
        within_limit(|| {
            let rt = Runtime::builder().procs(2).build().unwrap();
            let listener = rt.block_on(|| TcpListener::bind("127.0.0.1:0")).unwrap();
            let addr = listener.local_addr().unwrap();
            let (ctx, stop) = Context::background().with_cancel();
            let server = rt.spawn(move || serve(&listener, &ctx));

            // Plain threads with std sockets: real clients, outside the runtime.
            let clients: Vec<_> = (0..8u8)
                .map(|id| {
                    thread::spawn(move || {
                        let mut conn = std::net::TcpStream::connect(addr).unwrap();
                        conn.set_read_timeout(Some(Duration::from_secs(10)))
                            .unwrap();
                        // Several writes, larger than one read of the server, distinct per
                        // client, echoed one at a time.
                        for round in 0..4u8 {
                            let message: Vec<u8> = (0..10_000u32)
                                .map(|i| (i as u8) ^ id ^ round.wrapping_mul(37))
                                .collect();
                            conn.write_all(&message).unwrap();
                            let mut echoed = vec![0; message.len()];
                            conn.read_exact(&mut echoed).unwrap();
                            assert!(echoed == message, "client {id}: round {round} differs");
                        }
                        // Closing ends the server's goroutine for this connection.
                        conn.shutdown(std::net::Shutdown::Write).unwrap();
                        let mut rest = Vec::new();
                        conn.read_to_end(&mut rest).unwrap();
                        assert!(rest.is_empty());
                    })
                })
                .collect();
            for client in clients {
                client.join().unwrap();
            }

            stop.cancel();
            server.join().unwrap();
            // Dropping the runtime waits for every goroutine: the connections have all ended.
            drop(rt);
        });
    }
}
