//! One connection, on its own thread: read and check each request within the limits, have the
//! handler answer it, write the answer within a deadline; then wait a little for the client's
//! next request (HTTP/1.1 persistent connections) or close.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use super::shutdown::Grace;
use super::{Limits, Queued, Request, Response, Shared, log, parse};

/// Serves the requests on `stream`, one after another, until the client or the limits end it.
pub(super) fn serve(stream: TcpStream, limits: &Limits, shared: &Shared) {
    let mut connection = Connection { stream, pending: Vec::new() };
    let grace = Grace::new(&shared.shutdown, limits.shutdown_grace);
    for served in 0..limits.max_requests.max(1) {
        let mut asked = Asked::default();
        let (response, keep) = match connection.read_request(limits, shared, &grace, served == 0, &mut asked) {
            Ok(None) => return, // closed, or silent past the keep-alive time, between requests
            Ok(Some((request, _))) if request.method == "OPTIONS" && asked.origin.is_some() => (preflight(), asked.keep_alive),
            Ok(Some((request, _reserved))) => {
                let (reply, answer) = channel();
                let queued = Queued { request, head_only: asked.head_only, reply };
                match shared.requests.send(queued).ok().and_then(|_| answer.recv().ok()) {
                    Some(response) => (response, asked.keep_alive),
                    None => (Response::error(503, "the server is shutting down"), false),
                }
            }
            // The request's end is unknown, or its body unread: nothing more is read.
            Err(response) => {
                let peer = connection.stream.peer_addr().map_or("?".to_string(), |a| a.to_string());
                log(format_args!("refused {peer}: {} {}", response.status, parse::reason(response.status)));
                (response, false)
            }
        };
        // Interim answers (1xx) are the server's alone, and a status has three digits.
        let response = match response.status {
            200..=599 => response,
            status => Response::error(500, format!("the handler answered with status {status}")),
        };
        // Idle connections hold places: near the limit, each connection ends after its answer.
        let room = !crowded(shared, limits);
        let handler_closes = response.headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("connection") && v.to_ascii_lowercase().contains("close"));
        // Stopping, a connection answers only the requests already read.
        let stopping = grace.is_stopping() && connection.pending.is_empty();
        let keep = keep && room && !handler_closes && served + 1 < limits.max_requests && !limits.keep_alive.is_zero() && !stopping;
        let bytes = encode(&response, asked.head_only, asked.origin.as_deref(), keep.then_some(idle_time(limits)));
        if write_within(&mut connection.stream, &bytes, limits.timeout, after(limits.request_time), &grace).is_err() {
            return;
        }
        if let Some(wait) = asked.linger_for {
            // Its place is given back now, or after a short wait for the client to read.
            if !wait.is_zero() {
                linger(connection.stream, &grace, wait);
            }
            return;
        }
        if !keep {
            break;
        }
    }
    linger(connection.stream, &grace, LINGER);
}

/// A connection and the bytes read past the last request (the start of the next one, when the
/// client sends requests without waiting for the answers).
struct Connection {
    stream: TcpStream,
    pending: Vec<u8>,
}

/// What shapes the answer besides the handler: a `HEAD` request (no body), an allowed origin
/// (CORS headers), whether the client keeps the connection for another request.
#[derive(Default)]
struct Asked {
    head_only: bool,
    origin: Option<String>,
    keep_alive: bool,
    /// The connection closes after its answer lingering at most this long, not [`LINGER`]: not
    /// at all when the client sent not a byte (nothing unread can make closing reset the
    /// answer), briefly when it held up a place others want.
    linger_for: Option<Duration>,
}

/// The bytes of `bodies` one request's body holds (its capacity), counted as they arrive and
/// given back when the handler has answered: the bodies the server holds at once stay within
/// `Limits::max_bodies`, however many connections send them (and a `Content-Length` alone
/// holds nothing).
pub(super) struct Reserved<'a>(&'a AtomicUsize, usize);

impl Reserved<'_> {
    /// `bytes` more, or `false` when they would take the total past `max`.
    fn grow(&mut self, bytes: usize, max: usize) -> bool {
        let grown = self.0.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |held| held.checked_add(bytes).filter(|&total| total <= max));
        self.1 += if grown.is_ok() { bytes } else { 0 };
        grown.is_ok()
    }
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Ordering::SeqCst);
    }
}

impl Connection {
    /// The next request and the body bytes it holds: `Ok(None)` when the client closed before
    /// sending a byte, or (after a first request) sent nothing but empty lines within
    /// [`idle_time`]; `Err` is the answer to a request that cannot be served. Fills in `asked`
    /// as soon as it is known.
    fn read_request<'b>(&mut self, limits: &Limits, shared: &'b Shared, grace: &Grace, first: bool, asked: &mut Asked) -> Result<Option<(Request, Reserved<'b>)>, Response> {
        let deadline = after(limits.request_time);
        // The wait for a request's first bytes: the idle time between requests, or for a first
        // request the time allowed between bytes.
        let start_until = if first { stall_deadline(deadline, limits.timeout) } else { after(idle_time(limits)) };
        let too_large = || Response::error(431, format!("request line and headers over {} bytes", limits.max_head));
        let mut chunk = vec![0u8; 64 << 10];
        let (mut buf, mut scanned, mut skipped) = (std::mem::take(&mut self.pending), 0, 0);
        let mut head_began = None; // when the head's first bytes were waited for
        let head_end = loop {
            // Empty lines before the request line are ignored (RFC 9112, 2.2), but count.
            let mut blank = 0;
            while let [b'\r', b'\n', ..] | [b'\n', ..] = &buf[blank..] {
                blank += if buf[blank] == b'\r' { 2 } else { 1 };
            }
            skipped += blank;
            buf.drain(..blank);
            if let Some(end) = parse::head_end(&buf, scanned) {
                break end;
            }
            scanned = buf.len().saturating_sub(3); // the next read cannot end an empty line earlier
            if buf.len() + skipped > limits.max_head {
                return Err(too_large());
            }
            // Before a request's first bytes (empty lines do not extend the wait): between
            // requests the client need not send another, so closing or falling silent ends the
            // connection without a word, as does a shutdown.
            let starting = buf.is_empty() || buf == b"\r"; // `\r`: half an empty line
            let read = match starting {
                true => match read_start(&mut self.stream, &mut chunk[..4096], start_until, grace, || crowded(shared, limits)) {
                    Ok(n) => n,
                    Err(Start::Silent) if first => {
                        asked.linger_for = (buf.is_empty() && skipped == 0).then_some(Duration::ZERO);
                        return Err(Response::error(408, "the client was silent for too long"));
                    }
                    Err(_) => return Ok(None),
                },
                false => read_head(&mut self.stream, &mut chunk[..4096], limits, deadline, grace, *head_began.get_or_insert_with(Instant::now), || crowded(shared, limits))
                    .map_err(|(response, crowded_out)| linger_if(asked, crowded_out, response))?,
            };
            match read {
                0 if starting => return Ok(None),
                0 => return Err(Response::error(400, "the connection ended inside the headers")),
                n => buf.extend_from_slice(&chunk[..n]),
            }
        };
        asked.head_only = buf.starts_with(b"HEAD ");
        if head_end + skipped > limits.max_head {
            return Err(too_large());
        }
        let head = parse::head(&buf[..head_end], limits)?;
        asked.origin = head.origin.clone();
        asked.keep_alive = head.keep_alive;
        let length = head.content_length.unwrap_or(0);
        let max_body = limits.max_body.min(limits.max_bodies);
        if length > max_body as u64 {
            return Err(Response::error(413, format!("a body of {length} bytes is over the limit of {max_body}")));
        }
        let length = length as usize;
        let busy = || bodies_full(limits);
        let mut reserved = Reserved(&shared.bodies, 0);
        let mut body = buf.split_off(head_end);
        if !reserved.grow(body.capacity(), limits.max_bodies) {
            return Err(busy());
        }
        if head.chunked {
            return self.read_chunked(head, body, reserved, &mut chunk, limits, shared, deadline, grace, asked);
        }
        if head.expect_continue && body.len() < length {
            write_within(&mut self.stream, b"HTTP/1.1 100 Continue\r\n\r\n", limits.timeout, deadline, grace).map_err(read_failed)?;
        }
        // The body grows as its bytes arrive: a Content-Length alone reserves no memory.
        let body_began = Instant::now();
        while body.len() < length {
            let want = (length - body.len()).min(chunk.len());
            let read = read_body(&mut self.stream, &mut chunk[..want], limits, deadline, grace, body_began, body.len(), || crowded(shared, limits));
            let n = match read.map_err(|(response, crowded_out)| linger_if(asked, crowded_out, response))? {
                0 => return Err(Response::error(400, format!("the body ended before its Content-Length of {length} bytes"))),
                n => n,
            };
            // The memory counted is the body's capacity, grown by doubling up to its length.
            if body.len() + n > body.capacity() {
                let capacity = (2 * body.capacity()).clamp(body.len() + n, length);
                if !reserved.grow(capacity.saturating_sub(reserved.1), limits.max_bodies) {
                    return Err(busy());
                }
                body.reserve_exact(capacity - body.len());
            }
            body.extend_from_slice(&chunk[..n]);
        }
        self.pending = body.split_off(length); // the next request's first bytes, if any
        Ok(Some((request(head, body, asked), reserved)))
    }

    /// The rest of a request whose body is chunked, from `raw`, the bytes after its head.
    #[allow(clippy::too_many_arguments)] // read_request's state, handed on
    fn read_chunked<'b>(&mut self, head: parse::Head, mut raw: Vec<u8>, mut reserved: Reserved<'b>, chunk: &mut [u8], limits: &Limits, shared: &Shared, deadline: Instant, grace: &Grace, asked: &mut Asked) -> Result<Option<(Request, Reserved<'b>)>, Response> {
        let busy = || bodies_full(limits);
        let mut decoder = super::chunked::Chunked::new(limits.max_body.min(limits.max_bodies));
        let mut body = Vec::new();
        let mut continued = !head.expect_continue;
        let (began, mut received) = (Instant::now(), raw.len());
        // `reserved` counts the undecoded bytes' buffer (`raw_counted` of it: at most a read and
        // a line) and the body's capacity, each reserved before it grows.
        let mut raw_counted = reserved.1;
        loop {
            let used = decoder.feed(&raw, &mut body, &mut |bytes| if reserved.grow(bytes, limits.max_bodies) { Ok(()) } else { Err(busy()) })?;
            raw.drain(..used);
            if decoder.done() {
                break;
            }
            if !continued {
                write_within(&mut self.stream, b"HTTP/1.1 100 Continue\r\n\r\n", limits.timeout, deadline, grace).map_err(read_failed)?;
                continued = true;
            }
            let read = read_body(&mut self.stream, chunk, limits, deadline, grace, began, received, || crowded(shared, limits));
            match read.map_err(|(response, crowded_out)| linger_if(asked, crowded_out, response))? {
                0 => return Err(Response::error(400, "the body ended before its last chunk and the empty line after it")),
                n => {
                    if raw.len() + n > raw.capacity() {
                        let want = (2 * raw.capacity()).max(raw.len() + n);
                        if !reserved.grow(want - raw_counted, limits.max_bodies) {
                            return Err(busy());
                        }
                        raw.reserve_exact(want - raw.len());
                        raw_counted = want;
                    }
                    raw.extend_from_slice(&chunk[..n]);
                    received += n;
                }
            }
        }
        self.pending = raw; // the next request's first bytes, if any
        Ok(Some((request(head, body, asked), reserved)))
    }
}

/// `response`, and when the request was dropped for crowding (`crowded_out`) a brief linger:
/// its place is wanted.
fn linger_if(asked: &mut Asked, crowded_out: bool, response: Response) -> Response {
    asked.linger_for = crowded_out.then_some(Duration::from_millis(250));
    response
}

/// 503 for a body the server cannot hold now: the bodies it holds are at `Limits::max_bodies`.
fn bodies_full(limits: &Limits) -> Response {
    Response::error(503, format!("the server holds as much of requests' bodies as it may ({} bytes); try again", limits.max_bodies)).with_header("Retry-After", "1")
}

/// The request of `head` with `body`. HEAD is GET without the body (RFC 9110, 9.3.2): the
/// handler answers it as GET.
fn request(head: parse::Head, body: Vec<u8>, asked: &Asked) -> Request {
    let method = if asked.head_only { "GET".to_string() } else { head.method };
    Request { method, path: head.path, query: head.query, body }
}

/// Why no request started.
enum Start {
    /// Nothing came in time.
    Silent,
    /// The server is stopping.
    Stopping,
    /// Reading failed.
    Failed,
}

/// More than three quarters of `max_connections` are open: connections waiting for a client
/// give their places up sooner.
fn crowded(shared: &Shared, limits: &Limits) -> bool {
    shared.open.load(Ordering::SeqCst) * 4 > limits.max_connections * 3
}

/// How long a connection waits for a request's first byte while [`crowded`]: clients send their
/// request as they connect, so a full house of silent connections cannot lock others out.
const CROWDED_START_WAIT: Duration = Duration::from_secs(1);

/// How long a request's line and headers may take to arrive while [`crowded`]: clients send them
/// at once, so a full house of clients trickling their headers cannot lock others out.
const CROWDED_HEAD_TIME: Duration = Duration::from_secs(5);

/// How fast a request's body must arrive while [`crowded`], past its first [`CROWDED_HEAD_TIME`]
/// (bytes per second): far below any network's, so only clients trickling their bodies, holding
/// places others want, are dropped.
const CROWDED_BODY_RATE: f64 = 64.0 * 1024.0;

/// The first bytes of a request, waited for until `until` (or [`CROWDED_START_WAIT`] once
/// `crowded()`); `Ok(0)` when the client closed. Stopping, only bytes already there are taken
/// (a request the client sent is answered).
fn read_start(stream: &mut TcpStream, buf: &mut [u8], until: Instant, grace: &Grace, crowded: impl Fn() -> bool) -> Result<usize, Start> {
    let started = Instant::now();
    loop {
        if grace.is_stopping() {
            stream.set_nonblocking(true).map_err(|_| Start::Failed)?;
            let read = stream.read(buf);
            stream.set_nonblocking(false).map_err(|_| Start::Failed)?;
            return read.map_err(|_| Start::Stopping);
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || (started.elapsed() >= CROWDED_START_WAIT && crowded()) {
            return Err(Start::Silent);
        }
        stream.set_read_timeout(Some(left.min(Duration::from_millis(100)))).map_err(|_| Start::Failed)?;
        match stream.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(_) => return Err(Start::Failed),
        }
    }
}

/// Why `within` gave up.
enum Waited {
    /// Its time (or the shutdown's grace) ran out.
    TimedOut,
    Failed(std::io::Error),
}

/// Runs `io` on `stream` (a read, or with `writing` a write) until it completes or fails, giving
/// up at `until` or when the shutdown's grace ends: each wait is at most 250 ms, so a shutdown
/// is noticed, and a signal interrupting it is not an error. Past its time a write is still
/// tried once (for 1 ms): an answer that fits the socket's buffer leaves.
fn within<T>(stream: &mut TcpStream, until: Instant, grace: &Grace, writing: bool, mut io: impl FnMut(&mut TcpStream) -> std::io::Result<T>) -> Result<T, Waited> {
    loop {
        let left = grace.cap(until).saturating_duration_since(Instant::now());
        let last = left.is_zero();
        if last && !writing {
            return Err(Waited::TimedOut);
        }
        let slice = Some(if last { Duration::from_millis(1) } else { left.min(Duration::from_millis(250)) });
        let set = if writing { stream.set_write_timeout(slice) } else { stream.set_read_timeout(slice) };
        set.map_err(Waited::Failed)?;
        match io(stream) {
            Ok(done) => return Ok(done),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) && !last => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => return Err(Waited::TimedOut),
            Err(e) => return Err(Waited::Failed(e)),
        }
    }
}

/// How long a kept connection waits for the next request.
fn idle_time(limits: &Limits) -> Duration {
    limits.keep_alive.min(limits.request_time)
}

/// The answer to an allowed origin's CORS preflight.
fn preflight() -> Response {
    Response::new(204, "text/plain", Vec::new())
        .with_header("Access-Control-Allow-Methods", "GET, HEAD, POST")
        .with_header("Access-Control-Allow-Headers", "Content-Type, Authorization")
        .with_header("Access-Control-Max-Age", "600")
}

/// `now + d`, or a year from now when that does not fit an `Instant`.
fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d).unwrap_or_else(|| now + Duration::from_secs(365 * 86_400))
}

/// When the next wait ends: at most `timeout` from now (zero: no such limit), never past
/// `deadline`.
fn stall_deadline(deadline: Instant, timeout: Duration) -> Instant {
    if timeout.is_zero() { deadline } else { deadline.min(after(timeout)) }
}

/// More bytes of a request's head, whose first bytes were waited for from `began`: as
/// [`read_watched`], but once `crowded()` the head must be whole [`CROWDED_HEAD_TIME`] after `began`.
/// An error says whether it is that limit.
fn read_head(stream: &mut TcpStream, buf: &mut [u8], limits: &Limits, deadline: Instant, grace: &Grace, began: Instant, crowded: impl Fn() -> bool) -> Result<usize, (Response, bool)> {
    let late = || began.elapsed() >= CROWDED_HEAD_TIME && crowded();
    read_watched(stream, buf, limits, deadline, grace, late, || format!("the server is busy and the request's headers took over {} s to arrive", CROWDED_HEAD_TIME.as_secs()))
}

/// More bytes of a request's body, of which `received` came since `began`: as
/// [`read_watched`], but once `crowded()` a body arriving slower than [`CROWDED_BODY_RATE`] (past its first
/// [`CROWDED_HEAD_TIME`]) is dropped, so that clients trickling bodies cannot hold every place.
/// An error says whether it is that limit.
#[allow(clippy::too_many_arguments)] // the read's state and the crowding test
fn read_body(stream: &mut TcpStream, buf: &mut [u8], limits: &Limits, deadline: Instant, grace: &Grace, began: Instant, received: usize, crowded: impl Fn() -> bool) -> Result<usize, (Response, bool)> {
    let slow = || {
        let t = began.elapsed();
        t >= CROWDED_HEAD_TIME && (received as f64) < t.as_secs_f64() * CROWDED_BODY_RATE && crowded()
    };
    read_watched(stream, buf, limits, deadline, grace, slow, || format!("the server is busy and the request's body arrived at under {} KiB/s", CROWDED_BODY_RATE as u64 / 1024))
}

/// The next bytes, waited for at most `limits.timeout` and never past `deadline` (nor past the
/// shutdown's grace), looking at least every 250 ms whether `dropped()`: then the request gets
/// 408 `why()` (and the error says it was this limit).
fn read_watched(stream: &mut TcpStream, buf: &mut [u8], limits: &Limits, deadline: Instant, grace: &Grace, dropped: impl Fn() -> bool, why: impl Fn() -> String) -> Result<usize, (Response, bool)> {
    let until = stall_deadline(deadline, limits.timeout);
    loop {
        if dropped() {
            return Err((Response::error(408, why()), true));
        }
        // Waits of at most 250 ms, so that crowding is noticed.
        let look = until.min(after(Duration::from_millis(250)));
        match within(stream, look, grace, false, |s| s.read(buf)) {
            Ok(n) => return Ok(n),
            Err(Waited::TimedOut) if look < until && grace.cap(look) == look => {}
            Err(Waited::TimedOut) => return Err((timed_out(limits, deadline, until, grace), false)),
            Err(Waited::Failed(e)) => return Err((read_failed(e), false)),
        }
    }
}

/// The answer when a wait for a request's bytes that was to end at `until` ran out.
fn timed_out(limits: &Limits, deadline: Instant, until: Instant, grace: &Grace) -> Response {
    if grace.cap(until) < until {
        Response::error(503, "the server is stopping and the request did not arrive in time")
    } else if Instant::now() >= deadline {
        Response::error(408, format!("the request took over {} s to arrive", limits.request_time.as_secs_f64()))
    } else {
        Response::error(408, "the client was silent for too long")
    }
}

fn read_failed(e: std::io::Error) -> Response {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Response::error(408, "the client was silent for too long"),
        _ => Response::error(400, format!("reading the request failed: {e}")),
    }
}

/// The response's bytes: status line, headers (CORS ones for an allowed `origin`; `keep_alive`:
/// how long the connection waits for the next request, `None`: it closes) and, unless
/// `head_only` (a `HEAD` request), body.
pub(super) fn encode(response: &Response, head_only: bool, origin: Option<&str>, keep_alive: Option<Duration>) -> Vec<u8> {
    // A header with a line break would let a handler's input write headers of its own.
    let clean = |s: &str| !s.bytes().any(|b| b.is_ascii_control());
    let content_type = if clean(&response.content_type) { response.content_type.as_str() } else { "application/octet-stream" };
    let mut head = format!("HTTP/1.1 {} {}\r\nContent-Type: {content_type}\r\n", response.status, parse::reason(response.status));
    let cors = origin.map(|o| [("Access-Control-Allow-Origin", o), ("Vary", "Origin")]);
    let headers = response.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).chain(cors.into_iter().flatten());
    // The framing headers are the server's alone: a handler's would contradict them.
    let framing = |n: &str| ["content-length", "connection", "keep-alive", "transfer-encoding", "content-type"].iter().any(|f| n.eq_ignore_ascii_case(f));
    for (name, value) in headers.filter(|(n, v)| !n.is_empty() && clean(n) && !n.contains([' ', ':']) && clean(v) && !framing(n)) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    // 204 and 304 answers have no body, nor a Content-Length here (RFC 9110, 6.4.1 and 8.6: a
    // 304's would have to be the 200's length).
    let bodiless = matches!(response.status, 204 | 304);
    if !bodiless {
        head.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
    }
    match keep_alive {
        // A second less than the wait, so that a client trusting it never sends into a close.
        Some(idle) if idle.as_secs() >= 2 => head.push_str(&format!("Connection: keep-alive\r\nKeep-Alive: timeout={}\r\n\r\n", idle.as_secs() - 1)),
        Some(_) => head.push_str("Connection: keep-alive\r\n\r\n"),
        None => head.push_str("Connection: close\r\n\r\n"),
    }
    let mut out = head.into_bytes();
    if !head_only && !bodiless {
        out.extend_from_slice(&response.body);
    }
    out
}

/// Writes `bytes`, waiting at most `timeout` for the client to take more and giving up at
/// `deadline` (or the shutdown's grace), so that a client that reads slowly holds its
/// connection for a bounded time.
fn write_within(stream: &mut TcpStream, mut bytes: &[u8], timeout: Duration, deadline: Instant, grace: &Grace) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let until = stall_deadline(deadline, timeout);
        match within(stream, until, grace, true, |s| s.write(bytes)) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            // Past the deadline the one last write was all: a client taking a trickle holds nothing.
            Ok(n) if n < bytes.len() && Instant::now() >= grace.cap(deadline) => return Err(ErrorKind::TimedOut.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(Waited::TimedOut) => return Err(ErrorKind::TimedOut.into()),
            Err(Waited::Failed(e)) => return Err(e),
        }
    }
    Ok(())
}

/// How long a closing connection reads what the client still sends, at most.
const LINGER: Duration = Duration::from_secs(2);

/// Ends the connection after the answer: stops writing, then reads (and drops) what the client
/// still sends, at most 1 MiB for at most `at_most`, so that closing with unread bytes does not
/// reset the connection before the client has read the answer.
fn linger(mut stream: TcpStream, grace: &Grace, at_most: Duration) {
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let until = grace.cap(Instant::now() + at_most);
    let mut sink = [0u8; 8192];
    let mut drained = 0;
    while drained < (1 << 20) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut sink) {
            Ok(n) if n > 0 => drained += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            _ => break,
        }
    }
}
