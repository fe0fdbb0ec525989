//! Zero-shot classification: the prompt-ensemble classifier and its metrics.

mod classifier;
mod metrics;

pub use classifier::{class_prompts, classifier_from_text_embeddings};
pub use metrics::{
    ZeroShotMetrics, mean_per_class_recall, zero_shot_metrics, zero_shot_metrics_from_embeddings,
};
