//! `net_server echo|http --procs N --port P [--seconds S]`: our side of the network-server
//! benchmarks in `shared/anchors` (`net.sh`), with the command line and output of the Go,
//! tokio and may servers there, so that `net.sh` runs it as `anchor_ours_server` beside them
//! (`benches/net.sh` builds, installs and runs it).
//!
//! - runtime: `Runtime::builder().procs(N)`, defaults otherwise (goroutine stacks of
//!   [`scheduler::DEFAULT_STACK_SIZE`], of which only the touched pages are resident; the
//!   environment variable `NET_SERVER_STACK_KIB` overrides the size, as `MAY_STACK_KIB` does for
//!   may). The accept loop runs in a goroutine and spawns one goroutine per connection, written
//!   as plain blocking code: [`scheduler::net`] parks the goroutine while a socket is not ready.
//! - listener: 127.0.0.1:P only, [`TcpListener::bind`]: SO_REUSEADDR, backlog 1024 (tokio's and
//!   may's). Accepted connections get TCP_NODELAY (Go's default; the peers set it too).
//! - echo: a 4 KiB heap buffer per connection; read, then `write_all` what was read, until end
//!   of file or an error.
//! - http: HTTP/1.1 with keep-alive, parsed with `httparse`, one goroutine per connection with
//!   a 4 KiB read buffer (grown up to 64 KiB for a large head) and a response buffer, both
//!   reused for every request of the connection. Every request, whatever its method and path,
//!   gets `200 OK` with `content-type: text/plain`, `content-length`, `date` and the body
//!   `Hello, World!` (none for `HEAD`). Pipelined requests are answered with one write per
//!   read. A request body (`content-length`) is skipped; a chunked one is answered, then the
//!   connection is closed. HTTP/1.0 closes unless the client asks for keep-alive.
//! - the `date` header: a clock goroutine stores the Unix time in one atomic at every whole
//!   second; each connection formats it into its own 29 bytes when it has changed (at most once
//!   a second per connection), so requests share no lock and allocate nothing.
//! - prints `ready impl=ours mode=<m> procs=<n> port=<p>` once listening; exits by itself after
//!   S seconds (default 60), or at SIGTERM, printing
//!   `impl=ours mode=<m> procs=<n> port=<p> accepted=<conns> vmhwm_kb=<k> vmrss_kb=<k> exit=<timer|sigterm>`,
//!   then stops the runtime with `shutdown_timeout(0)` (what is left, the accept loop and any
//!   open connection, is cancelled and its sockets closed) and exits with status 0. SIGTERM
//!   arrives through `signal-hook` as a byte on a socket pair, which the main goroutine reads
//!   with a deadline at the end of `--seconds`.
//!
//! Exit status: 0 at the timer or SIGTERM, 2 for usage errors, 3 when it cannot listen, 5 for a
//! panic (fail fast, as the peers).

use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::process::exit;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use scheduler::net::{TcpListener, TcpStream, UnixStream};

const IMPL: &str = "ours";

/// Read buffer of an echo connection (the peers' size).
const ECHO_BUF: usize = 4096;

/// First size of an HTTP connection's read buffer (Go's bufio reader's), and the most it grows
/// to for a request head that does not fit.
const HTTP_BUF: usize = 4096;
const HTTP_MAX_HEAD: usize = 64 * 1024;

/// The most header lines a request may have.
const MAX_HEADERS: usize = 64;

/// The body of every answer.
const HELLO: &[u8] = b"Hello, World!";

/// Everything of the answer before the `date` value; `content-length` is `HELLO`'s.
const HEAD_START: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 13\r\ndate: ";
const _: () = assert!(HELLO.len() == 13);

/// Connections accepted so far, for the final line. Relaxed: a count, published with nothing.
static ACCEPTED: AtomicU64 = AtomicU64::new(0);

/// Unix seconds, stored by the clock goroutine at every whole second: the source of every
/// `date` header. Relaxed: the value alone matters, and a reader a moment behind formats the
/// previous second.
static NOW_SECS: AtomicU64 = AtomicU64::new(0);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Echo,
    Http,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Echo => "echo",
            Mode::Http => "http",
        }
    }
}

#[derive(Clone, Copy)]
struct Args {
    mode: Mode,
    procs: usize,
    port: u16,
    seconds: u64,
}

fn usage() -> ! {
    eprintln!("usage: net_server echo|http --procs N --port P [--seconds S (default 60)]");
    exit(2);
}

/// `echo|http --procs N --port P [--seconds S]`, flags with one or two dashes (as the peers).
fn parse_args() -> Args {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((mode, flags)) = args.split_first() else {
        usage()
    };
    let mode = match mode.as_str() {
        "echo" => Mode::Echo,
        "http" => Mode::Http,
        _ => usage(),
    };
    let (mut procs, mut port, mut seconds) = (0_usize, 0_u16, 60_u64);
    for pair in flags.chunks(2) {
        let [flag, value] = pair else { usage() };
        match flag.trim_start_matches('-') {
            "procs" => procs = value.parse().unwrap_or_else(|_| usage()),
            "port" => port = value.parse().unwrap_or_else(|_| usage()),
            "seconds" => seconds = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    if procs == 0 || port == 0 || seconds == 0 {
        usage();
    }
    Args {
        mode,
        procs,
        port,
        seconds,
    }
}

fn main() {
    let args = parse_args();
    std::panic::set_hook(Box::new(|info| {
        eprintln!("{IMPL}_server: PANIC: {info}");
        exit(5);
    }));

    // SIGTERM becomes a byte on this socket pair (installed before `ready`, so that a SIGTERM
    // right after it is never the default action, which would print nothing).
    let (sigterm, sigterm_tx) = StdUnixStream::pair().expect("socketpair");
    signal_hook::low_level::pipe::register(signal_hook::consts::SIGTERM, sigterm_tx)
        .expect("SIGTERM handler");

    let mut builder = scheduler::Runtime::builder().procs(args.procs);
    if let Some(kib) = std::env::var("NET_SERVER_STACK_KIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        builder = builder.stack_size(kib * 1024);
    }
    let rt = builder.build().unwrap_or_else(|e| {
        eprintln!("{IMPL}_server: runtime: {e}");
        exit(2);
    });

    let why = rt.block_on(move || serve(args, sigterm));
    println!(
        "impl={IMPL} mode={} procs={} port={} accepted={} vmhwm_kb={} vmrss_kb={} exit={why}",
        args.mode.name(),
        args.procs,
        args.port,
        ACCEPTED.load(Ordering::Relaxed),
        status_kb("VmHWM"),
        status_kb("VmRSS"),
    );

    // Stop now: the accept loop and the connections still open are cancelled (their sockets
    // closed). The thread is a safety net that the benchmark script, which waits for the
    // process, never hangs on.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(5));
        eprintln!("{IMPL}_server: shutdown took over 5 s; exiting anyway");
        exit(0);
    });
    if let Err(err) = rt.shutdown_timeout(Duration::ZERO)
        && err.remaining_blocking() > 0
    {
        eprintln!("{IMPL}_server: shutdown: {err}");
    }
}

/// The main goroutine: listens, starts the accept loop (and the clock for http), says `ready`,
/// and waits for SIGTERM or the end of `--seconds`, whichever comes first.
fn serve(args: Args, sigterm: StdUnixStream) -> &'static str {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let listener = TcpListener::bind(addr).unwrap_or_else(|e| {
        eprintln!("{IMPL}_server: listen {addr}: {e}");
        exit(3);
    });
    let mode = args.mode;
    if mode == Mode::Http {
        NOW_SECS.store(unix_secs(), Ordering::Relaxed);
        scheduler::spawn(clock);
    }
    scheduler::spawn(move || accept_loop(&listener, mode));
    println!(
        "ready impl={IMPL} mode={} procs={} port={}",
        mode.name(),
        args.procs,
        args.port
    );

    let mut sigterm = UnixStream::try_from(sigterm).expect("signal socket");
    sigterm
        .set_read_deadline(Some(deadline))
        .expect("read deadline");
    match sigterm.read(&mut [0]) {
        Ok(_) => "sigterm",
        Err(err) if err.kind() == io::ErrorKind::TimedOut => "timer",
        Err(err) => panic!("reading the signal socket: {err}"),
    }
}

fn accept_loop(listener: &TcpListener, mode: Mode) {
    for conn in listener.incoming() {
        let conn = match conn {
            Ok(conn) => conn,
            Err(err) => {
                // EMFILE and the like: report, back off a little, go on (as the peers).
                eprintln!("{IMPL}_server: accept: {err}");
                scheduler::sleep(Duration::from_millis(5));
                continue;
            }
        };
        ACCEPTED.fetch_add(1, Ordering::Relaxed);
        let _ = conn.set_nodelay(true);
        let spawned = match mode {
            Mode::Echo => scheduler::try_spawn(move || echo(conn)),
            Mode::Http => scheduler::try_spawn(move || http(conn)),
        };
        if let Err(err) = spawned {
            // Shutting down, or no stack for it: the connection is closed.
            eprintln!("{IMPL}_server: spawn: {err}");
            if matches!(err, scheduler::SpawnError::ShuttingDown) {
                return;
            }
        }
    }
}

fn echo(mut conn: TcpStream) {
    let mut buf = vec![0_u8; ECHO_BUF];
    loop {
        let n = match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if conn.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// One HTTP connection: read what comes, answer every complete request in it with one write,
/// keep the incomplete rest for the next read.
fn http(mut conn: TcpStream) {
    let mut buf = vec![0_u8; HTTP_BUF];
    let mut filled = 0; // bytes of `buf` read and not yet consumed
    let mut out = Vec::with_capacity(256);
    let mut date = DateHeader::default();
    let mut body_left = 0_u64; // body bytes of the last request still to skip
    loop {
        let n = match conn.read(&mut buf[filled..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        filled += n;
        let mut start = 0;
        let mut close = false;
        while start < filled && !close {
            if body_left > 0 {
                let skip = body_left.min((filled - start) as u64);
                start += skip as usize;
                body_left -= skip;
                continue;
            }
            // Uninitialized: zeroing 64 headers would cost more than parsing wrk's one.
            let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut []);
            match req.parse_with_uninit_headers(&buf[start..filled], &mut headers) {
                Ok(httparse::Status::Complete(len)) => {
                    start += len;
                    let head = Head::of(&req);
                    let Some(body) = head.body else {
                        out.extend_from_slice(BAD_REQUEST);
                        close = true;
                        continue;
                    };
                    close = !head.keep_alive || body == Body::Chunked;
                    if let Body::Length(len) = body {
                        body_left = len;
                    }
                    answer(&mut out, date.get(), &head, close);
                }
                Ok(httparse::Status::Partial) => break,
                Err(_) => {
                    out.extend_from_slice(BAD_REQUEST);
                    close = true;
                }
            }
        }
        if !out.is_empty() {
            if conn.write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
        if close {
            return;
        }
        // The start of the next request moves to the front; a head that fills the buffer
        // grows it, up to the limit.
        buf.copy_within(start..filled, 0);
        filled -= start;
        if filled == buf.len() {
            if buf.len() >= HTTP_MAX_HEAD {
                let _ = conn.write_all(HEAD_TOO_LARGE);
                return;
            }
            buf.resize(buf.len() * 2, 0);
        }
    }
}

const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
const HEAD_TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Body {
    Length(u64),
    Chunked,
}

/// What the answer depends on.
#[derive(Debug)]
struct Head {
    /// `HEAD` gets no body.
    is_head: bool,
    http10: bool,
    keep_alive: bool,
    /// `None`: a `content-length` that is not a number.
    body: Option<Body>,
}

impl Head {
    fn of(req: &httparse::Request<'_, '_>) -> Head {
        let http10 = req.version == Some(0);
        let mut keep_alive = !http10;
        let mut body = Some(Body::Length(0));
        for header in req.headers.iter() {
            let name = header.name;
            if name.eq_ignore_ascii_case("connection") {
                for token in header.value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        keep_alive = false;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        keep_alive = true;
                    }
                }
            } else if name.eq_ignore_ascii_case("content-length") {
                if body != Some(Body::Chunked) {
                    body = std::str::from_utf8(header.value)
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                        .map(Body::Length);
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                body = Some(Body::Chunked);
            }
        }
        Head {
            is_head: req.method == Some("HEAD"),
            http10,
            keep_alive,
            body,
        }
    }
}

/// Appends the answer to one request.
fn answer(out: &mut Vec<u8>, date: &[u8; 29], head: &Head, close: bool) {
    out.extend_from_slice(HEAD_START);
    out.extend_from_slice(date);
    if close {
        out.extend_from_slice(b"\r\nconnection: close");
    } else if head.http10 {
        out.extend_from_slice(b"\r\nconnection: keep-alive");
    }
    out.extend_from_slice(b"\r\n\r\n");
    if !head.is_head {
        out.extend_from_slice(HELLO);
    }
}

/// A connection's copy of the `date` value, formatted again when [`NOW_SECS`] has moved on.
#[derive(Default)]
struct DateHeader {
    secs: u64,
    text: Option<[u8; 29]>,
}

impl DateHeader {
    fn get(&mut self) -> &[u8; 29] {
        let now = NOW_SECS.load(Ordering::Relaxed);
        if self.text.is_none() || self.secs != now {
            self.secs = now;
            self.text = Some(http_date(now));
        }
        self.text.as_ref().expect("set above")
    }
}

/// The clock goroutine: stores the time into [`NOW_SECS`] just after every whole second.
fn clock() {
    loop {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        NOW_SECS.store(now.as_secs(), Ordering::Relaxed);
        scheduler::sleep(Duration::from_nanos(
            1_000_000_000 - u64::from(now.subsec_nanos()),
        ));
    }
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `secs` (Unix time) as an HTTP date, RFC 9110's IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(secs: u64) -> [u8; 29] {
    const WEEKDAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86_400;
    let in_day = secs % 86_400;
    // Days since 1970-01-01 to a civil date (Howard Hinnant's `civil_from_days`), with the
    // era starting on 0000-03-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);

    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[0..3].copy_from_slice(WEEKDAYS[(days % 7) as usize]);
    two_digits(&mut out[5..7], day);
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    let year = year.min(9999);
    two_digits(&mut out[12..14], year / 100);
    two_digits(&mut out[14..16], year % 100);
    two_digits(&mut out[17..19], in_day / 3600);
    two_digits(&mut out[20..22], in_day / 60 % 60);
    two_digits(&mut out[23..25], in_day % 60);
    out
}

fn two_digits(out: &mut [u8], n: u64) {
    out[0] = b'0' + (n / 10 % 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

/// A field of `/proc/self/status` in kB (`VmHWM`, `VmRSS`), -1 if unreadable.
fn status_kb(field: &str) -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(&http_date(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&http_date(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&http_date(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(&http_date(1_735_689_599), b"Tue, 31 Dec 2024 23:59:59 GMT");
        assert_eq!(&http_date(4_107_542_400), b"Mon, 01 Mar 2100 00:00:00 GMT");
    }

    fn head(request: &[u8]) -> Head {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        assert!(req.parse(request).unwrap().is_complete());
        Head::of(&req)
    }

    #[test]
    fn heads() {
        let h = head(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(h.keep_alive && !h.is_head && h.body == Some(Body::Length(0)));
        let h = head(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n");
        assert!(!h.keep_alive);
        let h = head(b"GET / HTTP/1.0\r\n\r\n");
        assert!(!h.keep_alive && h.http10);
        let h = head(b"HEAD / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n");
        assert!(h.keep_alive && h.is_head);
        let h = head(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(h.body, Some(Body::Length(5)));
        let h = head(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n");
        assert_eq!(h.body, None);
        let h = head(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(h.body, Some(Body::Chunked));
    }

    #[test]
    fn answers() {
        let mut out = Vec::new();
        let get = head(b"GET / HTTP/1.1\r\n\r\n");
        answer(&mut out, &http_date(0), &get, false);
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n\
              date: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\nHello, World!"
        );
    }
}
