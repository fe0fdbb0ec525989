//! Differential attention (DiffCLIP / Differential Transformer) and standard multi-head attention
//! for Burn, on any [`Device`](burn::tensor::Device).
//!
//! ```no_run
//! use burn::tensor::{Device, Tensor, Distribution};
//! use diffclip_attention::{DiffAttentionConfig, LambdaInit};
//!
//! # fn run(device: Device) -> Result<(), diffclip_attention::AttentionError> {
//! let attn = DiffAttentionConfig::new(64, 4).init(&device)?;
//! let x = Tensor::<3>::random([2, 17, 64], Distribution::Default, &device);
//! let y = attn.forward(x, None); // [2, 17, 64]
//! println!("lambda = {}", attn.lambda_full().into_scalar::<f32>());
//! # Ok(()) }
//! ```

mod activation;
#[cfg(feature = "flex")]
mod cpu;
mod error;
mod kind;
mod lambda;
mod mask;
mod maps;
mod diff;
mod standard;

pub use activation::{gelu, quick_gelu};
pub use diff::{DiffAttention, DiffAttentionConfig};
pub use error::AttentionError;
pub use kind::{Attention, AttentionConfig, AttentionKind};
pub use lambda::LambdaInit;
pub use maps::AttentionMaps;
pub use mask::{AttnMask, causal_mask};
pub use standard::{StandardAttention, StandardAttentionConfig};

/// Which computation an attention layer uses; both give the same result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AttentionPath {
    /// `burn::tensor::module::attention` (fused/flash kernels where the backend has them).
    #[default]
    Fused,
    /// Materialises the softmax maps; needed for attention dropout and visualisation.
    Reference,
}
