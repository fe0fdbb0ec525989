//! Evaluation of CLIP / DiffCLIP models: zero-shot classification, image–text retrieval,
//! linear probe and few-shot, robustness over ImageNet variants, MMVP-style fine-grained pairs,
//! attention maps, with an on-disk embedding cache.
//!
//! The metric functions are independent of Burn: they take [`Matrix`] (row-major f32), so a
//! training loop can call them on any embeddings.
//!
//! ```
//! use diffclip_eval::{Matrix, retrieval_recall, zero_shot_metrics};
//! let logits = Matrix::new(2, 3, vec![0.1, 0.7, 0.2, 0.5, 0.4, 0.1]).unwrap();
//! assert_eq!(zero_shot_metrics(&logits, &[1, 0]).unwrap().top1, 1.0);
//!
//! let images = Matrix::new(2, 2, vec![1.0, 0.0, 0.0, 1.0]).unwrap();
//! let texts = Matrix::new(2, 2, vec![0.0, 1.0, 1.0, 0.0]).unwrap();
//! let r = retrieval_recall(&images, &texts, &[1, 0], &[1]).unwrap();
//! assert_eq!(r.text_to_image[0].recall, 1.0);
//! ```
//!
//! With a model: [`Evaluator`] runs every task on an [`ImageSource`]: image files, a
//! `diffclip-data` dataset, any loader, or preprocessed images in a tensor
//! ([`ImageSource::from_tensor`]). Features are cached when it is given a cache.

#![warn(missing_docs)]

pub mod ann;
pub mod attention;
pub mod cache;
pub mod compare;
pub mod dataset;
mod encode;
mod error;
pub mod eval_set;
mod evaluator;
pub mod heldout;
mod matrix;
pub mod metadata;
pub mod pairs;
pub mod probe;
mod progress;
pub mod ranking;
pub mod report;
mod retrieval;
pub mod robustness;
pub mod shards;
mod source;
pub mod stats;
pub mod synthetic;
mod zeroshot;

pub use cache::{EmbeddingCache, ModelKey};
pub use encode::{Encoder, SkippingEmbeddings};
pub use error::EvalError;
pub use evaluator::{Evaluator, Labelled, dataset_labels};
pub use matrix::Matrix;
pub use retrieval::{RecallAt, RetrievalMetrics, retrieval_recall};
pub use source::ImageSource;
pub use zeroshot::{
    ZeroShotClassifier, ZeroShotMetrics, class_prompts, classifier_from_text_embeddings,
    mean_per_class_recall, zero_shot_metrics, zero_shot_metrics_from_embeddings,
};
