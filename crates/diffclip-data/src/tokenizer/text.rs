//! [`TextTokenizer`]: what a text encoder needs from a tokenizer, as a trait object.

use std::fmt;
use std::sync::Arc;

use super::{ClipTokenizer, TokenizerConfig, TokenizerError, Truncation};

/// A tokenizer that turns a text into exactly [`context_length`](Self::context_length) ids:
/// start token, text tokens, end token, cut by the [`Truncation`] policy, then padded.
///
/// Implemented by [`ClipTokenizer`] (the built-in CLIP BPE) and, with the `hf-tokenizer`
/// feature, by `HfTokenizer` (any HuggingFace `tokenizer.json`). Hold one as
/// `Arc<dyn TextTokenizer>` to pick the tokenizer at run time.
///
/// On a concrete [`ClipTokenizer`], `tok.tokenize(text)` calls its infallible inherent method
/// (returning `Vec<u32>`); through the trait it returns a `Result`.
///
/// ```
/// use std::sync::Arc;
/// use diffclip_data::tokenizer::{ClipTokenizer, TextTokenizer, Truncation, EOT_ID, SOT_ID};
///
/// let tok: Arc<dyn TextTokenizer> = Arc::new(ClipTokenizer::new());
/// let ids = tok.tokenize("a photo of a cat").unwrap();
/// assert_eq!((ids.len(), ids[0], ids[6]), (77, SOT_ID, EOT_ID));
/// let drop = tok.reconfigured(tok.config().with_truncation(Truncation::DropEot)).unwrap();
/// assert_eq!(drop.truncation(), Truncation::DropEot);
/// ```
pub trait TextTokenizer: Send + Sync + fmt::Debug {
    /// The settings (context length and truncation policy).
    fn config(&self) -> &TokenizerConfig;

    /// Ids per tokenized text.
    fn context_length(&self) -> usize {
        self.config().context_length
    }

    /// The truncation policy.
    fn truncation(&self) -> Truncation {
        self.config().truncation
    }

    /// The `context_length` ids of `text`.
    fn tokenize(&self, text: &str) -> Result<Vec<u32>, TokenizerError>;

    /// [`tokenize`](Self::tokenize) for each text.
    fn tokenize_batch(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, TokenizerError> {
        texts.iter().map(|t| self.tokenize(t)).collect()
    }

    /// The same tokenizer with other settings.
    fn reconfigured(
        &self,
        config: TokenizerConfig,
    ) -> Result<Arc<dyn TextTokenizer>, TokenizerError>;

    /// A short string that differs between tokenizers that can give different ids for one
    /// text (settings and vocabulary), for cache keys.
    fn fingerprint(&self) -> String;
}

impl TextTokenizer for ClipTokenizer {
    fn config(&self) -> &TokenizerConfig {
        ClipTokenizer::config(self)
    }

    fn tokenize(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        Ok(ClipTokenizer::tokenize(self, text))
    }

    fn reconfigured(
        &self,
        config: TokenizerConfig,
    ) -> Result<Arc<dyn TextTokenizer>, TokenizerError> {
        Ok(Arc::new(ClipTokenizer::with_config(config)?))
    }

    /// The settings as JSON (the built-in vocabulary never changes).
    fn fingerprint(&self) -> String {
        serde_json::to_string(ClipTokenizer::config(self)).unwrap_or_default()
    }
}
