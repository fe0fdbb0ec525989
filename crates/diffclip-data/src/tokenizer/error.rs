//! Tokenizer errors.

use std::path::PathBuf;

/// Errors raised when building a tokenizer ([`ClipTokenizer`](super::ClipTokenizer), or
/// `HfTokenizer` with the `hf-tokenizer` feature) or tokenizing with one.
///
/// ```
/// use diffclip_data::tokenizer::{ClipTokenizer, TokenizerConfig, TokenizerError};
///
/// let config = TokenizerConfig { context_length: 1, ..Default::default() };
/// let err = ClipTokenizer::with_config(config).unwrap_err();
/// assert!(matches!(err, TokenizerError::ContextLength(1)));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The context length cannot hold `<|startoftext|>` and `<|endoftext|>`, or is above
    /// [`MAX_CONTEXT_LENGTH`](super::MAX_CONTEXT_LENGTH).
    #[error(
        "context length must be between 2 (SOT + EOT) and {max}, got {0}",
        max = super::MAX_CONTEXT_LENGTH
    )]
    ContextLength(usize),
    /// The embedded vocabulary could not be read (a corrupted build).
    #[error("invalid embedded BPE vocabulary: {0}")]
    Vocab(String),
    /// An unknown truncation policy name.
    #[error("unknown truncation policy {0:?} (expected \"keep-eot\" or \"drop-eot\")")]
    Truncation(String),
    /// A tokenizer file could not be read (missing, not a regular file, unreadable).
    #[error("cannot read tokenizer file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A tokenizer file is larger than the limit (`max` bytes).
    #[error("tokenizer file {} is larger than {max} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit in bytes.
        max: u64,
    },
    /// A tokenizer file is not a valid tokenizer (bad JSON, with its line and column, or an
    /// unknown or inconsistent component).
    #[error("invalid tokenizer file {}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The parser's message (`... at line L column C` for JSON errors).
        message: String,
    },
    /// A text could not be tokenized (the message names the tokenizer's failing step).
    #[error("cannot tokenize {}({chars} characters): {message}", index.map(|i| format!("the text at index {i} of the batch ")).unwrap_or_else(|| "text ".into()))]
    Encode {
        /// The text's position in the batch, for batch calls.
        index: Option<usize>,
        /// Length of the text in characters.
        chars: usize,
        /// The tokenizer's message.
        message: String,
    },
}
