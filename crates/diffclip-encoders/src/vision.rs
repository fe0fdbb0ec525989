//! One Vision Transformer covering the timm layout (DiffCLIP) and the OpenAI/open_clip layout.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::Initializer;

use crate::LayerNorm;
use burn::tensor::{Device, Int, Tensor};
use diffclip_attention::{AttentionMaps, AttentionPath, MatmulPrecision};
use serde::{Deserialize, Serialize};

use crate::block::ResidualBlock;
use crate::tower::{TowerSpec, check_nonzero, in_products, tower_spec};
use crate::{Activation, EncoderError, LayerAttention};

/// Vision tower configuration, in serde form with unknown fields rejected; omitted fields take
/// [`VisionConfig::default`]'s values (DiffCLIP's ViT-B/16).
///
/// `patch_bias = true, ln_pre = false` is the timm layout DiffCLIP uses;
/// `patch_bias = false, ln_pre = true` is the OpenAI/open_clip layout.
///
/// ```
/// use diffclip_encoders::VisionConfig;
/// let c: VisionConfig = serde_json::from_str(r#"{"image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "heads": 4}"#).unwrap();
/// assert_eq!(c, VisionConfig::timm(32, 8, 64, 2, 4));
/// assert!(serde_json::from_str::<VisionConfig>(r#"{"patch": 8}"#).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VisionConfig {
    /// Input side in pixels (square images).
    pub image_size: usize,
    /// Patch side; `image_size` must be a multiple of it.
    pub patch_size: usize,
    /// Token width.
    pub width: usize,
    /// Number of transformer blocks.
    pub layers: usize,
    /// Baseline head count (even for differential attention).
    pub heads: usize,
    /// MLP hidden width = `floor(width * mlp_ratio)`.
    pub mlp_ratio: f64,
    /// The MLP's nonlinearity.
    pub activation: Activation,
    /// Bias on the patch-embedding convolution (timm: yes, OpenAI: no).
    pub patch_bias: bool,
    /// LayerNorm before the blocks (OpenAI `ln_pre`).
    pub ln_pre: bool,
    /// LayerNorm epsilon.
    pub ln_eps: f64,
    /// Biases on the q/k/v projections.
    pub qkv_bias: bool,
    /// Image channels.
    pub in_chans: usize,
    /// Attention kind per layer and `lambda_init`.
    pub attention: LayerAttention,
    /// Dropout on attention maps (training).
    pub attn_dropout: f64,
    /// Dropout after attention and MLP projections (training).
    pub dropout: f64,
    /// Fused or reference attention computation.
    pub path: AttentionPath,
}

impl Default for VisionConfig {
    /// DiffCLIP's ViT-B/16 tower: 224 px, patch 16, width 768, 12 layers, 12 heads, MLP ratio 4,
    /// exact GELU, timm layout, LayerNorm eps 1e-5, q/k/v biases, differential attention.
    fn default() -> Self {
        Self {
            image_size: 224,
            patch_size: 16,
            width: 768,
            layers: 12,
            heads: 12,
            mlp_ratio: 4.0,
            activation: Activation::Gelu,
            patch_bias: true,
            ln_pre: false,
            ln_eps: 1e-5,
            qkv_bias: true,
            in_chans: 3,
            attention: LayerAttention::default(),
            attn_dropout: 0.0,
            dropout: 0.0,
            path: AttentionPath::Fused,
        }
    }
}

impl burn::config::Config for VisionConfig {}

impl VisionConfig {
    /// timm layout (DiffCLIP): biased patch conv, no `ln_pre`, exact GELU, differential attention.
    pub fn timm(image_size: usize, patch_size: usize, width: usize, layers: usize, heads: usize) -> Self {
        Self { image_size, patch_size, width, layers, heads, ..Self::default() }
    }

    /// OpenAI/open_clip layout: conv without bias, `ln_pre`, QuickGELU, standard attention.
    pub fn openai(image_size: usize, patch_size: usize, width: usize, layers: usize, heads: usize) -> Self {
        Self {
            activation: Activation::QuickGelu,
            patch_bias: false,
            ln_pre: true,
            attention: LayerAttention::all(diffclip_attention::AttentionKind::Standard),
            ..Self::timm(image_size, patch_size, width, layers, heads)
        }
    }

    /// Number of patches per side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// The fields shared with the text tower.
    pub(crate) fn tower(&self) -> TowerSpec<'_> {
        tower_spec!(self, causal: false)
    }

    /// Checks every size, ratio and eps without allocating anything.
    ///
    /// ```
    /// use diffclip_encoders::{EncoderError, VisionConfig};
    /// assert!(VisionConfig::timm(32, 8, 64, 2, 4).check().is_ok());
    /// let mut c = VisionConfig::timm(32, 8, 64, 2, 4);
    /// c.in_chans = 0;
    /// assert_eq!(c.check(), Err(EncoderError::Zero { what: "in_chans" }));
    /// ```
    pub fn check(&self) -> Result<(), EncoderError> {
        check_nonzero(&[("image_size", self.image_size), ("patch_size", self.patch_size), ("in_chans", self.in_chans)])?;
        if !self.image_size.is_multiple_of(self.patch_size) {
            return Err(EncoderError::PatchSize { image_size: self.image_size, patch_size: self.patch_size });
        }
        self.tower().check()
    }

    /// Build the tower; invalid shapes are errors here.
    pub fn init(&self, device: &Device) -> Result<VisionTransformer, EncoderError> {
        self.check()?;
        let w = self.width;
        let n = self.grid() * self.grid();
        let blocks = self.tower().blocks(device)?;
        let ln = || LayerNorm::new(w, self.ln_eps, device);
        let p = self.patch_size;
        Ok(VisionTransformer {
            patch_embed: PatchEmbed {
                proj: Conv2dConfig::new([self.in_chans, w], [p, p]).with_stride([p, p]).with_bias(self.patch_bias).init(device),
            },
            cls_token: Initializer::Normal { mean: 0.0, std: 1e-6 }.init([1, 1, w], device),
            pos_embed: Initializer::Normal { mean: 0.0, std: 0.02 }.init([1, 1 + n, w], device),
            ln_pre: self.ln_pre.then(ln),
            blocks,
            norm: ln(),
            products: MatmulPrecision::F32,
        })
    }
}

/// Patch embedding: a convolution with kernel = stride = patch size.
#[derive(Module, Debug)]
pub struct PatchEmbed {
    /// `in_chans -> W` convolution, kernel and stride `patch_size`.
    pub proj: Conv2d,
}

/// Vision Transformer with a class token; pools the class token after the final norm.
///
/// ```
/// use burn::tensor::{Device, Distribution, Tensor};
/// use diffclip_encoders::VisionConfig;
/// let device = Device::flex();
/// let config = VisionConfig::timm(32, 8, 64, 2, 4); // 32² images, 8² patches, width 64
/// let vit = config.init(&device).unwrap();
/// let images = Tensor::<4>::random([2, 3, 32, 32], Distribution::Default, &device);
/// let out = vit.forward(images, true);
/// assert_eq!(out.pooled.dims(), [2, 64]);
/// assert_eq!(out.tokens.unwrap().dims(), [2, 1 + 4 * 4, 64]); // class token + 16 patches
/// assert!(vit.lambdas().iter().all(Option::is_some)); // every layer differential (timm default)
/// ```
#[derive(Module, Debug)]
pub struct VisionTransformer {
    /// Images `[B, C, H, W]` to patch tokens.
    pub patch_embed: PatchEmbed,
    /// Learned class token, `[1, 1, W]`, prepended to the patch tokens.
    pub cls_token: Param<Tensor<3>>,
    /// Learned position embedding, `[1, 1 + n_patches, W]` (class token first).
    pub pos_embed: Param<Tensor<3>>,
    /// LayerNorm before the blocks (OpenAI layout), `None` in the timm layout.
    pub ln_pre: Option<LayerNorm>,
    /// The transformer blocks, in order.
    pub blocks: Vec<ResidualBlock>,
    /// Final LayerNorm before pooling the class token.
    pub norm: LayerNorm,
    /// The CPU's product precision in this tower's forward ([`with_products`](Self::with_products)).
    #[module(skip)]
    products: MatmulPrecision,
}

/// Output of the vision tower.
#[derive(Debug, Clone)]
pub struct VisionOutput {
    /// The class token after the final norm, `[B, W]`.
    pub pooled: Tensor<2>,
    /// All tokens after the final norm, `[B, 1 + n_patches, W]` (when requested).
    pub tokens: Option<Tensor<3>>,
}

impl VisionTransformer {
    /// Patch embedding + class token + position embedding (+ `ln_pre`): the first block's input.
    pub fn embed(&self, images: Tensor<4>) -> Tensor<3> {
        let x = self.patch_embed.proj.forward(images); // [B, W, gh, gw]
        let [b, w, _, _] = x.dims();
        let x = x.flatten::<3>(2, 3).swap_dims(1, 2); // [B, n, W]
        let cls = self.cls_token.val().expand([b, 1, w]);
        let x = Tensor::cat(vec![cls, x], 1) + self.pos_embed.val();
        match &self.ln_pre {
            Some(ln) => ln.forward(x),
            None => x,
        }
    }

    /// Encode `images [B, C, H, W]`; `return_tokens` keeps all final tokens. Without them the
    /// last block computes the class token's output alone (the same values, ~1/12 less work
    /// for ViT-B/16, in training too).
    pub fn forward(&self, images: Tensor<4>, return_tokens: bool) -> VisionOutput {
        in_products(self.products, || {
            let mut x = self.embed(images);
            let (b, device) = (x.dims()[0], x.device());
            let class_only = self.blocks.split_last().filter(|_| !return_tokens && b > 0);
            let blocks = class_only.map_or(&self.blocks[..], |(_, blocks)| blocks);
            for block in blocks {
                x = block.forward(x, None);
            }
            if let Some((last, _)) = class_only {
                x = last.forward_at(x, Tensor::<2, Int>::zeros([b, 1], &device));
            }
            self.head(x, return_tokens)
        })
    }

    /// Forward through the reference attention path, returning every layer's maps.
    pub fn forward_with_maps(&self, images: Tensor<4>) -> (VisionOutput, Vec<AttentionMaps>) {
        in_products(self.products, || {
            let mut x = self.embed(images);
            let mut maps = Vec::with_capacity(self.blocks.len());
            for block in &self.blocks {
                let (y, m) = block.forward_with_maps(x, None);
                x = y;
                maps.push(m);
            }
            (self.head(x, true), maps)
        })
    }

    /// `lambda_full` of every differential layer (`None` for standard layers).
    pub fn lambdas(&self) -> Vec<Option<Tensor<1>>> {
        self.blocks.iter().map(|b| b.attn.lambda_full()).collect()
    }

    /// This tower with its forward passes ([`forward`](Self::forward),
    /// [`forward_with_maps`](Self::forward_with_maps)) multiplying in `products` on the CPU
    /// (flex): the weights and activations stay f32, the operands of the linear layers (and, in
    /// inference, of the attention products) are rounded ([`MatmulPrecision`]); a training
    /// backward multiplies as its forward did. Blocks called one by one follow the calling
    /// thread instead, and other devices ignore it. `F32`, the default, leaves the calling
    /// thread's setting ([`with_matmul_precision`](diffclip_attention::with_matmul_precision)).
    ///
    /// ```
    /// use burn::tensor::{Device, Tensor};
    /// use diffclip_attention::MatmulPrecision;
    /// use diffclip_encoders::VisionConfig;
    /// let device = Device::flex();
    /// let vit = VisionConfig::timm(32, 8, 64, 2, 4).init(&device).unwrap();
    /// let images = Tensor::<4>::ones([1, 3, 32, 32], &device);
    /// let f32_out = vit.forward(images.clone(), false).pooled;
    /// let bf16 = vit.with_products(MatmulPrecision::Bf16);
    /// assert_eq!(bf16.products(), MatmulPrecision::Bf16);
    /// let bf16_out = bf16.forward(images, false).pooled;
    /// assert!(f32_out.clone().into_data() != bf16_out.clone().into_data()); // rounded operands
    /// assert!((f32_out - bf16_out).abs().max().into_scalar::<f32>() < 0.1);
    /// ```
    pub fn with_products(mut self, products: MatmulPrecision) -> Self {
        self.products = products;
        self
    }

    /// The CPU's product precision in this tower's forward passes ([`with_products`](Self::with_products)).
    pub fn products(&self) -> MatmulPrecision {
        self.products
    }

    fn head(&self, x: Tensor<3>, return_tokens: bool) -> VisionOutput {
        let x = self.norm.forward(x);
        let [b, _, w] = x.dims();
        let pooled = x.clone().narrow(1, 0, 1).reshape([b, w]);
        VisionOutput { pooled, tokens: return_tokens.then_some(x) }
    }
}
