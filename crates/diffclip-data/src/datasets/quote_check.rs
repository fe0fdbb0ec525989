//! The quoting check in front of the `csv` crate (`table.rs`'s reader): record start lines and
//! the unterminated quotes the crate would accept silently.

use std::collections::VecDeque;
use std::io::Read;

/// The reader the `csv` crate parses from. It follows the crate's quoting rules on every byte
/// read (a `"` opens a quoted field only at the start of a field, `""` inside one is a quote,
/// a UTF-8 BOM at the start is skipped, line ends at the start of a record are skipped) to:
///
/// * note the line each record starts on;
/// * drop spaces before an opening quote (`a, "b, c"`), so that the quote opens the field, and
///   between a closing quote and the end of its field (`"b" ,c`);
/// * catch the two shapes of an unterminated quote that the crate accepts silently: a quoted
///   field still open at the end of the file (it swallowed the rest of the file), and a quoted
///   field that spans lines and whose closing quote is followed by text (the quote that "closed"
///   it opened a field of a later row, so every row in between was swallowed).
///
/// A quoted field that spans lines and ends with a quote (and maybe spaces) before a separator or
/// a line end is a legitimate multi-line field and is accepted, as is text after the closing
/// quote of a one-line field (`"Hello" she said`, which the `csv` crate reads as
/// `Hello she said`).
pub(super) struct QuoteCheck<R> {
    inner: R,
    delimiter: u8,
    state: QuoteState,
    /// Bytes fed so far (for the BOM).
    fed: u64,
    /// 1-based line of the next byte.
    line: u64,
    /// Whether the next byte starts a record (line ends there are blank lines).
    record_start: bool,
    /// Bytes of the current record so far (refused past [`crate::files::MAX_LINE_BYTES`]).
    record_bytes: u64,
    /// Start line of each record seen and not yet claimed by `CsvReader`.
    pub(super) starts: VecDeque<u64>,
    /// Spaces at the start of a field, held back until it is known whether a quote follows, or
    /// after a closing quote, until it is known whether the field ends there.
    held: Vec<u8>,
    /// Line where the current quoted field opened.
    open_line: u64,
    /// Whether the current quoted field spans a line break.
    multi_line: bool,
    done: bool,
    /// The first structural error: (line, message).
    pub(super) error: Option<(u64, String)>,
    /// Bytes checked, not yet handed to the `csv` crate.
    out: Vec<u8>,
    out_pos: usize,
    scratch: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuoteState {
    StartField,
    /// Spaces at the start of a field (held back).
    LeadingSpace,
    InField,
    InQuoted,
    /// After a `"` inside a quoted field: a second `"` (escaped quote) or the end of the field.
    QuoteInQuoted,
    /// Spaces after the closing quote of a quoted field.
    AfterQuote,
}

impl<R> QuoteCheck<R> {
    pub(super) fn new(inner: R, delimiter: u8) -> Self {
        Self {
            inner,
            delimiter,
            state: QuoteState::StartField,
            fed: 0,
            line: 1,
            record_start: true,
            record_bytes: 0,
            starts: VecDeque::new(),
            held: Vec::new(),
            open_line: 0,
            multi_line: false,
            done: false,
            error: None,
            out: Vec::new(),
            out_pos: 0,
            scratch: vec![0; 64 << 10],
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        use QuoteState::*;
        let (d, q) = (self.delimiter, b'"');
        let is_term = |b: u8| b == b'\n' || b == b'\r';
        let is_space = |b: u8| (b == b' ' || b == b'\t') && b != d;
        for &b in bytes {
            self.fed += 1;
            if self.fed <= 3 && b == [0xEF, 0xBB, 0xBF][self.fed as usize - 1] {
                // Part of a leading BOM, which the `csv` crate strips (a BOM cut short is a
                // corner the check can get wrong, harmlessly: it only starts an unquoted field).
                self.out.push(b);
                continue;
            }
            if self.fed <= 3 {
                self.fed = 4; // no (more) BOM
            }
            if self.record_start {
                if is_term(b) {
                    self.out.push(b);
                    self.line += u64::from(b == b'\n');
                    continue;
                }
                self.record_start = false;
                self.record_bytes = 0;
                self.starts.push_back(self.line);
            }
            // A row no caption file has (a file of NULs, a binary): the reading stops there
            // instead of buffering it whole. Line ends do not count, as for a line's cap.
            self.record_bytes += u64::from(!is_term(b));
            if self.record_bytes > crate::files::MAX_LINE_BYTES {
                let line = self.starts.back().copied().unwrap_or(self.line);
                // Inside a quoted field, the quote left open is what made the row this long.
                let error = match self.state {
                    InQuoted | QuoteInQuoted => (self.open_line, format!("unterminated quoted field (the quote opened on this line is not closed within {} bytes, so it swallows the rows after it)", crate::files::MAX_LINE_BYTES)),
                    _ => (line, format!("a row of more than {} bytes starts on this line: not a caption file's row", crate::files::MAX_LINE_BYTES)),
                };
                self.error.get_or_insert(error);
                self.done = true;
                return;
            }
            // Held spaces go out unless this byte is the quote they precede.
            if self.state == LeadingSpace && !is_space(b) && b != q {
                self.out.append(&mut self.held);
            }
            // Held spaces after a closing quote are dropped at the field's end, and kept when
            // text follows (`"Hello" she said`).
            if self.state == AfterQuote && !is_space(b) {
                if b == d || is_term(b) {
                    self.held.clear();
                } else {
                    self.out.append(&mut self.held);
                }
            }
            let next = match self.state {
                StartField | LeadingSpace if b == q => {
                    self.held.clear();
                    self.open_line = self.line;
                    self.multi_line = false;
                    InQuoted
                }
                StartField | LeadingSpace if is_space(b) => {
                    self.held.push(b);
                    LeadingSpace
                }
                StartField | LeadingSpace | InField if b == d || is_term(b) => StartField,
                StartField | LeadingSpace | InField => InField,
                InQuoted if b == q => QuoteInQuoted,
                InQuoted => InQuoted,
                QuoteInQuoted if b == q => InQuoted,
                QuoteInQuoted | AfterQuote if b == d || is_term(b) => StartField,
                QuoteInQuoted | AfterQuote if is_space(b) => {
                    self.held.push(b);
                    AfterQuote
                }
                QuoteInQuoted | AfterQuote => {
                    if self.multi_line && self.error.is_none() {
                        self.error = Some((
                            self.open_line,
                            format!(
                                "unterminated quoted field: the quote opened on this line is \
                                 only closed on line {}, followed by more text (a missing closing \
                                 quote swallowed the rows in between)",
                                self.line
                            ),
                        ));
                    }
                    InField
                }
            };
            if next != LeadingSpace && next != AfterQuote {
                self.out.push(b);
            }
            if is_term(b) && next == StartField && self.state != InQuoted {
                self.record_start = true;
            }
            self.state = next;
            if b == b'\n' {
                self.line += 1;
                if self.state == InQuoted {
                    self.multi_line = true;
                }
            }
        }
    }

    fn finish(&mut self) {
        if !self.done {
            self.done = true;
            if self.state == QuoteState::AfterQuote {
                self.held.clear(); // spaces after the last closing quote of the file
            }
            self.out.append(&mut self.held);
            if self.state == QuoteState::InQuoted && self.error.is_none() {
                self.error = Some((
                    self.open_line,
                    "unterminated quoted field (the quote opened on this line is never closed, \
                     so it would swallow the rest of the file)"
                        .into(),
                ));
            }
        }
    }
}

impl<R: Read> Read for QuoteCheck<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.out_pos < self.out.len() || buf.is_empty() {
                let n = buf.len().min(self.out.len() - self.out_pos);
                buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
                self.out_pos += n;
                if self.out_pos == self.out.len() {
                    self.out.clear();
                    self.out_pos = 0;
                }
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            let mut scratch = std::mem::take(&mut self.scratch);
            let read = self.inner.read(&mut scratch);
            match read {
                Ok(0) => self.finish(),
                Ok(n) => self.feed(&scratch[..n]),
                Err(_) => {}
            }
            self.scratch = scratch;
            read?;
        }
    }
}
