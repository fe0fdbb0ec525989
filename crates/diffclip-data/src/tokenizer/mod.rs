//! OpenAI CLIP byte-level BPE tokenizer, with the vocabulary embedded in the crate.
//!
//! Reproduces the ids of open_clip's `tokenize` ([`Truncation::KeepEot`]) and of the DiffCLIP
//! authors' `SimpleTokenizer` ([`Truncation::DropEot`]): cleaning ([`clean_text`]: ftfy-style
//! fixes, HTML unescaping, whitespace collapsing, lower-casing), the CLIP pre-tokenizer regex,
//! then BPE with the 48,894 merges of `bpe_simple_vocab_16e6.txt.gz`.
//!
//! **Literal special tokens.** The references disagree on text that contains the strings
//! `<|startoftext|>` / `<|endoftext|>`. This tokenizer follows the DiffCLIP authors (and
//! HuggingFace's `CLIPTokenizer`): after cleaning, such a literal becomes the special id
//! ([`SOT_ID`] / [`EOT_ID`]); open_clip 3.3.0 instead BPE-splits it and treats
//! `<start_of_text>` / `<end_of_text>` as special, which this tokenizer BPE-splits.
//!
//! **Other tokenizers.** [`TextTokenizer`] is the interface encoders take (as
//! `Arc<dyn TextTokenizer>`); [`ClipTokenizer`] implements it, and with the `hf-tokenizer`
//! feature so does `HfTokenizer`, which reads any model's HuggingFace `tokenizer.json`
//! (`clip_tokenizer_json` writes CLIP's; see `HfTokenizer` for where its ids differ).
//!
//! ```
//! use diffclip_data::tokenizer::{ClipTokenizer, EOT_ID, SOT_ID};
//!
//! let tok = ClipTokenizer::new();
//! let ids = tok.tokenize("a photo of a cat");
//! assert_eq!(ids.len(), 77);
//! assert_eq!(&ids[..7], &[SOT_ID, 320, 1125, 539, 320, 2368, EOT_ID]);
//! assert_eq!(tok.decode(&ids), "a photo of a cat");
//! ```

mod bpe;
mod clean;
#[cfg(feature = "hf-tokenizer")]
mod clip_json;
mod config;
mod cp1252;
mod error;
mod ftfy;
#[cfg(feature = "hf-tokenizer")]
mod hf;
mod html;
mod mojibake;
mod pretokenize;
mod text;
mod vocab;

use std::sync::{Arc, OnceLock};

use burn::tensor::{Device, Int, Tensor, TensorData};

pub use clean::{clean_text, first_read_alike, is_blank};
pub use config::{DEFAULT_CONTEXT_LENGTH, MAX_CONTEXT_LENGTH, TokenizerConfig, Truncation};
pub use error::TokenizerError;
pub use ftfy::fix_text;
#[cfg(feature = "hf-tokenizer")]
pub use clip_json::clip_tokenizer_json;
#[cfg(feature = "hf-tokenizer")]
pub use hf::{HfTokenizer, MAX_TOKENIZER_FILE_BYTES};
pub use html::html_unescape;
pub use text::TextTokenizer;
pub use vocab::{EOT_ID, EOT_TEXT, PAD_ID, SOT_ID, SOT_TEXT, VOCAB_SIZE};

use bpe::Bpe;
use vocab::Vocab;

/// Longest word (one pre-token) encoded whole when at most `limit` ids are wanted: 64 bytes per
/// id and at least 16 KiB, so the cut lies far past the bytes of any id that survives and a
/// caption of one 16 MB "word" costs milliseconds, not seconds (BPE is linear in the word).
fn longest_word(limit: usize) -> usize {
    limit.saturating_mul(64).max(16 << 10)
}

/// The parsed vocabulary and word cache, shared by every tokenizer in the process.
fn shared_bpe() -> Result<Arc<Bpe>, TokenizerError> {
    static SHARED: OnceLock<Result<Arc<Bpe>, String>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            Vocab::load()
                .map(|v| Arc::new(Bpe::new(v)))
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(TokenizerError::Vocab)
}

/// The CLIP tokenizer. Cheap to clone (the vocabulary and word cache are shared), `Send + Sync`.
///
/// ```
/// use diffclip_data::tokenizer::{ClipTokenizer, TokenizerConfig, Truncation};
///
/// let config = TokenizerConfig { context_length: 8, truncation: Truncation::DropEot };
/// let tok = ClipTokenizer::with_config(config).unwrap();
/// let ids = tok.tokenize("a very long caption that does not fit in eight slots");
/// assert_eq!(ids.len(), 8);
/// assert!(!ids.contains(&diffclip_data::tokenizer::EOT_ID));
/// ```
#[derive(Debug, Clone)]
pub struct ClipTokenizer {
    bpe: Arc<Bpe>,
    config: TokenizerConfig,
}

impl Default for ClipTokenizer {
    fn default() -> Self {
        Self::new()
    }
}

impl ClipTokenizer {
    /// A tokenizer with the default settings (context 77, [`Truncation::KeepEot`]).
    ///
    /// Parses the embedded vocabulary on first use (shared by all later tokenizers).
    ///
    /// # Panics
    /// Only if the vocabulary embedded at build time is corrupt.
    pub fn new() -> Self {
        Self::with_config(TokenizerConfig::default()).expect("embedded CLIP vocabulary")
    }

    /// A tokenizer with the given settings.
    ///
    /// ```
    /// # use diffclip_data::tokenizer::{ClipTokenizer, TokenizerConfig};
    /// let config = TokenizerConfig { context_length: 32, ..Default::default() };
    /// assert_eq!(ClipTokenizer::with_config(config).unwrap().context_length(), 32);
    /// ```
    pub fn with_config(config: TokenizerConfig) -> Result<Self, TokenizerError> {
        config.check()?;
        Ok(Self {
            bpe: shared_bpe()?,
            config,
        })
    }

    /// The settings.
    pub fn config(&self) -> &TokenizerConfig {
        &self.config
    }

    /// Ids per tokenized text.
    pub fn context_length(&self) -> usize {
        self.config.context_length
    }

    /// The truncation policy.
    pub fn truncation(&self) -> Truncation {
        self.config.truncation
    }

    /// The BPE ids of `text`, without SOT/EOT, padding or truncation.
    ///
    /// ```
    /// # use diffclip_data::tokenizer::ClipTokenizer;
    /// assert_eq!(ClipTokenizer::new().encode("Hello World"), vec![3306, 1002]);
    /// ```
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        self.encode_into(text, usize::MAX, &mut ids);
        ids
    }

    /// Appends the BPE ids of `text` to `ids`, stopping once `ids` holds `limit` or more (words
    /// are encoded independently, so the ids so far are those of the whole text).
    fn encode_into(&self, text: &str, limit: usize, ids: &mut Vec<u32>) {
        let cleaned = clean_text(text);
        ids.reserve((cleaned.len() / 3 + 1).min(limit));
        for word in pretokenize::pretokens(&cleaned) {
            if ids.len() >= limit {
                return;
            }
            match word {
                SOT_TEXT => ids.push(SOT_ID),
                EOT_TEXT => ids.push(EOT_ID),
                // BPE costs the whole word, though only the first few dozen ids can survive a
                // context; no real word is this long (the ids of shorter words are unchanged).
                _ if word.len() > longest_word(limit) => self.bpe.encode_word(&word[..word.floor_char_boundary(longest_word(limit))], ids),
                _ => self.bpe.encode_word(word, ids),
            }
        }
    }

    /// `[SOT] + encode(text) + [EOT]`, truncated by the policy and zero-padded to the context.
    ///
    /// ```
    /// # use diffclip_data::tokenizer::{ClipTokenizer, EOT_ID, SOT_ID};
    /// let ids = ClipTokenizer::new().tokenize("");
    /// assert_eq!(&ids[..3], &[SOT_ID, EOT_ID, 0]);
    /// ```
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        let n = self.config.context_length;
        let mut ids = Vec::with_capacity(n.max(2) + 64);
        ids.push(SOT_ID);
        // Only the first n ids survive truncation: BPE of the rest of a huge caption is wasted.
        self.encode_into(text, n.saturating_add(1), &mut ids);
        ids.push(EOT_ID);
        self.config.fit(ids, PAD_ID)
    }

    /// [`tokenize`](Self::tokenize) for each text.
    ///
    /// ```
    /// # use diffclip_data::tokenizer::ClipTokenizer;
    /// let batch = ClipTokenizer::new().tokenize_batch(&["a dog", "a cat"]);
    /// assert_eq!(batch.len(), 2);
    /// ```
    pub fn tokenize_batch<S: AsRef<str>>(&self, texts: &[S]) -> Vec<Vec<u32>> {
        texts.iter().map(|t| self.tokenize(t.as_ref())).collect()
    }

    /// The tokenized texts as an `Int` tensor of shape `[texts.len(), context_length]`.
    ///
    /// ```
    /// # use diffclip_data::tokenizer::ClipTokenizer;
    /// let device = burn::tensor::Device::flex();
    /// let ids = ClipTokenizer::new().tokenize_tensor(&["a dog", "a cat"], &device);
    /// assert_eq!(ids.dims(), [2, 77]);
    /// ```
    pub fn tokenize_tensor<S: AsRef<str>>(&self, texts: &[S], device: &Device) -> Tensor<2, Int> {
        let n = self.config.context_length;
        let data: Vec<i64> = texts
            .iter()
            .flat_map(|t| self.tokenize(t.as_ref()))
            .map(i64::from)
            .collect();
        Tensor::<2, Int>::from_data(TensorData::new(data, [texts.len(), n]), device)
    }

    /// Text of BPE ids: `<|startoftext|>` is skipped, decoding stops at the first
    /// `<|endoftext|>` (so padding is ignored), ids outside the vocabulary are skipped,
    /// invalid UTF-8 becomes `U+FFFD`, and the trailing space is removed.
    ///
    /// ```
    /// # use diffclip_data::tokenizer::ClipTokenizer;
    /// let tok = ClipTokenizer::new();
    /// assert_eq!(tok.decode(&tok.encode("Don't PANIC!")), "don 't panic !");
    /// ```
    pub fn decode(&self, ids: &[u32]) -> String {
        let table = &self.bpe.vocab().id_bytes;
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            match id {
                SOT_ID => continue,
                EOT_ID => break,
                _ => {
                    if let Some(b) = table.get(id as usize) {
                        bytes.extend_from_slice(b);
                    }
                }
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        text.trim_end_matches(' ').to_owned()
    }
}
