//! One attention type through which an encoder layer picks standard or differential attention.

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{check_dims, check_dropout};
use crate::mask::AttnMask;
use crate::{AttentionError, AttentionMaps, AttentionPath, DiffAttention, StandardAttention};

/// Standard or differential attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AttentionKind {
    /// Scaled dot-product multi-head attention.
    Standard,
    /// Two softmax maps per head pair, the second subtracted with a learned λ.
    #[default]
    Differential,
}

/// Configuration of one attention layer of either kind: the only attention config, used to
/// build a [`DiffAttention`], a [`StandardAttention`] or the [`Attention`] enum. Serde form with
/// unknown fields rejected; omitted fields take [`AttentionConfig::default`]'s values.
///
/// ```
/// use burn::tensor::Device;
/// use diffclip_attention::{AttentionConfig, AttentionKind};
/// let device = Device::flex();
/// let cfg = AttentionConfig { kind: AttentionKind::Standard, causal: true, ..AttentionConfig::new(64, 4) };
/// let layer = cfg.init(&device).unwrap();
/// assert!(layer.lambda_full().is_none());
/// let diff = AttentionConfig { lambda_init: 0.5, ..AttentionConfig::new(64, 4) }.init_differential(&device).unwrap();
/// assert_eq!(diff.head_dim, 16);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttentionConfig {
    /// Model width `D`.
    pub d_model: usize,
    /// Baseline head count `h`; a differential layer has `h / 2` head pairs, so `h` must be even.
    pub num_heads: usize,
    /// Standard or differential.
    pub kind: AttentionKind,
    /// Biases on the q/k/v projections (the output projection always has one).
    pub qkv_bias: bool,
    /// `lambda_init` of a differential layer (see [`LambdaInit`](crate::LambdaInit)).
    pub lambda_init: f64,
    /// Standard deviation of the λ vectors' normal initialisation (differential only).
    pub lambda_std: f64,
    /// Mask keys after the query (text tower).
    pub causal: bool,
    /// Dropout on the attention maps (training only; forces the reference path).
    pub attn_dropout: f64,
    /// Dropout after the output projection (training only).
    pub proj_dropout: f64,
    /// Fused (default) or reference computation.
    pub path: AttentionPath,
}

impl Default for AttentionConfig {
    /// ViT-B/16's differential attention: width 768, 12 heads, biased, `lambda_init` 0.8,
    /// λ vectors drawn with std 0.1, not causal, no dropout, fused.
    fn default() -> Self {
        Self {
            d_model: 768,
            num_heads: 12,
            kind: AttentionKind::Differential,
            qkv_bias: true,
            lambda_init: 0.8,
            lambda_std: 0.1,
            causal: false,
            attn_dropout: 0.0,
            proj_dropout: 0.0,
            path: AttentionPath::Fused,
        }
    }
}

impl burn::config::Config for AttentionConfig {}

impl AttentionConfig {
    /// The [default](Self::default) layer with width `d_model` and `num_heads` heads.
    pub fn new(d_model: usize, num_heads: usize) -> Self {
        Self { d_model, num_heads, ..Self::default() }
    }

    /// Check the shape, dropout, `lambda_init` and `lambda_std` without building anything;
    /// returns the head size.
    ///
    /// ```
    /// use diffclip_attention::{AttentionConfig, AttentionError};
    /// assert_eq!(AttentionConfig::new(64, 4).check(), Ok(16));
    /// assert!(matches!(AttentionConfig::new(64, 3).check(), Err(AttentionError::WidthNotDivisible { .. })));
    /// let nan = AttentionConfig { lambda_std: f64::NAN, ..AttentionConfig::new(64, 4) };
    /// assert!(matches!(nan.check(), Err(AttentionError::LambdaStd { .. })));
    /// ```
    pub fn check(&self) -> Result<usize, AttentionError> {
        let head_dim = check_dims(self.d_model, self.num_heads)?;
        if self.kind == AttentionKind::Differential && !self.num_heads.is_multiple_of(2) {
            return Err(AttentionError::OddHeads { num_heads: self.num_heads });
        }
        check_dropout(self.attn_dropout)?;
        check_dropout(self.proj_dropout)?;
        if !self.lambda_init.is_finite() {
            return Err(AttentionError::LambdaInit { value: self.lambda_init });
        }
        // The normal sampler panics on a non-finite spread.
        if !(self.lambda_std.is_finite() && self.lambda_std >= 0.0) {
            return Err(AttentionError::LambdaStd { value: self.lambda_std });
        }
        Ok(head_dim)
    }

    /// Build the layer of the configured kind.
    pub fn init(&self, device: &Device) -> Result<Attention, AttentionError> {
        Ok(match self.kind {
            AttentionKind::Differential => Attention::Differential(self.init_differential(device)?),
            AttentionKind::Standard => Attention::Standard(self.init_standard(device)?),
        })
    }

    /// Build a differential layer (whatever `kind` says).
    pub fn init_differential(&self, device: &Device) -> Result<DiffAttention, AttentionError> {
        DiffAttention::new(&Self { kind: AttentionKind::Differential, ..self.clone() }, device)
    }

    /// Build a standard layer (whatever `kind` says).
    pub fn init_standard(&self, device: &Device) -> Result<StandardAttention, AttentionError> {
        StandardAttention::new(&Self { kind: AttentionKind::Standard, ..self.clone() }, device)
    }
}

/// An attention layer of either kind. Checkpoint keys omit the variant name.
///
/// ```
/// use burn::tensor::{Device, Distribution, Tensor};
/// use diffclip_attention::{AttentionConfig, AttentionKind};
/// let device = Device::flex();
/// let x = Tensor::<3>::random([1, 6, 32], Distribution::Default, &device);
/// for kind in [AttentionKind::Standard, AttentionKind::Differential] {
///     let layer = AttentionConfig { kind, ..AttentionConfig::new(32, 4) }.init(&device).unwrap();
///     assert_eq!(layer.kind(), kind);
///     assert_eq!(layer.forward(x.clone(), None).dims(), [1, 6, 32]);
///     assert_eq!(layer.lambda_full().is_some(), kind == AttentionKind::Differential);
/// }
/// ```
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)] // a handful per model; boxing would change the module tree
pub enum Attention {
    /// Standard multi-head attention.
    Standard(StandardAttention),
    /// Differential attention.
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

    /// The output `[B, 1, D]` at each item's position `at[b]` (`[B, 1]`) alone (see
    /// [`DiffAttention::forward_at`]).
    pub fn forward_at(&self, x: Tensor<3>, at: Tensor<2, Int>) -> Tensor<3> {
        match self {
            Self::Standard(a) => a.forward_at(x, at),
            Self::Differential(a) => a.forward_at(x, at),
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
