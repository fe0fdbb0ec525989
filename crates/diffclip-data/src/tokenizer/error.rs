//! Tokenizer errors.

/// Errors raised when building a [`ClipTokenizer`](super::ClipTokenizer).
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
}
