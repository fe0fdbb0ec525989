//! A small HTTP/1.1 server for the programs that serve a model over a socket (`search
//! --listen`). Std only: no TLS, no authentication, one request per connection (`Connection:
//! close`). Each connection is read and checked on its own thread, within [`Limits`]; the
//! requests are then answered one at a time by the caller's handler on the calling thread, which
//! keeps the model (a slow or silent client holds only its own thread, never the model).
//!
//! ```no_run
//! use diffclip::http::{Limits, Response, serve};
//! let listener = std::net::TcpListener::bind("127.0.0.1:8080")?;
//! serve(listener, Limits::default(), |request| match (request.method.as_str(), request.path.as_str()) {
//!     ("POST", "/echo") => Response::new(200, "application/octet-stream", request.body),
//!     _ => Response::error(404, "no such endpoint"),
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::time::{Duration, Instant};

mod parse;

pub use parse::percent_decode;

/// What a client may send and for how long.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest body accepted (`413` past it, before reading it).
    pub max_body: usize,
    /// Largest request line plus headers (`431` past it).
    pub max_head: usize,
    /// Longest wait for the client's next bytes, and for it to take the response (`408`).
    pub timeout: Duration,
    /// Longest time the whole request may take to arrive, however steadily it trickles (`408`).
    pub request_time: Duration,
    /// Connections read at once; more are answered `503` at once.
    pub max_connections: usize,
}

impl Default for Limits {
    /// 32 MiB bodies (a large photo), 16 KiB heads, 30 s between bytes, 120 s for a request,
    /// 64 connections.
    fn default() -> Self {
        Self { max_body: 32 << 20, max_head: 16 << 10, timeout: Duration::from_secs(30), request_time: Duration::from_secs(120), max_connections: 64 }
    }
}

/// A request, read whole and checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// `GET`, `POST`, … as sent.
    pub method: String,
    /// The target's path, before any `?`, as sent (not percent-decoded).
    pub path: String,
    /// The query string's `name=value` pairs, percent-decoded (`+` is a space).
    pub query: Vec<(String, String)>,
    /// The body (`Content-Length` bytes; chunked bodies are refused with `411`).
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A response: status, content type and body.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header.
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// Any response.
    pub fn new(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        Self { status, content_type: content_type.to_string(), body }
    }

    /// `value` as JSON, with a trailing newline.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        let mut body = value.to_string().into_bytes();
        body.push(b'\n');
        Self::new(status, "application/json", body)
    }

    /// `{"error": message}` with `status`.
    pub fn error(status: u16, message: impl std::fmt::Display) -> Self {
        Self::json(status, &serde_json::json!({ "error": message.to_string() }))
    }
}

/// Serves `listener` until accepting fails for good (it does not return otherwise): each request
/// is read on its connection's thread, then `handle` answers it here. Requests that break
/// [`Limits`] or HTTP/1.1's syntax are answered by the server (`400`, `408`, `411`, `413`,
/// `417`, `431`, `503`, `505`) and never reach `handle`. Each request is logged on stderr.
pub fn serve(listener: TcpListener, limits: Limits, mut handle: impl FnMut(Request) -> Response) -> std::io::Result<()> {
    let (requests, incoming) = channel::<(Request, Sender<Response>)>();
    let accepting = std::thread::spawn(move || accept(listener, limits, requests));
    for (request, reply) in incoming {
        let (method, path, started) = (request.method.clone(), request.path.clone(), std::time::Instant::now());
        // A handler that panics answers 500; the server goes on (the panic is printed by the hook).
        let response = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle(request)))
            .unwrap_or_else(|_| Response::error(500, "the handler failed on this request"));
        eprintln!("{method} {path} {} {:.1} ms", response.status, started.elapsed().as_secs_f64() * 1e3);
        let _ = reply.send(response); // the client may have gone: nothing to tell it
    }
    accepting.join().unwrap_or_else(|_| Err(std::io::Error::other("the accepting thread panicked")))
}

fn accept(listener: TcpListener, limits: Limits, requests: Sender<(Request, Sender<Response>)>) -> std::io::Result<()> {
    let open = Arc::new(AtomicUsize::new(0));
    let mut failures = 0;
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            // Out of file descriptors, a connection reset before accept: wait and go on, unless
            // nothing but failures come.
            Err(e) => {
                failures += 1;
                if failures > 1000 {
                    return Err(e);
                }
                eprintln!("accepting a connection failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        failures = 0;
        let (limits, requests, open) = (limits.clone(), requests.clone(), open.clone());
        if open.fetch_add(1, Ordering::SeqCst) >= limits.max_connections {
            open.fetch_sub(1, Ordering::SeqCst);
            refuse(stream, &limits, &Response::error(503, "too many connections; try again"));
            continue;
        }
        let spawned = std::thread::Builder::new().name("http-connection".into()).spawn(move || {
            connection(stream, &limits, &requests);
            open.fetch_sub(1, Ordering::SeqCst);
        });
        if let Err(e) = spawned {
            eprintln!("no thread for a connection: {e}");
        }
    }
    Ok(())
}

/// One connection: read and check the request, have it answered, write the answer.
fn connection(mut stream: TcpStream, limits: &Limits, requests: &Sender<(Request, Sender<Response>)>) {
    if stream.set_write_timeout(Some(limits.timeout)).is_err() {
        return;
    }
    let request = match read_request(&mut stream, limits) {
        Ok(Some(request)) => request,
        Ok(None) => return, // closed before sending anything
        Err(response) => return refuse(stream, limits, &response),
    };
    let (reply, answer) = channel();
    let response = match requests.send((request, reply)).ok().and_then(|_| answer.recv().ok()) {
        Some(response) => response,
        None => Response::error(503, "the server is shutting down"),
    };
    if write_response(&mut stream, &response).is_ok() {
        let _ = stream.shutdown(Shutdown::Write);
    }
}

/// Answers a request the handler never saw, then reads what the client still sends for a short
/// while, so that closing does not reset the connection before the client has read the answer.
fn refuse(mut stream: TcpStream, limits: &Limits, response: &Response) {
    let _ = stream.set_write_timeout(Some(limits.timeout));
    if write_response(&mut stream, response).is_err() || stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut sink = [0u8; 8192];
    let mut drained = 0;
    while drained < (1 << 20) {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// The request on `stream`: `Ok(None)` when the client closed without sending a byte; `Err` is
/// the answer to a request that cannot be served.
fn read_request(stream: &mut TcpStream, limits: &Limits) -> Result<Option<Request>, Response> {
    let deadline = Instant::now() + limits.request_time;
    let mut chunk = vec![0u8; 64 << 10];
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(end) = parse::head_end(&buf) {
            break end;
        }
        if buf.len() > limits.max_head {
            return Err(Response::error(431, format!("request line and headers over {} bytes", limits.max_head)));
        }
        match read_some(stream, &mut chunk[..4096], limits, deadline)? {
            0 if buf.is_empty() => return Ok(None),
            0 => return Err(Response::error(400, "the connection ended inside the headers")),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    };
    if head_end > limits.max_head {
        return Err(Response::error(431, format!("request line and headers over {} bytes", limits.max_head)));
    }
    let head = parse::head(&buf[..head_end])?;
    let length = head.content_length.unwrap_or(0);
    if length > limits.max_body as u64 {
        return Err(Response::error(413, format!("a body of {length} bytes is over the limit of {}", limits.max_body)));
    }
    let length = length as usize;
    if head.expect_continue && buf.len() - head_end < length {
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").map_err(read_failed)?;
    }
    // The body grows as its bytes arrive: a Content-Length alone reserves nothing.
    let mut body = buf.split_off(head_end);
    while body.len() < length {
        let want = (length - body.len()).min(chunk.len());
        match read_some(stream, &mut chunk[..want], limits, deadline)? {
            0 => return Err(Response::error(400, format!("the body ended before its Content-Length of {length} bytes"))),
            n => body.extend_from_slice(&chunk[..n]),
        }
    }
    if body.len() > length {
        return Err(Response::error(400, "more bytes than Content-Length (one request per connection)"));
    }
    Ok(Some(Request { method: head.method, path: head.path, query: head.query, body }))
}

/// The next bytes, waited for at most `limits.timeout` and never past `deadline`.
fn read_some(stream: &mut TcpStream, buf: &mut [u8], limits: &Limits, deadline: Instant) -> Result<usize, Response> {
    let too_slow = || Response::error(408, format!("the request took over {} s to arrive", limits.request_time.as_secs_f64()));
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(too_slow());
    }
    stream.set_read_timeout(Some(left.min(limits.timeout))).map_err(read_failed)?;
    stream.read(buf).map_err(|e| match Instant::now() >= deadline {
        true => too_slow(),
        false => read_failed(e),
    })
}

fn read_failed(e: std::io::Error) -> Response {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Response::error(408, "the client was silent for too long"),
        _ => Response::error(400, format!("reading the request failed: {e}")),
    }
}

fn write_response(stream: &mut TcpStream, response: &Response) -> std::io::Result<()> {
    // A content type with a line break would let a handler's input write headers.
    let content_type = match response.content_type.bytes().any(|b| b.is_ascii_control()) {
        true => "application/octet-stream",
        false => response.content_type.as_str(),
    };
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        parse::reason(response.status),
        content_type,
        response.body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(&response.body)?;
    stream.flush()
}

#[cfg(test)]
mod tests;
