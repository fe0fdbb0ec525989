//! The dual-encoder model.

use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{DType, Device, Int, Tensor};
use diffclip_encoders::{TextTransformer, VisionTransformer};

use crate::{ClipConfig, ClipError};

/// CLIP / DiffCLIP: a vision tower and a text tower projected into one embedding space.
///
/// ```
/// use burn::tensor::{Device, Distribution, Int, Tensor};
/// use diffclip_clip::ClipConfig;
/// let device = Device::flex();
/// let config = ClipConfig::diffclip_tiny();
/// let model = config.init(&device).unwrap();
/// let size = config.vision.image_size;
/// let images = Tensor::<4>::random([2, 3, size, size], Distribution::Default, &device);
/// let texts = Tensor::<2, Int>::ones([3, config.text.context_length], &device);
/// assert_eq!(model.encode_image(images.clone()).dims(), [2, config.embed_dim]);
/// let (per_image, per_text) = model.logits(images, texts);
/// assert_eq!((per_image.dims(), per_text.dims()), ([2, 3], [3, 2]));
/// ```
#[derive(Module, Debug)]
pub struct Clip {
    /// The image tower; its pooled class token is projected by `image_projection`.
    pub visual: VisionTransformer,
    /// The text tower; its pooled end-of-text token is projected by `text_projection`.
    pub text: TextTransformer,
    /// `[vision_width, embed_dim]`, a raw matrix (not a Linear).
    pub image_projection: Param<Tensor<2>>,
    /// `[text_width, embed_dim]`.
    pub text_projection: Param<Tensor<2>>,
    /// `log` of the similarity scale, shape `[1]` (0-d in PyTorch checkpoints).
    pub logit_scale: Param<Tensor<1>>,
    /// SigLIP's learnable logit bias `[1]`, when configured.
    pub logit_bias: Option<Param<Tensor<1>>>,
}

/// Embeddings of a batch and the similarity scale.
#[derive(Debug, Clone)]
pub struct ClipOutput {
    /// `[B, E]`, unnormalised.
    pub image_embed: Tensor<2>,
    /// `[B, E]`, unnormalised.
    pub text_embed: Tensor<2>,
    /// `exp(logit_scale)`, the factor on cosine similarities, shape `[1]`.
    pub logit_scale_exp: Tensor<1>,
}

/// L2-normalise the rows of `x` (`eps` guards zero rows), as PyTorch's `F.normalize`.
///
/// The squared norm is clamped before the square root (`1e-24 = eps²`): same values, but a zero
/// row gets PyTorch's finite gradient `g / eps` instead of `0 · ∞ = NaN` through `sqrt(0)`.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// let x = Tensor::<2>::from_floats([[3.0, 4.0], [0.0, 0.0]], &Device::flex());
/// let rows = diffclip_clip::normalize(x).into_data().try_into_vec::<f32>().unwrap();
/// assert_eq!(rows, [0.6, 0.8, 0.0, 0.0]); // a zero row stays zero
/// ```
pub fn normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().square().sum_dim(1).clamp_min(1e-24).sqrt();
    x / norm
}

impl Clip {
    pub(crate) fn new(config: &ClipConfig, device: &Device) -> Result<Self, ClipError> {
        if config.embed_dim == 0 {
            return Err(ClipError::EmbedDim);
        }
        let visual = config.vision.init(device).map_err(ClipError::Vision)?;
        let text = config.text.init(device).map_err(ClipError::Text)?;
        let proj = |w: usize| {
            Initializer::Normal { mean: 0.0, std: (w as f64).powf(-0.5) }.init([w, config.embed_dim], device)
        };
        Ok(Self {
            visual,
            text,
            image_projection: proj(config.vision.width),
            text_projection: proj(config.text.width),
            logit_scale: Param::from_tensor(Tensor::from_floats([config.logit_scale_init as f32], device)),
            logit_bias: config.logit_bias_init.map(|b| Param::from_tensor(Tensor::from_floats([b as f32], device))),
        })
    }

    /// Image embeddings `[B, E]` (unnormalised) of `images [B, 3, H, W]`.
    /// A reduced-precision model (see [`Clip::with_precision`]) takes f32 images and returns
    /// f32 embeddings; an f32 model's casts are no-ops.
    pub fn encode_image(&self, images: Tensor<4>) -> Tensor<2> {
        let projection = self.image_projection.val();
        let images = images.cast(projection.dtype());
        self.visual.forward(images, false).pooled.matmul(projection).cast(DType::F32)
    }

    /// Text embeddings `[B, E]` (unnormalised) of token ids `[B, L]`, as f32 whatever the
    /// model's precision.
    pub fn encode_text(&self, text: Tensor<2, Int>) -> Tensor<2> {
        self.text.forward(text, false).pooled.matmul(self.text_projection.val()).cast(DType::F32)
    }

    /// `exp(logit_scale)`, shape `[1]`.
    pub fn logit_scale_exp(&self) -> Tensor<1> {
        self.logit_scale.val().exp()
    }

    /// Both embeddings and `exp(logit_scale)`.
    pub fn forward(&self, images: Tensor<4>, text: Tensor<2, Int>) -> ClipOutput {
        ClipOutput {
            image_embed: self.encode_image(images),
            text_embed: self.encode_text(text),
            logit_scale_exp: self.logit_scale_exp(),
        }
    }

    /// `(logits_per_image [Bi, Bt], logits_per_text [Bt, Bi])` on L2-normalised embeddings.
    pub fn logits(&self, images: Tensor<4>, text: Tensor<2, Int>) -> (Tensor<2>, Tensor<2>) {
        let out = self.forward(images, text);
        logits_from_embeddings(out.image_embed, out.text_embed, out.logit_scale_exp)
    }
}

/// `exp_scale * norm(img) @ norm(txt)^T` and its transpose.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// let device = Device::flex();
/// let image = Tensor::<2>::from_floats([[2.0, 0.0]], &device);
/// let text = Tensor::<2>::from_floats([[1.0, 0.0], [0.0, 5.0]], &device);
/// let (per_image, _) = diffclip_clip::logits_from_embeddings(image, text, Tensor::from_floats([10.0], &device));
/// assert_eq!(per_image.into_data().try_into_vec::<f32>().unwrap(), [10.0, 0.0]); // cosine × scale
/// ```
pub fn logits_from_embeddings(image: Tensor<2>, text: Tensor<2>, exp_scale: Tensor<1>) -> (Tensor<2>, Tensor<2>) {
    let per_image = normalize(image).matmul(normalize(text).transpose()) * exp_scale.reshape([1, 1]);
    let per_text = per_image.clone().transpose();
    (per_image, per_text)
}
