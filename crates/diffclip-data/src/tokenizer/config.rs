//! Tokenizer settings: context length and the truncation policy.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::TokenizerError;

/// Default CLIP context length (SOT + 75 tokens + EOT).
pub const DEFAULT_CONTEXT_LENGTH: usize = 77;

/// Largest context length accepted (65,536 ids, 256 KiB per tokenized text): far above any
/// CLIP text tower, small enough that a mistyped length cannot ask for gigabytes per caption.
pub const MAX_CONTEXT_LENGTH: usize = 1 << 16;

/// What to do with a text whose `[SOT] + tokens + [EOT]` is longer than the context.
///
/// ```
/// use diffclip_data::tokenizer::Truncation;
///
/// assert_eq!("drop-eot".parse::<Truncation>().unwrap(), Truncation::DropEot);
/// assert_eq!(Truncation::default().to_string(), "keep-eot");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Truncation {
    /// Cut to the context length and write `<|endoftext|>` into the last slot (open_clip's
    /// `tokenize`). The text tower then pools at the last position. The right choice for new
    /// training and for open_clip checkpoints.
    #[default]
    KeepEot,
    /// Cut to the context length and keep no `<|endoftext|>` (the DiffCLIP authors'
    /// tokenizer): an over-long caption then pools at position 0 (the SOT token), so every
    /// over-long caption gets the same embedding. Use it to reproduce the released DiffCLIP
    /// checkpoints' evaluation numbers.
    DropEot,
}

impl fmt::Display for Truncation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Truncation::KeepEot => "keep-eot",
            Truncation::DropEot => "drop-eot",
        })
    }
}

impl FromStr for Truncation {
    type Err = TokenizerError;

    /// Accepts `keep-eot` / `drop-eot` (also with `_`, any case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "keep-eot" => Ok(Truncation::KeepEot),
            "drop-eot" => Ok(Truncation::DropEot),
            _ => Err(TokenizerError::Truncation(s.to_owned())),
        }
    }
}

/// Settings of a [`ClipTokenizer`](super::ClipTokenizer).
///
/// ```
/// use diffclip_data::tokenizer::{TokenizerConfig, Truncation};
///
/// let config: TokenizerConfig = serde_json::from_str(r#"{"truncation": "drop-eot"}"#).unwrap();
/// assert_eq!(config.context_length, 77);
/// assert_eq!(config.truncation, Truncation::DropEot);
/// assert!(config.check().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
#[serde(deny_unknown_fields)] // a misspelt key is an error, not a default
pub struct TokenizerConfig {
    /// Number of ids per tokenized text, SOT and EOT included (2 to [`MAX_CONTEXT_LENGTH`];
    /// default 77).
    pub context_length: usize,
    /// Policy for texts longer than the context.
    pub truncation: Truncation,
}

impl Default for TokenizerConfig {
    fn default() -> Self {
        Self {
            context_length: DEFAULT_CONTEXT_LENGTH,
            truncation: Truncation::KeepEot,
        }
    }
}

impl TokenizerConfig {
    /// Checks the settings (the context must hold at least SOT and EOT, and at most
    /// [`MAX_CONTEXT_LENGTH`] ids).
    ///
    /// ```
    /// use diffclip_data::tokenizer::{TokenizerConfig, MAX_CONTEXT_LENGTH};
    /// let huge = TokenizerConfig { context_length: 100_000_000_000, ..Default::default() };
    /// assert!(huge.check().unwrap_err().to_string().contains("100000000000"));
    /// let max = TokenizerConfig { context_length: MAX_CONTEXT_LENGTH, ..Default::default() };
    /// assert!(max.check().is_ok());
    /// ```
    pub fn check(&self) -> Result<(), TokenizerError> {
        if !(2..=MAX_CONTEXT_LENGTH).contains(&self.context_length) {
            return Err(TokenizerError::ContextLength(self.context_length));
        }
        Ok(())
    }

    /// These settings with another truncation policy.
    ///
    /// ```
    /// use diffclip_data::tokenizer::{TokenizerConfig, Truncation};
    /// let c = TokenizerConfig::default().with_truncation(Truncation::DropEot);
    /// assert_eq!((c.context_length, c.truncation), (77, Truncation::DropEot));
    /// ```
    pub fn with_truncation(self, truncation: Truncation) -> Self {
        Self { truncation, ..self }
    }

    /// Fits a whole `[start] + tokens + [end]` sequence to the context: longer ones are cut to
    /// `context_length` ids, and under [`Truncation::KeepEot`] the last slot then gets the
    /// sequence's last id (the end token); shorter ones are padded with `pad_id`.
    pub(crate) fn fit(&self, mut ids: Vec<u32>, pad_id: u32) -> Vec<u32> {
        let n = self.context_length;
        if ids.len() > n {
            let last = ids[ids.len() - 1];
            ids.truncate(n);
            if self.truncation == Truncation::KeepEot {
                ids[n - 1] = last;
            }
        }
        ids.resize(n, pad_id);
        ids
    }
}
