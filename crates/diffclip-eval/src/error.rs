//! The one error type of the crate: bad input is an error naming the file (and line), never a panic.

use thiserror::Error;

/// Everything that can go wrong while evaluating.
#[derive(Debug, Error)]
pub enum EvalError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A dataset whose layout is wrong as a whole (missing file, empty class, ...).
    #[error("{path}: {message}")]
    Dataset { path: String, message: String },
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
        index: usize,
        label: usize,
        classes: usize,
    },
    /// NaN or infinity in scores or features.
    #[error("non-finite value in {what}, row {row}")]
    NonFinite { what: &'static str, row: usize },
    /// An argument out of its range (empty input, k = 0, ...).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// A name that is not known (dataset, template set, ...).
    #[error("unknown {what} '{name}'; known: {known}")]
    Unknown {
        what: &'static str,
        name: String,
        known: String,
    },
    /// A tensor could not be read back from the device.
    #[error("reading a tensor from the device: {0}")]
    TensorRead(String),
    /// The embedding cache file is unreadable or does not match.
    #[error("embedding cache {path}: {message}")]
    Cache { path: String, message: String },
    /// Writing a PNG failed.
    #[error("{path}: {message}")]
    Image { path: String, message: String },
    /// The model rejected the input (wrong image size, token ids).
    #[error("model input: {0}")]
    Input(#[from] diffclip_clip::InputError),
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
}
