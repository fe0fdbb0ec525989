//! One attention type through which an encoder layer picks standard or differential attention.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{check_dims, check_dropout};
use crate::mask::AttnMask;
use crate::{
    AttentionError, AttentionMaps, AttentionPath, DiffAttention, DiffAttentionConfig,
    StandardAttention, StandardAttentionConfig,
};

/// Standard or differential attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AttentionKind {
    Standard,
    #[default]
    Differential,
}

/// Everything an encoder needs to build one attention layer of either kind.
///
/// ```no_run
/// # use burn::tensor::Device;
/// use diffclip_attention::{AttentionConfig, AttentionKind};
/// # fn f(device: Device) {
/// let cfg = AttentionConfig { kind: AttentionKind::Standard, ..AttentionConfig::new(64, 4) };
/// let layer = cfg.init(&device).unwrap();
/// assert!(layer.lambda_full().is_none());
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttentionConfig {
    pub d_model: usize,
    pub num_heads: usize,
    pub kind: AttentionKind,
    pub qkv_bias: bool,
    pub lambda_init: f64,
    pub causal: bool,
    pub attn_dropout: f64,
    pub proj_dropout: f64,
    pub path: AttentionPath,
}

impl AttentionConfig {
    /// Differential, biased, non-causal, no dropout, fused, `lambda_init` 0.8.
    pub fn new(d_model: usize, num_heads: usize) -> Self {
        Self {
            d_model,
            num_heads,
            kind: AttentionKind::Differential,
            qkv_bias: true,
            lambda_init: 0.8,
            causal: false,
            attn_dropout: 0.0,
            proj_dropout: 0.0,
            path: AttentionPath::Fused,
        }
    }

    /// Check the shape, dropout and `lambda_init` without building anything; returns the head size.
    ///
    /// ```
    /// use diffclip_attention::{AttentionConfig, AttentionError};
    /// assert_eq!(AttentionConfig::new(64, 4).check(), Ok(16));
    /// assert!(matches!(AttentionConfig::new(64, 3).check(), Err(AttentionError::WidthNotDivisible { .. })));
    /// ```
    pub fn check(&self) -> Result<usize, AttentionError> {
        let head_dim = check_dims(self.d_model, self.num_heads)?;
        if self.kind == AttentionKind::Differential && self.num_heads % 2 != 0 {
            return Err(AttentionError::OddHeads { num_heads: self.num_heads });
        }
        check_dropout(self.attn_dropout)?;
        check_dropout(self.proj_dropout)?;
        if !self.lambda_init.is_finite() {
            return Err(AttentionError::LambdaInit { value: self.lambda_init });
        }
        Ok(head_dim)
    }

    /// Build the layer of the configured kind.
    pub fn init(&self, device: &Device) -> Result<Attention, AttentionError> {
        self.check()?;
        Ok(match self.kind {
            AttentionKind::Differential => Attention::Differential(
                DiffAttentionConfig::new(self.d_model, self.num_heads)
                    .with_qkv_bias(self.qkv_bias)
                    .with_lambda_init(self.lambda_init)
                    .with_causal(self.causal)
                    .with_attn_dropout(self.attn_dropout)
                    .with_proj_dropout(self.proj_dropout)
                    .with_path(self.path)
                    .init(device)?,
            ),
            AttentionKind::Standard => Attention::Standard(
                StandardAttentionConfig::new(self.d_model, self.num_heads)
                    .with_qkv_bias(self.qkv_bias)
                    .with_causal(self.causal)
                    .with_attn_dropout(self.attn_dropout)
                    .with_proj_dropout(self.proj_dropout)
                    .with_path(self.path)
                    .init(device)?,
            ),
        })
    }
}

/// An attention layer of either kind. Checkpoint keys omit the variant name.
#[derive(Module, Debug)]
pub enum Attention {
    Standard(StandardAttention),
    Differential(DiffAttention),
}

impl Attention {
    /// Attention of `x [B, N, D]` with an optional extra mask (`true` = masked out).
    pub fn forward(&self, x: Tensor<3>, mask: Option<AttnMask>) -> Tensor<3> {
        match self {
            Self::Standard(a) => a.forward(x, mask),
            Self::Differential(a) => a.forward(x, mask),
        }
    }

    /// Reference path returning the attention maps.
    pub fn forward_with_maps(&self, x: Tensor<3>, mask: Option<AttnMask>) -> (Tensor<3>, AttentionMaps) {
        match self {
            Self::Standard(a) => a.forward_with_maps(x, mask),
            Self::Differential(a) => a.forward_with_maps(x, mask),
        }
    }

    /// `lambda_full` for differential layers, `None` for standard ones.
    pub fn lambda_full(&self) -> Option<Tensor<1>> {
        match self {
            Self::Standard(_) => None,
            Self::Differential(a) => Some(a.lambda_full()),
        }
    }

    /// Which kind this layer is.
    pub fn kind(&self) -> AttentionKind {
        match self {
            Self::Standard(_) => AttentionKind::Standard,
            Self::Differential(_) => AttentionKind::Differential,
        }
    }
}
