//! Datasets: image–caption CSV/TSV files, WebDataset tar shards, image-folder classification
//! sets, Karpathy-style retrieval sets, and the batcher that turns their [`ClipItem`]s into
//! [`ClipBatch`]es for Burn. The built-in synthetic dataset is in [`crate::synthetic`].
//!
//! Every map-style dataset implements [`ClipDataset`] (errors as [`DataError`]) and Burn's
//! `Dataset<ClipItem>`, so it works with `DataLoaderBuilder::new(ClipBatcher::default())`; the
//! streaming [`WebDataset`] yields items or batches directly. Images go through an
//! [`ImageLoader`] (a preprocessing [`Pipeline`](crate::preprocess::Pipeline), a seed, the epoch
//! and a [`BadSamplePolicy`]); bad samples are skipped and counted in a [`SkipCounter`] by default.
//!
//! ```
//! use burn::data::dataloader::DataLoaderBuilder;
//! use burn::tensor::Device;
//! use diffclip_data::datasets::ClipBatcher;
//! use diffclip_data::synthetic::{SyntheticConfig, SyntheticDataset, Split};
//!
//! let config = SyntheticConfig { image_size: 32, train_size: 64, ..Default::default() };
//! let train = SyntheticDataset::new(config, Split::Train).unwrap().contrastive();
//! let loader = DataLoaderBuilder::new(ClipBatcher::default())
//!     .batch_size(16)
//!     .shuffle(0)
//!     .set_device(Device::flex())
//!     .build(train);
//! let batch = loader.iter().next().unwrap().unwrap();
//! assert_eq!(batch.images.dims(), [16, 3, 32, 32]);
//! assert_eq!(batch.texts.dims(), [16, 77]);
//! ```

#![warn(missing_docs)]

mod batch;
mod brace;
mod class_names;
mod csv;
mod error;
mod folder;
mod loader;
mod quote_check;
mod retrieval;
mod shard;
mod shuffle;
mod skip;
mod spec;
mod subset;
mod table;
mod traits;
mod webdataset;

pub use self::csv::{CsvConfig, CsvDataset, CsvRow};
pub use crate::preprocess::IMAGE_EXTENSIONS;
pub use batch::{ClipBatch, ClipBatcher, ClipItem};
pub use brace::{
    MAX_BRACE_DEPTH, MAX_BRACE_GROUPS, MAX_EXPANSION, MAX_EXPANSION_BYTES, expand_braces,
};
pub use error::DataError;
pub use class_names::{names_for_folders, read_class_names};
pub use folder::{ImageFolder, ImageFolderDataset, list_image_files};
pub use loader::ImageLoader;
pub use retrieval::{KarpathyConfig, KarpathyDataset};
pub use shard::{MAX_MEMBER_BYTES, RawSamples, WdsSample};
pub use shuffle::ShuffleBuffer;
pub use skip::{BadSamplePolicy, MAX_SUBSTITUTES, ReportBadSamples, SkipCounter, get_with_policy};
pub use spec::DataSpec;
pub use subset::LabelSubset;
pub use table::{CsvRecord, CsvTable};
pub(crate) use traits::impl_burn_dataset;
pub use traits::{ClassificationDataset, ClipDataset, RetrievalDataset};
pub use webdataset::{WebDataset, WebDatasetConfig};
