//! The one CSV/TSV reader of the workspace: the `csv` crate behind a check of the quoting, with
//! the line each record starts on. [`CsvDataset`](super::CsvDataset) streams its rows through it;
//! [`CsvTable`] holds a whole (small) file, for `diffclip-eval`'s caption and pair lists.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::error::DataError;
use super::quote_check::QuoteCheck;

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
/// let spaced = CsvTable::parse("a,b\n \"x\" ,y\n\"Hi\" she said,\"z\"  ", "x.csv".as_ref(), b',').unwrap();
/// assert_eq!(spaced.records()[0].fields, ["x", "y"]);
/// assert_eq!(spaced.records()[1].fields, ["Hi she said", "z"]);
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

/// Why a row of `fields` fields is malformed under a header of `columns`, if it is: every
/// reader of CSV rows (datasets and evaluation tables) holds them to the header's count.
pub(crate) fn malformed_row(fields: usize, columns: usize) -> Option<String> {
    (fields != columns).then(|| {
        let hint = if fields > columns { " (quote a field that holds the separator)" } else { "" };
        format!("malformed row: {fields} fields, the header has {columns}{hint}")
    })
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

    /// Index of the column `name` (the one header field equal to it after trimming, else the one
    /// equal to it ignoring ASCII case), or an error naming the file and the columns: none, or
    /// two of that name.
    pub fn column(&self, name: &str) -> Result<usize, DataError> {
        find_column(&self.path, &self.header, name)
    }

    /// Field `col` of `record`, or an error naming its line when the record has more or fewer
    /// fields than the header ([`malformed_row`]: an unquoted comma inside a caption would
    /// otherwise cut it short).
    pub fn field<'r>(&self, record: &'r CsvRecord, col: usize) -> Result<&'r str, DataError> {
        let field = record.fields.get(col).filter(|_| malformed_row(record.fields.len(), self.header.len()).is_none());
        field.map(String::as_str).ok_or_else(|| {
            let why = malformed_row(record.fields.len(), self.header.len()).unwrap_or_else(|| format!("no field {}", col + 1));
            self.error(record.line, why)
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

/// The column called `name` in `path`'s header: the one field equal to it (after trimming), or
/// else the one equal to it ignoring ASCII case. None, or two (which one is meant cannot be
/// known), is an error on line 1 naming the columns.
pub(super) fn find_column<S: AsRef<str>>(path: &Path, header: &[S], name: &str) -> Result<usize, DataError> {
    let h = |i: usize| header[i].as_ref().trim();
    let exact: Vec<usize> = (0..header.len()).filter(|&i| h(i) == name).collect();
    let matches = match exact.is_empty() {
        true => (0..header.len()).filter(|&i| h(i).eq_ignore_ascii_case(name)).collect(),
        false => exact,
    };
    let message = match matches[..] {
        [i] => return Ok(i),
        [] => format!("no column {name:?} (columns: {})", column_list(header)),
        _ => format!(
            "column {name:?} appears {} times in the header (columns {}): which one is meant cannot be known",
            matches.len(),
            matches.iter().map(|i| (i + 1).to_string()).collect::<Vec<_>>().join(", ")
        ),
    };
    Err(DataError::Csv { path: path.to_path_buf(), line: 1, message })
}

/// The header's names as a list for a message: the first 20, each cut at 60 characters (a
/// binary file's "header" must not become a message of megabytes).
fn column_list<S: AsRef<str>>(header: &[S]) -> String {
    let cut = |name: &str| match name.char_indices().nth(60) {
        Some((at, _)) => format!("{:?}…", &name[..at]),
        None => format!("{name:?}"),
    };
    let shown: Vec<String> = header.iter().take(20).map(|h| cut(h.as_ref())).collect();
    let more = if header.len() > 20 { format!(" and {} more", header.len() - 20) } else { String::new() };
    format!("[{}]{more}", shown.join(", "))
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

    /// The column called `name` ([`find_column`]), or an error naming the columns.
    pub(super) fn column(&self, name: &str) -> Result<usize, DataError> {
        find_column(&self.path, &self.header, name)
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
