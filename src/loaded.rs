//! A model loaded with what it was evaluated with: its weights, the preprocessing its images
//! need and the tokenizer its captions need. Released models come from
//! [`Pretrained::load`](crate::pretrained::Pretrained::load); any other checkpoint from
//! [`LoadedModel::load`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::Device;
use diffclip_clip::{CheckpointError, CheckpointFormat, Clip, ClipConfig, ClipError, load_checkpoint};
use diffclip_data::{ClipTokenizer, Pipeline, PreprocessError, TextTokenizer, TokenizerConfig, TokenizerError, Truncation};
use diffclip_eval::{Encoder, EvalError};
use thiserror::Error;

use crate::pretrained::PretrainedError;

/// Why a model could not be loaded: checkpoint and hub-cache errors name the file.
#[derive(Debug, Error)]
pub enum LoadError {
    /// A released model's name, cache or tokenizer file.
    #[error(transparent)]
    Pretrained(#[from] PretrainedError),
    /// The config does not build a model.
    #[error(transparent)]
    Config(#[from] ClipError),
    /// The checkpoint is unreadable or does not fit the config.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The built-in tokenizer could not be set up.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
}

/// A model with the preprocessing and tokenizer it expects: [`encoder`](Self::encoder) embeds
/// texts the way the model was evaluated, [`pipeline`](Self::pipeline) prepares its images.
///
/// ```no_run
/// use diffclip::pretrained::Pretrained;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let device = diffclip::backend::device("flex")?;
/// // From the Hugging Face cache (nothing is downloaded):
/// let loaded = Pretrained::named("diffclip-vit-b16-cc12m")?.load(&device)?;
/// let encoder = loaded.encoder()?; // the authors' drop-eot truncation
/// let texts = encoder.encode_texts(&["a photo of a dog"])?;
/// let image = loaded.pipeline()?.process_file(std::path::Path::new("dog.jpg"), 0)?;
/// # Ok(()) }
/// ```
pub struct LoadedModel {
    /// The weights.
    pub model: Clip,
    /// Its configuration.
    pub config: ClipConfig,
    /// The device it lives on.
    pub device: Device,
    /// The checkpoint read.
    pub checkpoint: PathBuf,
    /// The checkpoint's layout (DiffCLIP, open_clip, HuggingFace, Burnpack).
    pub format: CheckpointFormat,
    /// Preprocessing preset ([`Pipeline::from_name`]): the registry's for a released model, else
    /// [`layout_preprocess`]'s.
    pub preprocess: &'static str,
    /// Its tokenizer, with the model's context length and its truncation: the registry's for a
    /// released model ([`Pretrained::tokenizer`](crate::pretrained::Pretrained::tokenizer): a hub
    /// `tokenizer.json` with the `hf-tokenizer` feature), else the built-in CLIP BPE keeping the
    /// end-of-text token.
    pub tokenizer: Arc<dyn TextTokenizer>,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("checkpoint", &self.checkpoint)
            .field("format", &self.format)
            .field("preprocess", &self.preprocess)
            .field("truncation", &self.truncation())
            .finish_non_exhaustive()
    }
}

impl LoadedModel {
    /// `checkpoint` (any layout [`load_checkpoint`] reads) into a model of `config` on `device`,
    /// with the preprocessing of its layout and the built-in tokenizer (open_clip's keep-eot
    /// truncation; [`Encoder::with_truncation`] changes it). Weights are not drawn first.
    pub fn load(config: ClipConfig, checkpoint: &Path, device: &Device) -> Result<Self, LoadError> {
        let tokenizer = ClipTokenizer::with_config(TokenizerConfig {
            context_length: config.text.context_length,
            truncation: Truncation::KeepEot,
        })?;
        let preprocess = layout_preprocess(&config);
        Self::with_parts(config, checkpoint, device, preprocess, Arc::new(tokenizer))
    }

    /// The weights read into a model of `config`; what the model needs besides is given.
    pub(crate) fn with_parts(
        config: ClipConfig,
        checkpoint: &Path,
        device: &Device,
        preprocess: &'static str,
        tokenizer: Arc<dyn TextTokenizer>,
    ) -> Result<Self, LoadError> {
        let mut model = config.init_lazy(device)?;
        let format = load_checkpoint(&mut model, checkpoint)?;
        Ok(Self { model, config, device: device.clone(), checkpoint: checkpoint.to_path_buf(), format, preprocess, tokenizer })
    }

    /// The tokenizer's truncation of over-long captions.
    pub fn truncation(&self) -> Truncation {
        self.tokenizer.truncation()
    }

    /// The model's image preprocessing, at its input size.
    pub fn pipeline(&self) -> Result<Pipeline, PreprocessError> {
        Pipeline::from_name(self.preprocess, self.config.vision.image_size as u32)
    }

    /// An [`Encoder`] of this model with its tokenizer.
    pub fn encoder(&self) -> Result<Encoder<'_>, EvalError> {
        Encoder::new(&self.model)?.with_tokenizer(self.tokenizer.clone())
    }

    /// The key of this model's embeddings (its checkpoint file as it is now, and its config),
    /// which `embed` stamps on every shard (`model key` and its first 16 hex digits).
    pub fn key(&self) -> Result<diffclip_eval::cache::ModelKey, EvalError> {
        let config = serde_json::to_string(&self.config).map_err(|e| EvalError::Invalid(e.to_string()))?;
        diffclip_eval::cache::ModelKey::new(Some(&self.checkpoint), &config)
    }
}

/// The preprocessing preset a model of `config`'s layout was evaluated with: `slip` for the timm
/// layout DiffCLIP uses (patch bias, no `ln_pre`), else `openai`.
///
/// ```
/// use diffclip::clip::ClipConfig;
/// assert_eq!(diffclip::layout_preprocess(&ClipConfig::diffclip_vit_b16()), "slip");
/// assert_eq!(diffclip::layout_preprocess(&ClipConfig::openai_vit_b16()), "openai");
/// ```
pub fn layout_preprocess(config: &ClipConfig) -> &'static str {
    let timm = config.vision.patch_bias && !config.vision.ln_pre;
    if timm { "slip" } else { "openai" }
}
