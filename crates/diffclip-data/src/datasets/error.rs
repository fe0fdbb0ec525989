//! Errors of the datasets.

use std::path::PathBuf;

use crate::preprocess::PreprocessError;

/// Everything that can go wrong while reading a dataset.
///
/// Every variant that concerns data names where it came from: the file (and line for CSV rows,
/// the entry for JSON lists), or the tar shard and member. Reading never panics on bad input.
///
/// ```
/// use diffclip_data::datasets::DataError;
/// let e = DataError::Csv { path: "train.csv".into(), line: 7, message: "missing field".into() };
/// assert_eq!(e.to_string(), "train.csv:7: missing field");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}", path = path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An image could not be decoded or preprocessed (the error names the file or tar member).
    #[error(transparent)]
    Image(#[from] PreprocessError),
    /// A malformed CSV/TSV row or header.
    #[error("{path}:{line}: {message}", path = path.display())]
    Csv {
        /// The CSV file.
        path: PathBuf,
        /// 1-based line number (0 when unknown).
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// A line of one-entry-per-line text (class names, templates, queries) that cannot be
    /// read: longer than [`crate::files::MAX_LINE_BYTES`], or not UTF-8.
    #[error("{path}:{line}: {message}", path = path.display())]
    Line {
        /// The file, or "standard input".
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// A tar shard that could not be read (corrupt header, truncated archive). Shown with control
/// characters escaped ([`crate::files::printable`]): the message may quote the shard's bytes.
    #[error("tar shard {shard}: {message}", shard = shard.display(), message = crate::files::printable(message))]
    Shard {
        /// The shard.
        shard: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A tar member that could not be read or used (shown escaped, as [`Self::Shard`]).
    #[error("tar shard {shard}, member {member}: {message}", shard = shard.display(), member = crate::files::printable(member), message = crate::files::printable(message))]
    Member {
        /// The shard.
        shard: PathBuf,
        /// The member's path inside the shard (or the sample key).
        member: String,
        /// What is wrong.
        message: String,
    },
    /// A malformed JSON file or entry.
    #[error("{path}: {message}", path = path.display())]
    Json {
        /// The JSON file.
        path: PathBuf,
        /// What is wrong (with the entry index when it concerns one entry).
        message: String,
    },
    /// A malformed shard pattern (`data/{00000..00099}.tar`).
    #[error("invalid shard pattern {pattern:?}: {message}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// What is wrong.
        message: String,
    },
    /// An inconsistent configuration (empty dataset, unknown class, bad sizes, ...).
    #[error("invalid dataset configuration: {0}")]
    Config(String),
    /// A caption could not be tokenized (a `tokenizer.json`'s tokenizer can fail).
    #[error("tokenizing captions: {0}")]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
    /// An index past the end of a dataset.
    #[error("index {index} out of range for a dataset of {len} items")]
    OutOfRange {
        /// The index asked for.
        index: usize,
        /// The dataset's length.
        len: usize,
    },
    /// Every sample tried in a row was bad (see [`crate::datasets::BadSamplePolicy::Skip`]).
    #[error("{tried} consecutive bad samples from index {index}; last error: {last}")]
    TooManyBad {
        /// The index asked for.
        index: usize,
        /// How many samples were tried.
        tried: usize,
        /// The last error's message.
        last: String,
    },
}

impl DataError {
    /// Wraps an I/O error with its path.
    ///
    /// ```
    /// use diffclip_data::datasets::DataError;
    /// let e = DataError::io("a.csv", std::io::Error::other("boom"));
    /// assert!(e.to_string().contains("a.csv"));
    /// ```
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// Converts into Burn's boxed dataset error (what `Dataset<I>` returns by default).
    ///
    /// ```
    /// use diffclip_data::datasets::DataError;
    /// let e = DataError::Config("empty".into()).into_dataset_error();
    /// assert!(e.to_string().contains("empty"));
    /// ```
    pub fn into_dataset_error(self) -> burn::data::dataset::DatasetError {
        burn::data::dataset::DatasetError::new(self)
    }
}
