//! [`HfTokenizer`]: any model's HuggingFace `tokenizer.json`, through the `tokenizers` crate
//! (feature `hf-tokenizer`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::text::TextTokenizer;
use super::{TokenizerConfig, TokenizerError};
use crate::files::read_capped;

/// Largest `tokenizer.json` read (64 MiB): several times the largest published ones (a few
/// MiB for CLIP, tens for multilingual LLMs), small enough that a wrong path cannot exhaust
/// memory.
pub const MAX_TOKENIZER_FILE_BYTES: u64 = 64 << 20;

/// A tokenizer read from a HuggingFace `tokenizer.json`, giving fixed-length ids like
/// [`ClipTokenizer`](super::ClipTokenizer): the file's normalizer, pre-tokenizer, model and
/// post-processor (which adds the start and end tokens), then this crate's [`Truncation`]
/// policy (the file's own truncation and padding settings are ignored), then padding with the
/// file's pad id (`padding.pad_id`), or 0 when it sets none, as open_clip pads.
///
/// **Against [`ClipTokenizer`](super::ClipTokenizer)** on the CLIP `tokenizer.json` of the
/// `openai/clip-vit-*` repositories ([`clip_tokenizer_json`](super::clip_tokenizer_json)
/// builds the same file), on the 148 reference cases of `fixtures/tokenizer/cases.json`: equal
/// ids on 126, every caption included; different ids on 22, all where the hub file's normalizer
/// (NFC, whitespace runs to one space, lower-casing) does less than the references' cleaning
/// (ftfy, then HTML unescaping twice):
///
/// - HTML entities stay literal (`fish &amp; chips` keeps `&amp;`): 5 cases;
/// - no ftfy: mojibake is not repaired (`cafÃ©`; 4), ligatures and Latin digraphs are not
///   split (`ﬁ`, `ǅ`; 3), full-width and half-width forms are not folded (`ＡＢＣ`, `ｶﾀｶﾅ`;
///   4), curly quotes are not straightened (2), control characters U+0000, U+0008, U+007F are
///   kept and BPE-encoded instead of removed (3), and U+0085 is a space instead of `…` (1).
///
/// Transformers' `CLIPTokenizer` gives the same ids as this on all 148 cases, up to padding.
/// Literal `<|startoftext|>` / `<|endoftext|>` in a text become the special ids, as in
/// `ClipTokenizer` and the DiffCLIP authors' tokenizer (open_clip 3.3.0 BPE-splits them).
/// Truncation and padding follow `TokenizerConfig`: the file's `truncation` and `padding`
/// sections are ignored except for `padding.pad_id` (Transformers pads CLIP with 49407, a
/// setting kept outside `tokenizer.json`; the text tower pools at the end token either way).
///
/// For a file whose post-processor appends no end token, [`Truncation::KeepEot`] writes the
/// text's last token into the last slot; use [`Truncation::DropEot`] there.
///
/// ```
/// use diffclip_data::tokenizer::{clip_tokenizer_json, HfTokenizer, TextTokenizer, TokenizerConfig};
///
/// let json = clip_tokenizer_json().unwrap();
/// let tok = HfTokenizer::from_bytes(json.as_bytes(), TokenizerConfig::default()).unwrap();
/// let ids = tok.tokenize("a photo of a cat").unwrap();
/// assert_eq!(&ids[..8], &[49406, 320, 1125, 539, 320, 2368, 49407, 0]);
/// ```
///
/// [`Truncation`]: super::Truncation
/// [`Truncation::KeepEot`]: super::Truncation::KeepEot
/// [`Truncation::DropEot`]: super::Truncation::DropEot
#[derive(Clone)]
pub struct HfTokenizer {
    inner: Arc<tokenizers::Tokenizer>,
    config: TokenizerConfig,
    pad_id: u32,
    source: PathBuf,
    digest: u64,
}

impl fmt::Debug for HfTokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HfTokenizer")
            .field("source", &self.source)
            .field("config", &self.config)
            .field("pad_id", &self.pad_id)
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

impl HfTokenizer {
    /// Reads a `tokenizer.json` (a regular file of at most [`MAX_TOKENIZER_FILE_BYTES`]);
    /// errors name the file, and for bad JSON the line and column.
    ///
    /// ```
    /// # use diffclip_data::tokenizer::{HfTokenizer, TokenizerConfig};
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("tokenizer.json");
    /// std::fs::write(&path, "{\n  \"model\": ").unwrap();
    /// let err = HfTokenizer::from_file(&path, TokenizerConfig::default()).unwrap_err().to_string();
    /// assert!(err.contains("tokenizer.json") && err.contains("line 2"), "{err}");
    /// ```
    pub fn from_file(
        path: impl AsRef<Path>,
        config: TokenizerConfig,
    ) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        config.check()?;
        let bytes = read_capped(path, MAX_TOKENIZER_FILE_BYTES)
            .map_err(|source| TokenizerError::Read {
                path: path.to_path_buf(),
                source,
            })?
            .ok_or_else(|| TokenizerError::TooLarge {
                path: path.to_path_buf(),
                max: MAX_TOKENIZER_FILE_BYTES,
            })?;
        Self::parse(&bytes, path.to_path_buf(), config)
    }

    /// A tokenizer from the contents of a `tokenizer.json` (errors name it `(in memory)`).
    ///
    /// ```
    /// # use diffclip_data::tokenizer::{HfTokenizer, TokenizerConfig};
    /// let err = HfTokenizer::from_bytes(b"[1, 2]", TokenizerConfig::default()).unwrap_err();
    /// assert!(err.to_string().starts_with("invalid tokenizer file (in memory)"), "{err}");
    /// ```
    pub fn from_bytes(json: &[u8], config: TokenizerConfig) -> Result<Self, TokenizerError> {
        config.check()?;
        Self::parse(json, PathBuf::from("(in memory)"), config)
    }

    fn parse(bytes: &[u8], source: PathBuf, config: TokenizerConfig) -> Result<Self, TokenizerError> {
        let mut inner = tokenizers::Tokenizer::from_bytes(bytes).map_err(|e| {
            TokenizerError::Invalid {
                path: source.clone(),
                message: e.to_string(),
            }
        })?;
        let pad_id = inner.get_padding().map_or(0, |p| p.pad_id);
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| TokenizerError::Invalid {
                path: source.clone(),
                message: e.to_string(),
            })?;
        Ok(Self {
            inner: Arc::new(inner),
            config,
            pad_id,
            source,
            digest: fnv1a(bytes),
        })
    }

    /// The same tokenizer padding with `pad_id` (for files that name no pad id but whose model
    /// expects one other than 0).
    ///
    /// ```
    /// # use diffclip_data::tokenizer::{clip_tokenizer_json, HfTokenizer, TextTokenizer, TokenizerConfig};
    /// let json = clip_tokenizer_json().unwrap();
    /// let tok = HfTokenizer::from_bytes(json.as_bytes(), TokenizerConfig::default()).unwrap();
    /// assert_eq!(tok.pad_id(), 0);
    /// assert_eq!(tok.with_pad_id(49407).tokenize("a").unwrap()[3], 49407);
    /// ```
    pub fn with_pad_id(mut self, pad_id: u32) -> Self {
        self.pad_id = pad_id;
        self
    }

    /// The id padding short texts.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Vocabulary size, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The file read (`(in memory)` for [`from_bytes`](Self::from_bytes)).
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The underlying `tokenizers` tokenizer (its truncation and padding are off).
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// The ids of `text` with the file's special tokens, before truncation and padding.
    ///
    /// ```
    /// # use diffclip_data::tokenizer::{clip_tokenizer_json, HfTokenizer, TokenizerConfig};
    /// let json = clip_tokenizer_json().unwrap();
    /// let tok = HfTokenizer::from_bytes(json.as_bytes(), TokenizerConfig::default()).unwrap();
    /// assert_eq!(tok.encode_with_special_tokens("Hello World").unwrap(), vec![49406, 3306, 1002, 49407]);
    /// ```
    pub fn encode_with_special_tokens(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let encoding = self
            .inner
            .encode_fast(text, true)
            .map_err(|e| encode_error(text, None, e))?;
        Ok(encoding.get_ids().to_vec())
    }
}

fn encode_error(text: &str, index: Option<usize>, e: tokenizers::Error) -> TokenizerError {
    TokenizerError::Encode {
        index,
        chars: text.chars().count(),
        message: e.to_string(),
    }
}

/// FNV-1a (64 bits) of the file, for [`TextTokenizer::fingerprint`].
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl TextTokenizer for HfTokenizer {
    fn config(&self) -> &TokenizerConfig {
        &self.config
    }

    fn tokenize(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        Ok(self.config.fit(self.encode_with_special_tokens(text)?, self.pad_id))
    }

    /// Texts are encoded in parallel (rayon); an error names the first text that fails.
    fn tokenize_batch(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, TokenizerError> {
        let encodings = self.inner.encode_batch_fast(texts.to_vec(), true).map_err(|batch_error| {
            // The batch call does not say which text failed: find it one by one.
            texts
                .iter()
                .enumerate()
                .find_map(|(i, t)| self.inner.encode_fast(*t, true).err().map(|e| encode_error(t, Some(i), e)))
                .unwrap_or_else(|| encode_error(&texts.concat(), None, batch_error))
        })?;
        Ok(encodings
            .iter()
            .map(|e| self.config.fit(e.get_ids().to_vec(), self.pad_id))
            .collect())
    }

    fn reconfigured(
        &self,
        config: TokenizerConfig,
    ) -> Result<Arc<dyn TextTokenizer>, TokenizerError> {
        config.check()?;
        Ok(Arc::new(Self {
            config,
            ..self.clone()
        }))
    }

    /// Settings, pad id and a hash of the file.
    fn fingerprint(&self) -> String {
        let settings = serde_json::to_string(&self.config).unwrap_or_default();
        format!("{settings} hf-tokenizer:{:016x} pad:{}", self.digest, self.pad_id)
    }
}
