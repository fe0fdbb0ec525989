//! Reading an HTTP/1.1 request head: strict where leniency could let two readers disagree about
//! where a request ends (one `Content-Length` or `Transfer-Encoding: chunked`, never both; no
//! folded headers).

use super::{Limits, Response};

/// The request line and the headers the server acts on.
pub(super) struct Head {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub content_length: Option<u64>,
    /// `Transfer-Encoding: chunked` (see [`super::chunked`]).
    pub chunked: bool,
    pub expect_continue: bool,
    /// The `Origin`, when there is one (it is then an allowed one).
    pub origin: Option<String>,
    /// Whether the client keeps the connection for another request: HTTP/1.1 without
    /// `Connection: close`, or HTTP/1.0 with `Connection: keep-alive`.
    pub keep_alive: bool,
}

/// Where the body starts: just past the first empty line (`\r\n\r\n`, or `\n\n` from clients
/// that end lines with a bare `\n`), looking from byte `from` on.
pub(super) fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(nl) = buf.get(i..)?.iter().position(|&b| b == b'\n') {
        let next = i + nl + 1;
        match buf.get(next) {
            Some(b'\n') => return Some(next + 1),
            Some(b'\r') if buf.get(next + 1) == Some(&b'\n') => return Some(next + 2),
            _ => i = next,
        }
    }
    None
}

/// Parses the head (request line and headers, up to and including the empty line) and checks
/// its `Host` and `Origin` against `limits`.
pub(super) fn head(bytes: &[u8], limits: &Limits) -> Result<Head, Response> {
    let bad = |why: &str| Response::error(400, why);
    let mut lines = bytes.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let line = std::str::from_utf8(lines.next().unwrap_or_default()).map_err(|_| bad("the request line is not UTF-8"))?;
    let mut parts = line.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) => (m, t, v),
        _ => return Err(bad("the request line is not `METHOD /path HTTP/1.1`")),
    };
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(Response::error(505, format!("HTTP version {version:?} is not served; use HTTP/1.1")));
    }
    if !target.starts_with('/') || target.bytes().any(|b| b.is_ascii_control()) {
        return Err(bad("the request target must be a path starting with /"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut head = Head { method: method.to_string(), path: path.to_string(), query: query_pairs(query)?, content_length: None, chunked: false, expect_continue: false, origin: None, keep_alive: version == "HTTP/1.1" };
    let (mut host, mut close, mut authorization) = (None, false, None);
    for line in lines.take_while(|l| !l.is_empty()) {
        let Some(colon) = line.iter().position(|&b| b == b':') else { return Err(bad("a header line has no `:`")) };
        let (name, value) = (&line[..colon], trim_blanks(&line[colon + 1..]));
        if name.is_empty() || !name.iter().all(|&b| b.is_ascii_graphic()) {
            return Err(bad("a header name is empty or holds white space (folded headers are not accepted)"));
        }
        // Other bytes may be any text (Latin-1 included), but no control character but tab.
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(bad("a header value holds a control character"));
        }
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        if name == "connection" {
            for option in value.split(|&b| b == b',').map(trim_blanks) {
                close |= option.eq_ignore_ascii_case(b"close");
                head.keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
            continue;
        }
        if name == "authorization" {
            if authorization.is_some() {
                return Err(bad("more than one Authorization header"));
            }
            authorization = Some(value.to_vec());
            continue;
        }
        if !matches!(name.as_str(), "content-length" | "transfer-encoding" | "expect" | "host" | "origin") {
            continue;
        }
        let value = std::str::from_utf8(value).map_err(|_| bad("a Content-Length, Transfer-Encoding, Expect, Host or Origin header is not UTF-8"))?;
        match name.as_str() {
            "content-length" => {
                let n = (!value.is_empty() && value.bytes().all(|b| b.is_ascii_digit())).then(|| value.parse::<u64>().ok()).flatten();
                let Some(n) = n else { return Err(bad("Content-Length is not a number of bytes")) };
                if head.content_length.is_some_and(|m| m != n) {
                    return Err(bad("two different Content-Length headers"));
                }
                head.content_length = Some(n);
            }
            // An HTTP/1.0 message with it has faulty framing (RFC 9112, 6.1).
            "transfer-encoding" if version == "HTTP/1.0" => return Err(bad("Transfer-Encoding in an HTTP/1.0 request")),
            "transfer-encoding" if head.chunked => return Err(bad("more than one Transfer-Encoding header")),
            "transfer-encoding" if value.eq_ignore_ascii_case("chunked") => head.chunked = true,
            // Chunked not last: where the body ends cannot be known (RFC 9112, 6.3).
            "transfer-encoding" if value.split(',').any(|c| c.trim().eq_ignore_ascii_case("chunked")) && !value.rsplit(',').next().is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked")) => {
                return Err(bad("Transfer-Encoding with chunked before another coding: where the body ends cannot be known"));
            }
            "transfer-encoding" => return Err(Response::error(501, format!("Transfer-Encoding {value:?} is not supported; send the body as it is (chunked, or with Content-Length)"))),
            // HTTP/1.0 clients do not know 100 Continue (RFC 9110, 10.1.1).
            "expect" if value.eq_ignore_ascii_case("100-continue") => head.expect_continue = version == "HTTP/1.1",
            "expect" => return Err(Response::error(417, format!("cannot meet `Expect: {value}`"))),
            "host" if host.is_some() => return Err(bad("more than one Host header")),
            "host" => host = Some(value.to_string()),
            _ => head.origin = Some(value.to_string()),
        }
    }
    match host {
        None if version == "HTTP/1.1" => return Err(bad("an HTTP/1.1 request needs a Host header")),
        Some(host) if !host_accepted(&host, limits) => {
            return Err(Response::error(403, format!("Host {host:?} is not accepted: use the server's IP address or localhost, or allow the name")));
        }
        _ => {}
    }
    if let Some(origin) = head.origin.as_ref().filter(|o| !limits.origins.iter().any(|a| a.eq_ignore_ascii_case(o))) {
        return Err(Response::error(403, format!("requests from web pages (Origin {origin:?}) are not accepted unless allowed")));
    }
    // Before the body is read: a client without the secret makes the server hold nothing.
    let preflight = head.method == "OPTIONS" && head.origin.is_some();
    if let Some(token) = limits.token.as_deref().filter(|_| !preflight)
        && !authorization.as_deref().is_some_and(|a| bearer_is(a, token))
    {
        let why = if authorization.is_some() { "the Authorization header does not carry this server's token" } else { "this server needs `Authorization: Bearer TOKEN`" };
        return Err(Response::error(401, why).with_header("WWW-Authenticate", "Bearer"));
    }
    head.keep_alive &= !close;
    // Two framings: a proxy in front may have read the other one (request smuggling).
    if head.chunked && head.content_length.is_some() {
        return Err(bad("both Content-Length and Transfer-Encoding: chunked; send one"));
    }
    if head.content_length.is_none() && !head.chunked && matches!(head.method.as_str(), "POST" | "PUT" | "PATCH") {
        return Err(Response::error(411, "a body needs a Content-Length header (or Transfer-Encoding: chunked)"));
    }
    Ok(head)
}

/// Whether the `Authorization` value `given` is `Bearer TOKEN` (scheme in any case), compared
/// in time that does not depend on where it differs from `token`.
fn bearer_is(given: &[u8], token: &str) -> bool {
    let Some(scheme) = given.get(..7) else { return false };
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return false;
    }
    let sent = trim_blanks(&given[7..]);
    let token = token.as_bytes();
    sent.len() == token.len() && sent.iter().zip(token).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
}

/// `value` without the spaces and tabs around it (only those: any other control character is
/// then refused).
fn trim_blanks(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// An IP address (with or without a port), `localhost`, or one of `limits.hosts` (names compared
/// without case or trailing dot; an entry with a port accepts that port only, or none where it
/// is 80 or 443, which clients leave out): a name a web page could rebind to this machine is
/// refused unless named.
fn host_accepted(host: &str, limits: &Limits) -> bool {
    if let Some(rest) = host.strip_prefix('[') {
        let Some((ip, port)) = rest.split_once(']') else { return false };
        let port_ok = port.is_empty() || port.strip_prefix(':').is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        return port_ok && ip.parse::<std::net::Ipv6Addr>().is_ok();
    }
    let (name, port) = host_and_port(host);
    let port_ok = |allowed: Option<&str>| match (allowed, port) {
        (None, _) => true,
        (Some(a), Some(p)) => a.trim_start_matches('0') == p.trim_start_matches('0'),
        (Some(a), None) => a == "80" || a == "443",
    };
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || limits.hosts.iter().map(|h| host_and_port(h)).any(|(allowed, allowed_port)| allowed.eq_ignore_ascii_case(name) && port_ok(allowed_port))
}

/// `(name, Some(port))` of `name.:port`, `(name, None)` of `name.`.
fn host_and_port(host: &str) -> (&str, Option<&str>) {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => (name, Some(port)),
        _ => (host, None),
    };
    (name.strip_suffix('.').unwrap_or(name), port)
}

/// `a=1&b=two+words` as pairs, percent-decoded.
fn query_pairs(query: &str) -> Result<Vec<(String, String)>, Response> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(k)?, percent_decode(v)?))
        })
        .collect::<Result<_, String>>()
        .map_err(|e| Response::error(400, format!("query string: {e}")))
}

/// Decodes `%XX` escapes and `+` (a space, as in form-encoded query strings) into UTF-8 text.
///
/// ```
/// use diffclip::http::percent_decode;
/// assert_eq!(percent_decode("a+red%20dog%C3%A9").unwrap(), "a red dogé");
/// assert!(percent_decode("%zz").is_err());
/// assert!(percent_decode("%ff").is_err()); // not UTF-8
/// ```
pub fn percent_decode(s: &str) -> Result<String, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = [bytes.next(), bytes.next()];
                let digit = |d: Option<u8>| d.and_then(|d| (d as char).to_digit(16));
                match (digit(hex[0]), digit(hex[1])) {
                    (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
                    _ => return Err(format!("bad escape in {s:?}")),
                }
            }
            b => out.push(b),
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} does not decode to UTF-8"))
}

/// The reason phrase of the statuses the server and its handlers use.
pub(super) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        401 => "Unauthorized",
        403 => "Forbidden",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}
