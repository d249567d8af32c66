//! Just enough HTTP/1.1 for the simulator: requests with `Content-Length` bodies, keep-alive,
//! pipelining, and direct control of the socket so that a fault can reset or hold a connection,
//! drip an answer slowly, break it off in the middle of its body, or stream a huge one.

use std::io;
use std::time::Duration;

use axum::http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// The longest request head (request line and headers) accepted.
const MAX_HEAD: usize = 16 * 1024;

/// The longest request body accepted.
const MAX_BODY: usize = 1024 * 1024;

/// How much is read from the socket at a time.
const READ_CHUNK: usize = 8 * 1024;

/// How much of a padded answer's padding is written at a time.
const PAD_CHUNK: usize = 64 * 1024;

/// The byte a padded answer's padding is made of (inside a JSON string, so any letter works).
const PAD_BYTE: u8 = b'x';

/// A piece of padding, written as often as needed.
static PAD: [u8; PAD_CHUNK] = [PAD_BYTE; PAD_CHUNK];

/// How long the part of a body sent before a reset is given to reach the client. A reset discards
/// whatever the kernel has not sent yet, so without this pause the client could see the reset
/// before the head, which would be a plain reset rather than one in the middle of the body.
const RESET_SETTLE: Duration = Duration::from_millis(50);

/// One parsed request.
#[derive(Debug)]
pub(super) struct Request {
    /// The method, as sent (`GET`, `POST`, …).
    pub method: String,
    /// The request target (`/douyin/item_get_video/?key=…`).
    pub target: String,
    /// The body (empty without `Content-Length`).
    pub body: Vec<u8>,
    /// Whether the client wants the connection kept open after the answer.
    pub keep_alive: bool,
}

/// Why a request could not be read.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadError {
    /// The socket failed.
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    /// The client closed the connection in the middle of a request.
    #[error("connection closed in the middle of a request")]
    Truncated,
    /// The request is not HTTP/1.x.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// The request line and headers are longer than [`MAX_HEAD`].
    #[error("request head longer than {MAX_HEAD} bytes")]
    HeadTooLarge,
    /// The body is longer than [`MAX_BODY`].
    #[error("request body longer than {MAX_BODY} bytes")]
    BodyTooLarge,
    /// The body uses a transfer encoding (chunked), which the simulator does not read.
    #[error("transfer-encoded request bodies are not supported")]
    TransferEncoding,
}

impl ReadError {
    /// The answer to send before closing, if the client can still be told anything.
    pub fn response(&self) -> Option<Response> {
        let status = match self {
            ReadError::Io(_) | ReadError::Truncated => return None,
            ReadError::Malformed(_) => 400,
            ReadError::HeadTooLarge => 431,
            ReadError::BodyTooLarge => 413,
            ReadError::TransferEncoding => 411,
        };
        Some(Response::text(status, self.to_string()))
    }
}

/// An answer to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Response {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header.
    pub content_type: &'static str,
    /// The `Location` header, for redirects.
    pub location: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON answer.
    pub fn json(status: u16, body: Vec<u8>) -> Response {
        Response {
            status,
            content_type: "application/json; charset=utf-8",
            location: None,
            body,
        }
    }

    /// An HTML answer.
    pub fn html(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type: "text/html; charset=utf-8",
            location: None,
            body: body.into(),
        }
    }

    /// A plain-text answer.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        let mut body: String = body.into();
        body.push('\n');
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            location: None,
            body: body.into_bytes(),
        }
    }

    /// A `302 Found` to `location` with nginx's little HTML page; control characters in
    /// `location` are dropped so that it cannot end the header early.
    pub fn redirect(location: &str) -> Response {
        let location: String = location.chars().filter(|c| !c.is_control()).collect();
        Response {
            location: Some(location),
            ..Response::html(
                302,
                "<html>\r\n<head><title>302 Found</title></head>\r\n<body>\r\n\
                 <center><h1>302 Found</h1></center>\r\n<hr><center>nginx</center>\r\n\
                 </body>\r\n</html>\r\n",
            )
        }
    }
}

/// An answer written over time rather than at once; the connection closes after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Streamed {
    /// The response with its body written `chunk` bytes at a time (at least 1), `every` apart.
    Trickle {
        /// The answer; its head goes out at once.
        response: Response,
        /// Bytes per write.
        chunk: usize,
        /// The pause between two writes.
        every: Duration,
    },
    /// The response's head (announcing the whole body) and the first `after` bytes of its body,
    /// then a TCP reset.
    ResetMidBody {
        /// The answer that is broken off.
        response: Response,
        /// Bytes of the body sent before the reset.
        after: usize,
    },
    /// A 200 JSON answer made of `prefix`, `padding` bytes of [`PAD_BYTE`], then `suffix`,
    /// written piece by piece so that the padding is never held in memory.
    Padded {
        /// The start of the body.
        prefix: Vec<u8>,
        /// How many padding bytes follow it.
        padding: usize,
        /// The end of the body.
        suffix: Vec<u8>,
    },
}

/// One accepted connection with its read buffer.
pub(super) struct Connection {
    /// The socket.
    stream: TcpStream,
    /// Bytes read but not consumed yet (the start of the next request when pipelining).
    buffer: Vec<u8>,
}

impl Connection {
    /// Wraps an accepted socket.
    pub fn new(stream: TcpStream) -> Connection {
        Connection {
            stream,
            buffer: Vec::new(),
        }
    }

    /// Reads the next request; `None` when the client closed the connection between requests.
    pub async fn read_request(&mut self) -> Result<Option<Request>, ReadError> {
        let head_end = loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                break end;
            }
            if self.buffer.len() > MAX_HEAD {
                return Err(ReadError::HeadTooLarge);
            }
            if self.fill().await? == 0 {
                return if self.buffer.iter().all(u8::is_ascii_whitespace) {
                    Ok(None)
                } else {
                    Err(ReadError::Truncated)
                };
            }
        };
        if head_end > MAX_HEAD {
            return Err(ReadError::HeadTooLarge);
        }
        let head = parse_head(&self.buffer[..head_end])?;
        let body_start = head_end + 4;
        if head.expect_continue && self.buffer.len() < body_start + head.content_length {
            self.stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await?;
        }
        while self.buffer.len() < body_start + head.content_length {
            if self.fill().await? == 0 {
                return Err(ReadError::Truncated);
            }
        }
        let body = self.buffer[body_start..body_start + head.content_length].to_vec();
        self.buffer.drain(..body_start + head.content_length);
        Ok(Some(Request {
            method: head.method,
            target: head.target,
            body,
            keep_alive: head.keep_alive,
        }))
    }

    /// Writes one answer; `keep_alive` false announces that the connection closes after it.
    pub async fn write_response(
        &mut self,
        response: &Response,
        keep_alive: bool,
    ) -> io::Result<()> {
        let mut bytes = head(response, response.body.len(), keep_alive).into_bytes();
        bytes.extend_from_slice(&response.body);
        self.stream.write_all(&bytes).await?;
        self.stream.flush().await
    }

    /// Writes a streamed answer, then closes the connection (with a reset for
    /// [`Streamed::ResetMidBody`]). Gives up quietly when the client leaves or `stop` is cancelled.
    pub async fn write_streamed(mut self, streamed: Streamed, stop: &CancellationToken) {
        let written = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            written = self.stream_out(&streamed) => written,
        };
        if written.is_ok() && matches!(streamed, Streamed::ResetMidBody { .. }) {
            tokio::select! {
                () = stop.cancelled() => {}
                () = tokio::time::sleep(RESET_SETTLE) => {}
            }
            self.reset();
        }
    }

    /// Writes everything of a streamed answer that is sent before the connection ends.
    async fn stream_out(&mut self, streamed: &Streamed) -> io::Result<()> {
        match streamed {
            Streamed::Trickle {
                response,
                chunk,
                every,
            } => {
                self.write_head(response, response.body.len()).await?;
                let mut pieces = response.body.chunks((*chunk).max(1)).peekable();
                while let Some(piece) = pieces.next() {
                    self.stream.write_all(piece).await?;
                    self.stream.flush().await?;
                    if pieces.peek().is_some() {
                        tokio::time::sleep(*every).await;
                    }
                }
                Ok(())
            }
            Streamed::ResetMidBody { response, after } => {
                self.write_head(response, response.body.len()).await?;
                let sent = &response.body[..(*after).min(response.body.len())];
                self.stream.write_all(sent).await?;
                self.stream.flush().await
            }
            Streamed::Padded {
                prefix,
                padding,
                suffix,
            } => {
                let length = prefix.len() + padding + suffix.len();
                self.write_head(&Response::json(200, Vec::new()), length)
                    .await?;
                self.stream.write_all(prefix).await?;
                let mut left = *padding;
                while left > 0 {
                    let n = left.min(PAD_CHUNK);
                    self.stream.write_all(&PAD[..n]).await?;
                    left -= n;
                }
                self.stream.write_all(suffix).await?;
                self.stream.flush().await
            }
        }
    }

    /// Writes and flushes the head of an answer whose body is `length` bytes, announcing that
    /// the connection closes after it.
    async fn write_head(&mut self, response: &Response, length: usize) -> io::Result<()> {
        self.stream
            .write_all(head(response, length, false).as_bytes())
            .await?;
        self.stream.flush().await
    }

    /// Resets the connection: closes it with a TCP RST instead of an orderly FIN.
    pub fn reset(self) {
        // Zero linger makes the close below send RST; if the option cannot be set the client still
        // sees the connection close without an answer, which is nearly the same fault.
        let _ = self.stream.set_zero_linger();
    }

    /// Resolves when the client closes the connection (or it fails); anything it sends is discarded.
    pub async fn wait_closed(&mut self) {
        let mut scratch = [0_u8; 1024];
        while matches!(self.stream.read(&mut scratch).await, Ok(n) if n > 0) {}
    }

    /// Reads more bytes into the buffer; 0 at end of stream.
    async fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0_u8; READ_CHUNK];
        let n = self.stream.read(&mut chunk).await?;
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(n)
    }
}

/// The status line and headers of `response` with a body of `length` bytes, blank line included.
fn head(response: &Response, length: usize, keep_alive: bool) -> String {
    let reason = StatusCode::from_u16(response.status)
        .ok()
        .and_then(|status| status.canonical_reason())
        .unwrap_or("Unknown");
    let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT");
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let location = response
        .location
        .as_ref()
        .map(|location| format!("Location: {location}\r\n"))
        .unwrap_or_default();
    format!(
        "HTTP/1.1 {:03} {reason}\r\nServer: nginx\r\nDate: {date}\r\nContent-Type: {}\r\n\
         Content-Length: {length}\r\n{location}Connection: {connection}\r\n\r\n",
        response.status, response.content_type,
    )
}

/// The parts of a request head the simulator uses.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    /// The method.
    method: String,
    /// The request target.
    target: String,
    /// The body length.
    content_length: usize,
    /// Whether the connection stays open after the answer.
    keep_alive: bool,
    /// Whether the client waits for `100 Continue` before sending the body.
    expect_continue: bool,
}

/// Parses a request head (without the blank line that ends it).
fn parse_head(head: &[u8]) -> Result<Head, ReadError> {
    let head = std::str::from_utf8(head).map_err(|_| ReadError::Malformed("head is not UTF-8"))?;
    // Tolerate empty lines before the request line, as RFC 9112 asks servers to.
    let mut lines = head.trim_start_matches("\r\n").split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Malformed(
            "request line is not METHOD TARGET VERSION",
        ));
    };
    if method.is_empty() || target.is_empty() {
        return Err(ReadError::Malformed("empty method or target"));
    }
    let mut keep_alive = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(ReadError::Malformed("not HTTP/1.0 or HTTP/1.1")),
    };
    let mut content_length = 0;
    let mut expect_continue = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(ReadError::Malformed("header line without a colon"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value
                .parse()
                .map_err(|_| ReadError::Malformed("Content-Length is not a number"))?;
            if content_length > MAX_BODY {
                return Err(ReadError::BodyTooLarge);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(ReadError::TransferEncoding);
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue = value.eq_ignore_ascii_case("100-continue");
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        }
    }
    Ok(Head {
        method: method.to_owned(),
        target: target.to_owned(),
        content_length,
        keep_alive,
        expect_continue,
    })
}

/// The position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod head_tests {
    use super::*;

    #[test]
    fn parses_request_line_and_headers() {
        let head = parse_head(
            b"POST /_sim/today HTTP/1.1\r\nHost: x\r\ncontent-length: 12\r\nConnection: close",
        )
        .unwrap();
        assert_eq!(
            head,
            Head {
                method: "POST".into(),
                target: "/_sim/today".into(),
                content_length: 12,
                keep_alive: false,
                expect_continue: false,
            }
        );
        assert!(!parse_head(b"GET / HTTP/1.0").unwrap().keep_alive);
        assert!(
            parse_head(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1")
                .unwrap()
                .expect_continue
        );
        assert!(
            parse_head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive")
                .unwrap()
                .keep_alive
        );
    }

    #[test]
    fn rejects_malformed_heads() {
        for bad in [
            &b"GET /"[..],
            b"GET / HTTP/2",
            b"GET  / HTTP/1.1",
            b"GET / HTTP/1.1\r\nno colon here",
            b"GET / HTTP/1.1\r\nContent-Length: x",
        ] {
            assert!(matches!(parse_head(bad), Err(ReadError::Malformed(_))));
        }
        assert!(matches!(
            parse_head(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked"),
            Err(ReadError::TransferEncoding)
        ));
        assert!(matches!(
            parse_head(b"POST / HTTP/1.1\r\nContent-Length: 99999999"),
            Err(ReadError::BodyTooLarge)
        ));
    }
}
