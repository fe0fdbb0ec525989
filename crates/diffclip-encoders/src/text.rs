//! The CLIP text transformer: causal attention, pooling at the end-of-text token.

use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, Initializer};

use crate::LayerNorm;
use burn::tensor::{Device, Int, Tensor};
use diffclip_attention::{AttentionMaps, AttentionPath, MatmulPrecision};
use serde::{Deserialize, Serialize};

use crate::block::ResidualBlock;
use crate::tower::{TowerSpec, check_nonzero, in_products, tower_spec};
use crate::{Activation, EncoderError, LayerAttention};

/// Text tower configuration, in serde form with unknown fields rejected; omitted fields take
/// [`TextConfig::default`]'s values (DiffCLIP's text tower).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextConfig {
    /// Tokens per text.
    pub context_length: usize,
    /// Token ids `0..vocab_size`.
    pub vocab_size: usize,
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
    /// LayerNorm epsilon.
    pub ln_eps: f64,
    /// Biases on the q/k/v projections.
    pub qkv_bias: bool,
    /// Attention kind per layer and `lambda_init`.
    pub attention: LayerAttention,
    /// Dropout on attention maps (training).
    pub attn_dropout: f64,
    /// Dropout after attention and MLP projections (training).
    pub dropout: f64,
    /// Fused or reference attention computation.
    pub path: AttentionPath,
}

impl Default for TextConfig {
    /// DiffCLIP's text tower: 77 tokens, 49,408 ids, width 512, 12 layers, 8 heads, MLP ratio 4,
    /// QuickGELU, LayerNorm eps 1e-5, q/k/v biases, differential attention.
    fn default() -> Self {
        Self {
            context_length: 77,
            vocab_size: 49408,
            width: 512,
            layers: 12,
            heads: 8,
            mlp_ratio: 4.0,
            activation: Activation::QuickGelu,
            ln_eps: 1e-5,
            qkv_bias: true,
            attention: LayerAttention::default(),
            attn_dropout: 0.0,
            dropout: 0.0,
            path: AttentionPath::Fused,
        }
    }
}

impl burn::config::Config for TextConfig {}

impl TextConfig {
    /// CLIP text tower (77 tokens, 49,408 ids, QuickGELU) with differential attention.
    pub fn new(width: usize, layers: usize, heads: usize) -> Self {
        Self { width, layers, heads, ..Self::default() }
    }

    /// The fields shared with the vision tower.
    pub(crate) fn tower(&self) -> TowerSpec<'_> {
        tower_spec!(self, causal: true)
    }

    /// Checks every size, ratio and eps without allocating anything.
    ///
    /// ```
    /// use diffclip_encoders::{EncoderError, TextConfig};
    /// let mut c = TextConfig::new(64, 2, 4);
    /// c.ln_eps = -1.0;
    /// assert!(matches!(c.check(), Err(EncoderError::NotPositive { what: "ln_eps", .. })));
    /// let mut c = TextConfig::new(64, 2, 4);
    /// c.attention.lambda_init = diffclip_encoders::attention::LambdaInit::Constant(1e39);
    /// assert!(matches!(c.check(), Err(EncoderError::OutOfRange { what: "lambda_init", .. })));
    /// ```
    pub fn check(&self) -> Result<(), EncoderError> {
        check_nonzero(&[("context_length", self.context_length), ("vocab_size", self.vocab_size)])?;
        if self.context_length < 2 {
            return Err(EncoderError::ContextTooShort { got: self.context_length });
        }
        self.tower().check()
    }

    /// Build the tower; invalid shapes are errors here.
    pub fn init(&self, device: &Device) -> Result<TextTransformer, EncoderError> {
        self.check()?;
        let w = self.width;
        let blocks = self.tower().blocks(device)?;
        Ok(TextTransformer {
            token_embedding: EmbeddingConfig::new(self.vocab_size, w)
                .with_initializer(Initializer::Normal { mean: 0.0, std: 0.02 })
                .init(device),
            positional_embedding: Initializer::Normal { mean: 0.0, std: 0.01 }.init([self.context_length, w], device),
            blocks,
            ln_final: LayerNorm::new(w, self.ln_eps, device),
            vocab_size: self.vocab_size,
            products: MatmulPrecision::F32,
        })
    }
}

/// CLIP text transformer.
///
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// use diffclip_encoders::TextConfig;
/// let device = Device::flex();
/// let config = TextConfig { context_length: 8, vocab_size: 100, ..TextConfig::new(32, 2, 4) };
/// let text = config.init(&device).unwrap();
/// // Pooled at each row's largest id (CLIP's end-of-text token): position 2, then 4.
/// let ids = Tensor::<2, Int>::from_ints([[5, 7, 99, 0, 0, 0, 0, 0], [5, 6, 7, 8, 99, 0, 0, 0]], &device);
/// let out = text.forward(ids, true);
/// let tokens = out.tokens.unwrap();
/// assert_eq!(out.pooled.dims(), [2, 32]);
/// let at_eot = tokens.slice([0..1, 2..3, 0..32]).reshape([1, 32]);
/// assert!((at_eot - out.pooled.slice([0..1, 0..32])).abs().max().into_scalar::<f32>() == 0.0);
/// ```
#[derive(Module, Debug)]
pub struct TextTransformer {
    /// Token embedding table, `[vocab_size, W]`.
    pub token_embedding: Embedding,
    /// Learned position embedding, `[context_length, W]`; the first `L` rows are added.
    pub positional_embedding: Param<Tensor<2>>,
    /// The transformer blocks (causal attention), in order.
    pub blocks: Vec<ResidualBlock>,
    /// LayerNorm after the last block, before pooling.
    pub ln_final: LayerNorm,
    /// Number of token ids; valid ids are `0..vocab_size`.
    pub vocab_size: usize,
    /// The CPU's product precision in this tower's forward ([`with_products`](Self::with_products)).
    #[module(skip)]
    products: MatmulPrecision,
}

/// Output of the text tower.
#[derive(Debug, Clone)]
pub struct TextOutput {
    /// The end-of-text token (position of the largest id) after `ln_final`, `[B, W]`.
    pub pooled: Tensor<2>,
    /// All tokens after `ln_final`, `[B, L, W]` (when requested).
    pub tokens: Option<Tensor<3>>,
}

impl TextTransformer {
    /// Token + position embedding: the first block's input `[B, L, W]` (`L <= context_length`).
    ///
    /// # Panics
    /// When `L` exceeds the context length, as PyTorch's towers fail on it; check untrusted
    /// batches first with `ClipConfig::check_tokens` (the `Encoder`s do).
    pub fn embed(&self, text: Tensor<2, Int>) -> Tensor<3> {
        let [_, l] = text.dims();
        let positions = self.positional_embedding.val();
        let context = positions.dims()[0];
        assert!(l <= context, "{l} tokens per caption exceed the text context length {context}");
        let pos = positions.narrow(0, 0, l).unsqueeze::<3>();
        diffclip_attention::embedding(self.token_embedding.weight.val(), text) + pos
    }

    /// Encode token ids `[B, L]`.
    ///
    /// Without `return_tokens`, only the positions up to the batch's last pooled one (its
    /// latest end-of-text token) are computed: attention is causal, so no later position can
    /// change the pooled ones, and a short caption padded to 77 tokens costs its own length.
    /// The last block then computes each caption's pooled position alone.
    pub fn forward(&self, text: Tensor<2, Int>, return_tokens: bool) -> TextOutput {
        in_products(self.products, || self.forward_unscoped(text, return_tokens))
    }

    /// [`forward`](Self::forward) under the calling thread's product precision.
    fn forward_unscoped(&self, text: Tensor<2, Int>, return_tokens: bool) -> TextOutput {
        let at = pooled_positions(&text);
        let pooled_only = self.blocks.split_last().filter(|_| !return_tokens && text.dims()[0] > 0);
        let Some((last, blocks)) = pooled_only else {
            let mut x = self.embed(text);
            for block in &self.blocks {
                x = block.forward(x, None);
            }
            return self.head(x, at, return_tokens);
        };
        let mut x = self.embed(through_last(text, &at));
        for block in blocks {
            x = block.forward(x, None);
        }
        let x = self.ln_final.forward(last.forward_at(x, at));
        let [b, _, w] = x.dims();
        TextOutput { pooled: x.reshape([b, w]), tokens: None }
    }

    /// Forward through the reference attention path, returning every layer's maps.
    pub fn forward_with_maps(&self, text: Tensor<2, Int>) -> (TextOutput, Vec<AttentionMaps>) {
        in_products(self.products, || {
            let mut x = self.embed(text.clone());
            let mut maps = Vec::with_capacity(self.blocks.len());
            for block in &self.blocks {
                let (y, m) = block.forward_with_maps(x, None);
                x = y;
                maps.push(m);
            }
            (self.head(x, pooled_positions(&text), true), maps)
        })
    }

    /// `lambda_full` of every differential layer (`None` for standard layers).
    pub fn lambdas(&self) -> Vec<Option<Tensor<1>>> {
        self.blocks.iter().map(|b| b.attn.lambda_full()).collect()
    }

    /// This tower with its forward passes multiplying in `products` on the CPU, as
    /// [`VisionTransformer::with_products`](crate::VisionTransformer::with_products).
    ///
    /// ```
    /// use diffclip_attention::MatmulPrecision;
    /// let text = diffclip_encoders::TextConfig::new(32, 1, 4).init(&burn::tensor::Device::flex()).unwrap();
    /// assert_eq!(text.with_products(MatmulPrecision::F16).products(), MatmulPrecision::F16);
    /// ```
    pub fn with_products(mut self, products: MatmulPrecision) -> Self {
        self.products = products;
        self
    }

    /// The CPU's product precision in this tower's forward passes ([`with_products`](Self::with_products)).
    pub fn products(&self) -> MatmulPrecision {
        self.products
    }

    /// `ln_final`, then each row's token at `at` (`[B, 1]`, [`pooled_positions`]).
    fn head(&self, x: Tensor<3>, at: Tensor<2, Int>, return_tokens: bool) -> TextOutput {
        let x = self.ln_final.forward(x);
        let [b, _, w] = x.dims();
        let pooled = diffclip_attention::gather_rows(x.clone(), at).reshape([b, w]);
        TextOutput { pooled, tokens: return_tokens.then_some(x) }
    }
}

/// Where each row of `text` `[B, L]` pools, `[B, 1]`: EOT (49407) is the largest id; sequences
/// without one pool at position 0 like the reference.
fn pooled_positions(text: &Tensor<2, Int>) -> Tensor<2, Int> {
    text.clone().argmax(1)
}

/// `text` (at least one row) narrowed to its first `p + 1` positions, `p` the latest of the
/// pooled positions `at`: the rest is padding that a causal tower never lets back in.
fn through_last(text: Tensor<2, Int>, at: &Tensor<2, Int>) -> Tensor<2, Int> {
    let l = text.dims()[1];
    let last = at.clone().max().into_scalar::<i64>() as usize;
    if last + 1 < l { text.narrow(1, 0, last + 1) } else { text }
}
