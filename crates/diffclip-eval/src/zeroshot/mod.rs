//! Zero-shot classification: the prompt-ensemble classifier, its class probabilities and its
//! metrics.

mod classifier;
mod metrics;
mod predict;

pub use classifier::{class_prompts, classifier_from_text_embeddings};
pub use predict::ZeroShotClassifier;
pub(crate) use predict::temperature;
pub use metrics::{
    ZeroShotMetrics, mean_per_class_recall, zero_shot_metrics, zero_shot_metrics_from_embeddings,
};
