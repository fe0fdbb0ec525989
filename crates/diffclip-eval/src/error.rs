//! The crate's error type: bad input is an error naming the file (and line), never a panic.
//! The approximate index's finer [`crate::ann::IndexError`] converts into it.

use thiserror::Error;

/// Everything that can go wrong while evaluating.
#[derive(Debug, Error)]
pub enum EvalError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A dataset whose layout is wrong as a whole (missing file, empty class, ...).
    #[error("{path}: {message}")]
    Dataset {
        /// The dataset file or folder.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An image that could not be decoded or preprocessed.
    #[error(transparent)]
    Preprocess(#[from] diffclip_data::PreprocessError),
    /// A dataset of `diffclip-data` failed, or a dataset file read by it is malformed (the
    /// message names the file, and the line of a CSV file: `file:line: ...`).
    #[error(transparent)]
    Data(#[from] diffclip_data::DataError),
    /// The tokenizer could not be built.
    #[error(transparent)]
    Tokenizer(#[from] diffclip_data::TokenizerError),
    /// Matrix or tensor shapes that do not fit together.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A label outside the class range.
    #[error("label {label} at position {index} is outside 0..{classes}")]
    Label {
        /// Position of the first bad label in the label list (0-based).
        index: usize,
        /// The label found there.
        label: usize,
        /// Number of classes; labels must be below it.
        classes: usize,
    },
    /// NaN or infinity in scores or features.
    #[error("non-finite value in {what}, row {row}")]
    NonFinite {
        /// Which matrix (e.g. `logits`, `features`).
        what: &'static str,
        /// The first row holding a NaN or infinity (0-based).
        row: usize,
    },
    /// An argument out of its range (empty input, k = 0, ...).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// A name that is not known (dataset, template set, ...).
    #[error("unknown {what} '{name}'; known: {known}")]
    Unknown {
        /// What kind of name (dataset, template set, ...).
        what: &'static str,
        /// The name asked for.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
    /// A tensor could not be read back from the device.
    #[error("reading a tensor from the device: {0}")]
    TensorRead(String),
    /// The embedding cache file is unreadable or does not match.
    #[error("embedding cache {path}: {message}")]
    Cache {
        /// The cache file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// An embedding shard (`embeddings-NNNNN.safetensors`) is unreadable, or was written by
    /// another job than the one resuming it.
    #[error("embedding shard {path}: {message}")]
    Shard {
        /// The shard file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// Writing a PNG failed.
    #[error("{path}: {message}")]
    Image {
        /// The PNG file.
        path: String,
        /// The encoder's or the file system's error.
        message: String,
    },
    /// The model rejected the input (wrong image size, token ids).
    #[error("model input: {0}")]
    Input(#[from] diffclip_clip::InputError),
    /// The approximate search index (its own type, [`crate::ann::IndexError`], for callers
    /// that tell a stale index from a corrupt one).
    #[error(transparent)]
    Index(#[from] crate::ann::IndexError),
    /// An output file or folder could not be written or made.
    #[error(transparent)]
    File(#[from] diffclip_clip::files::FileError),
}

impl EvalError {
    /// An [`EvalError::Io`] for `path`.
    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    /// An [`EvalError::Dataset`] for `path`.
    pub(crate) fn dataset(path: impl AsRef<std::path::Path>, message: impl Into<String>) -> Self {
        Self::Dataset {
            path: path.as_ref().display().to_string(),
            message: message.into(),
        }
    }

    /// `Ok` when every label is below `classes`, else an [`EvalError::Label`] for the first.
    pub(crate) fn check_labels(labels: &[usize], classes: usize) -> Result<(), Self> {
        match labels.iter().position(|&l| l >= classes) {
            Some(index) => Err(Self::Label {
                index,
                label: labels[index],
                classes,
            }),
            None => Ok(()),
        }
    }
}
