//! Size checks on a model configuration before anything is allocated: a config read from a file
//! (or a checkpoint's metadata) is untrusted, and `width: 1000000, layers: 1000` must be an
//! error that names the estimate, not an abort inside the allocator.

use diffclip_attention::AttentionKind;
use diffclip_encoders::{LayerAttention, TextConfig, VisionConfig};

use crate::{ClipConfig, ClipError};

/// Environment variable that overrides [`ModelLimits::max_params`].
pub const MAX_PARAMS_ENV: &str = "DIFFCLIP_MAX_PARAMS";

/// Largest model [`ClipConfig::init`] builds by default: 4 billion parameters (ViT-bigG/14 has
/// 2.5 billion). Raise it with `DIFFCLIP_MAX_PARAMS` or [`ClipConfig::init_with_limits`].
pub const DEFAULT_MAX_PARAMS: u64 = 4_000_000_000;

/// How large a model may be built.
///
/// ```
/// use diffclip_clip::{ClipConfig, ModelLimits};
/// let limits = ModelLimits { max_params: 10_000_000, max_bytes: None };
/// assert!(ClipConfig::diffclip_tiny().check_fits(&limits).is_ok());
/// let err = ClipConfig::diffclip_vit_b16().check_fits(&limits).unwrap_err().to_string();
/// assert!(err.contains("149629185 parameters"), "{err}");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelLimits {
    /// Most parameters allowed.
    pub max_params: u64,
    /// Most bytes the weights plus one sample's activations may take; `None`: unchecked.
    pub max_bytes: Option<u64>,
}

impl Default for ModelLimits {
    /// [`DEFAULT_MAX_PARAMS`] (or `DIFFCLIP_MAX_PARAMS`), and the memory the OS reports as
    /// available (`MemAvailable + SwapFree` in `/proc/meminfo`; unchecked where that is unreadable).
    fn default() -> Self {
        let max_params = std::env::var(MAX_PARAMS_ENV).ok().and_then(|v| parse_count(&v)).unwrap_or(DEFAULT_MAX_PARAMS);
        Self { max_params, max_bytes: available_memory() }
    }
}

/// A parameter count as people write it: `5000000000`, `5_000_000_000` or `5e9`.
///
/// ```
/// # use diffclip_clip::parse_count;
/// assert_eq!(parse_count("5e9"), Some(5_000_000_000));
/// assert_eq!(parse_count(" 5_000_000_000 "), Some(5_000_000_000));
/// assert_eq!(parse_count("lots"), None);
/// ```
pub fn parse_count(text: &str) -> Option<u64> {
    let t = text.trim().replace('_', "");
    t.parse::<u64>().ok().or_else(|| t.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0 && *v < 1.8e19).map(|v| v as u64))
}

/// What a configuration costs, from its fields alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelEstimate {
    /// Exact parameter count (saturating at `u64::MAX`).
    pub params: u64,
    /// Bytes of the f32 weights.
    pub weight_bytes: u64,
    /// Bytes of the activations of one image and one text in inference (an upper estimate).
    pub activation_bytes: u64,
    /// Bytes of one image's activations through the vision tower in inference.
    pub image_activation_bytes: u64,
    /// Bytes of one text's activations through the text tower in inference.
    pub text_activation_bytes: u64,
    /// Bytes of the activations one image and one text keep for the backward pass of a
    /// training step: every layer's (an estimate).
    pub training_activation_bytes: u64,
}

/// What a batch is run for: training holds far more per sample than inference, and an image
/// more than a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Encoding images: the weights, and one vision layer's activations per image at a time.
    Images,
    /// Encoding texts: the weights, and one text layer's activations per text at a time.
    Texts,
    /// Encoding images or texts, whichever the batch holds (the larger of the two).
    Inference,
    /// A training step: the weights with their gradients and AdamW's two moments (4×), and
    /// every layer's activations per sample, kept for the backward pass.
    Training,
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Images => "image encoding",
            Self::Texts => "text encoding",
            Self::Inference => "inference",
            Self::Training => "training",
        })
    }
}

impl ModelEstimate {
    /// Bytes that `batch` samples at once need for `workload` (saturating).
    pub fn batch_bytes(&self, batch: usize, workload: Workload) -> u64 {
        let (weights, per_sample) = match workload {
            Workload::Images => (self.weight_bytes, self.image_activation_bytes),
            Workload::Texts => (self.weight_bytes, self.text_activation_bytes),
            Workload::Inference => (self.weight_bytes, self.activation_bytes),
            Workload::Training => (self.weight_bytes.saturating_mul(4), self.training_activation_bytes),
        };
        weights.saturating_add(per_sample.saturating_mul(batch as u64))
    }
}

impl ModelLimits {
    /// Refuses a batch whose [`ModelEstimate::batch_bytes`] exceed [`max_bytes`](Self::max_bytes):
    /// `--batch 1000000` must be an error naming the estimate, not an abort inside the allocator.
    /// The default limits are the host's memory, so check batches that run on the host (a GPU's
    /// activations live in its own memory).
    ///
    /// ```
    /// use diffclip_clip::{ClipConfig, ModelLimits, Workload};
    /// let limits = ModelLimits { max_params: u64::MAX, max_bytes: Some(8 << 30) };
    /// let vit_b16 = ClipConfig::diffclip_vit_b16().estimate();
    /// assert!(limits.check_batch(&vit_b16, 64, Workload::Inference).is_ok());
    /// let err = limits.check_batch(&vit_b16, 1_000_000, Workload::Inference).unwrap_err().to_string();
    /// assert!(err.contains("a batch of 1000000 needs"), "{err}");
    /// ```
    pub fn check_batch(&self, estimate: &ModelEstimate, batch: usize, workload: Workload) -> Result<(), ClipError> {
        let need = estimate.batch_bytes(batch, workload);
        match self.max_bytes {
            Some(available) if need > available => Err(ClipError::BatchTooLarge { batch, workload, need_gib: gib(need), available_gib: gib(available) }),
            _ => Ok(()),
        }
    }
}

fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib = |key: &str| {
        info.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse::<u64>().ok()
    };
    Some((kib("MemAvailable:")? + kib("SwapFree:").unwrap_or(0)) * 1024)
}

/// Saturating arithmetic on `u128` so no product of file-given sizes can overflow.
fn mul(xs: &[usize]) -> u128 {
    xs.iter().fold(1u128, |acc, &x| acc.saturating_mul(x as u128))
}

fn sum(xs: &[u128]) -> u128 {
    xs.iter().fold(0u128, |acc, &x| acc.saturating_add(x))
}

/// One tower's blocks: `layers × (2 LayerNorms + attention + MLP)`.
fn blocks(width: usize, layers: usize, heads: usize, hidden: usize, qkv_bias: bool, attention: &LayerAttention) -> u128 {
    let head_dim = width / heads.max(1);
    let common = sum(&[
        mul(&[4, width]), // two LayerNorms
        mul(&[4, width, width]), // q, k, v, out
        mul(&[width]),
        if qkv_bias { mul(&[3, width]) } else { 0 },
        mul(&[2, width, hidden]), // fc1, fc2
        mul(&[hidden]),
        mul(&[width]),
    ]);
    let diff_extra = mul(&[6, head_dim]); // four λ vectors and the RMSNorm gain (2 · head_dim)
    let n_diff = match &attention.per_layer {
        Some(kinds) => kinds.iter().filter(|k| **k == AttentionKind::Differential).count() as u128,
        None if attention.kind == AttentionKind::Differential => layers as u128,
        None => 0,
    };
    common.saturating_mul(layers as u128).saturating_add(diff_extra.saturating_mul(n_diff))
}

/// Patches plus the class token (safe for an unchecked `patch_size` of 0).
fn vision_tokens(v: &VisionConfig) -> u128 {
    let grid = v.image_size / v.patch_size.max(1);
    mul(&[grid, grid]).saturating_add(1)
}

fn vision_params(v: &VisionConfig) -> u128 {
    let hidden = (v.width as f64 * v.mlp_ratio) as usize;
    let tokens = vision_tokens(v);
    sum(&[
        mul(&[v.in_chans, v.width, v.patch_size, v.patch_size]),
        if v.patch_bias { v.width as u128 } else { 0 },
        v.width as u128, // class token
        tokens.saturating_mul(v.width as u128), // position embedding
        if v.ln_pre { mul(&[2, v.width]) } else { 0 },
        blocks(v.width, v.layers, v.heads, hidden, v.qkv_bias, &v.attention),
        mul(&[2, v.width]),
    ])
}

fn text_params(t: &TextConfig) -> u128 {
    let hidden = (t.width as f64 * t.mlp_ratio) as usize;
    mul(&[t.vocab_size, t.width])
        .saturating_add(mul(&[t.context_length, t.width]))
        .saturating_add(blocks(t.width, t.layers, t.heads, hidden, t.qkv_bias, &t.attention))
        .saturating_add(mul(&[2, t.width]))
}

/// One sample through one tower: the widest per-token buffers, plus a full attention map per
/// head in case the reference path runs.
fn activations(tokens: u128, width: usize, hidden: usize, heads: usize) -> u128 {
    let per_token = mul(&[6, width]).saturating_add(mul(&[2, hidden]));
    tokens.saturating_mul(per_token).saturating_add(tokens.saturating_mul(tokens).saturating_mul(2 * heads as u128))
}

impl ClipConfig {
    /// Checks every size, ratio and eps of both towers (all sizes ≥ 1, ratios and eps finite and
    /// positive, dropout in `[0, 1)`, `lambda_init` and the logit scale/bias finite) without
    /// allocating anything. [`from_json`](Self::from_json) and [`init`](Self::init) call it.
    ///
    /// ```
    /// use diffclip_clip::ClipConfig;
    /// let mut c = ClipConfig::diffclip_tiny();
    /// c.vision.mlp_ratio = -4.0;
    /// assert!(c.check().unwrap_err().to_string().contains("mlp_ratio"));
    /// ```
    pub fn check(&self) -> Result<(), ClipError> {
        if self.embed_dim == 0 {
            return Err(ClipError::EmbedDim);
        }
        self.vision.check().map_err(ClipError::Vision)?;
        self.text.check().map_err(ClipError::Text)?;
        for (what, value) in [("logit_scale_init", Some(self.logit_scale_init)), ("logit_bias_init", self.logit_bias_init)] {
            if let Some(value) = value.filter(|v| !v.is_finite()) {
                return Err(ClipError::NotFinite { what, value });
            }
        }
        Ok(())
    }

    /// Parameter count and memory of a [checked](Self::check) configuration.
    ///
    /// ```
    /// use diffclip_clip::ClipConfig;
    /// assert_eq!(ClipConfig::diffclip_vit_b16().estimate().params, 149_629_185);
    /// ```
    pub fn estimate(&self) -> ModelEstimate {
        let params = vision_params(&self.vision)
            .saturating_add(text_params(&self.text))
            .saturating_add(mul(&[self.vision.width, self.embed_dim]))
            .saturating_add(mul(&[self.text.width, self.embed_dim]))
            .saturating_add(1 + self.logit_bias_init.is_some() as u128);
        let (v, t) = (&self.vision, &self.text);
        let pixels = mul(&[v.in_chans, v.image_size, v.image_size]);
        let vision = activations(vision_tokens(v), v.width, (v.width as f64 * v.mlp_ratio) as usize, v.heads);
        let text = activations(t.context_length as u128, t.width, (t.width as f64 * t.mlp_ratio) as usize, t.heads);
        let act = vision.max(text).saturating_add(pixels);
        let image = vision.saturating_add(pixels);
        // Training keeps every layer's activations of both towers for the backward pass.
        let train = vision.saturating_mul(v.layers as u128).saturating_add(text.saturating_mul(t.layers as u128)).saturating_add(pixels);
        let clamp = |x: u128| u64::try_from(x).unwrap_or(u64::MAX);
        ModelEstimate {
            params: clamp(params),
            weight_bytes: clamp(params.saturating_mul(4)),
            activation_bytes: clamp(act.saturating_mul(4)),
            image_activation_bytes: clamp(image.saturating_mul(4)),
            text_activation_bytes: clamp(text.saturating_mul(4)),
            training_activation_bytes: clamp(train.saturating_mul(4)),
        }
    }

    /// [`check`](Self::check), then the estimate against `limits`; returns the estimate.
    pub fn check_fits(&self, limits: &ModelLimits) -> Result<ModelEstimate, ClipError> {
        self.check()?;
        let e = self.estimate();
        if e.params > limits.max_params {
            return Err(ClipError::TooLarge {
                message: format!("{} parameters, more than the limit of {} (raise it with {MAX_PARAMS_ENV}{})", count(e.params), limits.max_params, unreadable_limit()),
            });
        }
        let need = e.weight_bytes.saturating_add(e.activation_bytes);
        if let Some(max) = limits.max_bytes.filter(|&m| need > m) {
            return Err(ClipError::TooLarge {
                message: format!(
                    "{} parameters ({:.1} GiB of weights) and ~{:.1} GiB of activations per sample need more than the {:.1} GiB of memory available",
                    count(e.params),
                    gib(e.weight_bytes),
                    gib(e.activation_bytes),
                    gib(max)
                ),
            });
        }
        Ok(e)
    }
}

/// A parameter count as said: the estimate saturates, so `u64::MAX` is a count that overflowed.
fn count(params: u64) -> String {
    if params == u64::MAX { "over 2^64".into() } else { params.to_string() }
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

/// `; its value X is not a number` when the environment's limit could not be read.
fn unreadable_limit() -> String {
    match std::env::var(MAX_PARAMS_ENV) {
        Ok(v) if parse_count(&v).is_none() => format!("; its value {v:?} is not a number"),
        _ => String::new(),
    }
}
