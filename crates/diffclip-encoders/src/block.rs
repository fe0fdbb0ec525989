use burn::module::Module;
use burn::tensor::{Device, Tensor};
use diffclip_attention::{Attention, AttentionConfig, AttentionMaps, AttnMask};

use crate::LayerNorm;
use crate::mlp::{Activation, Mlp};

/// Configuration of one pre-norm transformer block, in serde form with unknown fields rejected;
/// omitted fields take [`ResidualBlockConfig::default`]'s values (a ViT-B/16 block).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResidualBlockConfig {
    /// The attention layer (its `d_model` is the block's width).
    pub attention: AttentionConfig,
    /// MLP hidden width.
    pub mlp_hidden: usize,
    /// The MLP's nonlinearity.
    pub activation: Activation,
    /// LayerNorm epsilon.
    pub ln_eps: f64,
    /// Dropout after the MLP (training).
    pub mlp_dropout: f64,
}

impl Default for ResidualBlockConfig {
    /// ViT-B/16: differential attention of width 768, MLP 3072 with exact GELU, eps 1e-5.
    fn default() -> Self {
        Self { attention: AttentionConfig::default(), mlp_hidden: 3072, activation: Activation::Gelu, ln_eps: 1e-5, mlp_dropout: 0.0 }
    }
}

impl burn::config::Config for ResidualBlockConfig {}

/// Pre-norm block: `x + attn(norm1(x))`, then `x + mlp(norm2(x))`.
#[derive(Module, Debug)]
pub struct ResidualBlock {
    /// Norm before attention.
    pub norm1: LayerNorm,
    /// Standard or differential attention.
    pub attn: Attention,
    /// Norm before the MLP.
    pub norm2: LayerNorm,
    /// The MLP.
    pub mlp: Mlp,
}

/// Intermediate values of a block, for parity tests and inspection.
#[derive(Debug, Clone)]
pub struct BlockTrace {
    /// The attention's input (after `norm1`).
    pub attn_in: Tensor<3>,
    /// The attention's output (before the residual add).
    pub attn_out: Tensor<3>,
}

impl ResidualBlockConfig {
    /// Build the block.
    pub fn init(&self, device: &Device) -> Result<ResidualBlock, diffclip_attention::AttentionError> {
        let width = self.attention.d_model;
        let ln = || LayerNorm::new(width, self.ln_eps, device);
        Ok(ResidualBlock {
            norm1: ln(),
            attn: self.attention.init(device)?,
            norm2: ln(),
            mlp: Mlp::new(width, self.mlp_hidden, self.activation, self.mlp_dropout, device),
        })
    }
}

impl ResidualBlock {
    /// The block on `x [B, N, W]` with an optional extra attention mask.
    pub fn forward(&self, x: Tensor<3>, mask: Option<AttnMask>) -> Tensor<3> {
        let n = x.dims()[1];
        self.forward_queries(x, mask, n)
    }

    /// The block's output for the first `queries` positions alone, `[B, queries, W]`: `forward`
    /// narrowed to them, without the other positions' queries and MLP (a class-token encoder's
    /// last block). See [`Attention::forward_queries`].
    pub fn forward_queries(&self, x: Tensor<3>, mask: Option<AttnMask>, queries: usize) -> Tensor<3> {
        let n = x.dims()[1];
        let queries = queries.min(n);
        let attn = self.attn.forward_queries(self.norm1.forward(x.clone()), mask, queries);
        let x = if queries < n { x.narrow(1, 0, queries) } else { x };
        let x = x + attn;
        x.clone() + self.mlp.forward(self.norm2.forward(x))
    }

    /// Forward that also returns the attention input and output.
    pub fn forward_traced(&self, x: Tensor<3>, mask: Option<AttnMask>) -> (Tensor<3>, BlockTrace) {
        let attn_in = self.norm1.forward(x.clone());
        let attn_out = self.attn.forward(attn_in.clone(), mask);
        let x = x + attn_out.clone();
        let x = x.clone() + self.mlp.forward(self.norm2.forward(x));
        (x, BlockTrace { attn_in, attn_out })
    }

    /// Forward through the reference attention path, returning the attention maps.
    pub fn forward_with_maps(&self, x: Tensor<3>, mask: Option<AttnMask>) -> (Tensor<3>, AttentionMaps) {
        let (a, maps) = self.attn.forward_with_maps(self.norm1.forward(x.clone()), mask);
        let x = x + a;
        (x.clone() + self.mlp.forward(self.norm2.forward(x)), maps)
    }
}
