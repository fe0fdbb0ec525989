//! Image–caption CSV/TSV files as open_clip's `CsvDataset` reads them.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::batch::ClipItem;
use super::error::DataError;
use super::loader::ImageLoader;
use super::skip::BadSamplePolicy;
use super::traits::{ClipDataset, impl_burn_dataset};

/// Column names and separator of a caption file.
///
/// ```
/// use diffclip_data::datasets::CsvConfig;
/// let c: CsvConfig = serde_json::from_str(r#"{"caption_column": "caption"}"#).unwrap();
/// assert_eq!(c.image_column, "filepath");
/// assert_eq!(c.separator_for("train.tsv".as_ref()), b'\t');
/// assert_eq!(c.separator_for("train.csv".as_ref()), b',');
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CsvConfig {
    /// Column with the image paths (open_clip's `--csv-img-key`).
    pub image_column: String,
    /// Column with the captions (open_clip's `--csv-caption-key`).
    pub caption_column: String,
    /// Optional column with integer class labels.
    pub label_column: Option<String>,
    /// Field separator; `None` picks it from the extension (`.csv` -> `,`, anything else ->
    /// tab, open_clip's default).
    pub separator: Option<char>,
    /// Directory that relative image paths are resolved against; `None` = the CSV's directory.
    pub image_root: Option<PathBuf>,
}

impl Default for CsvConfig {
    fn default() -> Self {
        Self {
            image_column: "filepath".into(),
            caption_column: "title".into(),
            label_column: None,
            separator: None,
            image_root: None,
        }
    }
}

impl CsvConfig {
    /// The separator byte used for `path`.
    pub fn separator_for(&self, path: &Path) -> u8 {
        match self.separator {
            Some(c) => c as u8,
            None => match path
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
            {
                Some(e) if e == "csv" => b',',
                _ => b'\t',
            },
        }
    }
}

/// One row of a caption file.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvRow {
    /// The image path, resolved against the image root.
    pub image: PathBuf,
    /// The caption.
    pub caption: String,
    /// The label, when the config names a label column.
    pub label: Option<usize>,
    /// 1-based line in the file (for error messages).
    pub line: u64,
}

/// A caption file: one [`ClipItem`] per row, images loaded on access.
///
/// Malformed rows (wrong field count, invalid UTF-8, empty path, bad label) are skipped and
/// counted when the file is read under [`BadSamplePolicy::Skip`], or fail the open under
/// [`BadSamplePolicy::Fail`]; a missing column always fails. Errors in the structure of the file
/// always fail the open, under both policies, naming the line: an unterminated quoted field
/// (a `"` that is never closed would otherwise swallow the rest of the file, or every row up to
/// the next quote, into one caption). Unreadable images follow the policy at access time.
///
/// Image paths are taken as written: relative ones are resolved against the image root (the
/// CSV's directory by default), and absolute paths or paths that climb out of it with `../` are
/// read as well, without a warning. Only regular files are read as images (see
/// [`crate::files::open_regular`]); the caption file itself must be a regular file too.
///
/// ```no_run
/// use diffclip_data::datasets::{ClipDataset, CsvConfig, CsvDataset, ImageLoader};
/// use diffclip_data::preprocess::Pipeline;
/// let loader = ImageLoader::new(Pipeline::from_name("slip-train", 224)?);
/// let ds = CsvDataset::open("cc3m/train.tsv", &CsvConfig::default(), loader)?;
/// println!("{} pairs, {} bad rows", ds.len(), ds.skip_counter().skipped());
/// let item = ds.get_item(0)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct CsvDataset {
    path: PathBuf,
    rows: Vec<CsvRow>,
    loader: ImageLoader,
}

impl CsvDataset {
    /// Reads the caption file `path` (images are not opened yet).
    pub fn open(
        path: impl AsRef<Path>,
        config: &CsvConfig,
        loader: ImageLoader,
    ) -> Result<Self, DataError> {
        let path = path.as_ref().to_path_buf();
        let root = match &config.image_root {
            Some(r) => r.clone(),
            None => match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            },
        };
        let file = crate::files::open_regular(&path).map_err(|e| DataError::io(&path, e))?;
        let delimiter = config.separator_for(&path);
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(true)
            .from_reader(QuoteCheck::new(file, delimiter));
        let csv_err = |line: u64, message: String| DataError::Csv {
            path: path.clone(),
            line,
            message,
        };
        // A structural error found by the quote check (the reader runs ahead of the records, so
        // it is reported once the records reach its line, or at the end).
        let structural = |reader: &csv::Reader<QuoteCheck<std::fs::File>>, upto: u64| {
            reader
                .get_ref()
                .error
                .as_ref()
                .filter(|(line, _)| *line <= upto)
                .map(|(line, message)| csv_err(*line, message.clone()))
        };
        let headers = match reader.headers() {
            Ok(h) => h.clone(),
            Err(e) => {
                return Err(structural(&reader, u64::MAX)
                    .unwrap_or_else(|| csv_err(1, format!("cannot read the header: {e}"))));
            }
        };
        if let Some(e) = structural(&reader, 1) {
            return Err(e);
        }
        let column = |name: &str| {
            headers
                .iter()
                .position(|h| h.trim() == name)
                .ok_or_else(|| {
                    let found: Vec<&str> = headers.iter().collect();
                    csv_err(1, format!("no column {name:?} (columns: {found:?})"))
                })
        };
        let image_col = column(&config.image_column)?;
        let caption_col = column(&config.caption_column)?;
        let label_col = config.label_column.as_deref().map(column).transpose()?;
        let mut rows = Vec::new();
        let mut record = csv::StringRecord::new();
        loop {
            let row = match reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {
                    let line = record.position().map_or(0, |p| p.line());
                    parse_row(&record, line, image_col, caption_col, label_col, &root)
                        .map_err(|m| csv_err(line, m))
                }
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    Err(csv_err(line, format!("malformed row: {e}")))
                }
            };
            match row {
                Ok(row) => rows.push(row),
                Err(e) => {
                    let line = match &e {
                        DataError::Csv { line, .. } => *line,
                        _ => 0,
                    };
                    if let Some(s) = structural(&reader, line) {
                        return Err(s);
                    }
                    if loader.policy() == BadSamplePolicy::Skip {
                        loader.skip_counter().record(&e)
                    } else {
                        return Err(e);
                    }
                }
            }
        }
        if let Some(e) = structural(&reader, u64::MAX) {
            return Err(e);
        }
        Ok(Self { path, rows, loader })
    }

    /// The caption file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of (good) rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows.
    pub fn rows(&self) -> &[CsvRow] {
        &self.rows
    }

    /// The image loader (pipeline, seed, epoch, policy, skip counter).
    pub fn loader(&self) -> &ImageLoader {
        &self.loader
    }

    /// Skipped rows and images so far.
    pub fn skip_counter(&self) -> &super::SkipCounter {
        self.loader.skip_counter()
    }

    /// Sets the epoch (random crops differ per epoch).
    pub fn set_epoch(&self, epoch: u64) {
        self.loader.set_epoch(epoch);
    }
}

/// The reader the `csv` crate parses from: it follows the crate's quoting rules on every byte
/// read (a `"` opens a quoted field only at the start of a field, `""` inside one is a quote,
/// a UTF-8 BOM at the start is skipped) to catch the two shapes of an unterminated quote that
/// the crate accepts silently:
///
/// * a quoted field still open at the end of the file (it swallowed the rest of the file);
/// * a quoted field that spans lines and whose closing quote is followed by text: the quote that
///   "closed" it opened a field of a later row, so every row in between was swallowed.
///
/// A quoted field that spans lines and ends with a quote before a separator or a line end is a
/// legitimate multi-line field and is accepted, as is text after the closing quote of a
/// one-line field (`"Hello" she said`, which the `csv` crate reads as `Hello she said`).
struct QuoteCheck<R> {
    inner: R,
    delimiter: u8,
    state: QuoteState,
    /// Bytes fed so far (for the BOM).
    fed: u64,
    /// 1-based line of the next byte.
    line: u64,
    /// Line where the current quoted field opened.
    open_line: u64,
    /// Whether the current quoted field spans a line break.
    multi_line: bool,
    done: bool,
    /// The first structural error: (line, message).
    error: Option<(u64, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuoteState {
    StartField,
    InField,
    InQuoted,
    /// After a `"` inside a quoted field: a second `"` (escaped quote) or the end of the field.
    QuoteInQuoted,
}

impl<R> QuoteCheck<R> {
    fn new(inner: R, delimiter: u8) -> Self {
        Self {
            inner,
            delimiter,
            state: QuoteState::StartField,
            fed: 0,
            line: 1,
            open_line: 0,
            multi_line: false,
            done: false,
            error: None,
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        use QuoteState::*;
        let (d, q) = (self.delimiter, b'"');
        let is_term = |b: u8| b == b'\n' || b == b'\r';
        for &b in bytes {
            self.fed += 1;
            if self.fed <= 3 && b == [0xEF, 0xBB, 0xBF][self.fed as usize - 1] {
                // Part of a leading BOM, which the `csv` crate strips (a BOM cut short is a
                // corner the check can get wrong, harmlessly: it only starts an unquoted field).
                continue;
            }
            if self.fed <= 3 {
                self.fed = 4; // no (more) BOM
            }
            self.state = match self.state {
                StartField if b == q => {
                    self.open_line = self.line;
                    self.multi_line = false;
                    InQuoted
                }
                StartField | InField if b == d || is_term(b) => StartField,
                StartField | InField => InField,
                InQuoted if b == q => QuoteInQuoted,
                InQuoted => InQuoted,
                QuoteInQuoted if b == q => InQuoted,
                QuoteInQuoted if b == d || is_term(b) => StartField,
                QuoteInQuoted => {
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
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.finish();
        } else {
            self.feed(&buf[..n]);
        }
        Ok(n)
    }
}

fn parse_row(
    r: &csv::StringRecord,
    line: u64,
    image_col: usize,
    caption_col: usize,
    label_col: Option<usize>,
    root: &Path,
) -> Result<CsvRow, String> {
    let field = |i: usize| r.get(i).ok_or_else(|| format!("missing field {}", i + 1));
    let image = field(image_col)?.trim();
    if image.is_empty() {
        return Err("empty image path".into());
    }
    let label = match label_col {
        Some(c) => {
            let v = field(c)?.trim();
            Some(
                v.parse::<usize>()
                    .map_err(|_| format!("label {v:?} is not a non-negative integer"))?,
            )
        }
        None => None,
    };
    Ok(CsvRow {
        image: root.join(image),
        caption: field(caption_col)?.to_string(),
        label,
        line,
    })
}

impl ClipDataset for CsvDataset {
    fn num_items(&self) -> usize {
        self.rows.len()
    }

    fn image_size(&self) -> usize {
        self.loader.image_size()
    }

    fn set_epoch(&self, epoch: u64) {
        self.loader.set_epoch(epoch);
    }

    fn try_get(&self, index: usize) -> Result<ClipItem, DataError> {
        let row = self.rows.get(index).ok_or(DataError::OutOfRange {
            index,
            len: self.rows.len(),
        })?;
        let image = self.loader.load(&row.image, index)?;
        Ok(ClipItem {
            image,
            size: self.loader.image_size(),
            caption: row.caption.clone(),
            label: row.label,
        })
    }

    fn get_item(&self, index: usize) -> Result<ClipItem, DataError> {
        self.loader
            .get_with_policy(self.rows.len(), index, |i| self.try_get(i))
    }
}

impl_burn_dataset!(CsvDataset);
