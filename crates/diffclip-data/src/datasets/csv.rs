//! Image–caption CSV/TSV files as open_clip's `CsvDataset` reads them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::batch::ClipItem;
use super::error::DataError;
use super::loader::ImageLoader;
use super::skip::BadSamplePolicy;
use super::table::CsvReader;
use super::traits::{ClipDataset, impl_burn_dataset};

/// Column names and separator of a caption file.
///
/// ```
/// use diffclip_data::datasets::CsvConfig;
/// let c: CsvConfig = serde_json::from_str(r#"{"caption_column": "caption"}"#).unwrap();
/// assert_eq!(c.image_column, "filepath");
/// assert_eq!(c.separator_for("train.tsv".as_ref()).unwrap(), b'\t');
/// assert_eq!(c.separator_for("train.csv".as_ref()).unwrap(), b',');
/// let wide = CsvConfig { separator: Some('§'), ..Default::default() };
/// assert!(wide.separator_for("train.csv".as_ref()).is_err());
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
    /// A row whose caption is blank is a bad row (training, retrieval); false where only the
    /// images are read (`embed --embed images`).
    pub require_caption: bool,
}

impl Default for CsvConfig {
    fn default() -> Self {
        Self {
            image_column: "filepath".into(),
            caption_column: "title".into(),
            label_column: None,
            separator: None,
            image_root: None,
            require_caption: true,
        }
    }
}

impl CsvConfig {
    /// Parses a separator flag: one ASCII character other than the quote `"` and line breaks,
    /// or `tab` (also `\t`).
    ///
    /// ```
    /// use diffclip_data::datasets::CsvConfig;
    /// assert_eq!(CsvConfig::parse_separator("tab").unwrap(), '\t');
    /// assert_eq!(CsvConfig::parse_separator(";").unwrap(), ';');
    /// assert!(CsvConfig::parse_separator("ab").is_err());
    /// assert!(CsvConfig::parse_separator("\"").is_err()); // it quotes fields
    /// ```
    pub fn parse_separator(flag: &str) -> Result<char, DataError> {
        match flag {
            "tab" | "\\t" | "\t" => Ok('\t'),
            "\"" | "\n" | "\r" => Err(DataError::Config(format!("separator {flag:?} cannot separate fields: it quotes fields or ends rows"))),
            s if s.chars().count() == 1 && s.is_ascii() => Ok(s.chars().next().expect("one char")),
            s => Err(DataError::Config(format!("separator '{s}' must be a single ASCII character or 'tab'"))),
        }
    }

    /// The separator byte used for `path`; a separator that is not one ASCII character is an
    /// error (cast to a byte it would split on a byte nobody chose).
    pub fn separator_for(&self, path: &Path) -> Result<u8, DataError> {
        Ok(match self.separator {
            Some(c) if c.is_ascii() && !matches!(c, '"' | '\n' | '\r') => c as u8,
            Some(c) => return Err(DataError::Config(format!("{}: separator {c:?} must be a single ASCII character other than a quote or line break", path.display()))),
            None => match path
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
            {
                Some(e) if e == "csv" => b',',
                _ => b'\t',
            },
        })
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
/// Malformed rows (wrong field count, invalid UTF-8, empty path, bad label, a blank caption unless
/// [`CsvConfig::require_caption`] is off) are skipped and counted when the file is read under
/// [`BadSamplePolicy::Skip`], or fail the open under [`BadSamplePolicy::Fail`]; a missing column
/// always fails. Errors in the structure of the file always fail the open, under both policies,
/// naming the line: an unterminated quoted field
/// (a `"` that is never closed would otherwise swallow the rest of the file, or every row up to
/// the next quote, into one caption). Unreadable images follow the policy at access time.
/// The parsing rules (quoting, blank lines, the header; a column is matched by its exact name, or
/// else ignoring case) are those of [`CsvTable`](super::CsvTable), whose reader this is.
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
    root: PathBuf,
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
        let mut reader = CsvReader::new(&path, file, config.separator_for(&path)?)?;
        let image_col = reader.column(&config.image_column)?;
        let caption_col = reader.column(&config.caption_column)?;
        // Captions read from the image paths would train on file names.
        if image_col == caption_col {
            return Err(reader.error(1, format!("the image column {:?} and the caption column {:?} are the same column ({})", config.image_column, config.caption_column, image_col + 1)));
        }
        let label_col = config
            .label_column
            .as_deref()
            .map(|c| reader.column(c))
            .transpose()?;
        let columns = reader.header.len();
        let mut rows = Vec::new();
        let mut record = csv::StringRecord::new();
        loop {
            let row = match reader.next_record(&mut record) {
                Ok(None) => break,
                Ok(Some(line)) => {
                    parse_row(&record, columns, (image_col, caption_col, label_col), config.require_caption, &root)
                        .map(|row| CsvRow { line, ..row })
                        .map_err(|m| reader.error(line, m))
                }
                Err(e) => Err(e),
            };
            match row {
                Ok(row) => rows.push(row),
                Err(e) => {
                    let line = match &e {
                        DataError::Csv { line, .. } => *line,
                        _ => 0,
                    };
                    // A structural error (found by the reader running ahead) explains the rows
                    // it garbled: it fails the open under both policies.
                    if let Some(s) = reader.structural(line) {
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
        if let Some(e) = reader.structural(u64::MAX) {
            return Err(e);
        }
        Ok(Self { path, root, rows, loader })
    }

    /// The caption file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The folder relative image paths are resolved against ([`CsvConfig::image_root`], else
    /// the caption file's folder).
    pub fn image_root(&self) -> &Path {
        &self.root
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

fn parse_row(
    r: &csv::StringRecord,
    columns: usize,
    (image_col, caption_col, label_col): (usize, usize, Option<usize>),
    require_caption: bool,
    root: &Path,
) -> Result<CsvRow, String> {
    if let Some(why) = super::table::malformed_row(r.len(), columns) {
        return Err(why);
    }
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
    let caption = field(caption_col)?;
    // A blank caption teaches nothing: as bad a row as a missing one (WebDataset's
    // `require_caption` agrees).
    if require_caption && crate::tokenizer::is_blank(caption) {
        return Err("empty caption".into());
    }
    Ok(CsvRow {
        image: root.join(image),
        caption: caption.to_string(),
        label,
        line: 0,
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
