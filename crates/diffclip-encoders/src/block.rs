use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Tensor};
use diffclip_attention::{Attention, AttentionConfig, AttentionMaps, AttnMask};

use crate::mlp::{Activation, Mlp};

/// Configuration of one pre-norm transformer block.
#[derive(Debug, Clone)]
pub struct ResidualBlockConfig {
    pub attention: AttentionConfig,
    pub mlp_hidden: usize,
    pub activation: Activation,
    pub ln_eps: f64,
    pub mlp_dropout: f64,
}

/// Pre-norm block: `x + attn(norm1(x))`, then `x + mlp(norm2(x))`.
#[derive(Module, Debug)]
pub struct ResidualBlock {
    pub norm1: LayerNorm,
    pub attn: Attention,
    pub norm2: LayerNorm,
    pub mlp: Mlp,
}

/// Intermediate values of a block, for parity tests and inspection.
#[derive(Debug, Clone)]
pub struct BlockTrace {
    pub attn_in: Tensor<3>,
    pub attn_out: Tensor<3>,
}

impl ResidualBlockConfig {
    pub fn init(&self, device: &Device) -> Result<ResidualBlock, diffclip_attention::AttentionError> {
        let width = self.attention.d_model;
        let ln = || LayerNormConfig::new(width).with_epsilon(self.ln_eps).init(device);
        Ok(ResidualBlock {
            norm1: ln(),
            attn: self.attention.init(device)?,
            norm2: ln(),
            mlp: Mlp::new(width, self.mlp_hidden, self.activation, self.mlp_dropout, device),
        })
    }
}

impl ResidualBlock {
    pub fn forward(&self, x: Tensor<3>, mask: Option<AttnMask>) -> Tensor<3> {
        let x = x.clone() + self.attn.forward(self.norm1.forward(x), mask);
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
