//! # diffclip
//!
//! CLIP and DiffCLIP (CLIP with differential attention, Hammoud & Ghanem 2025) on Burn:
//! build any size, load the checkpoints people have (the DiffCLIP authors', open_clip/OpenAI,
//! HuggingFace), get the reference embeddings, train, evaluate, serve.
//!
//! This crate re-exports the workspace's layers:
//! [`attention`] (differential and standard attention), [`encoders`] (ViT and text
//! transformer), [`clip`] (the dual encoder, presets, checkpoints).
//!
//! ```no_run
//! use diffclip::burn::tensor::{Device, Tensor, Distribution};
//! use diffclip::clip::{ClipConfig, load_checkpoint};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let device = Device::flex();
//! let mut model = ClipConfig::diffclip_vit_b16().init(&device)?;
//! load_checkpoint(&mut model, "checkpoint_best.pt")?;
//! let images = Tensor::<4>::random([2, 3, 224, 224], Distribution::Default, &device);
//! let embeddings = model.encode_image(images);
//! # Ok(()) }
//! ```

pub use burn;
pub use diffclip_attention as attention;
pub use diffclip_clip as clip;
pub use diffclip_data as data;
pub use diffclip_encoders as encoders;
pub use diffclip_eval as eval;
pub use diffclip_train as train;

pub mod allocator;
pub mod backend;
