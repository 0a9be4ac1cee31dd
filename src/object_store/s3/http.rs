//! HTTP/1.1 for the S3 client, sans-IO: request heads are written into a buffer, and responses
//! are parsed from whatever bytes have arrived (httparse for the head; bodies framed by
//! Content-Length, chunked transfer coding, or the end of the connection). The glommio driver in
//! `conn.rs` moves the bytes; nothing here does I/O.
//!
//! Every size the server announces is checked against a limit before anything is allocated
//! for it.

use std::fmt::Write as _;
use std::ops::Range;

use bytes::Bytes;

/// Most headers a response may carry; S3 sends about a dozen.
const RESPONSE_HEADERS_MAX: usize = 64;
/// Longest chunk-size or trailer line accepted in a chunked body.
const CHUNK_LINE_BYTES_MAX: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("malformed response head: {0}")]
    BadHead(String),
    #[error("response head exceeds {0} bytes")]
    HeadTooLarge(usize),
    #[error("response body of {len} bytes exceeds the limit of {max}")]
    BodyTooLarge { len: u64, max: u64 },
    #[error("response body is {got} bytes, expected exactly {expected}")]
    LengthMismatch {
        expected: u64,
        got: u64,
        /// The object size from Content-Range, when the server sent one.
        object_size: Option<u64>,
    },
    #[error("malformed chunked body: {0}")]
    BadChunk(&'static str),
    #[error("connection closed before the response was complete")]
    Truncated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Put,
    Head,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Head => "HEAD",
            Method::Delete => "DELETE",
        }
    }
}

/// What to send, apart from the body.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: Method,
    /// Path and query, e.g. `/bucket/key?X-Amz-Signature=…`.
    pub target: &'a str,
    /// The Host header: host, and port unless it is the scheme's default.
    pub host: &'a str,
    /// Byte range to read (GET).
    pub range: Option<Range<u64>>,
    /// Body length; sent as Content-Length for PUT.
    pub body_len: usize,
    /// Further headers, e.g. the signed `x-amz-checksum-crc32c`.
    pub headers: &'a [(&'a str, String)],
}

/// Appends the request line and headers to `out`.
pub fn write_request_head(req: &Request<'_>, out: &mut Vec<u8>) {
    let mut head = String::with_capacity(256 + req.target.len());
    // Writing into a String cannot fail.
    let _ = write!(
        head,
        "{} {} HTTP/1.1\r\nhost: {}\r\nuser-agent: weft/{}\r\n",
        req.method.as_str(),
        req.target,
        req.host,
        env!("CARGO_PKG_VERSION")
    );
    if req.method == Method::Put {
        let _ = write!(head, "content-length: {}\r\n", req.body_len);
    }
    if let Some(r) = &req.range {
        // HTTP ranges are inclusive; callers never ask for an empty one.
        let _ = write!(head, "range: bytes={}-{}\r\n", r.start, r.end - 1);
    }
    for (name, value) in req.headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");
    out.extend_from_slice(head.as_bytes());
}

/// `Content-Range: bytes START-END/SIZE` (or `bytes */SIZE` on a 416).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    pub range: Option<(u64, u64)>,
    pub size: Option<u64>,
}

fn parse_content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, size) = rest.split_once('/')?;
    let size = match size.trim() {
        "*" => None,
        s => Some(s.parse().ok()?),
    };
    let range = match range.trim() {
        "*" => None,
        r => {
            let (a, b) = r.split_once('-')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        }
    };
    Some(ContentRange { range, size })
}

/// Body size rules for one response, chosen by the caller from what it asked for.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Largest body of a 2xx answer.
    pub success_bytes_max: u64,
    /// A 2xx body must be exactly this long (ranged reads).
    pub success_bytes_exact: Option<u64>,
    /// Largest body of any other answer (an error document).
    pub error_bytes_max: u64,
    /// Largest head.
    pub head_bytes_max: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Bytes,
    /// Whether the connection may carry another request.
    pub keep_alive: bool,
    pub content_length: Option<u64>,
    pub content_range: Option<ContentRange>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunked {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Length(u64),
    Chunked(Chunked),
    UntilClose,
    Done,
}

/// Parses one response from the bytes of a connection, fed as they arrive.
#[derive(Debug)]
pub struct ResponseReader {
    head_only: bool,
    limits: BodyLimits,
    state: State,
    status: u16,
    keep_alive: bool,
    content_length: Option<u64>,
    content_range: Option<ContentRange>,
    body_bytes_max: u64,
    body: Vec<u8>,
}

impl ResponseReader {
    /// `head_only` for HEAD requests, whose answers announce a length but carry no body.
    pub fn new(method: Method, limits: BodyLimits) -> ResponseReader {
        ResponseReader {
            head_only: method == Method::Head,
            limits,
            state: State::Head,
            status: 0,
            keep_alive: false,
            content_length: None,
            content_range: None,
            body_bytes_max: 0,
            body: Vec::new(),
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the status line has been parsed (bytes of this response were received).
    pub fn has_head(&self) -> bool {
        self.state != State::Head
    }

    /// Consumes what it can of `input`, the unread bytes of the connection, and returns how
    /// many bytes it took. Bytes it leaves are either an incomplete line it needs more of, or
    /// bytes after the end of the response.
    pub fn feed(&mut self, input: &[u8]) -> Result<usize, HttpError> {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            match self.state {
                State::Done => return Ok(pos),
                State::Head => match self.parse_head(rest)? {
                    Some(n) => pos += n,
                    None => return Ok(pos),
                },
                State::Length(remaining) => {
                    let take = remaining.min(rest.len() as u64) as usize;
                    self.body.extend_from_slice(&rest[..take]);
                    pos += take;
                    let remaining = remaining - take as u64;
                    self.state = if remaining == 0 {
                        State::Done
                    } else {
                        State::Length(remaining)
                    };
                    if remaining > 0 {
                        return Ok(pos);
                    }
                }
                State::UntilClose => {
                    self.grow_check(rest.len() as u64)?;
                    self.body.extend_from_slice(rest);
                    return Ok(input.len());
                }
                State::Chunked(c) => match self.chunked(c, rest)? {
                    Some(n) => pos += n,
                    None => return Ok(pos),
                },
            }
        }
    }

    /// The peer closed the connection: completes a body that runs until close.
    pub fn eof(&mut self) -> Result<(), HttpError> {
        match self.state {
            State::UntilClose => {
                self.state = State::Done;
                Ok(())
            }
            State::Done => Ok(()),
            _ => Err(HttpError::Truncated),
        }
    }

    /// The parsed response. Call once [`is_done`](Self::is_done).
    pub fn into_response(self) -> Response {
        debug_assert!(self.is_done());
        Response {
            status: self.status,
            body: Bytes::from(self.body),
            keep_alive: self.keep_alive,
            content_length: self.content_length,
            content_range: self.content_range,
        }
    }

    fn grow_check(&self, more: u64) -> Result<(), HttpError> {
        let len = self.body.len() as u64 + more;
        if len > self.body_bytes_max {
            return Err(HttpError::BodyTooLarge {
                len,
                max: self.body_bytes_max,
            });
        }
        Ok(())
    }

    /// Parses the head if it is complete; returns its length.
    fn parse_head(&mut self, input: &[u8]) -> Result<Option<usize>, HttpError> {
        let mut headers = [httparse::EMPTY_HEADER; RESPONSE_HEADERS_MAX];
        let mut resp = httparse::Response::new(&mut headers);
        let n = match resp.parse(input) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                if input.len() > self.limits.head_bytes_max {
                    return Err(HttpError::HeadTooLarge(self.limits.head_bytes_max));
                }
                return Ok(None);
            }
            Err(e) => return Err(HttpError::BadHead(e.to_string())),
        };
        if n > self.limits.head_bytes_max {
            return Err(HttpError::HeadTooLarge(self.limits.head_bytes_max));
        }
        let status = resp.code.ok_or(HttpError::BadHead("no status".into()))?;
        if (100..200).contains(&status) {
            // An interim answer (100 Continue); the real one follows.
            return Ok(Some(n));
        }
        let http11 = resp.version == Some(1);
        let mut keep_alive = http11;
        let mut content_length: Option<u64> = None;
        let mut chunked = false;
        let mut content_range = None;
        for h in resp.headers.iter() {
            let value = std::str::from_utf8(h.value)
                .map_err(|_| HttpError::BadHead(format!("header {} is not UTF-8", h.name)))?
                .trim();
            if h.name.eq_ignore_ascii_case("content-length") {
                let len: u64 = value
                    .parse()
                    .map_err(|_| HttpError::BadHead(format!("content-length '{value}'")))?;
                if content_length.is_some_and(|l| l != len) {
                    return Err(HttpError::BadHead("conflicting content-length".into()));
                }
                content_length = Some(len);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                // Chunked must be the last coding; anything else cannot be framed.
                let last = value.rsplit(',').next().unwrap_or("").trim();
                if !last.eq_ignore_ascii_case("chunked") {
                    return Err(HttpError::BadHead(format!("transfer-encoding '{value}'")));
                }
                chunked = true;
            } else if h.name.eq_ignore_ascii_case("connection") {
                for token in value.split(',').map(str::trim) {
                    if token.eq_ignore_ascii_case("close") {
                        keep_alive = false;
                    } else if token.eq_ignore_ascii_case("keep-alive") && !http11 {
                        keep_alive = true;
                    }
                }
            } else if h.name.eq_ignore_ascii_case("content-range") {
                content_range = parse_content_range(value);
            }
        }
        self.status = status;
        self.keep_alive = keep_alive;
        self.content_length = content_length;
        self.content_range = content_range;
        let success = (200..300).contains(&status);
        self.body_bytes_max = if success {
            self.limits.success_bytes_max
        } else {
            self.limits.error_bytes_max
        };
        let no_body = self.head_only || status == 204 || status == 304;
        self.state = if no_body {
            State::Done
        } else if chunked {
            // A message with both is a smuggling risk; the connection is not reused after it.
            if content_length.is_some() {
                self.keep_alive = false;
            }
            self.content_length = None;
            State::Chunked(Chunked::Size)
        } else if let Some(len) = content_length {
            if let (true, Some(expected)) = (success, self.limits.success_bytes_exact) {
                if len != expected {
                    return Err(HttpError::LengthMismatch {
                        expected,
                        got: len,
                        object_size: content_range.and_then(|c| c.size),
                    });
                }
            }
            self.grow_check(len)?;
            self.body = Vec::with_capacity(len as usize);
            if len == 0 {
                State::Done
            } else {
                State::Length(len)
            }
        } else {
            self.keep_alive = false;
            State::UntilClose
        };
        Ok(Some(n))
    }

    /// One step of a chunked body; returns the bytes consumed, or `None` if it needs more.
    fn chunked(&mut self, state: Chunked, input: &[u8]) -> Result<Option<usize>, HttpError> {
        match state {
            Chunked::Size => {
                let Some((line, n)) = line(input)? else {
                    return Ok(None);
                };
                // Extensions after ';' carry nothing we use.
                let digits = line.split(|&b| b == b';').next().unwrap_or(&[]);
                let digits = std::str::from_utf8(digits)
                    .map_err(|_| HttpError::BadChunk("chunk size is not ASCII"))?
                    .trim();
                if digits.is_empty() || digits.len() > 16 {
                    return Err(HttpError::BadChunk("chunk size is empty or too long"));
                }
                let size = u64::from_str_radix(digits, 16)
                    .map_err(|_| HttpError::BadChunk("chunk size is not hexadecimal"))?;
                self.state = if size == 0 {
                    State::Chunked(Chunked::Trailers)
                } else {
                    self.grow_check(size)?;
                    State::Chunked(Chunked::Data(size))
                };
                Ok(Some(n))
            }
            Chunked::Data(remaining) => {
                if input.is_empty() {
                    return Ok(None);
                }
                let take = remaining.min(input.len() as u64) as usize;
                self.body.extend_from_slice(&input[..take]);
                let remaining = remaining - take as u64;
                self.state = State::Chunked(if remaining == 0 {
                    Chunked::DataEnd
                } else {
                    Chunked::Data(remaining)
                });
                Ok(Some(take))
            }
            Chunked::DataEnd => {
                if input.len() < 2 {
                    return Ok(None);
                }
                if &input[..2] != b"\r\n" {
                    return Err(HttpError::BadChunk("chunk data is not followed by CRLF"));
                }
                self.state = State::Chunked(Chunked::Size);
                Ok(Some(2))
            }
            Chunked::Trailers => {
                let Some((line, n)) = line(input)? else {
                    return Ok(None);
                };
                if line.is_empty() {
                    self.state = State::Done;
                }
                Ok(Some(n))
            }
        }
    }
}

/// The first CRLF-terminated line of `input` without its CRLF, and its length with it.
fn line(input: &[u8]) -> Result<Option<(&[u8], usize)>, HttpError> {
    match input.windows(2).position(|w| w == b"\r\n") {
        Some(end) if end <= CHUNK_LINE_BYTES_MAX => Ok(Some((&input[..end], end + 2))),
        Some(_) => Err(HttpError::BadChunk("line too long")),
        None if input.len() > CHUNK_LINE_BYTES_MAX => Err(HttpError::BadChunk("line too long")),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> BodyLimits {
        BodyLimits {
            success_bytes_max: 1000,
            success_bytes_exact: None,
            error_bytes_max: 100,
            head_bytes_max: 512,
        }
    }

    /// Feeds `wire` in pieces of `step` bytes, as a socket might deliver it; returns the
    /// response and the bytes left over after it.
    fn read_in_steps(
        method: Method,
        limits: BodyLimits,
        wire: &[u8],
        step: usize,
    ) -> Result<(Response, Vec<u8>), HttpError> {
        let mut r = ResponseReader::new(method, limits);
        let mut buf = Vec::new();
        let mut sent = 0;
        loop {
            let n = r.feed(&buf)?;
            buf.drain(..n);
            if r.is_done() {
                return Ok((r.into_response(), buf));
            }
            if sent == wire.len() {
                r.eof()?;
                return Ok((r.into_response(), buf));
            }
            let end = (sent + step).min(wire.len());
            buf.extend_from_slice(&wire[sent..end]);
            sent = end;
        }
    }

    fn read(wire: &[u8]) -> Result<(Response, Vec<u8>), HttpError> {
        read_in_steps(Method::Get, limits(), wire, wire.len().max(1))
    }

    #[test]
    fn writes_request_heads() {
        let mut out = Vec::new();
        write_request_head(
            &Request {
                method: Method::Get,
                target: "/b/k?X-Amz-Signature=abc",
                host: "127.0.0.1:8333",
                range: Some(10..20),
                body_len: 0,
                headers: &[],
            },
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("GET /b/k?X-Amz-Signature=abc HTTP/1.1\r\nhost: 127.0.0.1:8333\r\n")
        );
        assert!(text.contains("range: bytes=10-19\r\n"));
        assert!(!text.contains("content-length"));
        assert!(text.ends_with("\r\n\r\n"));

        let mut out = Vec::new();
        let extra = [("x-amz-checksum-crc32c", "AAAAAA==".to_string())];
        write_request_head(
            &Request {
                method: Method::Put,
                target: "/b/k",
                host: "h",
                range: None,
                body_len: 5,
                headers: &extra,
            },
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("content-length: 5\r\n"));
        assert!(text.contains("x-amz-checksum-crc32c: AAAAAA==\r\n"));
        // httparse reads it back as a valid request.
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut req = httparse::Request::new(&mut headers);
        assert!(req.parse(text.as_bytes()).unwrap().is_complete());
        assert_eq!(req.method, Some("PUT"));
    }

    #[test]
    fn content_length_body_in_any_split() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nETag: \"x\"\r\n\r\nhello world";
        for step in 1..wire.len() {
            let (resp, rest) = read_in_steps(Method::Get, limits(), wire, step).unwrap();
            assert_eq!(resp.status, 200);
            assert_eq!(resp.body, &b"hello world"[..]);
            assert!(resp.keep_alive);
            assert_eq!(resp.content_length, Some(11));
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn chunked_body_as_list_objects_sends_it() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nTransfer-Encoding: chunked\r\n\r\n\
            5\r\n<List\r\n\
            1a;ext=1\r\n>ok</List>0123456789abcdef\r\n\
            0\r\nX-Trailer: t\r\n\r\n";
        for step in 1..wire.len() {
            let (resp, rest) = read_in_steps(Method::Get, limits(), wire, step).unwrap();
            assert_eq!(resp.body, &b"<List>ok</List>0123456789abcdef"[..]);
            assert!(resp.keep_alive);
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn chunked_errors() {
        let bad_size = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert!(matches!(read(bad_size), Err(HttpError::BadChunk(_))));
        let no_crlf = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY0\r\n\r\n";
        assert!(matches!(read(no_crlf), Err(HttpError::BadChunk(_))));
        let endless = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{}",
            "1".repeat(2000)
        );
        assert!(matches!(
            read(endless.as_bytes()),
            Err(HttpError::BadChunk(_))
        ));
        let truncated = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab";
        assert_eq!(read(truncated), Err(HttpError::Truncated));
        let gzip = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert!(matches!(read(gzip), Err(HttpError::BadHead(_))));
    }

    #[test]
    fn chunked_body_is_bounded_as_it_grows() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n";
        // 1000 bytes announced in one chunk: allowed (the limit is 1000)...
        let mut r = ResponseReader::new(Method::Get, limits());
        assert_eq!(r.feed(wire).unwrap(), wire.len());
        // ...but the next chunk would pass it, and is refused before it is read.
        let mut body = vec![b'x'; 1000];
        body.extend_from_slice(b"\r\n1\r\n");
        assert_eq!(
            r.feed(&body),
            Err(HttpError::BodyTooLarge {
                len: 1001,
                max: 1000
            })
        );
    }

    #[test]
    fn sizes_are_checked_before_allocating() {
        let huge = b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n";
        assert!(matches!(
            read(huge),
            Err(HttpError::BodyTooLarge { max: 1000, .. })
        ));
        let error = b"HTTP/1.1 500 Internal\r\nContent-Length: 101\r\n\r\n";
        assert!(matches!(
            read(error),
            Err(HttpError::BodyTooLarge { max: 100, .. })
        ));
        let bad = b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n";
        assert!(matches!(read(bad), Err(HttpError::BadHead(_))));
        let conflict = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab";
        assert!(matches!(read(conflict), Err(HttpError::BadHead(_))));
        let long_head = format!("HTTP/1.1 200 OK\r\nX-Pad: {}\r\n", "p".repeat(600));
        assert_eq!(
            read(long_head.as_bytes()),
            Err(HttpError::HeadTooLarge(512))
        );
        assert!(matches!(
            read(b"HTTX/1.1 200\r\n\r\n"),
            Err(HttpError::BadHead(_))
        ));
    }

    #[test]
    fn ranged_reads_must_be_exactly_the_range() {
        let exact = BodyLimits {
            success_bytes_exact: Some(4),
            ..limits()
        };
        let ok = b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 2-5/10\r\nContent-Length: 4\r\n\r\n2345";
        let (resp, _) = read_in_steps(Method::Get, exact, ok, 3).unwrap();
        assert_eq!(resp.status, 206);
        assert_eq!(
            resp.content_range,
            Some(ContentRange {
                range: Some((2, 5)),
                size: Some(10)
            })
        );
        let short = b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 8-9/10\r\nContent-Length: 2\r\n\r\n89";
        assert_eq!(
            read_in_steps(Method::Get, exact, short, 100),
            Err(HttpError::LengthMismatch {
                expected: 4,
                got: 2,
                object_size: Some(10)
            })
        );
        // An error document is not held to the range length.
        let missing = b"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */10\r\nContent-Length: 7\r\n\r\n<Error>";
        let (resp, _) = read_in_steps(Method::Get, exact, missing, 100).unwrap();
        assert_eq!(resp.status, 416);
        assert_eq!(resp.content_range.unwrap().size, Some(10));
    }

    #[test]
    fn keep_alive_leaves_the_next_response_in_the_buffer() {
        let wire = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let mut r = ResponseReader::new(Method::Delete, limits());
        let n = r.feed(wire).unwrap();
        assert!(r.is_done());
        let first = r.into_response();
        assert_eq!(first.status, 204);
        assert!(first.keep_alive);
        // The same connection carries the next exchange.
        let mut r = ResponseReader::new(Method::Get, limits());
        let m = r.feed(&wire[n..]).unwrap();
        assert_eq!(n + m, wire.len());
        let second = r.into_response();
        assert_eq!(second.body, &b"ok"[..]);
        assert!(second.keep_alive);
    }

    #[test]
    fn connection_close_and_http_1_0() {
        let close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok";
        let (resp, _) = read(close).unwrap();
        assert!(!resp.keep_alive);
        let old = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";
        assert!(!read(old).unwrap().0.keep_alive);
        let old_ka = b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok";
        assert!(read(old_ka).unwrap().0.keep_alive);
        // No length and not chunked: the body runs to the end of the connection.
        let until_close = b"HTTP/1.1 200 OK\r\n\r\nall of it";
        for step in 1..until_close.len() {
            let (resp, _) = read_in_steps(Method::Get, limits(), until_close, step).unwrap();
            assert_eq!(resp.body, &b"all of it"[..]);
            assert!(!resp.keep_alive);
        }
        let truncated = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab";
        assert_eq!(read(truncated), Err(HttpError::Truncated));
    }

    #[test]
    fn head_and_interim_answers_have_no_body() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 123456789\r\n\r\n";
        let (resp, rest) = read_in_steps(Method::Head, limits(), head, 7).unwrap();
        assert_eq!(resp.content_length, Some(123_456_789));
        assert!(resp.body.is_empty());
        assert!(rest.is_empty());
        let interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx";
        let (resp, _) = read(interim).unwrap();
        assert_eq!((resp.status, &resp.body[..]), (200, &b"x"[..]));
    }
}
