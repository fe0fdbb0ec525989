//! Configuration of the synthetic dataset.

use serde::{Deserialize, Serialize};

use crate::datasets::DataError;
use crate::preprocess::Preset;

use super::captions::TEMPLATE_COUNT;

/// Size, seed and difficulty of the synthetic image–caption dataset. Unknown JSON fields are
/// errors; omitted ones take the defaults below.
///
/// ```
/// use diffclip_data::synthetic::SyntheticConfig;
/// let c: SyntheticConfig = serde_json::from_str(r#"{"image_size": 32, "seed": 3}"#).unwrap();
/// assert_eq!((c.image_size, c.train_size, c.test_size, c.captions_per_image), (32, 20_000, 1_000, 3));
/// assert!(c.check().is_ok());
/// assert!(SyntheticConfig { captions_per_image: 0, ..c }.check().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Image side in pixels (8..=1024). Default 64.
    pub image_size: u32,
    /// Number of training samples. Default 20,000.
    pub train_size: usize,
    /// Number of test samples. Default 1,000.
    pub test_size: usize,
    /// Dataset seed: the same seed gives bit-identical images and captions. Default 0.
    pub seed: u64,
    /// Captions per image (distinct paraphrase templates, 1..=8). Default 3.
    pub captions_per_image: usize,
    /// Most shapes per image (1..=4); the count is uniform in `1..=max_objects`. Default 3.
    pub max_objects: usize,
    /// Range `[min, max]` of clutter items (blobs and lines) per image. Default `[3, 10]`.
    pub distractors: [usize; 2],
    /// Preprocessing preset: gives the normalisation (and, for `slip-train`, random crops).
    /// Default `square-imagenet` (ImageNet mean/std, as DiffCLIP).
    pub preset: Preset,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            image_size: 64,
            train_size: 20_000,
            test_size: 1_000,
            seed: 0,
            captions_per_image: 3,
            max_objects: 3,
            distractors: [3, 10],
            preset: Preset::SquareImagenet,
        }
    }
}

impl SyntheticConfig {
    /// Checks the ranges.
    pub fn check(&self) -> Result<(), DataError> {
        let bad = |m: String| Err(DataError::Config(format!("synthetic: {m}")));
        if !(8..=1024).contains(&self.image_size) {
            return bad(format!(
                "image_size must be in 8..=1024, got {}",
                self.image_size
            ));
        }
        if !(1..=TEMPLATE_COUNT).contains(&self.captions_per_image) {
            return bad(format!(
                "captions_per_image must be in 1..={TEMPLATE_COUNT}, got {}",
                self.captions_per_image
            ));
        }
        if !(1..=4).contains(&self.max_objects) {
            return bad(format!(
                "max_objects must be in 1..=4, got {}",
                self.max_objects
            ));
        }
        if self.distractors[0] > self.distractors[1] || self.distractors[1] > 64 {
            return bad(format!(
                "distractors must be [min, max] with min <= max <= 64, got {:?}",
                self.distractors
            ));
        }
        Ok(())
    }
}
