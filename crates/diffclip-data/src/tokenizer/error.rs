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
    /// The context length cannot hold `<|startoftext|>` and `<|endoftext|>`.
    #[error("context length must be at least 2 (SOT + EOT), got {0}")]
    ContextLength(usize),
    /// The embedded vocabulary could not be read (a corrupted build).
    #[error("invalid embedded BPE vocabulary: {0}")]
    Vocab(String),
    /// An unknown truncation policy name.
    #[error("unknown truncation policy {0:?} (expected \"keep-eot\" or \"drop-eot\")")]
    Truncation(String),
}
