//! An HTTP/1.1 server with one goroutine per connection, built on the lesson's design rules.
//!
//! Each connection's goroutine reads requests (parsed with `httparse`), runs the handler and
//! writes the response with plain blocking calls that park it; keep-alive connections serve
//! one request after another. Routes: `/` answers `Hello, World!`, `/metrics` the runtime's
//! metrics, `/slow?ms=N` after sleeping N ms (to see the time-outs and the drain at work).
//!
//! * **Shed load early.** At most `--max-conns` connections are served at once. The next
//!   one is answered `503 Service Unavailable` at once and closed, rather than queued where
//!   its client would wait without knowing why. The runtime's `max_goroutines` bounds the
//!   rest: the goroutines answering those 503s are started with `try_spawn`, which fails at
//!   once when the runtime is full, and the connection is then just closed.
//! * **Back pressure.** A request is read into a 4 KiB buffer that grows to at most 64 KiB
//!   (`431` beyond that); a client that does not read its responses makes its goroutine wait
//!   in the write, which stops it from reading more.
//! * **A timeout on every request.** Every wait has an end. Waiting for the next request on
//!   a keep-alive connection ends after `--idle-timeout-ms`. From its first byte, a request
//!   has `--request-timeout-ms` to arrive (`408`) and to be handled: the handler gets a
//!   [`Context`] with that deadline, and one that is too slow is answered `504 Gateway
//!   Timeout`; its wait ends with the context, so its goroutine does not run on. Writing the
//!   response has the same time again.
//! * **Clean start-up and shutdown.** The address is bound before `listening on ADDR` is
//!   printed; a bad flag or an address in use fails at once, with a message and a non-zero
//!   exit status. On SIGINT or SIGTERM the server stops accepting, closes its idle
//!   connections at once and lets the requests under way finish (answered with `Connection:
//!   close`) for up to `--drain-ms`. Then it cancels the contexts of those still running,
//!   waits a moment for their goroutines to end, prints `drained: N connections finished, M
//!   forced` and exits with status 0. A second signal exits at once.
//!
//! ```text
//! cargo run --release --example http -- --procs 2
//! curl -i http://127.0.0.1:8080/
//! curl http://127.0.0.1:8080/metrics
//! curl -i 'http://127.0.0.1:8080/slow?ms=3000'   # 504 after 1 s
//! wrk -t1 -c50 -d3s http://127.0.0.1:8080/
//! ```

use std::io::{self, Write as _};
use std::net::Shutdown;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use scheduler::context::{CancelHandle, Context, ContextError};
use scheduler::net::{self, TcpListener, TcpStream};
use scheduler::{Runtime, WaitGroup};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use protocol::{
    BAD_REQUEST, Buffer, CONTENT_TOO_LARGE, GATEWAY_TIMEOUT, HEADERS_TOO_LARGE, Head,
    METHOD_NOT_ALLOWED, NOT_FOUND, READ_BUFFER, REQUEST_TIMEOUT, Response, SERVICE_UNAVAILABLE,
    Status,
};

/// The largest request body accepted (and discarded: no route reads one); `413` beyond.
const MAX_BODY: usize = 1024 * 1024;
/// How long a connection being closed waits for its client to close too, reading what it
/// still sends, so that closing does not reset the connection and lose the last response.
const LINGER: Duration = Duration::from_millis(500);
/// How long, once the drain time is up and their contexts are cancelled, the server waits
/// for the last connections' goroutines before it leaves them to the runtime's shutdown.
const FORCE_GRACE: Duration = Duration::from_secs(1);

/// An HTTP/1.1 server: one goroutine per connection, load shedding, a deadline on every
/// request, and a graceful shutdown on SIGINT or SIGTERM.
#[derive(Debug, Clone, Parser)]
struct Args {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,

    /// Worker threads (default: SCHEDULER_PROCS, else the number of CPUs)
    #[arg(long)]
    procs: Option<usize>,

    /// Connections served at once; more are answered 503 and closed at once
    #[arg(long, default_value_t = 1000)]
    max_conns: usize,

    /// Time a request has to arrive and to be handled (504 when the handler is too slow)
    #[arg(long, default_value_t = 1000)]
    request_timeout_ms: u64,

    /// Time a keep-alive connection may wait for its next request
    #[arg(long, default_value_t = 30_000)]
    idle_timeout_ms: u64,

    /// On SIGINT or SIGTERM, time the requests under way have to finish before they are
    /// cancelled
    #[arg(long, default_value_t = 5000)]
    drain_ms: u64,
}

/// The server's settings, from [`Args`].
#[derive(Debug, Clone)]
struct Config {
    max_conns: usize,
    request_timeout: Duration,
    idle_timeout: Duration,
    drain: Duration,
}

impl Config {
    fn new(args: &Args) -> Config {
        Config {
            max_conns: args.max_conns,
            request_timeout: Duration::from_millis(args.request_timeout_ms),
            idle_timeout: Duration::from_millis(args.idle_timeout_ms),
            drain: Duration::from_millis(args.drain_ms),
        }
    }
}

fn main() -> ExitCode {
    ExitCode::from(run(Args::parse()))
}

/// The whole program, from the parsed flags to the exit status.
fn run(args: Args) -> u8 {
    let config = Config::new(&args);
    let rt = match runtime(args.procs, &config) {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("http: {err}");
            return 1;
        }
    };
    // Watch for signals before saying we listen: a signal sent as soon as `listening on` is
    // printed starts the drain instead of killing the process.
    let (stop, stop_handle) = Context::background().with_cancel();
    if let Err(err) = watch_signals(stop_handle) {
        eprintln!("http: cannot watch for signals: {err}");
        return 1;
    }
    let addr = args.addr;
    let served = rt.block_on(move || -> io::Result<Drained> {
        let listener = TcpListener::bind(&addr)
            .map_err(|err| io::Error::new(err.kind(), format!("{addr}: {err}")))?;
        println!("listening on {}", listener.local_addr()?);
        Ok(serve(listener, config, stop))
    });
    let drained = match served {
        Ok(drained) => drained,
        Err(err) => {
            eprintln!("http: {err}");
            return 1;
        }
    };
    println!(
        "drained: {} connections finished, {} forced",
        drained.finished, drained.forced
    );
    // Whatever is left (a refusal still lingering, a goroutine past the grace) is cancelled.
    if let Err(err) = rt.shutdown_timeout(FORCE_GRACE) {
        eprintln!("http: {err}");
    }
    0
}

/// The runtime: `procs` workers, and room for `max_conns` connections and as many 503s in
/// progress, so that `try_spawn` refuses a flood beyond that.
fn runtime(procs: Option<usize>, config: &Config) -> Result<Runtime, scheduler::BuildError> {
    let mut builder =
        Runtime::builder().max_goroutines(config.max_conns.saturating_mul(2).saturating_add(8));
    if let Some(procs) = procs {
        builder = builder.procs(procs);
    }
    builder.build()
}

/// Ends `stop` at the first SIGINT or SIGTERM; exits at once at the second.
fn watch_signals(stop: CancelHandle) -> io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    thread::Builder::new()
        .name("signals".to_owned())
        .spawn(move || {
            let mut signals = signals.forever();
            if let Some(signal) = signals.next() {
                eprintln!("http: signal {signal}: draining");
                stop.cancel();
            }
            if signals.next().is_some() {
                eprintln!("http: second signal: exiting now");
                std::process::exit(130);
            }
        })?;
    Ok(())
}

/// What the shutdown did with the connections: those that ended in the drain time (idle ones
/// closed, requests under way completed) and those whose requests had to be cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Drained {
    finished: usize,
    forced: usize,
}

/// What every connection's goroutine shares.
struct Server {
    config: Config,
    /// Ends when the shutdown begins: accepting stops, idle connections close.
    stop: Context,
    /// Ends when the drain time is up: the requests still running are cancelled.
    force: Context,
    /// Connections that ended after `stop` ended, before `force` did.
    finished: AtomicUsize,
    /// Connections that ended after `force` ended. Both counters Relaxed: plain counts, read
    /// after the wait group's wait, which orders the increments of the connections it saw
    /// end (those still running are counted as forced anyway).
    forced: AtomicUsize,
}

impl Server {
    /// Counts a connection that ended, if the shutdown has begun.
    fn count_end(&self) {
        if self.force.is_done() {
            self.forced.fetch_add(1, Ordering::Relaxed);
        } else if self.stop.is_done() {
            self.finished.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Serves connections from `listener` until `stop` ends, then drains them: returns once every
/// connection has ended (or the drain time and the grace after it are up).
fn serve(listener: TcpListener, config: Config, stop: Context) -> Drained {
    let (force, force_handle) = Context::background().with_cancel();
    let server = Arc::new(Server {
        config,
        stop,
        force,
        finished: AtomicUsize::new(0),
        forced: AtomicUsize::new(0),
    });
    let conns = WaitGroup::new();
    loop {
        let stream = match listener.accept_ctx(&server.stop) {
            Ok((stream, _peer)) => stream,
            Err(err) if net::context_error(&err).is_some() => break,
            Err(err) => {
                // Out of descriptors, a connection reset before it was accepted...: the
                // listener itself is fine. Pause a moment rather than spin on the error.
                eprintln!("http: accept: {err}");
                let _ = scheduler::time::sleep_ctx(Duration::from_millis(10), &server.stop);
                continue;
            }
        };
        // Only this loop adds connections, so the count cannot grow between the check and
        // the `go`.
        if conns.count() >= server.config.max_conns {
            refuse(stream, &server.stop);
            continue;
        }
        let server = server.clone();
        conns.go(move || {
            connection(&stream, &server);
            server.count_end();
        });
    }
    // Stop accepting: from here on, the kernel refuses new connections.
    drop(listener);

    let (drain_time, _drain_handle) = Context::background().with_timeout(server.config.drain);
    if conns.wait_ctx(&drain_time).is_err() {
        force_handle.cancel();
        let (grace, _grace_handle) = Context::background().with_timeout(FORCE_GRACE);
        let _ = conns.wait_ctx(&grace);
    }
    Drained {
        finished: server.finished.load(Ordering::Relaxed),
        // Connections still running now (stuck past the grace) count as forced too.
        forced: server.forced.load(Ordering::Relaxed) + conns.count(),
    }
}

/// Answers a connection over the limit with a 503 and closes it, from a goroutine of its
/// own so that a slow client cannot hold up the accept loop. When the runtime has no room
/// for that goroutine either, the connection is closed without an answer.
fn refuse(stream: TcpStream, stop: &Context) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
        Content-Length: 23\r\nConnection: close\r\n\r\nserver busy, try later\n";
    let stop = stop.clone();
    // On `Err`, the closure, and the connection with it, is dropped: closed.
    let _ = scheduler::try_spawn(move || {
        let _ = stream.set_write_deadline(Some(Instant::now() + LINGER));
        if stream.write_all_ctx(BUSY, &stop).is_ok() {
            close_gracefully(&stream, &stop);
        }
    });
}

/// Shuts the writing half and reads what the client still sends until it closes, for at
/// most [`LINGER`] or until `ctx` ends. Closing a socket with unread data resets the
/// connection, and the client may then lose the response it has not read yet.
fn close_gracefully(stream: &TcpStream, ctx: &Context) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_deadline(Some(Instant::now() + LINGER));
    let mut sink = [0; 1024];
    while let Ok(1..) = stream.read_ctx(&mut sink, ctx) {}
}

/// What to do with a connection after a request.
enum Next {
    /// Wait for the next request.
    KeepAlive,
    /// Close gracefully: a response with `Connection: close` was written.
    Close,
    /// Close at once: the client left, went silent, or the request was cancelled.
    Drop,
}

/// Serves one connection's requests, one after another.
fn connection(stream: &TcpStream, server: &Server) {
    // Small responses go out at once rather than wait for an acknowledgement.
    let _ = stream.set_nodelay(true);
    // Every request's context descends from this one, so the drain's end cancels them all.
    let (conn_ctx, _conn_handle) = server.force.with_cancel();
    let mut input = Buffer::new();
    let mut output = Vec::with_capacity(READ_BUFFER);
    loop {
        match request(stream, server, &conn_ctx, &mut input, &mut output) {
            Next::KeepAlive => {}
            Next::Close => return close_gracefully(stream, &conn_ctx),
            Next::Drop => return,
        }
    }
}

/// Reads one request, handles it and writes the response.
fn request(
    stream: &TcpStream,
    server: &Server,
    conn_ctx: &Context,
    input: &mut Buffer,
    output: &mut Vec<u8>,
) -> Next {
    let config = &server.config;
    // Idle: wait for the first bytes of the next request, for at most the idle time, and
    // not past the start of a shutdown, which closes idle connections at once.
    if input.is_empty() {
        input.shrink();
        let _ = stream.set_read_deadline(Some(Instant::now() + config.idle_timeout));
        match input.read_from(stream, &server.stop) {
            Ok(1..) => {}
            Ok(0) | Err(_) => return Next::Drop,
        }
        let _ = stream.set_read_deadline(None);
    }

    // From its first byte, the request has `request_timeout` to arrive and be handled. A
    // shutdown no longer interrupts it; only the drain's end (through `conn_ctx`) does.
    let (ctx, _request_handle) = conn_ctx.with_timeout(config.request_timeout);
    let head = loop {
        match Head::parse(input.filled()) {
            Ok(Some(head)) => break head,
            Ok(None) => {}
            Err(status) => return reject(stream, status, config, conn_ctx, output),
        }
        if input.is_full() && !input.grow() {
            return reject(stream, HEADERS_TOO_LARGE, config, conn_ctx, output);
        }
        match input.read_from(stream, &ctx) {
            Ok(1..) => {}
            Ok(0) => return Next::Drop,
            Err(err) => return read_failed(&err, stream, config, conn_ctx, output),
        }
    };
    if head.content_length > MAX_BODY {
        return reject(stream, CONTENT_TOO_LARGE, config, conn_ctx, output);
    }
    // No route reads a body: discard it, keeping what follows it for the next request.
    input.consume(head.len);
    let mut body_left = head.content_length;
    loop {
        let n = body_left.min(input.filled().len());
        input.consume(n);
        body_left -= n;
        if body_left == 0 {
            break;
        }
        match input.read_from(stream, &ctx) {
            Ok(1..) => {}
            Ok(0) => return Next::Drop,
            Err(err) => return read_failed(&err, stream, config, conn_ctx, output),
        }
    }

    let (response, cancelled) = match handle(&head.method, &head.target, &ctx) {
        Ok(response) => (response, false),
        Err(ContextError::DeadlineExceeded) => (Response::status(GATEWAY_TIMEOUT), false),
        // The drain time is up: say so if the socket takes it at once, and close.
        Err(_) => (Response::status(SERVICE_UNAVAILABLE), true),
    };
    // Once the shutdown has begun, a request still gets its answer, and then the connection
    // closes.
    let close = !head.keep_alive || cancelled || server.stop.is_done();
    let head_only = head.method == "HEAD";
    if write_response(
        stream, &response, head_only, close, config, conn_ctx, output,
    )
    .is_err()
    {
        return Next::Drop;
    }
    match (close, cancelled) {
        (_, true) => Next::Drop,
        (true, false) => Next::Close,
        (false, false) => Next::KeepAlive,
    }
}

/// Answers a request that could not be read with `status`, and closes.
fn reject(
    stream: &TcpStream,
    status: Status,
    config: &Config,
    conn_ctx: &Context,
    output: &mut Vec<u8>,
) -> Next {
    let response = Response::status(status);
    match write_response(stream, &response, false, true, config, conn_ctx, output) {
        Ok(()) => Next::Close,
        Err(_) => Next::Drop,
    }
}

/// A read in the middle of a request failed: `408` if the request's time ran out, else the
/// connection is dropped (the client left, or the drain's end cancelled the request).
fn read_failed(
    err: &io::Error,
    stream: &TcpStream,
    config: &Config,
    conn_ctx: &Context,
    output: &mut Vec<u8>,
) -> Next {
    match net::context_error(err) {
        Some(ContextError::DeadlineExceeded) => {
            reject(stream, REQUEST_TIMEOUT, config, conn_ctx, output)
        }
        _ => Next::Drop,
    }
}

/// The routes. A handler that waits does so through `ctx`, so that it ends when the
/// request's deadline passes (or the drain's end cancels it): `Err` with the reason.
fn handle(method: &str, target: &str, ctx: &Context) -> Result<Response, ContextError> {
    if method != "GET" && method != "HEAD" {
        return Ok(Response::status(METHOD_NOT_ALLOWED).header("Allow: GET, HEAD"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(match path {
        "/" => Response::ok("Hello, World!"),
        "/metrics" => Response::ok(format!("{}\n", scheduler::metrics())),
        "/slow" => {
            let ms = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("ms="))
                .and_then(|ms| ms.parse::<u64>().ok());
            let Some(ms) = ms else {
                return Ok(Response::new(BAD_REQUEST, "usage: /slow?ms=N\n"));
            };
            scheduler::time::sleep_ctx(Duration::from_millis(ms), ctx)?;
            Response::ok(format!("slept {ms} ms\n"))
        }
        _ => Response::status(NOT_FOUND),
    })
}

/// Writes `response`, with `Connection: close` if `close`; bounded by `request_timeout`, and
/// by `conn_ctx` (the drain's end).
fn write_response(
    stream: &TcpStream,
    response: &Response,
    head_only: bool,
    close: bool,
    config: &Config,
    conn_ctx: &Context,
    output: &mut Vec<u8>,
) -> io::Result<()> {
    output.clear();
    let Status(code, reason) = response.status;
    write!(
        output,
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n",
        response.body.len()
    )?;
    if close {
        output.extend_from_slice(b"Connection: close\r\n");
    }
    if let Some(header) = response.header {
        write!(output, "{header}\r\n")?;
    }
    output.extend_from_slice(b"\r\n");
    if !head_only {
        output.extend_from_slice(response.body.as_bytes());
    }
    stream.set_write_deadline(Some(Instant::now() + config.request_timeout))?;
    stream.write_all_ctx(output, conn_ctx)
}

mod protocol;
#[cfg(test)]
mod tests;
