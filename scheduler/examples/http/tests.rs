//! The server's tests: in-process for the routes, the time-outs and the connection limit; in
//! a child process (this binary run again) for the drain at SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;

use super::*;

#[path = "../common/within_limit.rs"]
mod limit;
use limit::within_limit;
/// Client sockets' read and write time-outs: a server that never answers fails the test.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a child server may take to start, or to exit after its signal.
const CHILD_LIMIT: Duration = Duration::from_secs(20);
/// Set to the flags of the server that [`child_server`] runs; unset in a normal run.
const CHILD_ENV: &str = "SCHEDULER_HTTP_EXAMPLE_CHILD_ARGS";

fn config() -> Config {
    Config::new(&Args::parse_from(["http"]))
}

/// A server running in this process on a port of its own.
struct TestServer {
    rt: Runtime,
    addr: SocketAddr,
    stop: CancelHandle,
    served: scheduler::JoinHandle<Drained>,
}

impl TestServer {
    fn start(config: Config) -> TestServer {
        let rt = runtime(Some(2), &config).unwrap();
        let listener = rt.block_on(|| TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_ctx, stop) = Context::background().with_cancel();
        let served = rt.spawn(move || serve(listener, config, stop_ctx));
        TestServer {
            rt,
            addr,
            stop,
            served,
        }
    }

    /// Shuts the server down; every goroutine has ended when this returns.
    fn shut_down(self) -> Drained {
        self.stop.cancel();
        let drained = self.served.join().unwrap();
        self.rt.shutdown_timeout(Duration::from_secs(5)).unwrap();
        drained
    }
}

/// A response, as a test client reads it.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        let mut found = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name));
        found.next().map(|(_, value)| value.as_str())
    }
}

/// A blocking HTTP/1.1 client on a std socket, outside the runtime.
struct Client {
    stream: std::net::TcpStream,
    /// Bytes read and not yet part of a response.
    pending: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(CLIENT_TIMEOUT)).unwrap();
        Client {
            stream,
            pending: Vec::new(),
        }
    }

    /// Sends a GET of `target` with `extra` header lines (each ending in `\r\n`).
    fn send(&mut self, target: &str, extra: &str) {
        let request = format!("GET {target} HTTP/1.1\r\nHost: test\r\n{extra}\r\n");
        self.stream.write_all(request.as_bytes()).unwrap();
    }

    fn get(&mut self, target: &str) -> Reply {
        self.send(target, "");
        self.reply().unwrap()
    }

    /// Reads one response.
    fn reply(&mut self) -> io::Result<Reply> {
        self.read_reply(true)
    }

    /// Reads one response, which has no body if not `has_body` (the answer to a HEAD).
    fn read_reply(&mut self, has_body: bool) -> io::Result<Reply> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(len) = response.parse(&self.pending).unwrap() {
                let headers: Vec<(String, String)> = response
                    .headers
                    .iter()
                    .map(|h| {
                        let value = String::from_utf8_lossy(h.value).into_owned();
                        (h.name.to_owned(), value)
                    })
                    .collect();
                let status = response.code.unwrap();
                let length = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .map_or(0, |(_, v)| v.parse::<usize>().unwrap());
                let length = if has_body { length } else { 0 };
                while self.pending.len() < len + length {
                    self.read_more()?;
                }
                let body = String::from_utf8(self.pending[len..len + length].to_vec());
                self.pending.drain(..len + length);
                return Ok(Reply {
                    status,
                    headers,
                    body: body.unwrap(),
                });
            }
            self.read_more()?;
        }
    }

    fn read_more(&mut self) -> io::Result<()> {
        let mut buf = [0; 4096];
        match self.stream.read(&mut buf)? {
            0 => Err(io::ErrorKind::UnexpectedEof.into()),
            n => {
                self.pending.extend_from_slice(&buf[..n]);
                Ok(())
            }
        }
    }

    /// Whether the server closed the connection: end of file (or a reset) with nothing
    /// more to read. Fails on a time-out.
    fn closed_by_server(&mut self) -> bool {
        let mut buf = [0; 64];
        match self.stream.read(&mut buf) {
            Ok(0) => self.pending.is_empty(),
            Ok(_) => false,
            Err(err) if err.kind() == io::ErrorKind::ConnectionReset => true,
            Err(err) => panic!("waiting for the server to close: {err}"),
        }
    }
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    within_limit(|| {
        let server = TestServer::start(config());
        let mut client = Client::connect(server.addr);
        for _ in 0..5 {
            let reply = client.get("/");
            assert_eq!(reply.status, 200);
            assert_eq!(reply.body, "Hello, World!");
            assert_eq!(reply.header("content-length"), Some("13"));
            assert!(
                reply
                    .header("content-type")
                    .unwrap()
                    .starts_with("text/plain")
            );
            assert_eq!(reply.header("connection"), None);
        }
        assert_eq!(client.get("/nowhere").status, 404);
        // HEAD: the headers of a GET, no body.
        client.stream.write_all(b"HEAD / HTTP/1.1\r\n\r\n").unwrap();
        let reply = client.read_reply(false).unwrap();
        assert_eq!(
            (reply.status, reply.header("content-length")),
            (200, Some("13"))
        );
        assert_eq!(client.get("/").body, "Hello, World!");
        // `Connection: close` is honoured: the answer, then the end.
        client.send("/", "Connection: close\r\n");
        let reply = client.reply().unwrap();
        assert_eq!(
            (reply.status, reply.header("connection")),
            (200, Some("close"))
        );
        assert!(client.closed_by_server());

        // HTTP/1.0: one request per connection.
        let mut old = Client::connect(server.addr);
        old.stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let reply = old.reply().unwrap();
        assert_eq!(
            (reply.status, reply.header("connection")),
            (200, Some("close"))
        );
        assert!(old.closed_by_server());

        // A head over 64 KiB: 431, and the connection closes.
        let mut big = Client::connect(server.addr);
        let filler = format!("X-Filler: {}\r\n", "a".repeat(70 * 1024));
        big.send("/", &filler);
        assert_eq!(big.reply().unwrap().status, 431);
        assert!(big.closed_by_server());

        let drained = server.shut_down();
        assert_eq!(drained.forced, 0);
    });
}

#[test]
fn a_slow_handler_gets_504_and_its_goroutine_ends() {
    within_limit(|| {
        let server = TestServer::start(Config {
            request_timeout: Duration::from_millis(200),
            ..config()
        });
        let mut client = Client::connect(server.addr);
        let start = Instant::now();
        let reply = client.get("/slow?ms=3000");
        let waited = start.elapsed();
        assert_eq!(reply.status, 504, "{reply:?}");
        assert!(
            waited >= Duration::from_millis(200) && waited < Duration::from_secs(2),
            "answered after {waited:?}"
        );
        // The connection goes on, and no goroutine is left sleeping in the handler.
        let metrics = client.get("/metrics");
        assert!(metrics.body.contains(" timer 0,"), "{}", metrics.body);
        assert_eq!(client.get("/slow?ms=1").body, "slept 1 ms\n");
        server.shut_down();
    });
}

#[test]
fn over_max_conns_a_connection_gets_503_at_once() {
    within_limit(|| {
        let server = TestServer::start(Config {
            max_conns: 2,
            ..config()
        });
        // Two connections, admitted (each has had an answer) and held open.
        let mut held: Vec<Client> = (0..2).map(|_| Client::connect(server.addr)).collect();
        for client in &mut held {
            assert_eq!(client.get("/").status, 200);
        }
        let start = Instant::now();
        let mut third = Client::connect(server.addr);
        let reply = third.get("/");
        assert_eq!(reply.status, 503, "{reply:?}");
        assert_eq!(reply.header("connection"), Some("close"));
        assert!(third.closed_by_server());
        let waited = start.elapsed();
        assert!(waited < Duration::from_secs(2), "answered after {waited:?}");
        // The held ones are still served.
        for client in &mut held {
            assert_eq!(client.get("/").status, 200);
        }
        // Once one of them leaves, there is room again (as soon as the server has seen
        // it leave: until then, 503s).
        drop(held.pop());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let status = Client::connect(server.addr).get("/").status;
            if status == 200 {
                break;
            }
            assert_eq!(status, 503);
            assert!(Instant::now() < deadline, "no room after a connection left");
            thread::sleep(Duration::from_millis(5));
        }
        drop(held);
        server.shut_down();
    });
}

#[test]
fn metrics_are_served_as_text() {
    within_limit(|| {
        let server = TestServer::start(config());
        let reply = Client::connect(server.addr).get("/metrics");
        assert_eq!(reply.status, 200);
        assert!(
            reply
                .header("content-type")
                .unwrap()
                .starts_with("text/plain")
        );
        assert!(reply.body.contains("goroutines"), "{}", reply.body);
        server.shut_down();
    });
}

// --- Graceful shutdown, in a child process that gets a real SIGTERM. ---

/// The body of the child process: runs the server with the flags in [`CHILD_ENV`] and
/// exits with its status. Does nothing in a normal test run.
#[test]
fn child_server() {
    let Ok(flags) = std::env::var(CHILD_ENV) else {
        return;
    };
    let args = Args::parse_from(["http"].into_iter().chain(flags.split_whitespace()));
    std::process::exit(run(args).into());
}

/// The server as a child process: this test binary, re-run with only [`child_server`].
struct ChildServer {
    child: Child,
    addr: SocketAddr,
    /// Lines of its stdout and stderr, as they come.
    lines: mpsc::Receiver<String>,
    /// Every line received so far, for the failure messages.
    transcript: Vec<String>,
}

impl ChildServer {
    fn start(flags: &str) -> ChildServer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "tests::child_server", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(CHILD_ENV, format!("--addr 127.0.0.1:0 --procs 2 {flags}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for pipe in [Box::new(stdout) as Box<dyn Read + Send>, Box::new(stderr)] {
            let tx = tx.clone();
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let mut server = ChildServer {
            child,
            addr: ([0, 0, 0, 0], 0).into(),
            lines,
            transcript: Vec::new(),
        };
        let line = server.wait_for_line("listening on ");
        server.addr = line["listening on ".len()..].parse().unwrap();
        server
    }

    /// The first line (from now on) with `prefix`, from `prefix` on.
    fn wait_for_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + CHILD_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.transcript.push(line.clone());
                    // The test harness prints `test tests::child_server ... ` first,
                    // without a line end.
                    if let Some(at) = line.find(prefix) {
                        return line[at..].to_owned();
                    }
                }
                Err(_) => panic!(
                    "no line {prefix:?} from the server; it printed:\n{}",
                    self.transcript.join("\n")
                ),
            }
        }
    }

    fn terminate(&self) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill only sends a signal, to the child this test started and has not
        // reaped yet (it is reaped in `wait` or `drop`), so the pid is still its own.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    }

    /// Waits for the child to exit, for at most [`CHILD_LIMIT`].
    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + CHILD_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit; it printed:\n{}",
                self.transcript.join("\n")
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Reads the `drained:` line: (finished, forced).
    fn drained(&mut self) -> (usize, usize) {
        let line = self.wait_for_line("drained: ");
        let numbers: Vec<usize> = line
            .split_whitespace()
            .filter_map(|word| word.parse().ok())
            .collect();
        match numbers[..] {
            [finished, forced] => (finished, forced),
            _ => panic!("unexpected line {line:?}"),
        }
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        // A failed test does not leave its server running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many goroutines the server's metrics show asleep in a timer.
fn sleeping(metrics: &str) -> usize {
    let after = metrics.split(" timer ").nth(1).expect("a timer count");
    after.split(',').next().unwrap().parse().unwrap()
}

#[test]
fn sigterm_drains_in_flight_requests_and_closes_idle_connections() {
    let mut server = ChildServer::start("--request-timeout-ms 20000 --drain-ms 10000");
    // An idle keep-alive connection, and a request under way on another.
    let mut idle = Client::connect(server.addr);
    assert_eq!(idle.get("/").status, 200);
    let mut busy = Client::connect(server.addr);
    busy.send("/slow?ms=2000", "");
    // The slow handler is asleep once the metrics say so.
    let deadline = Instant::now() + CHILD_LIMIT;
    while sleeping(&idle.get("/metrics").body) == 0 {
        assert!(Instant::now() < deadline, "the slow request never started");
    }

    server.terminate();
    // The idle connection is closed at once, while the slow request is still running.
    assert!(idle.closed_by_server());
    busy.stream.set_nonblocking(true).unwrap();
    let early = busy.stream.peek(&mut [0; 1]);
    assert!(
        matches!(&early, Err(err) if err.kind() == io::ErrorKind::WouldBlock),
        "the slow request ended before the idle connection was closed: {early:?}"
    );
    busy.stream.set_nonblocking(false).unwrap();
    // The slow request gets its whole answer, and its connection closes after it.
    let reply = busy.reply().unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "slept 2000 ms\n");
    assert_eq!(reply.header("connection"), Some("close"));
    assert!(busy.closed_by_server());
    drop(busy);

    assert_eq!(server.drained(), (2, 0), "{}", server.transcript.join("\n"));
    let status = server.wait();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn sigterm_forces_requests_that_outlive_the_drain_time() {
    let mut server = ChildServer::start("--request-timeout-ms 60000 --drain-ms 300");
    let mut busy = Client::connect(server.addr);
    busy.send("/slow?ms=30000", "");
    let mut watcher = Client::connect(server.addr);
    let deadline = Instant::now() + CHILD_LIMIT;
    while sleeping(&watcher.get("/metrics").body) == 0 {
        assert!(Instant::now() < deadline, "the slow request never started");
    }

    let start = Instant::now();
    server.terminate();
    // Cancelled at the end of the drain time: a 503 if it went out, else just the end.
    if let Ok(reply) = busy.reply() {
        assert_eq!(reply.status, 503, "{reply:?}");
    }
    let (finished, forced) = server.drained();
    assert!(forced >= 1, "{}", server.transcript.join("\n"));
    assert_eq!(
        finished,
        1,
        "the idle watcher: {}",
        server.transcript.join("\n")
    );
    let status = server.wait();
    assert!(status.success(), "exit status {status}");
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "exited {took:?} after the signal"
    );
}
