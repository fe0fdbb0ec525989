//! `ClipConfig`: the whole model as JSON, with presets.

use burn::tensor::Device;
use diffclip_attention::{AttentionKind, LambdaInit};
use diffclip_encoders::{Activation, LayerAttention, TextConfig, VisionConfig};
use serde::{Deserialize, Serialize};

use crate::{Clip, ClipError, ModelLimits};

/// `ln(1 / 0.07)`: CLIP's initial log logit scale.
const LOGIT_SCALE_INIT: f64 = 2.659_260_036_932_778;

/// Model configuration: both towers, the shared embedding width and the initial logit scale.
/// Serde form with unknown fields rejected; omitted fields take [`ClipConfig::default`]'s
/// values (DiffCLIP ViT-B/16).
///
/// ```
/// use diffclip_clip::ClipConfig;
/// let cfg = ClipConfig::preset("diffclip_vit_b16").unwrap();
/// let json = serde_json::to_string(&cfg).unwrap();
/// assert_eq!(ClipConfig::from_json(&json).unwrap(), cfg);
/// assert_eq!(ClipConfig::from_json("{}").unwrap(), ClipConfig::default());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClipConfig {
    /// Width of the shared image–text embedding space.
    pub embed_dim: usize,
    /// The image tower.
    pub vision: VisionConfig,
    /// The text tower.
    pub text: TextConfig,
    /// Initial value of the (log) logit scale parameter, `ln(1/0.07)` by default.
    pub logit_scale_init: f64,
    /// Initial learnable logit bias for the SigLIP loss (`-10` in SigLIP); `None`: no bias.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logit_bias_init: Option<f64>,
}

impl Default for ClipConfig {
    /// DiffCLIP ViT-B/16 as released: [`VisionConfig::default`], [`TextConfig::default`],
    /// 512-wide embeddings, `logit_scale_init = ln(1/0.07)`, no logit bias.
    fn default() -> Self {
        Self {
            embed_dim: 512,
            vision: VisionConfig::default(),
            text: TextConfig::default(),
            logit_scale_init: LOGIT_SCALE_INIT,
            logit_bias_init: None,
        }
    }
}

impl burn::config::Config for ClipConfig {}

/// Every preset: its name (for [`ClipConfig::preset`], `--preset`) and its constructor.
#[allow(clippy::type_complexity)]
pub const PRESETS: &[(&str, fn() -> ClipConfig)] = &[
    ("diffclip_vit_b16", ClipConfig::diffclip_vit_b16),
    ("clip_vit_b16", ClipConfig::clip_vit_b16),
    ("diffclip_star_vit_b16", ClipConfig::diffclip_star_vit_b16),
    ("diffclip_dagger_vit_b16", ClipConfig::diffclip_dagger_vit_b16),
    ("openai_vit_b32", ClipConfig::openai_vit_b32),
    ("openai_vit_b16", ClipConfig::openai_vit_b16),
    ("openai_vit_l14", ClipConfig::openai_vit_l14),
    ("openclip_vit_b32", ClipConfig::openclip_vit_b32),
    ("openclip_vit_b16", ClipConfig::openclip_vit_b16),
    ("openclip_vit_l14", ClipConfig::openclip_vit_l14),
    ("diffclip_tiny", ClipConfig::diffclip_tiny),
    ("clip_tiny", ClipConfig::clip_tiny),
    ("openai_tiny", ClipConfig::openai_tiny),
];

impl ClipConfig {
    /// DiffCLIP ViT-B/16 as released (149,629,185 parameters): differential attention in both
    /// towers, `lambda_init` 0.8. The same as [`ClipConfig::default`].
    pub fn diffclip_vit_b16() -> Self {
        Self::default()
    }

    /// The standard-attention CLIP baseline of the same layout.
    pub fn clip_vit_b16() -> Self {
        Self::diffclip_vit_b16().with_attention(AttentionKind::Standard, AttentionKind::Standard)
    }

    /// DiffCLIP*: depth-scheduled `lambda_init = 0.8 - 0.6 exp(-0.3 l)`.
    pub fn diffclip_star_vit_b16() -> Self {
        let mut c = Self::diffclip_vit_b16();
        c.vision.attention.lambda_init = LambdaInit::DepthSchedule;
        c.text.attention.lambda_init = LambdaInit::DepthSchedule;
        c
    }

    /// DiffCLIP†: differential attention in the vision tower only.
    pub fn diffclip_dagger_vit_b16() -> Self {
        Self::diffclip_vit_b16().with_attention(AttentionKind::Differential, AttentionKind::Standard)
    }

    /// OpenAI CLIP ViT-B/32 (open_clip layout, QuickGELU).
    pub fn openai_vit_b32() -> Self {
        Self::openai(512, VisionConfig::openai(224, 32, 768, 12, 12), TextConfig::new(512, 12, 8))
    }

    /// OpenAI CLIP ViT-B/16.
    pub fn openai_vit_b16() -> Self {
        Self::openai(512, VisionConfig::openai(224, 16, 768, 12, 12), TextConfig::new(512, 12, 8))
    }

    /// OpenAI CLIP ViT-L/14.
    pub fn openai_vit_l14() -> Self {
        Self::openai(768, VisionConfig::openai(224, 14, 1024, 24, 16), TextConfig::new(768, 12, 12))
    }

    /// open_clip's own `ViT-B-32` (LAION-2B, DataComp): the OpenAI layout with exact GELU.
    /// OpenAI's weights use QuickGELU under the same keys, so the two presets are not
    /// interchangeable even though a checkpoint of either loads into both.
    pub fn openclip_vit_b32() -> Self {
        Self::openai_vit_b32().with_activation(Activation::Gelu)
    }

    /// open_clip's own `ViT-B-16` (exact GELU).
    pub fn openclip_vit_b16() -> Self {
        Self::openai_vit_b16().with_activation(Activation::Gelu)
    }

    /// open_clip's own `ViT-L-14` (exact GELU).
    pub fn openclip_vit_l14() -> Self {
        Self::openai_vit_l14().with_activation(Activation::Gelu)
    }

    /// The same model with `activation` in both towers' MLPs.
    pub fn with_activation(mut self, activation: Activation) -> Self {
        self.vision.activation = activation;
        self.text.activation = activation;
        self
    }

    /// The `diffclip_tiny` fixture's shape: 32 px images, patch 8, width 64, 2 layers, 4 heads.
    pub fn diffclip_tiny() -> Self {
        Self { embed_dim: 32, vision: VisionConfig::timm(32, 8, 64, 2, 4), text: TextConfig::new(64, 2, 4), ..Self::default() }
    }

    /// `diffclip_tiny` with standard attention.
    pub fn clip_tiny() -> Self {
        Self::diffclip_tiny().with_attention(AttentionKind::Standard, AttentionKind::Standard)
    }

    /// The `openclip_tiny` fixture's shape in the OpenAI layout.
    pub fn openai_tiny() -> Self {
        Self::openai(32, VisionConfig::openai(32, 8, 64, 2, 4), TextConfig::new(64, 2, 4))
    }

    /// A preset by name (see [`PRESETS`]); `-` and `_` are interchangeable, case is ignored.
    pub fn preset(name: &str) -> Result<Self, ClipError> {
        let key = name.replace('-', "_").to_lowercase();
        match PRESETS.iter().find(|(n, _)| *n == key) {
            Some((_, make)) => Ok(make()),
            None => Err(ClipError::UnknownPreset { name: name.into(), known: PRESETS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ") }),
        }
    }

    /// Parse JSON (unknown fields are errors; absent ones take their defaults) and
    /// [`check`](Self::check) it. The config and every struct in it are JSON objects
    /// ([`from_json_objects`](crate::json::from_json_objects)): serde would also read a list as a
    /// struct's fields in order (`[1]` as `embed_dim` 1).
    ///
    /// ```
    /// use diffclip_clip::ClipConfig;
    /// assert!(ClipConfig::from_json(r#"{"vision": {"layers": 2}}"#).is_ok());
    /// assert!(ClipConfig::from_json("[512]").is_err());
    /// assert!(ClipConfig::from_json(r#"{"text": [512, 12]}"#).is_err());
    /// ```
    pub fn from_json(json: &str) -> Result<Self, ClipError> {
        let config: Self = crate::json::from_json_objects(json)?;
        config.check()?;
        Ok(config)
    }

    /// Read a JSON file of at most 16 MiB (a model config is a few hundred bytes; more is not
    /// one, and is not read whole); errors name the file.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self, ClipError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let text = crate::files::read_regular_capped(path, 16 << 20).and_then(|b| String::from_utf8(b).map_err(std::io::Error::other)).map_err(|source| ClipError::ConfigIo { path: name.clone(), source })?;
        // Editors on Windows save UTF-8 with a byte-order mark; JSON parsers refuse it.
        match Self::from_json(text.strip_prefix('\u{feff}').unwrap_or(&text)) {
            Ok(config) => Ok(config),
            Err(ClipError::Json(source)) => Err(ClipError::ConfigParse { path: name, source }),
            Err(e) => Err(ClipError::ConfigInvalid { path: name, source: Box::new(e) }),
        }
    }

    /// The model a program was asked for: `--config FILE`, else `--preset NAME`, else the config
    /// stored in `checkpoint` (a safetensors or burnpack file written by this library). File-given configs
    /// are [checked against the limits](Self::check_fits) here and errors name the file.
    ///
    /// ```
    /// use diffclip_clip::ClipConfig;
    /// let c = ClipConfig::select(None, Some("diffclip_tiny"), None).unwrap();
    /// assert_eq!(c, ClipConfig::diffclip_tiny());
    /// assert!(ClipConfig::select(None, None, None).is_err());
    /// ```
    pub fn select(config: Option<&std::path::Path>, preset: Option<&str>, checkpoint: Option<&std::path::Path>) -> Result<Self, ClipError> {
        match (config, preset, checkpoint) {
            (Some(path), _, _) => {
                let c = Self::from_file(path)?;
                c.check_fits(&ModelLimits::default()).map_err(|e| ClipError::ConfigInvalid { path: path.display().to_string(), source: Box::new(e) })?;
                Ok(c)
            }
            (None, Some(name), _) => Self::preset(name),
            (None, None, Some(ckpt)) => crate::checkpoint::config_of(ckpt)
                .map_err(|e| ClipError::Checkpoint(Box::new(e)))?
                .ok_or_else(|| ClipError::NoConfig { checkpoint: Some(ckpt.display().to_string()) }),
            (None, None, None) => Err(ClipError::NoConfig { checkpoint: None }),
        }
    }

    /// Set the attention kind of every layer of each tower.
    pub fn with_attention(mut self, vision: AttentionKind, text: AttentionKind) -> Self {
        self.vision.attention = LayerAttention { kind: vision, per_layer: None, ..self.vision.attention };
        self.text.attention = LayerAttention { kind: text, per_layer: None, ..self.text.attention };
        self
    }

    /// Build the model with freshly initialised weights. Every parameter is drawn here, in
    /// module order, so `device.seed(s)` before `init` gives the same weights every time,
    /// whatever reads them first later (Burn otherwise draws a weight on its first read).
    /// The configuration is [checked](Self::check_fits) against [`ModelLimits::default`] first.
    ///
    /// ```
    /// use diffclip_clip::ClipConfig;
    /// let device = burn::tensor::Device::default();
    /// let first_weights = |seed| {
    ///     device.seed(seed);
    ///     let model = ClipConfig::diffclip_tiny().init(&device).unwrap();
    ///     device.seed(99); // draws after init no longer change the model
    ///     model.image_projection.val().into_data().to_vec::<f32>().unwrap()
    /// };
    /// assert_eq!(first_weights(7), first_weights(7));
    /// assert_ne!(first_weights(7), first_weights(8));
    /// ```
    pub fn init(&self, device: &Device) -> Result<Clip, ClipError> {
        self.init_with_limits(device, &ModelLimits::default())
    }

    /// [`init`](Self::init) with explicit size limits.
    pub fn init_with_limits(&self, device: &Device, limits: &ModelLimits) -> Result<Clip, ClipError> {
        let model = self.init_lazy_with_limits(device, limits)?;
        burn::module::Module::visit(&model, &mut DrawParams);
        Ok(model)
    }

    /// Build the model without drawing its weights: each is drawn on its first read. For
    /// models whose weights are about to be replaced (by
    /// [`load_checkpoint`](crate::load_checkpoint)) or only counted, so no memory or time goes
    /// on a random initialisation. Not for training from scratch: the weights would depend on
    /// the device RNG's state at the time of their first read; use [`init`](Self::init).
    ///
    /// ```
    /// use burn::module::Module;
    /// use diffclip_clip::ClipConfig;
    /// let device = burn::tensor::Device::default();
    /// // ViT-B/16's 150 M parameters are counted without being allocated.
    /// let model = ClipConfig::diffclip_vit_b16().init_lazy(&device).unwrap();
    /// assert!(model.num_params() > 100_000_000);
    /// ```
    pub fn init_lazy(&self, device: &Device) -> Result<Clip, ClipError> {
        self.init_lazy_with_limits(device, &ModelLimits::default())
    }

    /// [`init_lazy`](Self::init_lazy) with explicit size limits.
    pub fn init_lazy_with_limits(&self, device: &Device, limits: &ModelLimits) -> Result<Clip, ClipError> {
        self.check_fits(limits)?;
        Clip::new(self, device)
    }

    fn openai(embed_dim: usize, vision: VisionConfig, mut text: TextConfig) -> Self {
        text.attention = LayerAttention::all(AttentionKind::Standard);
        Self { embed_dim, vision, text, ..Self::default() }
    }
}

/// Reads every parameter once, which makes Burn draw the lazy ones now, in visit order.
struct DrawParams;

impl burn::module::ModuleVisitor for DrawParams {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<burn::tensor::Tensor<D>>) {
        let _ = param.val();
    }

    fn visit_int<const D: usize>(&mut self, param: &burn::module::Param<burn::tensor::Tensor<D, burn::tensor::Int>>) {
        let _ = param.val();
    }

    fn visit_bool<const D: usize>(&mut self, param: &burn::module::Param<burn::tensor::Tensor<D, burn::tensor::Bool>>) {
        let _ = param.val();
    }
}
