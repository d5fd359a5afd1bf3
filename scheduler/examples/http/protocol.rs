//! The HTTP side of the server: statuses, responses, request heads and the read buffer.

use std::borrow::Cow;
use std::io;

use scheduler::context::Context;
use scheduler::net::TcpStream;

/// The read buffer's first size: most requests fit in it.
pub(crate) const READ_BUFFER: usize = 4 * 1024;
/// The most a request's head (request line and headers) may take; `431` beyond.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// The most headers a request may have; `431` beyond.
pub(crate) const MAX_HEADERS: usize = 64;

/// An HTTP status: code and reason phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Status(pub(crate) u16, pub(crate) &'static str);

pub(crate) const OK: Status = Status(200, "OK");
pub(crate) const BAD_REQUEST: Status = Status(400, "Bad Request");
pub(crate) const NOT_FOUND: Status = Status(404, "Not Found");
pub(crate) const METHOD_NOT_ALLOWED: Status = Status(405, "Method Not Allowed");
pub(crate) const REQUEST_TIMEOUT: Status = Status(408, "Request Timeout");
pub(crate) const CONTENT_TOO_LARGE: Status = Status(413, "Content Too Large");
pub(crate) const HEADERS_TOO_LARGE: Status = Status(431, "Request Header Fields Too Large");
pub(crate) const NOT_IMPLEMENTED: Status = Status(501, "Not Implemented");
pub(crate) const SERVICE_UNAVAILABLE: Status = Status(503, "Service Unavailable");
pub(crate) const GATEWAY_TIMEOUT: Status = Status(504, "Gateway Timeout");

/// A plain-text response.
pub(crate) struct Response {
    pub(crate) status: Status,
    pub(crate) body: Cow<'static, str>,
    /// One more header line, without its line end.
    pub(crate) header: Option<&'static str>,
}

impl Response {
    pub(crate) fn new(status: Status, body: impl Into<Cow<'static, str>>) -> Response {
        Response {
            status,
            body: body.into(),
            header: None,
        }
    }

    pub(crate) fn ok(body: impl Into<Cow<'static, str>>) -> Response {
        Response::new(OK, body)
    }

    /// A response whose body is the reason phrase.
    pub(crate) fn status(status: Status) -> Response {
        Response::new(status, format!("{}\n", status.1))
    }

    pub(crate) fn header(mut self, line: &'static str) -> Response {
        self.header = Some(line);
        self
    }
}

/// What the server needs of a request's head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) method: String,
    pub(crate) target: String,
    /// Whether the connection may serve another request after this one.
    pub(crate) keep_alive: bool,
    pub(crate) content_length: usize,
    /// The head's length in bytes, its blank line included.
    pub(crate) len: usize,
}

impl Head {
    /// Parses a complete head at the start of `bytes`; `Ok(None)` while it is incomplete.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Option<Head>, Status> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        let len = match request.parse(bytes) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(HEADERS_TOO_LARGE),
            Err(_) => return Err(BAD_REQUEST),
        };
        // HTTP/1.0: one request per connection.
        let mut keep_alive = request.version == Some(1);
        let mut content_length = None;
        for header in request.headers.iter() {
            let value = std::str::from_utf8(header.value).map_err(|_| BAD_REQUEST)?;
            if header.name.eq_ignore_ascii_case("connection") {
                if value
                    .split(',')
                    .any(|token| token.trim().eq_ignore_ascii_case("close"))
                {
                    keep_alive = false;
                }
            } else if header.name.eq_ignore_ascii_case("content-length") {
                let n: usize = value.trim().parse().map_err(|_| BAD_REQUEST)?;
                if content_length.is_some_and(|m| m != n) {
                    return Err(BAD_REQUEST);
                }
                content_length = Some(n);
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(NOT_IMPLEMENTED);
            }
        }
        Ok(Some(Head {
            method: request.method.unwrap_or_default().to_owned(),
            target: request.path.unwrap_or_default().to_owned(),
            keep_alive,
            content_length: content_length.unwrap_or(0),
            len,
        }))
    }
}

/// A connection's read buffer: the bytes read and not consumed yet are `data[..len]`.
pub(crate) struct Buffer {
    pub(crate) data: Vec<u8>,
    pub(crate) len: usize,
}

impl Buffer {
    pub(crate) fn new() -> Buffer {
        Buffer {
            data: vec![0; READ_BUFFER],
            len: 0,
        }
    }

    pub(crate) fn filled(&self) -> &[u8] {
        &self.data[..self.len]
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len == self.data.len()
    }

    /// Doubles the room, up to [`MAX_HEAD`]; `false` when it is that big already.
    pub(crate) fn grow(&mut self) -> bool {
        if self.data.len() >= MAX_HEAD {
            return false;
        }
        self.data.resize((self.data.len() * 2).min(MAX_HEAD), 0);
        true
    }

    /// Goes back to the first size after a large request, while empty.
    pub(crate) fn shrink(&mut self) {
        if self.len == 0 && self.data.len() > READ_BUFFER {
            self.data = vec![0; READ_BUFFER];
        }
    }

    /// Reads once from `stream` into the free room (there must be some), unless `ctx` ends.
    pub(crate) fn read_from(&mut self, stream: &TcpStream, ctx: &Context) -> io::Result<usize> {
        let n = stream.read_ctx(&mut self.data[self.len..], ctx)?;
        self.len += n;
        Ok(n)
    }

    /// Drops the first `n` bytes.
    pub(crate) fn consume(&mut self, n: usize) {
        self.data.copy_within(n..self.len, 0);
        self.len -= n;
    }
}
