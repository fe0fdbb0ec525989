//! Data for CLIP / DiffCLIP training and evaluation: everything between files on disk and the
//! `[B, 3, S, S]` image and `[B, context]` token tensors a model takes.
//!
//! - [`tokenizer`]: the OpenAI CLIP byte-level BPE tokenizer (vocabulary embedded), with the
//!   open_clip and DiffCLIP-authors truncation rules ([`ClipTokenizer`], [`Truncation`]); the
//!   [`TextTokenizer`] trait, and with the `hf-tokenizer` feature any HuggingFace
//!   `tokenizer.json` (`tokenizer::HfTokenizer`).
//! - [`preprocess`]: image decoding and the CLIP preprocessing presets, reproducing Pillow +
//!   torchvision ([`Pipeline`], [`Preset`]).
//! - [`datasets`]: image–caption CSV/TSV files, WebDataset tar shards, image-folder
//!   classification sets and Karpathy-style retrieval sets, the bad-sample policy, and
//!   [`ClipBatcher`], which turns [`ClipItem`]s into a [`ClipBatch`] on a device.
//! - [`synthetic`]: a seeded, in-memory image–caption dataset of coloured shapes, with
//!   contrastive, classification and retrieval views (for tests, examples and smoke training).
//! - [`metadata`]: the `zeroshot_metadata.json` parser (class names, prompt templates, ImageNet
//!   subsets) and prompt-template filling.
//! - [`files`]: opening input files safely (regular files only, bounded reads).
//!
//! ```
//! use burn::tensor::Device;
//! use diffclip_data::datasets::ClipDataset;
//! use diffclip_data::synthetic::Split;
//! use diffclip_data::{ClipBatcher, ClipTokenizer, SyntheticConfig, SyntheticDataset};
//!
//! // Captions become 77 token ids: start-of-text, BPE tokens, end-of-text, zero padding.
//! let ids = ClipTokenizer::new().tokenize("a photo of a cat");
//! assert_eq!(ids.len(), 77);
//!
//! // Items hold preprocessed `[3, S, S]` images and their captions; the batcher stacks them.
//! let config = SyntheticConfig { image_size: 32, ..Default::default() };
//! let train = SyntheticDataset::new(config, Split::Train).unwrap().contrastive();
//! let items = (0..4).map(|i| train.get_item(i)).collect::<Result<Vec<_>, _>>().unwrap();
//! let batch = ClipBatcher::default().try_batch(items, &Device::flex()).unwrap();
//! assert_eq!(batch.images.dims(), [4, 3, 32, 32]);
//! assert_eq!(batch.texts.dims(), [4, 77]);
//! ```

#![warn(missing_docs)]

pub mod files;

pub mod metadata;

pub mod preprocess;
pub use preprocess::{Pipeline, PreprocessConfig, PreprocessError, Preset};

pub mod tokenizer;
pub use tokenizer::{ClipTokenizer, TextTokenizer, TokenizerConfig, TokenizerError, Truncation};

pub mod datasets;
pub use datasets::{BadSamplePolicy, ClipBatch, ClipBatcher, ClipItem, DataError};

pub mod synthetic;
pub use synthetic::{SyntheticConfig, SyntheticDataset};
