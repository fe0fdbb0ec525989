//! What the vision and text towers share: checking their fields before anything is allocated,
//! and the per-layer block configuration.

use diffclip_attention::{AttentionConfig, AttentionPath, MatmulPrecision};

use crate::block::ResidualBlockConfig;
use crate::{Activation, EncoderError, LayerAttention};

/// The fields both towers have, borrowed from a [`VisionConfig`](crate::VisionConfig) or
/// [`TextConfig`](crate::TextConfig).
pub(crate) struct TowerSpec<'a> {
    pub width: usize,
    pub layers: usize,
    pub heads: usize,
    pub mlp_ratio: f64,
    pub activation: Activation,
    pub ln_eps: f64,
    pub qkv_bias: bool,
    pub attention: &'a LayerAttention,
    pub attn_dropout: f64,
    pub dropout: f64,
    pub path: AttentionPath,
    pub causal: bool,
}

/// The [`TowerSpec`] of a vision or text config (both have these fields under these names).
macro_rules! tower_spec {
    ($config:expr, causal: $causal:expr) => {
        $crate::tower::TowerSpec {
            width: $config.width,
            layers: $config.layers,
            heads: $config.heads,
            mlp_ratio: $config.mlp_ratio,
            activation: $config.activation,
            ln_eps: $config.ln_eps,
            qkv_bias: $config.qkv_bias,
            attention: &$config.attention,
            attn_dropout: $config.attn_dropout,
            dropout: $config.dropout,
            path: $config.path,
            causal: $causal,
        }
    };
}
pub(crate) use tower_spec;

/// Runs `f`, a tower's forward, with the tower's `products` for the CPU's linear layers and
/// attention products; `F32` leaves the calling thread's setting.
pub(crate) fn in_products<R>(products: MatmulPrecision, f: impl FnOnce() -> R) -> R {
    match products {
        MatmulPrecision::F32 => f(),
        p => diffclip_attention::with_matmul_precision(p, f),
    }
}

/// `value` must be finite and > 0.
pub(crate) fn check_positive(what: &'static str, value: f64) -> Result<(), EncoderError> {
    if value.is_finite() && value > 0.0 { Ok(()) } else { Err(EncoderError::NotPositive { what, value }) }
}

/// Every size must be at least 1.
pub(crate) fn check_nonzero(sizes: &[(&'static str, usize)]) -> Result<(), EncoderError> {
    match sizes.iter().find(|(_, v)| *v == 0) {
        Some(&(what, _)) => Err(EncoderError::Zero { what }),
        None => Ok(()),
    }
}

impl TowerSpec<'_> {
    /// Hidden width of the MLP, `floor(width * mlp_ratio)` as timm and open_clip compute it.
    pub fn mlp_hidden(&self) -> usize {
        (self.width as f64 * self.mlp_ratio) as usize
    }

    /// Checks sizes, ratios, eps, dropout and every distinct attention configuration without
    /// looping over `layers` (which may come from an untrusted file).
    pub fn check(&self) -> Result<(), EncoderError> {
        check_nonzero(&[("width", self.width), ("layers", self.layers), ("heads", self.heads)])?;
        check_positive("mlp_ratio", self.mlp_ratio)?;
        check_positive("ln_eps", self.ln_eps)?;
        if self.mlp_hidden() == 0 {
            return Err(EncoderError::Zero { what: "mlp hidden width (width * mlp_ratio)" });
        }
        self.attention.check(self.layers)?;
        let distinct = self.attention.per_layer.as_ref().map_or(1, Vec::len);
        // A depth schedule is finite at every depth; a constant is the same at every depth.
        for l in 0..distinct {
            self.block(l)?.attention.check().map_err(|source| EncoderError::Attention { layer: l, source })?;
        }
        Ok(())
    }

    /// Configuration of block `l`.
    pub fn block(&self, l: usize) -> Result<ResidualBlockConfig, EncoderError> {
        Ok(ResidualBlockConfig {
            attention: AttentionConfig {
                d_model: self.width,
                num_heads: self.heads,
                kind: self.attention.kind_of(l)?,
                qkv_bias: self.qkv_bias,
                lambda_init: self.attention.lambda_init.value(l),
                causal: self.causal,
                attn_dropout: self.attn_dropout,
                proj_dropout: self.dropout,
                path: self.path,
                ..AttentionConfig::default()
            },
            mlp_hidden: self.mlp_hidden(),
            activation: self.activation,
            ln_eps: self.ln_eps,
            mlp_dropout: self.dropout,
        })
    }

    /// Builds every block.
    pub fn blocks(&self, device: &burn::tensor::Device) -> Result<Vec<crate::ResidualBlock>, EncoderError> {
        (0..self.layers)
            .map(|l| self.block(l)?.init(device).map_err(|source| EncoderError::Attention { layer: l, source }))
            .collect()
    }
}
