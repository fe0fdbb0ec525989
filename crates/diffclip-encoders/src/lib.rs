//! Transformer encoders for CLIP-family models: one configurable [`VisionTransformer`]
//! (timm layout as DiffCLIP uses, or the OpenAI/open_clip layout) and the CLIP
//! [`TextTransformer`]. Every layer picks standard or differential attention.
//!
//! ```no_run
//! use burn::tensor::{Device, Tensor, Distribution};
//! use diffclip_encoders::VisionConfig;
//!
//! # fn run(device: Device) {
//! let vit = VisionConfig::timm(32, 8, 64, 2, 4).init(&device).unwrap();
//! let images = Tensor::<4>::random([2, 3, 32, 32], Distribution::Default, &device);
//! let out = vit.forward(images, true);
//! assert_eq!(out.pooled.dims(), [2, 64]);
//! # }
//! ```

#![warn(missing_docs)]

mod block;
mod error;
mod layers;
mod mlp;
mod norm;
mod text;
mod tower;
mod vision;

pub use block::{BlockTrace, ResidualBlock, ResidualBlockConfig};
pub use error::EncoderError;
pub use layers::LayerAttention;
pub use mlp::{Activation, Mlp};
pub use norm::LayerNorm;
pub use text::{TextConfig, TextOutput, TextTransformer};
pub use vision::{VisionConfig, VisionOutput, VisionTransformer};

pub use diffclip_attention as attention;
