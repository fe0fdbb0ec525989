//! Contrastive training of CLIP / DiffCLIP models on any Burn device.
//!
//! A custom loop rather than Burn's `Learner`: the recipe needs per-parameter weight-decay
//! exclusion, global gradient-norm clipping, accumulation, `logit_scale` clamping, NaN stops
//! and a checkpoint that holds model, optimizer and data position in one atomically written
//! file, which is simpler to get exactly right in ~300 lines than to bend a generic learner to.
//!
//! Random-access datasets train through [`Trainer::fit`]; streaming ones (WebDataset shards, via
//! [`WdsStream`], or any [`ClipStream`]) through [`Trainer::fit_stream`], which resumes by skipping
//! the entries already consumed. [`parallel`] splits each batch over several devices with the
//! features gathered before the loss (`Trainer::parallel`). See `docs/training.md`.
//!
//! ```no_run
//! use burn::tensor::Device;
//! use diffclip_clip::ClipConfig;
//! use diffclip_data::{ClipBatcher, ClipTokenizer, SyntheticConfig, SyntheticDataset};
//! use diffclip_data::synthetic::Split;
//! use diffclip_train::{TrainConfig, Trainer};
//!
//! # fn run(device: Device) -> Result<(), Box<dyn std::error::Error>> {
//! let data = SyntheticDataset::new(SyntheticConfig::default(), Split::Train)?.contrastive();
//! let model = ClipConfig::diffclip_tiny().init(&device.autodiff())?;
//! let config = TrainConfig { steps: 100, batch_size: 64, ..TrainConfig::default() };
//! let mut trainer = Trainer::new(model, ClipConfig::diffclip_tiny(), config, Default::default());
//! let report = trainer.fit(&data, &ClipBatcher::new(ClipTokenizer::new()), None)?;
//! println!("final loss {}", report.final_loss);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

#[cfg(feature = "flex")]
mod adamw_cpu;
mod checkpoint;
mod config;
mod data_print;
mod error;
mod feed;
mod grad_sync;
mod length;
mod log;
mod optim;
mod options;
mod order;
pub mod parallel;
mod schedule;
mod source;
mod stream;
pub mod synthetic;
mod trainer;

pub use checkpoint::{Checkpoint, TrainState, load_training_checkpoint, save_training_checkpoint};
pub use config::{LossKind, LrDecay, MAX_ACCUM_STEPS, MAX_SAMPLES_PER_STEP, TrainConfig};
pub use error::TrainError;
pub use length::RunLength;
pub use log::{MetricsLog, StepRecord};
pub use options::RunOptions;
pub use optim::{AdamW, AdamWConfig, GradBuffer, Moments, parameter_sizes};
pub use order::epoch_order;
pub use schedule::LrSchedule;
pub use parallel::DataParallel;
pub use source::{OpenedSource, SourceOptions, TrainSource};
pub use stream::WdsStream;
pub use feed::{ClipStream, SampleStream};
pub use trainer::{EvalHook, LOSS_SCALE_GROWTH, LrScale, REPLACED_FILES, TrainReport, Trainer, mean_lambda, hold_output, replaced, replaced_run_kept};
