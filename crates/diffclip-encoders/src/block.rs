use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
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
        let x = x.clone() + self.attn.forward(self.norm1.forward(x), mask);
        x.clone() + self.mlp.forward(self.norm2.forward(x))
    }

    /// The block's output `[B, 1, W]` at each item's position `at[b]` (`[B, 1]`) alone: `forward`
    /// gathered there, with one query, map row and MLP row per item (an encoder's last block,
    /// whose only use is its pooled token). See [`Attention::forward_at`].
    pub fn forward_at(&self, x: Tensor<3>, at: Tensor<2, Int>) -> Tensor<3> {
        let attn = self.attn.forward_at(self.norm1.forward(x.clone()), at.clone());
        let x = diffclip_attention::gather_rows(x, at) + attn;
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
