//! A small HTTP/1.1 server for the programs that serve a model over a socket (`search
//! --listen`, `classify --listen`). Std only: no TLS (a bearer token can be required: `Limits::token`), no HTTP/2; persistent
//! connections (a client sends its next request on the same connection, or several at once).
//! Each connection is read, checked and answered on its own thread, within [`Limits`]; the
//! requests are handed to the caller's handler on the calling thread, which keeps the model, one
//! at a time ([`serve`]) or in batches of those that arrived while it was busy
//! ([`serve_batches`]): a slow or silent client holds only its own connection, for a bounded
//! time, never the model or the accepting thread. [`serve_batches_until`] stops cleanly on a
//! [`Shutdown`] (Ctrl-C, `SIGTERM`), answering the requests in hand first.
//!
//! ```no_run
//! use diffclip::http::{Limits, Response, serve};
//! let listener = std::net::TcpListener::bind("127.0.0.1:8080")?;
//! serve(listener, Limits::default(), |request| match (request.method.as_str(), request.path.as_str()) {
//!     ("POST", "/echo") => Response::new(200, "application/octet-stream", request.body.clone()),
//!     _ => Response::error(404, "no such endpoint"),
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::time::{Duration, Instant};

mod chunked;
mod connection;
mod parse;
mod shutdown;

pub use parse::percent_decode;
pub use shutdown::Shutdown;

/// What a client may send and for how long.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest body accepted (`413` past it: before reading it, or for a chunked body at the
    /// chunk that passes it).
    pub max_body: usize,
    /// Largest request line plus headers (`431` past it).
    pub max_head: usize,
    /// Longest wait for the client's next bytes (`408`), or for it to take more of the answer;
    /// zero: no limit but `request_time`.
    pub timeout: Duration,
    /// Longest time the whole request may take to arrive, however steadily it trickles (`408`);
    /// the answer gets as long to leave.
    pub request_time: Duration,
    /// Connections read at once; more are answered `503` at once. While more than three
    /// quarters are open, a connection that has waited a second for a request's first byte is
    /// closed (`408` for its first request), and so is one whose request line and headers are
    /// not whole 5 s after they began, or whose body arrives at under 64 KiB/s past its first
    /// 5 s, until they are not: silent clients, or clients trickling their headers or bodies,
    /// cannot hold every place.
    pub max_connections: usize,
    /// Largest total of the bodies' bytes received and not yet answered, over all connections
    /// (`503` with `Retry-After` past it; a body larger than this alone is `413`): what clients
    /// can make the server hold.
    pub max_bodies: usize,
    /// How long a connection waits for the client's next request after an answer (`Connection:
    /// keep-alive`, advertised as a second less), holding its place among `max_connections`:
    /// offered only while at most three quarters of them are open; zero: one request per
    /// connection.
    pub keep_alive: Duration,
    /// Requests answered on one connection before it is closed.
    pub max_requests: usize,
    /// After a [`Shutdown`], how long the requests in hand may still take to arrive and their
    /// answers to leave (a service manager's stop timeout is often 10 to 90 s).
    pub shutdown_grace: Duration,
    /// Names accepted in the `Host` header besides IP addresses and `localhost` (`403`
    /// otherwise): a web page that rebinds its own name to this machine's address cannot use the
    /// server. Add the name a proxy in front of it forwards: `name` on any port, `name:port` on
    /// that one only (or with no port in the header where it is 80 or 443).
    pub hosts: Vec<String>,
    /// `Origin` values accepted (`403` otherwise): requests a web page makes carry one, so by
    /// default no page the user has open can use the server. An accepted origin gets CORS
    /// headers, and its preflight `OPTIONS` requests are answered by the server. (`null` would
    /// accept every sandboxed frame and `data:` page.)
    pub origins: Vec<String>,
    /// A secret every request must carry as `Authorization: Bearer SECRET` (`401` with
    /// `WWW-Authenticate: Bearer` otherwise, before its body is read; compared in constant
    /// time); CORS preflights, which browsers send without it, are exempt. `None`: no check.
    pub token: Option<String>,
}

impl Default for Limits {
    /// 32 MiB bodies (a large photo), 16 KiB heads, 30 s between bytes, 120 s for a request
    /// (and for its answer to leave), 64 connections, 256 MiB of bodies at once, 5 s for a next
    /// request and 1000 requests a connection, 10 s of grace at a shutdown, no extra host names,
    /// no web origins, no token.
    fn default() -> Self {
        Self {
            max_body: 32 << 20,
            max_head: 16 << 10,
            timeout: Duration::from_secs(30),
            request_time: Duration::from_secs(120),
            max_connections: 64,
            max_bodies: 256 << 20,
            keep_alive: Duration::from_secs(5),
            max_requests: 1000,
            shutdown_grace: Duration::from_secs(10),
            hosts: Vec::new(),
            origins: Vec::new(),
            token: None,
        }
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
    /// The body (`Content-Length` bytes, or a chunked body decoded; bytes after it begin the
    /// connection's next request).
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A response: status, content type, other headers and body.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// The status code, 200 to 599 (others are answered `500`: interim answers are the
    /// server's); `204` and `304` go without the body.
    pub status: u16,
    /// The `Content-Type` header.
    pub content_type: String,
    /// Other headers (`Allow`, …). The server writes `Content-Type`, `Content-Length`,
    /// `Connection` and `Keep-Alive` itself and leaves out the handler's (and its
    /// `Transfer-Encoding`); a handler's `Connection: close` closes the connection after the
    /// answer. A name or value holding a control character is left out.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// Any response.
    pub fn new(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        Self { status, content_type: content_type.to_string(), headers: Vec::new(), body }
    }

    /// The response with header `name: value` added.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
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
/// [`Limits`] or HTTP/1.1's syntax are answered by the server (`400`, `401`, `403`, `408`, `411`,
/// `413`, `417`, `431`, `501`, `503`, `505`) and never reach `handle`, nor do CORS preflights of
/// allowed origins. `HEAD` reaches it as `GET` and is answered without the body. A handler that
/// panics answers `500` and the server goes on. Each request is logged on stderr, with its
/// status and the time its handler took.
pub fn serve(listener: TcpListener, limits: Limits, mut handle: impl FnMut(&Request) -> Response) -> std::io::Result<()> {
    serve_batches(listener, limits, 1, |requests| requests.iter().map(&mut handle).collect())
}

/// [`serve`] for a handler that answers several requests at once (a model embeds a batch faster
/// than its items one by one): `handle` gets the requests that arrived while it was busy, at most
/// `max_batch`, without waiting for more, and returns their answers in order. When it panics on
/// a batch, or returns a wrong number of answers, each request of the batch is handed to it
/// again alone, so that one bad request fails only itself (`500`).
///
/// ```no_run
/// use diffclip::http::{Limits, Response, serve_batches};
/// let listener = std::net::TcpListener::bind("127.0.0.1:8080")?;
/// serve_batches(listener, Limits::default(), 8, |requests| {
///     requests.iter().map(|r| Response::new(200, "text/plain", r.body.clone())).collect()
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn serve_batches(listener: TcpListener, limits: Limits, max_batch: usize, handle: impl FnMut(&[Request]) -> Vec<Response>) -> std::io::Result<()> {
    serve_batches_until(listener, limits, max_batch, &Shutdown::new(), handle)
}

/// [`serve_batches`] until `shutdown` is asked for: then the server refuses new connections,
/// answers the requests it holds (those still arriving within their limits), closes the
/// connections that are idle or have sent nothing yet, and returns `Ok`.
///
/// ```no_run
/// use diffclip::http::{Limits, Response, Shutdown, serve_batches_until};
/// let listener = std::net::TcpListener::bind("127.0.0.1:8080")?;
/// // Ctrl-C or SIGTERM: the requests in hand are answered, then serving returns.
/// serve_batches_until(listener, Limits::default(), 8, &Shutdown::on_signals(), |requests| {
///     requests.iter().map(|r| Response::new(200, "text/plain", r.body.clone())).collect()
/// })?;
/// eprintln!("stopped");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn serve_batches_until(listener: TcpListener, limits: Limits, max_batch: usize, shutdown: &Shutdown, mut handle: impl FnMut(&[Request]) -> Vec<Response>) -> std::io::Result<()> {
    let (requests, incoming) = channel::<Queued>();
    listener.set_nonblocking(true)?; // accepting looks at `shutdown` between connections
    let stopping = shutdown.clone();
    let accepting = std::thread::spawn(move || accept(listener, limits, requests, stopping));
    while let Some(batch) = next_batch(&incoming, max_batch) {
        let (mut heads, mut requests, mut replies) = (Vec::new(), Vec::new(), Vec::new());
        for queued in batch {
            heads.push(queued.head_only);
            requests.push(queued.request);
            replies.push(queued.reply);
        }
        let started = Instant::now();
        let answers = match answer(&mut handle, &requests) {
            Some(answers) => answers,
            None if requests.len() == 1 => vec![Response::error(500, "the handler failed on this request")],
            None => {
                log(format_args!("the handler failed on a batch of {}: each request again alone", requests.len()));
                let alone = |i: usize| answer(&mut handle, &requests[i..=i]).map_or_else(|| Response::error(500, "the handler failed on this request"), |mut a| a.remove(0));
                (0..requests.len()).map(alone).collect()
            }
        };
        let took = started.elapsed().as_secs_f64() * 1e3;
        let batch = if requests.len() > 1 { format!(" (batch of {})", requests.len()) } else { String::new() };
        for (((request, response), reply), head_only) in requests.iter().zip(answers).zip(replies).zip(heads) {
            let method = if head_only { "HEAD" } else { &request.method };
            log(format_args!("{method} {:?} {} {took:.1} ms{batch}", request.path, response.status));
            let _ = reply.send(response); // the client may have gone: nothing to tell it
        }
    }
    let accepted = accepting.join().unwrap_or_else(|_| Err(std::io::Error::other("the accepting thread panicked")));
    if accepted.is_ok() {
        log(format_args!("stopped: every request in hand was answered"));
    }
    flush_log();
    accepted
}

/// A request on its way to the handler: whether it came as `HEAD` (for the log), and where its
/// answer goes.
struct Queued {
    request: Request,
    head_only: bool,
    reply: Sender<Response>,
}

/// The next requests to answer: one, waited for, then those already waiting, `max_batch` at most
/// (`None` when no request can come any more).
fn next_batch<T>(incoming: &std::sync::mpsc::Receiver<T>, max_batch: usize) -> Option<Vec<T>> {
    let mut batch = vec![incoming.recv().ok()?];
    while batch.len() < max_batch {
        match incoming.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// `handle`'s answers to `requests`, or `None` when it panicked (the hook prints the panic) or
/// gave a wrong number of answers.
fn answer(handle: &mut impl FnMut(&[Request]) -> Vec<Response>, requests: &[Request]) -> Option<Vec<Response>> {
    let answers = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle(requests))).ok()?;
    if answers.len() != requests.len() {
        log(format_args!("the handler gave {} answers to {} requests", answers.len(), requests.len()));
        return None;
    }
    Some(answers)
}

/// One line on stderr, written by a thread of its own: a closed or stalled stderr (`… 2>&1 |
/// tee log` after `tee` ended or stopped reading) neither stops nor holds the server; lines
/// past 1024 waiting are dropped.
fn log(line: std::fmt::Arguments<'_>) {
    if let Some(lines) = log_lines() {
        let _ = lines.try_send(Logged::Line(line.to_string()));
    }
}

/// Waits (at most 1 s) until the lines logged so far are written: a program that ends after
/// serving keeps its last lines.
fn flush_log() {
    let (done, written) = channel();
    // `try_send`: a queue full because stderr is stalled holds nothing.
    if let Some(lines) = log_lines()
        && lines.try_send(Logged::Flush(done)).is_ok()
    {
        let _ = written.recv_timeout(Duration::from_secs(1));
    }
}

enum Logged {
    Line(String),
    Flush(Sender<()>),
}

/// The logging thread's queue (`None` when it could not start).
fn log_lines() -> Option<&'static std::sync::mpsc::SyncSender<Logged>> {
    static LINES: std::sync::OnceLock<Option<std::sync::mpsc::SyncSender<Logged>>> = std::sync::OnceLock::new();
    let lines = LINES.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Logged>(1024);
        let spawned = std::thread::Builder::new().name("http-log".into()).spawn(move || {
            for logged in rx {
                match logged {
                    Logged::Line(line) => drop(writeln!(std::io::stderr(), "{line}")),
                    Logged::Flush(done) => drop(done.send(())),
                }
            }
        });
        spawned.ok().map(|_| tx)
    });
    lines.as_ref()
}

/// What the connections share: where requests go, the bytes of bodies held, the connections
/// open, whether the server is stopping.
struct Shared {
    requests: Sender<Queued>,
    bodies: AtomicUsize,
    open: AtomicUsize,
    shutdown: Shutdown,
}

/// A connection's place among `Limits::max_connections`, given back when dropped, however its
/// thread ends (or fails to start).
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept(listener: TcpListener, limits: Limits, requests: Sender<Queued>, shutdown: Shutdown) -> std::io::Result<()> {
    let shared = Arc::new(Shared { requests, bodies: AtomicUsize::new(0), open: AtomicUsize::new(0), shutdown });
    let mut failures = 0;
    loop {
        if shared.shutdown.stopped_at().is_some() {
            let open = shared.open.load(Ordering::SeqCst);
            log(format_args!("stopping: new connections are refused; answering what the {open} open ones hold"));
            return Ok(()); // the listener closes; the connections end as they are answered
        }
        let stream = match listener.accept() {
            // Accepted connections block (on the BSDs they inherit the listener's mode).
            Ok((stream, _)) if stream.set_nonblocking(false).is_ok() => stream,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                wait_for_connection(&listener);
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // Out of file descriptors, a connection reset before accept: wait and go on, unless
            // nothing but failures come.
            Err(e) => {
                failures += 1;
                if failures > 1000 {
                    return Err(e);
                }
                log(format_args!("accepting a connection failed: {e}"));
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        failures = 0;
        let slot = Slot(shared.clone());
        if shared.open.fetch_add(1, Ordering::SeqCst) >= limits.max_connections {
            drop(slot);
            turn_away(stream);
            continue;
        }
        let limits = limits.clone();
        let spawned = std::thread::Builder::new().name("http-connection".into()).spawn(move || {
            connection::serve(stream, &limits, &slot.0);
        });
        if let Err(e) = spawned {
            log(format_args!("no thread for a connection: {e}"));
        }
    }
}

/// Waits until a connection is there to accept, at most 100 ms.
#[cfg(unix)]
fn wait_for_connection(listener: &TcpListener) {
    use std::os::fd::AsRawFd;
    let mut ready = libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd, for the length of the call.
    unsafe { libc::poll(&mut ready, 1, 100) };
}

/// Waits a little for a connection to accept.
#[cfg(not(unix))]
fn wait_for_connection(_: &TcpListener) {
    std::thread::sleep(Duration::from_millis(10));
}

/// `503` to a connection past the limit, written without waiting (the accepting thread must
/// never wait on a client), then closed.
fn turn_away(stream: TcpStream) {
    log(format_args!("refused {}: 503 too many connections", stream.peer_addr().map_or("?".to_string(), |a| a.to_string())));
    if stream.set_nonblocking(true).is_ok() {
        let _ = (&stream).write_all(&connection::encode(&Response::error(503, "too many connections; try again").with_header("Retry-After", "1"), false, None, None));
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

#[cfg(test)]
mod tests;
