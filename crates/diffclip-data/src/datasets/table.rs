//! The one CSV/TSV reader of the workspace: the `csv` crate behind a check of the quoting, with
//! the line each record starts on. [`CsvDataset`](super::CsvDataset) streams its rows through it;
//! [`CsvTable`] holds a whole (small) file, for `diffclip-eval`'s caption and pair lists.

use std::collections::VecDeque;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::error::DataError;

/// A CSV/TSV file read whole: its header and every record with the line it starts on.
///
/// The rules (shared with [`CsvDataset`](super::CsvDataset), which reads through the same
/// reader):
///
/// * RFC 4180 quoting: a `"` at the start of a field opens a quoted field, which may hold
///   separators, line breaks and doubled quotes (`""`); a `"` inside an unquoted field is a
///   literal character. Spaces before an opening quote are dropped (`a, "b, c"` has the fields
///   `a` and `b, c`), as are spaces between a closing quote and the separator.
/// * Structural errors fail the read, naming the line where the quote opened (`file:line:
///   unterminated quoted field ...`): a quoted field still open at the end of the file, or one
///   that spans lines and whose closing quote is followed by more text (a missing quote that
///   swallowed the rows in between).
/// * The first record is the header (names trimmed). Blank lines, including lines of spaces
///   only, are skipped; `\n`, `\r\n` and `\r` all end a line; a UTF-8 BOM at the start is
///   skipped. Records may have any number of fields ([`field`](Self::field) tells a missing one).
/// * An empty file (no header) is an error; the file must be a regular file
///   ([`crate::files::open_regular`]).
///
/// ```
/// use diffclip_data::datasets::CsvTable;
/// let text = "image,caption\na.png,\"a dog, \"\"happy\"\"\"\n\nb.png, \"two\nlines\"\n";
/// let csv = CsvTable::parse(text, "x.csv".as_ref(), b',').unwrap();
/// assert_eq!(csv.header(), ["image", "caption"]);
/// assert_eq!(csv.records()[0].fields, ["a.png", "a dog, \"happy\""]);
/// assert_eq!((csv.records()[1].line, csv.records()[1].fields[1].as_str()), (4, "two\nlines"));
/// assert_eq!(csv.column("Caption").unwrap(), 1);
/// let e = CsvTable::parse("a,b\n\"open", "x.csv".as_ref(), b',').unwrap_err();
/// assert!(e.to_string().starts_with("x.csv:2: unterminated quoted field"), "{e}");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CsvTable {
    path: PathBuf,
    header: Vec<String>,
    records: Vec<CsvRecord>,
}

/// One record of a [`CsvTable`] and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvRecord {
    /// Line of the record's first character.
    pub line: u64,
    /// The fields, unquoted (not trimmed).
    pub fields: Vec<String>,
}

impl CsvTable {
    /// Reads `path` with the field separator `delimiter` (e.g. `b','`).
    pub fn read(path: impl AsRef<Path>, delimiter: u8) -> Result<Self, DataError> {
        let path = path.as_ref();
        let file = crate::files::open_regular(path).map_err(|e| DataError::io(path, e))?;
        Self::from_reader(path, file, delimiter)
    }

    /// Parses `text`; `path` labels errors.
    pub fn parse(text: &str, path: &Path, delimiter: u8) -> Result<Self, DataError> {
        Self::from_reader(path, text.as_bytes(), delimiter)
    }

    fn from_reader<R: Read>(path: &Path, input: R, delimiter: u8) -> Result<Self, DataError> {
        let mut reader = CsvReader::new(path, input, delimiter)?;
        let mut records = Vec::new();
        let mut record = csv::StringRecord::new();
        loop {
            match reader.next_record(&mut record) {
                Ok(Some(line)) => records.push(CsvRecord {
                    line,
                    fields: record.iter().map(str::to_string).collect(),
                }),
                Ok(None) => break,
                Err(e) => return Err(reader.structural(e.line()).unwrap_or(e)),
            }
        }
        if let Some(e) = reader.structural(u64::MAX) {
            return Err(e);
        }
        Ok(Self {
            path: path.to_path_buf(),
            header: reader.header,
            records,
        })
    }

    /// The file, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Column names, trimmed.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// The records after the header.
    pub fn records(&self) -> &[CsvRecord] {
        &self.records
    }

    /// Index of the column `name` (see [`column_index`]), or an error naming the file and the
    /// columns.
    pub fn column(&self, name: &str) -> Result<usize, DataError> {
        column_index(&self.header, name).ok_or_else(|| no_column(&self.path, &self.header, name))
    }

    /// Field `col` of `record`, or an error naming its line.
    pub fn field<'r>(&self, record: &'r CsvRecord, col: usize) -> Result<&'r str, DataError> {
        record.fields.get(col).map(String::as_str).ok_or_else(|| {
            self.error(
                record.line,
                format!(
                    "{} fields, expected {}",
                    record.fields.len(),
                    self.header.len()
                ),
            )
        })
    }

    /// An error at `line` of the file (`file:line: message`).
    pub fn error(&self, line: u64, message: impl Into<String>) -> DataError {
        DataError::Csv {
            path: self.path.clone(),
            line,
            message: message.into(),
        }
    }
}

/// The column called `name`: the header field equal to it (after trimming), or else the only one
/// equal to it ignoring ASCII case.
pub(super) fn column_index<S: AsRef<str>>(header: &[S], name: &str) -> Option<usize> {
    let h = |i: usize| header[i].as_ref().trim();
    if let Some(i) = (0..header.len()).find(|&i| h(i) == name) {
        return Some(i);
    }
    let mut matches = (0..header.len()).filter(|&i| h(i).eq_ignore_ascii_case(name));
    match (matches.next(), matches.next()) {
        (Some(i), None) => Some(i),
        _ => None,
    }
}

/// The error for a missing column, on line 1.
pub(super) fn no_column<S: AsRef<str>>(path: &Path, header: &[S], name: &str) -> DataError {
    let found: Vec<&str> = header.iter().map(|h| h.as_ref()).collect();
    DataError::Csv {
        path: path.to_path_buf(),
        line: 1,
        message: format!("no column {name:?} (columns: {found:?})"),
    }
}

impl DataError {
    /// The line of a CSV error (0 for other errors).
    fn line(&self) -> u64 {
        match self {
            DataError::Csv { line, .. } => *line,
            _ => 0,
        }
    }
}

/// The streaming reader under [`CsvTable`] and [`CsvDataset`](super::CsvDataset).
pub(super) struct CsvReader<R> {
    path: PathBuf,
    reader: csv::Reader<QuoteCheck<R>>,
    /// Column names, trimmed.
    pub(super) header: Vec<String>,
}

impl<R: Read> CsvReader<R> {
    /// Starts reading and reads the header (the first non-blank record).
    pub(super) fn new(path: &Path, input: R, delimiter: u8) -> Result<Self, DataError> {
        let reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .flexible(true)
            .from_reader(QuoteCheck::new(input, delimiter));
        let mut this = Self {
            path: path.to_path_buf(),
            reader,
            header: Vec::new(),
        };
        let mut record = csv::StringRecord::new();
        match this.next_record(&mut record) {
            Ok(Some(line)) => {
                if let Some(e) = this.structural(line) {
                    return Err(e);
                }
                this.header = record.iter().map(|h| h.trim().to_string()).collect();
                Ok(this)
            }
            Ok(None) => Err(this
                .structural(u64::MAX)
                .unwrap_or_else(|| this.error(1, "empty file (a header line is required)".into()))),
            Err(e) => Err(this
                .structural(u64::MAX)
                .unwrap_or_else(|| this.error(e.line(), format!("cannot read the header: {e}")))),
        }
    }

    /// The next record into `record`: `Ok(Some(line))` with the line it starts on, `Ok(None)` at
    /// the end, `Err` for a record that cannot be read (invalid UTF-8, a read error), naming its
    /// line. Blank lines are skipped. Check [`structural`](Self::structural) before acting on an
    /// error, and at the end.
    pub(super) fn next_record(
        &mut self,
        record: &mut csv::StringRecord,
    ) -> Result<Option<u64>, DataError> {
        loop {
            match self.reader.read_record(record) {
                Ok(false) => return Ok(None),
                Ok(true) => {
                    let line = self.start_line(record.position());
                    if record.len() == 1 && record[0].trim().is_empty() {
                        continue; // a line of spaces
                    }
                    return Ok(Some(line));
                }
                Err(e) => {
                    let line = self.start_line(e.position());
                    return Err(self.error(line, format!("malformed row: {e}")));
                }
            }
        }
    }

    /// The first structural error (an unterminated quote) on a line up to `upto`: it wins over
    /// any error that the records it garbled caused.
    pub(super) fn structural(&self, upto: u64) -> Option<DataError> {
        self.reader
            .get_ref()
            .error
            .as_ref()
            .filter(|(line, _)| *line <= upto)
            .map(|(line, message)| self.error(*line, message.clone()))
    }

    /// The column called `name` ([`column_index`]), or an error naming the columns.
    pub(super) fn column(&self, name: &str) -> Result<usize, DataError> {
        column_index(&self.header, name).ok_or_else(|| no_column(&self.path, &self.header, name))
    }

    pub(super) fn error(&self, line: u64, message: String) -> DataError {
        DataError::Csv {
            path: self.path.clone(),
            line,
            message,
        }
    }

    /// The start line of the record just read, as the quote check saw it (the `csv` crate's
    /// position counts blank lines before a record as part of it).
    fn start_line(&mut self, fallback: Option<&csv::Position>) -> u64 {
        let fallback = fallback.map_or(0, |p| p.line());
        self.reader.get_mut().starts.pop_front().unwrap_or(fallback)
    }
}

/// The reader the `csv` crate parses from. It follows the crate's quoting rules on every byte
/// read (a `"` opens a quoted field only at the start of a field, `""` inside one is a quote,
/// a UTF-8 BOM at the start is skipped, line ends at the start of a record are skipped) to:
///
/// * note the line each record starts on;
/// * drop spaces before an opening quote (`a, "b, c"`), so that the quote opens the field;
/// * catch the two shapes of an unterminated quote that the crate accepts silently: a quoted
///   field still open at the end of the file (it swallowed the rest of the file), and a quoted
///   field that spans lines and whose closing quote is followed by text (the quote that "closed"
///   it opened a field of a later row, so every row in between was swallowed).
///
/// A quoted field that spans lines and ends with a quote (and maybe spaces) before a separator or
/// a line end is a legitimate multi-line field and is accepted, as is text after the closing
/// quote of a one-line field (`"Hello" she said`, which the `csv` crate reads as
/// `Hello she said`).
struct QuoteCheck<R> {
    inner: R,
    delimiter: u8,
    state: QuoteState,
    /// Bytes fed so far (for the BOM).
    fed: u64,
    /// 1-based line of the next byte.
    line: u64,
    /// Whether the next byte starts a record (line ends there are blank lines).
    record_start: bool,
    /// Start line of each record seen and not yet claimed by [`CsvReader`].
    starts: VecDeque<u64>,
    /// Spaces at the start of a field, held back until it is known whether a quote follows.
    held: Vec<u8>,
    /// Line where the current quoted field opened.
    open_line: u64,
    /// Whether the current quoted field spans a line break.
    multi_line: bool,
    done: bool,
    /// The first structural error: (line, message).
    error: Option<(u64, String)>,
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
    fn new(inner: R, delimiter: u8) -> Self {
        Self {
            inner,
            delimiter,
            state: QuoteState::StartField,
            fed: 0,
            line: 1,
            record_start: true,
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
                self.starts.push_back(self.line);
            }
            // Held spaces go out unless this byte is the quote they precede.
            if self.state == LeadingSpace && !is_space(b) && b != q {
                self.out.append(&mut self.held);
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
                QuoteInQuoted | AfterQuote if is_space(b) => AfterQuote,
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
            if next != LeadingSpace {
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
