//! The CLIP / DiffCLIP dual-encoder model, its presets, and checkpoint import/export.
//!
//! ```no_run
//! use burn::tensor::{Device, Int, Tensor, Distribution};
//! use diffclip_clip::{Clip, ClipConfig, load_checkpoint};
//!
//! # fn run(device: Device) -> Result<(), Box<dyn std::error::Error>> {
//! let config = ClipConfig::diffclip_vit_b16();
//! let mut model = config.init(&device)?;
//! load_checkpoint(&mut model, "checkpoint_best.pt")?; // authors', open_clip, HF or our own
//! let images = Tensor::<4>::random([1, 3, 224, 224], Distribution::Default, &device);
//! let image_embed = model.encode_image(images); // [1, 512], unnormalised
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod budget;
pub mod checksum;
pub mod checkpoint;
mod config;
pub mod convert;
mod error;
pub mod files;
mod input;
pub mod json;
pub mod loss;
mod model;
mod precision;

pub use checkpoint::{CheckpointError, CheckpointFormat, load_checkpoint, save_burnpack, save_safetensors};
pub use budget::{DEFAULT_MAX_PARAMS, MAX_PARAMS_ENV, ModelEstimate, ModelLimits, Workload, parse_count};
pub use config::ClipConfig;
pub use error::ClipError;
pub use input::{InputError, check_finite_rows};
pub use config::PRESETS;
pub use model::{Clip, ClipOutput, logits_from_embeddings, normalize};
pub use precision::Precision;

pub use diffclip_attention as attention;
pub use diffclip_encoders as encoders;
