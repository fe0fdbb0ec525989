//! The server against clients that follow HTTP/1.1 and clients that do not.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::{Limits, Response, serve, serve_batches_until};

/// A server whose handler echoes the body, or the `q` parameter when there is one, and counts
/// the requests it saw.
fn echo_server(limits: Limits) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    std::thread::spawn(move || {
        serve(listener, limits, |request| {
            let request = request.clone();
            counter.fetch_add(1, Ordering::SeqCst);
            match request.param("q") {
                Some(q) => Response::new(200, "text/plain", q.as_bytes().to_vec()),
                None if request.path == "/panic" => panic!("a handler's bug"),
                None if request.path == "/method" => Response::new(200, "text/plain", request.method.into_bytes()).with_header("X-Ok", "1").with_header("X-Bad", "1\r\nX-Evil: 1"),
                None if request.path == "/inject" => Response::new(200, "text/plain\r\nX-Evil: 1", vec![]),
                None if request.path == "/interim" => Response::new(101, "text/plain", b"switch".to_vec()),
                None if request.path == "/empty" => Response::new(204, "text/plain", b"dropped".to_vec()).with_header("Content-Type", "text/html"),
                None if request.path == "/framing" => Response::new(200, "text/plain", b"ab".to_vec()).with_header("content-length", "99").with_header("Connection", "close"),
                None => Response::new(200, "application/octet-stream", request.body),
            }
        })
    });
    (addr, seen)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream
}

/// Sends `raw`, ends the request side, and returns the status and the whole answer.
fn exchange(addr: SocketAddr, raw: &[u8]) -> (u16, String) {
    let mut stream = connect(addr);
    stream.write_all(raw).unwrap();
    let _ = stream.shutdown(Shutdown::Write);
    answer(&mut stream)
}

fn answer(stream: &mut TcpStream) -> (u16, String) {
    let mut out = Vec::new();
    stream.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status in {text:?}"));
    (status, text)
}

fn body(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").unwrap().1
}

#[test]
fn well_formed_requests_reach_the_handler() {
    let (addr, seen) = echo_server(Limits::default());
    let (status, text) = exchange(addr, b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!((status, body(&text)), (200, "hello"), "{text}");
    assert!(text.contains("Content-Length: 5\r\n") && text.contains("Connection: keep-alive\r\nKeep-Alive: timeout=4\r\n"), "{text}");
    // Bare \n line ends, a percent-encoded parameter, a GET without a body.
    let (status, text) = exchange(addr, b"GET /x?q=a+red%20dog%C3%A9&z HTTP/1.0\nHost: localhost\n\n");
    assert_eq!((status, body(&text)), (200, "a red dogé"), "{text}");
    assert!(text.contains("Connection: close\r\n"), "HTTP/1.0 without keep-alive: {text}");
    // The body split over several writes, after a 100 Continue.
    let mut stream = connect(addr);
    stream.write_all(b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 6\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n").unwrap();
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(b"abc").unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    stream.write_all(b"def").unwrap();
    let (status, text) = answer(&mut stream);
    assert_eq!((status, body(&text)), (200, "abcdef"), "{text}");
    // A content type that would add a header is replaced.
    let (_, text) = exchange(addr, b"GET /inject HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(!text.contains("X-Evil") && text.contains("Content-Type: application/octet-stream\r\n"), "{text}");
    // Empty lines before the request line, a Latin-1 header value, IP and localhost hosts.
    let (status, text) = exchange(addr, b"\r\n\r\nPOST /x HTTP/1.1\r\nX-Name: caf\xe9\r\nHost: localhost:8080\r\nContent-Length: 2\r\n\r\nok");
    assert_eq!((status, body(&text)), (200, "ok"), "{text}");
    for host in ["127.0.0.1", "127.0.0.1:80", "[::1]:8080", "LOCALHOST"] {
        assert_eq!(exchange(addr, format!("GET /x?q=1 HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes()).0, 200, "{host}");
    }
    // HEAD: the handler answers it as GET; the headers of the answer, no body. A handler's
    // header is written unless it would write another.
    let (status, text) = exchange(addr, b"HEAD /method HTTP/1.1\r\nHost: localhost.:8080\r\n\r\n");
    assert_eq!((status, body(&text)), (200, ""), "{text}");
    assert!(text.contains("Content-Length: 3\r\n") && text.contains("X-Ok: 1\r\n") && !text.contains("Evil"), "{text}");
    // HTTP/1.0 clients get no 100 Continue.
    let (status, text) = exchange(addr, b"POST /x HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi");
    assert_eq!((status, body(&text)), (200, "hi"), "{text}");
    assert!(!text.contains("100 Continue"), "{text}");
    assert_eq!(seen.load(Ordering::SeqCst), 11);
    // A refused HEAD gets no body either.
    let (status, text) = exchange(addr, b"HEAD /x HTTP/1.1\r\nHost: evil.example\r\n\r\n");
    assert_eq!((status, body(&text)), (403, ""), "{text}");
}

#[test]
fn chunked_bodies_reach_the_handler() {
    let limits = Limits { max_body: 100, ..Limits::default() };
    let (addr, seen) = echo_server(limits);
    // Two requests on one connection: the second starts right after the first's last chunk.
    let mut stream = connect(addr);
    stream.write_all(b"POST /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nX-Sum: 1\r\n\r\nPOST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi").unwrap();
    let (status, text) = answer(&mut stream);
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\r\n\r\nabcdefgHTTP/1.1 200") && text.ends_with("\r\n\r\nhi"), "{text}");
    // Sent in pieces after `Expect: 100-continue`.
    let mut stream = connect(addr);
    stream.write_all(b"POST /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n").unwrap();
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    for piece in [&b"5\r\nhel"[..], b"lo\r\n", b"0\r\n", b"\r\n"] {
        stream.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, text) = answer(&mut stream);
    assert_eq!((status, body(&text)), (200, "hello"), "{text}");
    let before = seen.load(Ordering::SeqCst);
    for (raw, want, says) in [
        (&b"POST /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n"[..], 413, "over the limit of 100"),
        (b"POST /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab", 400, "ended before its last chunk"),
        (b"POST /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nq\r\n", 400, "hexadecimal"),
        (b"POST /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, "not supported"),
        (b"POST /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400, "chunked before another coding"),
        (b"POST /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", 400, "without CRLF"),
        (b"POST /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "more than one Transfer-Encoding"),
        (b"POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "HTTP/1.0"),
    ] {
        let (status, text) = exchange(addr, raw);
        assert_eq!(status, want, "{}: {text}", String::from_utf8_lossy(raw));
        assert!(body(&text).contains(says), "{}: {text}", String::from_utf8_lossy(raw));
    }
    assert_eq!(seen.load(Ordering::SeqCst), before, "a refused request reached the handler");
}

#[test]
fn malformed_requests_are_answered_by_the_server() {
    let limits = Limits { max_body: 100, max_head: 200, ..Limits::default() };
    let (addr, seen) = echo_server(limits);
    let cases: [(&[u8], u16, &str); 20] = [
        (b"POST /x HTTP/1.1\r\nHost: localhost\r\n\r\nabc", 411, "Content-Length"),
        (b"POST /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400, "both Content-Length and Transfer-Encoding"),
        (b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 101\r\n\r\n", 413, "over the limit of 100"),
        (b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400, "not a number"),
        (b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400, "two different"),
        (b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n", 400, "not a number"),
        (b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nabc", 400, "ended before"),
        (b"POST /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc", 501, "not supported"),
        (b"GET /x HTTP/1.1\r\nHost: localhost\r\nX: a\rTransfer-Encoding: chunked\r\n\r\n", 400, "control character"),
        (b"GET /x HTTP/1.1\r\nHost: rebound.example:8080\r\n\r\n", 403, "rebound.example"),
        (b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://a.example\r\n\r\n", 403, "web pages"),
        (b"GET /x\r\n\r\n", 400, "request line"),
        (b"GET x HTTP/1.1\r\nHost: localhost\r\n\r\n", 400, "starting with /"),
        (b"GET /x HTTP/1.1\r\n\r\n", 400, "needs a Host"),
        (b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n", 400, "more than one Host"),
        (b"GET /x HTTP/1.1\r\nHost: [::1]evil.example\r\n\r\n", 403, "not accepted"),
        (b"GET /x HTTP/1.1\r\nHost: localhost\r\r\n\r\n", 400, "control character"),
        (b"GET /x HTTP/2.0\r\n\r\n", 505, "HTTP/1.1"),
        (b"GET /x HTTP/1.1\r\nHost: localhost\r\nBad Name: 1\r\n\r\n", 400, "header name"),
        (b"GET /x?q=%ff HTTP/1.1\r\nHost: localhost\r\n\r\n", 400, "UTF-8"),
    ];
    for (raw, want, says) in cases {
        let (status, text) = exchange(addr, raw);
        assert_eq!(status, want, "{}: {text}", String::from_utf8_lossy(raw));
        assert!(body(&text).contains(says), "{}: {text}", String::from_utf8_lossy(raw));
    }
    let mut huge = b"GET /x HTTP/1.1\r\n".to_vec();
    huge.extend(std::iter::repeat_n(b"X-Pad: 0123456789\r\n", 20).flatten());
    assert_eq!(exchange(addr, &huge).0, 431);
    let mut blank_lines = b"\r\n".repeat(150);
    blank_lines.extend_from_slice(b"GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(exchange(addr, &blank_lines).0, 431, "empty lines before the request count");
    assert_eq!(exchange(addr, &[0xff, 0xfe, b'\r', b'\n', b'\r', b'\n']).0, 400);
    // Closing without a byte gets no answer; the server goes on.
    drop(connect(addr));
    assert_eq!(exchange(addr, b"GET /x?q=on HTTP/1.1\r\nHost: localhost\r\n\r\n").0, 200);
    assert_eq!(seen.load(Ordering::SeqCst), 1, "only the last request reached the handler");
}

/// One answer read from a connection that stays open: status, head and body (`Content-Length`
/// bytes, none for a `HEAD` request).
fn read_one(stream: &mut TcpStream) -> (u16, String, String) {
    read_answer(stream, false)
}

fn read_answer(stream: &mut TcpStream, head_only: bool) -> (u16, String, String) {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).unwrap_or_else(|e| panic!("{e} after {:?}", String::from_utf8_lossy(&head)));
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let length: usize = head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).unwrap().parse().unwrap();
    let mut body = vec![0u8; if head_only { 0 } else { length }];
    stream.read_exact(&mut body).unwrap();
    (head.split(' ').nth(1).unwrap().parse().unwrap(), head, String::from_utf8(body).unwrap())
}

/// Whether the server has closed `stream` (it reads the end within 10 s, with nothing before).
fn closed(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    matches!(stream.read(&mut [0u8; 1]), Ok(0))
}

/// A connection serves requests one after another, or several sent at once, until the client
/// says `close`, falls silent past `keep_alive`, or reaches `max_requests`.
#[test]
fn persistent_connections_serve_requests_in_turn() {
    let (addr, seen) = echo_server(Limits { keep_alive: Duration::from_secs(2), max_requests: 4, ..Limits::default() });
    let mut stream = connect(addr);
    stream.write_all(b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\none").unwrap();
    let (status, head, text) = read_one(&mut stream);
    assert_eq!((status, text.as_str()), (200, "one"), "{head}");
    assert!(head.contains("Connection: keep-alive\r\nKeep-Alive: timeout=1\r\n"), "a second less than the wait: {head}");
    // Two requests in one write (a HEAD among them), answered in order.
    stream.write_all(b"HEAD /method HTTP/1.1\r\nHost: localhost\r\n\r\nPOST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nthree").unwrap();
    let (status, head, _) = read_answer(&mut stream, true);
    assert!(status == 200 && head.contains("Content-Length: 3\r\n"), "{head}");
    let (status, head, text) = read_one(&mut stream);
    assert_eq!((status, text.as_str()), (200, "three"), "the HEAD answer had no body before this one: {head}");
    // The fourth request is the last one this connection serves.
    stream.write_all(b"GET /x?q=four HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let (status, head, text) = read_one(&mut stream);
    assert_eq!((status, text.as_str()), (200, "four"), "{head}");
    assert!(head.contains("Connection: close\r\n"), "{head}");
    assert!(closed(&mut stream));
    // Silent past keep_alive, or sending only empty lines: closed without a word.
    let mut stream = connect(addr);
    stream.write_all(b"GET /x?q=1 HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
    let (_, head, _) = read_one(&mut stream);
    assert!(head.contains("Connection: keep-alive\r\n"), "HTTP/1.0 asking for keep-alive: {head}");
    std::thread::sleep(Duration::from_millis(2500));
    assert!(closed(&mut stream), "the idle connection was not closed, or got an answer");
    let mut stream = connect(addr);
    stream.write_all(b"GET /x?q=1 HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    read_one(&mut stream);
    let started = std::time::Instant::now();
    for _ in 0..3 {
        stream.write_all(b"\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(closed(&mut stream) && started.elapsed() < Duration::from_secs(5), "empty lines held the connection: {:?}", started.elapsed());
    // A handler's 1xx is a 500; a 204 has neither body nor Content-Length (nor a second
    // Content-Type); the connection goes on after both.
    let mut stream = connect(addr);
    stream.write_all(b"GET /interim HTTP/1.1\r\nHost: localhost\r\n\r\nGET /empty HTTP/1.1\r\nHost: localhost\r\n\r\nGET /x?q=after HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let (status, head, _) = read_one(&mut stream);
    assert_eq!(status, 500, "{head}");
    let mut rest = String::new();
    stream.read_to_string(&mut rest).unwrap();
    let (empty, after) = rest.split_once("\r\n\r\n").unwrap();
    assert!(empty.starts_with("HTTP/1.1 204 ") && !empty.contains("Content-Length") && empty.matches("Content-Type").count() == 1, "{empty}");
    assert!(after.starts_with("HTTP/1.1 200 ") && after.ends_with("\r\n\r\nafter"), "{after}");
    // Half an empty line between requests does not hold the connection either.
    let mut stream = connect(addr);
    stream.write_all(b"GET /x?q=1 HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    read_one(&mut stream);
    stream.write_all(b"\r").unwrap();
    let started = std::time::Instant::now();
    assert!(closed(&mut stream) && started.elapsed() < Duration::from_secs(4), "a lone CR held the connection: {:?}", started.elapsed());
    // A handler's framing headers are left out, and its `Connection: close` closes.
    let mut stream = connect(addr);
    stream.write_all(b"GET /framing HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let (_, head, text) = read_one(&mut stream);
    assert_eq!(text, "ab", "{head}");
    assert!(!head.contains("99") && head.contains("Connection: close\r\n") && !head.contains("Connection: Close") && closed(&mut stream), "{head}");
    // `Connection: close` among other options; a refused request ends the connection.
    let mut stream = connect(addr);
    stream.write_all(b"GET /x?q=1 HTTP/1.1\r\nHost: localhost\r\nConnection: TE, close\r\n\r\n").unwrap();
    let (_, head, _) = read_one(&mut stream);
    assert!(head.contains("Connection: close\r\n") && closed(&mut stream), "{head}");
    let mut stream = connect(addr);
    stream.write_all(b"GET /x?q=1 HTTP/1.1\r\nHost: localhost\r\n\r\nGET /x?q=2 HTTP/1.1\r\n\r\nGET /x?q=3 HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    assert_eq!(read_one(&mut stream).0, 200);
    let (status, head, _) = read_one(&mut stream);
    assert_eq!(status, 400, "no Host: {head}");
    assert!(head.contains("Connection: close\r\n") && closed(&mut stream), "{head}");
    assert_eq!(seen.load(Ordering::SeqCst), 13);
}

/// Near `max_connections`, a connection ends after its answer instead of waiting idle.
#[test]
fn kept_connections_leave_room_for_others() {
    let (addr, _) = echo_server(Limits { max_connections: 4, keep_alive: Duration::from_secs(30), ..Limits::default() });
    let mut kept = Vec::new();
    for i in 0..4 {
        let mut stream = connect(addr);
        stream.write_all(b"GET /x?q=1 HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        let (status, head, _) = read_one(&mut stream);
        assert_eq!(status, 200);
        match i {
            0..3 => assert!(head.contains("Connection: keep-alive\r\n"), "{i}: {head}"),
            _ => assert!(head.contains("Connection: close\r\n") && closed(&mut stream), "the fourth of four places: {head}"),
        }
        kept.push(stream);
    }
}

/// The bodies held at once stay within `max_bodies`: past it a request gets 503 with
/// `Retry-After`, and the room comes back when an answer is written.
#[test]
fn bodies_past_the_budget_are_refused_until_there_is_room() {
    let (addr, _) = echo_server(Limits { max_bodies: 10, ..Limits::default() });
    // Declared lengths hold nothing: only bytes received count.
    let mut declared = connect(addr);
    declared.write_all(b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\nConnection: close\r\n\r\n").unwrap();
    let mut holder = connect(addr);
    holder.write_all(b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 9\r\nConnection: close\r\n\r\nabcdefgh").unwrap();
    std::thread::sleep(Duration::from_millis(300)); // the server has read them
    let (status, text) = exchange(addr, b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\n12345");
    assert_eq!(status, 503, "5 bytes beside 8: {text}");
    assert!(text.contains("Retry-After: 1\r\n"), "{text}");
    assert_eq!(exchange(addr, b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n12").0, 200, "2 bytes fit beside 8");
    holder.write_all(b"i").unwrap();
    assert_eq!(answer(&mut holder).0, 200);
    assert_eq!(exchange(addr, b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\n12345").0, 200, "the room came back");
    assert_eq!(exchange(addr, b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n\r\n").0, 413, "over the budget alone");
    declared.write_all(b"0123456789").unwrap();
    assert_eq!(answer(&mut declared).0, 200);
}

/// A silent client holds only its connection: others are answered meanwhile, and it gets 408
/// when its time is up. Past `max_connections`, a connection gets 503 at once.
#[test]
fn silent_clients_do_not_hold_the_server() {
    let (addr, _) = echo_server(Limits { timeout: Duration::from_secs(10), max_connections: 2, ..Limits::default() });
    let mut silent = connect(addr);
    silent.write_all(b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nabc").unwrap();
    let mut second = connect(addr);
    let (status, text) = exchange(addr, b"GET /x?q=1 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(status == 503 && text.contains("Retry-After: 1\r\n"), "two connections are open: {text}");
    second.write_all(b"GET /x?q=2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let (status, text) = answer(&mut second);
    assert_eq!((status, body(&text)), (200, "2"));
    // A server that waited for `silent` would have answered it (408) first.
    silent.set_nonblocking(true).unwrap();
    let pending = silent.peek(&mut [0u8; 1]).map_err(|e| e.kind());
    assert_eq!(pending, Err(std::io::ErrorKind::WouldBlock), "the silent client was answered before the second");
    silent.set_nonblocking(false).unwrap();
    let (status, text) = answer(&mut silent);
    assert_eq!(status, 408, "{text}");
}

/// A full house of connections that never send a byte gives its places up within seconds,
/// not after `timeout`: the next client is served.
#[test]
fn silent_connections_cannot_lock_others_out() {
    let (addr, _) = echo_server(Limits { timeout: Duration::from_secs(60), max_connections: 4, ..Limits::default() });
    let started = std::time::Instant::now();
    let silent: Vec<TcpStream> = (0..4).map(|_| connect(addr)).collect();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(exchange(addr, b"GET /x?q=1 HTTP/1.1\r\nHost: localhost\r\n\r\n").0, 503, "four places are held");
    let served = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        exchange(addr, b"GET /x?q=2 HTTP/1.1\r\nHost: localhost\r\n\r\n").0 == 200
    });
    assert!(served, "the silent connections still held every place after 5 s");
    assert!(started.elapsed() < Duration::from_millis(2800), "places came back after {:?}, not about a second (lingering on silent clients?)", started.elapsed());
    // Those that gave their places up were told why; the rest wait on, no longer crowded.
    let told = silent.into_iter().filter(|mut stream| {
        stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).is_ok() && &head == b"HTTP/1.1 408"
    });
    assert!(told.count() >= 1, "no silent connection was answered 408");
}

/// Near the connection limit, a request whose headers trickle in gives its place up after
/// `CROWDED_HEAD_TIME` (5 s), not after the request's whole time (here 60 s).
#[test]
fn trickling_headers_cannot_lock_others_out() {
    places_come_back_from(&[(b"GET /x?q=1 HTTP/1.1\r\n", b"X-Slow: a\r\n"); 4]);
}

/// So does one whose body arrives slower than `CROWDED_BODY_RATE`, chunked or not.
#[test]
fn trickling_bodies_cannot_lock_others_out() {
    let sized: (&[u8], &[u8]) = (b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n", b"a");
    let chunked: (&[u8], &[u8]) = (b"POST /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n", b"1\r\na\r\n");
    places_come_back_from(&[sized, chunked, sized, chunked]);
}

/// Four clients take every place of a server with four, each sending its `head`, then a
/// `piece` every 100 ms: the places must come back within about 5 s.
fn places_come_back_from(clients: &[(&'static [u8], &'static [u8]); 4]) {
    let (addr, _) = echo_server(Limits { request_time: Duration::from_secs(60), max_connections: 4, ..Limits::default() });
    let started = std::time::Instant::now();
    let trickling: Vec<TcpStream> = (0..4).map(|_| connect(addr)).collect();
    for (stream, &(head, piece)) in trickling.iter().zip(clients) {
        let mut writer = stream.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = writer.write_all(head);
            for _ in 0..600 {
                std::thread::sleep(Duration::from_millis(100));
                if writer.write_all(piece).is_err() {
                    break;
                }
            }
        });
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(exchange(addr, b"GET /x?q=1 HTTP/1.1\r\nHost: localhost\r\n\r\n").0, 503, "four places are held");
    let served = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        exchange(addr, b"GET /x?q=2 HTTP/1.1\r\nHost: localhost\r\n\r\n").0 == 200
    });
    assert!(served, "the trickling connections still held every place after 10 s");
    assert!(started.elapsed() < Duration::from_secs(8), "places came back after {:?}, not about 5 s (lingering on trickling clients?)", started.elapsed());
    drop(trickling);
}

/// A request that trickles in gets 408 when its whole time is up; a handler that panics answers
/// 500 and the server goes on.
#[test]
fn trickling_requests_and_failing_handlers_end_cleanly() {
    let (addr, _) = echo_server(Limits { request_time: Duration::from_secs(2), ..Limits::default() });
    let mut stream = connect(addr);
    let mut writer = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        let _ = writer.write_all(b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n");
        for _ in 0..200 {
            std::thread::sleep(Duration::from_millis(300));
            if writer.write_all(b"a").is_err() {
                break;
            }
        }
    });
    let (status, text) = answer(&mut stream);
    assert_eq!(status, 408, "{text}");
    assert!(body(&text).contains("took over 2 s"), "{text}");
    assert_eq!(exchange(addr, b"GET /panic HTTP/1.1\r\nHost: localhost\r\n\r\n").0, 500);
    assert_eq!(exchange(addr, b"GET /x?q=after HTTP/1.1\r\nHost: localhost\r\n\r\n").0, 200);
}

/// Names and web origins are refused unless allowed; an allowed origin gets CORS headers and
/// its preflight is answered by the server. A zero `timeout` means no per-wait limit.
#[test]
fn allowed_hosts_and_origins_are_served() {
    let limits = Limits { hosts: vec!["clip.internal:8443".into()], origins: vec!["https://app.example".into()], timeout: Duration::ZERO, ..Limits::default() };
    let (addr, seen) = echo_server(limits);
    let (status, text) = exchange(addr, b"GET /x?q=1 HTTP/1.1\r\nHost: CLIP.internal:8443\r\nOrigin: https://app.example\r\n\r\n");
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("Access-Control-Allow-Origin: https://app.example\r\n") && text.contains("Vary: Origin\r\n"), "{text}");
    let (status, text) = exchange(addr, b"OPTIONS /x HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: POST\r\n\r\n");
    assert_eq!(status, 204, "{text}");
    assert!(text.contains("Access-Control-Allow-Methods: GET, HEAD, POST\r\n") && text.contains("Access-Control-Allow-Origin: https://app.example\r\n"), "{text}");
    assert_eq!(seen.load(Ordering::SeqCst), 1, "the preflight did not reach the handler");
    assert_eq!(exchange(addr, b"GET /x?q=1 HTTP/1.1\r\nHost: other.internal\r\n\r\n").0, 403);
    // The allowed name with its port, and (as "clip.internal:8443" names one) no other port.
    assert_eq!(exchange(addr, b"GET /x?q=1 HTTP/1.1\r\nHost: clip.internal.:8443\r\n\r\n").0, 200);
    assert_eq!(exchange(addr, b"GET /x?q=1 HTTP/1.1\r\nHost: clip.internal:8080\r\n\r\n").0, 403);
    assert_eq!(exchange(addr, b"GET /x?q=1 HTTP/1.1\r\nHost: localhost\r\nOrigin: https://other.example\r\n\r\n").0, 403);
    assert_eq!(exchange(addr, b"GET /x?q=1 HTTP/1.1\r\nHost: localhost\r\nOrigin: null\r\n\r\n").0, 403);
}

#[test]
fn a_token_is_needed_when_set_and_checked_before_the_body() {
    let token = "s3cret-token-0123456789";
    let limits = Limits { token: Some(token.into()), origins: vec!["https://app.example".into()], ..Limits::default() };
    let (addr, seen) = echo_server(limits);
    for (auth, want) in [("", 401), ("Authorization: Bearer wrong-token-0123456789\r\n", 401), ("Authorization: Basic czNjcmV0\r\n", 401), ("Authorization: Bearer s3cret-token-012345678\r\n", 401)] {
        let (status, text) = exchange(addr, format!("GET /x?q=1 HTTP/1.1\r\nHost: localhost\r\n{auth}\r\n").as_bytes());
        assert_eq!(status, want, "{auth:?}: {text}");
        assert!(text.contains("WWW-Authenticate: Bearer\r\n"), "{text}");
    }
    // A body is not read for a request without the token: refused at once, the rest unsent.
    let (status, _) = exchange(addr, b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 30000000\r\n\r\n");
    assert_eq!(status, 401);
    assert_eq!(seen.load(Ordering::SeqCst), 0, "a request without the token reached the handler");
    for scheme in ["Bearer", "bearer"] {
        let (status, text) = exchange(addr, format!("GET /x?q=1 HTTP/1.1\r\nHost: localhost\r\nAuthorization: {scheme}  {token} \r\n\r\n").as_bytes());
        assert_eq!((status, body(&text)), (200, "1"), "{text}");
    }
    // A browser's preflight carries no Authorization: answered, and allows the header.
    let (status, text) = exchange(addr, b"OPTIONS /x HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: POST\r\n\r\n");
    assert_eq!(status, 204, "{text}");
    assert!(text.contains("Access-Control-Allow-Headers: Content-Type, Authorization\r\n"), "{text}");
    let (status, _) = exchange(addr, format!("GET /x?q=1 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nAuthorization: Bearer {token}\r\n\r\n").as_bytes());
    assert_eq!(status, 400, "two Authorization headers");
}

/// A client turned away (503) that keeps sending holds nothing: the accepting thread answers the
/// next connections at once, and a refused request's connection gives its place back within a
/// few seconds however long its client trickles.
#[test]
fn turned_away_and_refused_clients_hold_nothing() {
    let (addr, _) = echo_server(Limits { timeout: Duration::from_secs(60), max_connections: 1, ..Limits::default() });
    let trickle = |mut stream: TcpStream| {
        std::thread::spawn(move || {
            for _ in 0..400 {
                if stream.write_all(b"a").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let mut holder = connect(addr);
    holder.write_all(b"GET /x?q=held HTTP/1.1\r\nHost: localhost\r\n").unwrap(); // holds the only place
    let turned_away = connect(addr);
    let mut reader = turned_away.try_clone().unwrap();
    let _writer = trickle(turned_away);
    assert_eq!(answer(&mut reader).0, 503);
    // The accepting thread is not waiting on the trickling client.
    assert_eq!(exchange(addr, b"GET /x?q=1 HTTP/1.1\r\nHost: localhost\r\n\r\n").0, 503);
    // A refused request (400) whose client goes on sending gives its place back.
    holder.write_all(b"Bad Header\r\n\r\n").unwrap();
    let mut reader = holder.try_clone().unwrap();
    let _writer = trickle(holder);
    assert_eq!(answer(&mut reader).0, 400);
    let served = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        exchange(addr, b"GET /x?q=2 HTTP/1.1\r\nHost: localhost\r\n\r\n").0 == 200
    });
    assert!(served, "the refused connection still holds the only place after 10 s");
}

/// A batch is one request waited for, then those already waiting, `max_batch` at most.
#[test]
fn a_batch_is_what_is_waiting() {
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..5 {
        tx.send(i).unwrap();
    }
    assert_eq!(super::next_batch(&rx, 3), Some(vec![0, 1, 2]));
    assert_eq!(super::next_batch(&rx, 3), Some(vec![3, 4]), "no waiting for a third");
    tx.send(5).unwrap();
    assert_eq!(super::next_batch(&rx, 0), Some(vec![5]), "at least one");
    drop(tx);
    assert_eq!(super::next_batch(&rx, 3), None);
}

/// Requests that arrive together are handed over together, each answered with its own answer;
/// a batch whose handler panics, or gives a wrong number of answers, is handed over again one
/// request at a time, so that only the bad request fails.
#[test]
fn a_failing_batch_fails_only_its_bad_request() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (batches, sizes) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        super::serve_batches(listener, Limits::default(), 8, |requests| {
            let _ = batches.send(requests.len());
            if requests.iter().any(|r| r.path == "/slow") {
                std::thread::sleep(Duration::from_secs(1)); // the others may arrive meanwhile
            }
            if requests.iter().any(|r| r.path == "/panic") {
                panic!("a handler's bug");
            }
            let answers = requests.iter().map(|r| Response::new(200, "text/plain", r.body.clone()));
            // One answer short for a batch holding /short.
            answers.take(requests.len() - usize::from(requests.len() > 1 && requests.iter().any(|r| r.path == "/short"))).collect()
        })
    });
    let slow = std::thread::spawn(move || exchange(addr, b"POST /slow HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n\r\nslow"));
    assert_eq!(sizes.recv_timeout(Duration::from_secs(60)).unwrap(), 1);
    let paths: [&'static str; 5] = ["/x", "/panic", "/y", "/short", "/z"];
    let clients: Vec<_> = paths.into_iter().map(|p| std::thread::spawn(move || exchange(addr, format!("POST {p} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{p}", p.len()).as_bytes()))).collect();
    assert_eq!(slow.join().unwrap().0, 200);
    for (path, client) in paths.iter().zip(clients) {
        let (status, text) = client.join().unwrap();
        match *path {
            "/panic" => assert_eq!(status, 500, "{text}"),
            _ => assert_eq!((status, body(&text)), (200, *path), "{text}"),
        }
    }
    let handed: Vec<usize> = sizes.try_iter().collect();
    assert!(handed.iter().all(|&n| (1..=8).contains(&n)), "{handed:?}");
}

/// A shutdown refuses new connections, closes the idle ones and those that sent nothing, answers
/// a request still arriving, and returns.
#[test]
fn a_shutdown_answers_what_it_holds_then_returns() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = super::Shutdown::new();
    let (stopper, (done, returned)) = (shutdown.clone(), std::sync::mpsc::channel());
    std::thread::spawn(move || {
        let result = serve_batches_until(listener, Limits { shutdown_grace: Duration::from_secs(3), ..Limits::default() }, 1, &stopper, |requests| {
            if requests[0].path == "/slow" {
                std::thread::sleep(Duration::from_millis(800));
            }
            requests.iter().map(|r| Response::new(200, "text/plain", r.body.clone())).collect()
        });
        let _ = done.send(result.is_ok());
    });
    let mut idle = connect(addr);
    idle.write_all(b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\nok").unwrap();
    assert!(read_one(&mut idle).1.contains("Connection: keep-alive\r\n"));
    let mut silent = connect(addr);
    let mut half = connect(addr);
    half.write_all(b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n\r\nab").unwrap();
    // Two requests read together: the second, already read, is answered too.
    let mut pipelined = connect(addr);
    pipelined.write_all(b"POST /slow HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\n\r\n1POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\n\r\n2").unwrap();
    // Stalled past the grace: refused (503) when the grace ends.
    let mut stalled = connect(addr);
    stalled.write_all(b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n\r\nab").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let started = std::time::Instant::now();
    shutdown.stop();
    assert!(closed(&mut idle) && closed(&mut silent), "idle connections closed without a word");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    std::thread::sleep(Duration::from_millis(200));
    assert!(TcpStream::connect(addr).is_err(), "new connections are refused");
    assert!(returned.try_recv().is_err(), "returned before answering the request in hand");
    half.write_all(b"cd").unwrap();
    let (status, text) = answer(&mut half);
    assert_eq!((status, body(&text)), (200, "abcd"), "{text}");
    assert!(text.contains("Connection: close\r\n"), "{text}");
    let (status, head, text) = read_one(&mut pipelined);
    assert_eq!((status, text.as_str()), (200, "1"), "{head}");
    let (status, head, text) = read_one(&mut pipelined);
    assert_eq!((status, text.as_str()), (200, "2"), "{head}");
    assert!(head.contains("Connection: close\r\n") && closed(&mut pipelined), "{head}");
    let (status, text) = answer(&mut stalled);
    assert_eq!(status, 503, "{text}");
    assert!(body(&text).contains("stopping") && started.elapsed() < Duration::from_secs(5), "{text} after {:?}", started.elapsed());
    assert_eq!(returned.recv_timeout(Duration::from_secs(10)), Ok(true));
}

