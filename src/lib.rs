//! # diffclip
//!
//! CLIP and DiffCLIP (CLIP with differential attention, Hammoud & Ghanem 2025) on Burn:
//! build any size, load the checkpoints people have (the DiffCLIP authors', open_clip/OpenAI,
//! HuggingFace), compute embeddings, train, evaluate.
//!
//! This crate re-exports the workspace's six library crates:
//!
//! - [`attention`] (`diffclip-attention`): differential and standard multi-head attention, and
//!   the GELU/QuickGELU activations, with optional CPU kernels for Burn's flex backend.
//! - [`encoders`] (`diffclip-encoders`): the Vision Transformer (timm or OpenAI layout) and the
//!   CLIP text transformer, each layer with standard or differential attention.
//! - [`clip`] (`diffclip-clip`): the dual-encoder model, its presets and size checks, the
//!   contrastive losses (CLIP's InfoNCE, SigLIP's sigmoid loss), checkpoint import/export, and
//!   the conversion of a standard-attention CLIP into a DiffCLIP.
//! - [`data`] (`diffclip-data`): the CLIP tokenizer, image preprocessing, datasets (CSV/TSV,
//!   WebDataset, image folders, retrieval sets), the synthetic dataset, and batching.
//! - [`train`] (`diffclip-train`): the training loop, AdamW, learning-rate schedules, metrics
//!   logs, resumable checkpoints and data-parallel training.
//! - [`eval`] (`diffclip-eval`): zero-shot classification, retrieval, linear probe and
//!   few-shot, robustness, MMVP-style pairs, attention maps, and an embedding cache.
//!
//! It also holds [`LoadedModel`] (a model with its preprocessing and tokenizer), [`pretrained`]
//! (released models by name), [`backend`] (choosing a compiled-in Burn backend by name) and [`allocator`]
//! (process memory settings for CPU throughput), [`http`] (a small HTTP/1.1 server for the
//! programs that serve a model), [`serve`] (the endpoints they serve: embeddings and searches
//! of an index), and the command-line programs in `examples/`.
//!
//! A released model (from the Hugging Face cache; nothing is downloaded), with the
//! preprocessing and tokenizer it was evaluated with ([`LoadedModel`]):
//!
//! ```no_run
//! use diffclip::pretrained::Pretrained;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let device = diffclip::backend::device("flex")?;
//! let loaded = Pretrained::named("openai-vit-b16")?.load(&device)?;
//! let texts = loaded.encoder()?.encode_texts(&["a photo of a dog"])?; // [1, 512]
//! let image = loaded.pipeline()?.process_file(std::path::Path::new("dog.jpg"), 0)?; // [3 * 224 * 224]
//! # Ok(()) }
//! ```
//!
//! Any model and checkpoint, by hand:
//!
//! ```no_run
//! use diffclip::burn::tensor::{Device, Tensor, Distribution};
//! use diffclip::clip::{ClipConfig, load_checkpoint};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let device = Device::flex();
//! let mut model = ClipConfig::diffclip_vit_b16().init_lazy(&device)?;
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
pub mod cli;
pub mod http;
mod loaded;
pub mod pretrained;
pub mod serve;

pub use loaded::{LoadError, LoadedModel, layout_preprocess};
