//! One connection, on its own thread: read and check the request within the limits, have the
//! handler answer it, write the answer within a deadline, close.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc::{Sender, channel};
use std::time::{Duration, Instant};

use super::{Limits, Request, Response, log, parse};

/// Serves the request on `stream`.
pub(super) fn serve(mut stream: TcpStream, limits: &Limits, requests: &Sender<(Request, Sender<Response>)>) {
    let (response, head_only) = match read_request(&mut stream, limits) {
        Ok(None) => return, // closed before sending anything
        Ok(Some(request)) => {
            let head_only = request.method == "HEAD";
            let (reply, answer) = channel();
            match requests.send((request, reply)).ok().and_then(|_| answer.recv().ok()) {
                Some(response) => (response, head_only),
                None => (Response::error(503, "the server is shutting down"), head_only),
            }
        }
        Err(response) => {
            let peer = stream.peer_addr().map_or("?".to_string(), |a| a.to_string());
            log(format_args!("refused {peer}: {} {}", response.status, parse::reason(response.status)));
            (response, false)
        }
    };
    let deadline = Instant::now() + limits.request_time;
    if write_within(&mut stream, &encode(&response, head_only), limits.timeout, deadline).is_ok() {
        linger(stream);
    }
}

/// The request on `stream`: `Ok(None)` when the client closed without sending a byte; `Err` is
/// the answer to a request that cannot be served.
fn read_request(stream: &mut TcpStream, limits: &Limits) -> Result<Option<Request>, Response> {
    let deadline = Instant::now() + limits.request_time;
    let too_large = || Response::error(431, format!("request line and headers over {} bytes", limits.max_head));
    let mut chunk = vec![0u8; 64 << 10];
    let (mut buf, mut scanned) = (Vec::new(), 0);
    let head_end = loop {
        if let Some(end) = parse::head_end(&buf, scanned) {
            break end;
        }
        scanned = buf.len().saturating_sub(3); // the next read cannot end an empty line earlier
        if buf.len() > limits.max_head {
            return Err(too_large());
        }
        match read_some(stream, &mut chunk[..4096], limits, deadline)? {
            0 if buf.is_empty() => return Ok(None),
            0 => return Err(Response::error(400, "the connection ended inside the headers")),
            // Empty lines before the request line are ignored (RFC 9112, 2.2).
            n if buf.is_empty() => buf.extend(chunk[..n].iter().skip_while(|&&b| b == b'\r' || b == b'\n')),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    };
    if head_end > limits.max_head {
        return Err(too_large());
    }
    let head = parse::head(&buf[..head_end], limits)?;
    let length = head.content_length.unwrap_or(0);
    if length > limits.max_body as u64 {
        return Err(Response::error(413, format!("a body of {length} bytes is over the limit of {}", limits.max_body)));
    }
    let length = length as usize;
    let mut body = buf.split_off(head_end);
    if head.expect_continue && body.len() < length {
        write_within(stream, b"HTTP/1.1 100 Continue\r\n\r\n", limits.timeout, deadline).map_err(read_failed)?;
    }
    // The body grows as its bytes arrive: a Content-Length alone reserves nothing.
    while body.len() < length {
        let want = (length - body.len()).min(chunk.len());
        match read_some(stream, &mut chunk[..want], limits, deadline)? {
            0 => return Err(Response::error(400, format!("the body ended before its Content-Length of {length} bytes"))),
            n => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(length); // one request per connection: what follows is not read
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

/// The response's bytes: status line, headers and, unless `head_only` (a `HEAD` request), body.
pub(super) fn encode(response: &Response, head_only: bool) -> Vec<u8> {
    // A content type with a line break would let a handler's input write headers.
    let content_type = match response.content_type.bytes().any(|b| b.is_ascii_control()) {
        true => "application/octet-stream",
        false => response.content_type.as_str(),
    };
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        parse::reason(response.status),
        response.body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(&response.body);
    }
    out
}

/// Writes `bytes`, waiting at most `timeout` for the client to take each part and giving up at
/// `deadline`, so that a client that reads slowly holds its connection for a bounded time.
fn write_within(stream: &mut TcpStream, bytes: &[u8], timeout: Duration, deadline: Instant) -> std::io::Result<()> {
    for part in bytes.chunks(64 << 10) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left.min(timeout)))?;
        stream.write_all(part)?;
    }
    stream.flush()
}

/// Ends the connection after the answer: stops writing, then reads (and drops) what the client
/// still sends, at most 1 MiB for at most 2 s, so that closing with unread bytes does not
/// reset the connection before the client has read the answer.
fn linger(mut stream: TcpStream) {
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let until = Instant::now() + Duration::from_secs(2);
    let mut sink = [0u8; 8192];
    let mut drained = 0;
    while drained < (1 << 20) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}
