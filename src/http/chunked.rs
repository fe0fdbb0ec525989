//! Decoding a chunked request body (RFC 9112, 7.1) as its bytes arrive: strict about the
//! framing, bounded in every line it waits for and in the body it builds.

use super::Response;

/// Longest chunk-size line (size, extensions and line ending) or trailer line waited for.
const MAX_LINE: usize = 4096;

/// Most bytes of trailer lines (ignored, but read to find the body's end).
const MAX_TRAILERS: usize = 16 << 10;

/// Where the decoder is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(usize),
    /// After a chunk's data: its line ending.
    DataEnd,
    /// After the last (zero-size) chunk: trailer lines up to an empty one; bytes read so far.
    Trailers(usize),
    /// The body is whole.
    Done,
}

/// A chunked body's decoder: [`Chunked::feed`] it the bytes as they come.
#[derive(Debug)]
pub(super) struct Chunked {
    state: State,
    max_body: usize,
}

impl Chunked {
    /// A decoder refusing bodies of more than `max_body` decoded bytes.
    pub fn new(max_body: usize) -> Self {
        Self { state: State::Size, max_body }
    }

    /// Whether the last chunk and the trailers have been read.
    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes what it can of `input`, appending the data to `body`; returns the bytes of
    /// `input` used (the rest waits for more bytes, or is the next request once [`Self::done`]).
    /// `body` grows only after `reserve(bytes)` accepted the growth of its capacity, by doubling
    /// up to the limit, as a body of known length would.
    pub fn feed(&mut self, input: &[u8], body: &mut Vec<u8>, reserve: &mut dyn FnMut(usize) -> Result<(), Response>) -> Result<usize, Response> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            match self.state {
                State::Done => return Ok(used),
                State::Data(left) => {
                    let n = left.min(rest.len());
                    if n == 0 {
                        return Ok(used);
                    }
                    if body.len() + n > body.capacity() {
                        // Within the limit: the chunk's size was checked against it.
                        let want = (2 * body.capacity()).clamp(body.len() + n, self.max_body);
                        reserve(want - body.capacity())?;
                        body.reserve_exact(want - body.len());
                    }
                    body.extend_from_slice(&rest[..n]);
                    used += n;
                    self.state = if n == left { State::DataEnd } else { State::Data(left - n) };
                }
                // Chunk framing ends its lines with CRLF only (RFC 9112, 7.1): a reader in front
                // taking a bare LF or CR otherwise would see other requests in the same bytes.
                State::DataEnd => match rest {
                    [b'\r', b'\n', ..] => (used, self.state) = (used + 2, State::Size),
                    [] | [b'\r'] => return Ok(used),
                    _ => return Err(bad("a chunk's data does not end where its size says, with CRLF")),
                },
                State::Size => {
                    let Some(line) = line(rest)? else { return Ok(used) };
                    used += line.len();
                    let size = chunk_size(line)?;
                    if size > self.max_body - body.len() {
                        return Err(Response::error(413, format!("a chunked body over the limit of {} bytes", self.max_body)));
                    }
                    self.state = if size == 0 { State::Trailers(0) } else { State::Data(size) };
                }
                State::Trailers(read) => {
                    let Some(line) = line(rest)? else { return Ok(used) };
                    used += line.len();
                    let read = read + line.len();
                    if read > MAX_TRAILERS {
                        return Err(bad(&format!("trailer lines over {MAX_TRAILERS} bytes")));
                    }
                    if line != b"\r\n" && !line.contains(&b':') {
                        return Err(bad("a trailer line is not a `name: value` field"));
                    }
                    self.state = if line == b"\r\n" { State::Done } else { State::Trailers(read) };
                }
            }
        }
    }
}

fn bad(why: &str) -> Response {
    Response::error(400, why)
}

/// The first line of `bytes` with its CRLF, or `None` while it has not all arrived. A line
/// ending in a bare LF, or holding a CR or another control character but tab, is refused.
fn line(bytes: &[u8]) -> Result<Option<&[u8]>, Response> {
    let Some(nl) = bytes.iter().take(MAX_LINE).position(|&b| b == b'\n') else {
        return match bytes.len() >= MAX_LINE {
            true => Err(bad(&format!("a chunk-size or trailer line over {MAX_LINE} bytes"))),
            false => Ok(None),
        };
    };
    let Some(text) = bytes[..nl].strip_suffix(b"\r") else { return Err(bad("a chunk-size or trailer line ends without CRLF")) };
    if text.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(bad("a chunk-size or trailer line holds a control character"));
    }
    Ok(Some(&bytes[..=nl]))
}

/// The size of a chunk-size line (with its CRLF): hex digits, then optional extensions after
/// `;` (ignored), white space allowed only before a `;`.
fn chunk_size(line: &[u8]) -> Result<usize, Response> {
    let line = &line[..line.len() - 2];
    let digits = match line.iter().position(|&b| b == b';') {
        Some(semicolon) => {
            let mut digits = &line[..semicolon];
            while let [rest @ .., b' ' | b'\t'] = digits {
                digits = rest;
            }
            digits
        }
        None => line,
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(bad("a chunk size is not a hexadecimal number of bytes"));
    }
    // Leading zeros are allowed, any number of them; 15 digits past them is already 1 PiB.
    let first = digits.iter().position(|&b| b != b'0').unwrap_or(digits.len() - 1);
    let digits = &digits[first..];
    if digits.len() > 15 {
        return Err(bad("a chunk size is not a hexadecimal number of bytes"));
    }
    let text = std::str::from_utf8(digits).map_err(|_| bad("a chunk size is not UTF-8"))?;
    usize::from_str_radix(text, 16).map_err(|_| bad("a chunk size is not a hexadecimal number of bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes, as a slow client would send it.
    fn decode(input: &[u8], step: usize, max: usize) -> Result<(Vec<u8>, usize), u16> {
        let (mut chunked, mut body, mut held, mut used) = (Chunked::new(max), Vec::new(), Vec::new(), 0);
        let mut reserved = 0;
        for piece in input.chunks(step) {
            held.extend_from_slice(piece);
            let n = chunked.feed(&held, &mut body, &mut |bytes| {
                reserved += bytes;
                Ok(())
            }).map_err(|r| r.status)?;
            assert_eq!(reserved, body.capacity(), "every byte of capacity reserved first");
            assert!(body.capacity() <= max.max(1), "capacity {} past the limit {max}", body.capacity());
            held.drain(..n);
            used += n;
            if chunked.done() {
                break;
            }
        }
        assert!(chunked.done() || used < input.len());
        Ok((body, used))
    }

    #[test]
    fn chunks_extensions_and_trailers_decode_in_any_pieces() {
        let input = b"3\r\nabc\r\n4;name=\"x\"\r\ndefg\r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\nGET /next";
        for step in [1, 2, 3, 7, input.len()] {
            let (body, used) = decode(input, step, 100).unwrap();
            assert_eq!(body, b"abcdefg0123456789", "step {step}");
            assert_eq!(&input[used..], b"GET /next", "step {step}");
        }
        assert_eq!(decode(b"0\r\n\r\n", 1, 0).unwrap().0, b"");
        assert_eq!(decode(b"2 ;x\r\nhi\r\n0\r\n\r\n", 4, 2).unwrap().0, b"hi");
        assert_eq!(decode(b"00000000000000000002\r\nhi\r\n00000000000000000000\r\n\r\n", 3, 2).unwrap().0, b"hi");
    }

    #[test]
    fn bad_framing_and_sizes_are_refused() {
        for (input, status) in [
            (&b"zz\r\n"[..], 400),
            (b"\r\n", 400),
            (b"-1\r\n", 400),
            (b"+1\r\n", 400),
            (b"0x1\r\n", 400),
            (b"1000000000000000\r\n", 400),
            (b"3\r\nabcd\r\n", 400),
            // Framing a reader in front could read otherwise: bare LF or CR, white space
            // without an extension, control characters in an extension.
            (b"3\nabc\r\n", 400),
            (b"3\r\nabc\n0\r\n\r\n", 400),
            (b"0\r\n\n", 400),
            (b"0\r\nX: 1\n\r\n", 400),
            (b"0\r\nnot a field\r\n\r\n", 400),
            (b"3 \r\nabc\r\n", 400),
            (b"3;a\rb\r\nabc\r\n", 400),
            (b"3;a\x00\r\nabc\r\n", 400),
            (b"65\r\n", 413),
            (b"40\r\n", 413), // 64 bytes, over the limit of 50 with none yet
        ] {
            assert_eq!(decode(input, 1, 50).unwrap_err(), status, "{}", String::from_utf8_lossy(input));
        }
        // Across chunks: 30 + 30 bytes over a limit of 50.
        let input = [b"1e\r\n".as_slice(), &[b'a'; 30], b"\r\n1e\r\n"].concat();
        assert_eq!(decode(&input, 5, 50).unwrap_err(), 413);
        // A line that never ends is refused once it is too long to be one.
        assert_eq!(decode(&[b'1'; MAX_LINE + 1], 64, 50).unwrap_err(), 400);
        let trailers = [b"0\r\n".as_slice(), &b"X: 1\r\n".repeat(MAX_TRAILERS / 6 + 1)].concat();
        assert_eq!(decode(&trailers, 100, 50).unwrap_err(), 400);
    }
}
