//! A built-in synthetic image–caption dataset, generated in memory from a seed.
//!
//! Each image shows one to three coloured shapes (6 shapes x 8 colours; the salient one large,
//! the others small) on a cluttered background (noise, gradient, stripes, checkerboard or
//! blotches, plus small blobs and lines). Captions describe it compositionally (colour, shape,
//! size, position, count, relations, background) with several paraphrase templates per image.
//! Sample `i` is generated from its own RNG seeded by `(seed, split, i)`: random access, order
//! independent, and bit-identical for the same seed. Train and test use disjoint seed streams.
//!
//! Views: [`SyntheticDataset::contrastive`] (one caption per sample per epoch, for training),
//! [`SyntheticDataset::classification`] (zero-shot: shape, colour or count of the salient
//! object), [`SyntheticDataset::retrieval`] (images x all their captions).
//!
//! ```
//! use diffclip_data::synthetic::{SyntheticConfig, SyntheticDataset, Split};
//! let ds = SyntheticDataset::new(SyntheticConfig::default(), Split::Train).unwrap();
//! let s = ds.sample(42);
//! assert_eq!(s.image.len(), 64 * 64 * 3);
//! assert_eq!(s.captions.len(), 3);
//! assert_eq!(s, ds.sample(42)); // deterministic
//! println!("{}", s.captions[0]); // e.g. "a large red circle and a small blue square"
//! ```

#![warn(missing_docs)]

mod captions;
mod config;
mod labels;
mod render;
mod scene;
mod views;
mod vocab;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::datasets::DataError;
use crate::preprocess::{DecodedImage, Geometry, Pipeline, Pixels, item_seed};

pub use captions::{TEMPLATE_COUNT, caption, position_phrase, relation};
pub use config::SyntheticConfig;
pub use labels::{ClassTask, SyntheticLabels};
pub use render::render;
pub use scene::{Background, Distractor, Object, Scene};
pub use views::{ClassificationView, ContrastiveView, SyntheticRetrieval};
pub use vocab::{BackgroundKind, Color, Shape, SizeClass};

/// Which part of the dataset.
///
/// ```
/// use diffclip_data::synthetic::Split;
/// assert_ne!(Split::Train.salt(), Split::Test.salt());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// `train_size` samples.
    Train,
    /// `test_size` samples.
    Test,
}

impl Split {
    /// The constant mixed into every sample seed of the split.
    pub fn salt(self) -> u64 {
        match self {
            Split::Train => 0x7472_6169_6e00_0001,
            Split::Test => 0x7465_7374_0000_0002,
        }
    }
}

/// One generated sample.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticSample {
    /// Its index in the split.
    pub index: usize,
    /// Row-major HWC RGB bytes, `size x size`.
    pub image: Vec<u8>,
    /// Image side.
    pub size: usize,
    /// `captions_per_image` captions, from distinct templates.
    pub captions: Vec<String>,
    /// Class labels.
    pub labels: SyntheticLabels,
    /// The scene the image and captions were made from.
    pub scene: Scene,
}

/// One split of the synthetic dataset. Cheap to clone; `Send + Sync`.
///
/// ```
/// use diffclip_data::synthetic::{SyntheticConfig, SyntheticDataset, Split};
/// let config = SyntheticConfig { image_size: 32, ..Default::default() };
/// let test = SyntheticDataset::new(config, Split::Test).unwrap();
/// assert_eq!((test.len(), test.image_size()), (1_000, 32));
/// let x = test.image_chw(0, 0); // normalised [3, 32, 32]
/// assert_eq!(x.len(), 3 * 32 * 32);
/// ```
#[derive(Debug, Clone)]
pub struct SyntheticDataset {
    config: SyntheticConfig,
    split: Split,
    pipeline: Pipeline,
}

impl SyntheticDataset {
    /// The `split` of the dataset described by `config` (validated).
    pub fn new(config: SyntheticConfig, split: Split) -> Result<Self, DataError> {
        config.check()?;
        let pipeline = Pipeline::from_preset(config.preset, config.image_size)?;
        Ok(Self {
            config,
            split,
            pipeline,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SyntheticConfig {
        &self.config
    }

    /// The split.
    pub fn split(&self) -> Split {
        self.split
    }

    /// Number of samples in the split.
    pub fn len(&self) -> usize {
        match self.split {
            Split::Train => self.config.train_size,
            Split::Test => self.config.test_size,
        }
    }

    /// Whether the split is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Image side in pixels.
    pub fn image_size(&self) -> usize {
        self.config.image_size as usize
    }

    /// The normalising pipeline (from `config.preset`).
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The seed of sample `index` (every draw of the sample comes from an RNG seeded with it).
    /// Any index works, also past [`len`](Self::len).
    ///
    /// ```
    /// # use diffclip_data::synthetic::{SyntheticConfig, SyntheticDataset, Split};
    /// let train = SyntheticDataset::new(SyntheticConfig::default(), Split::Train).unwrap();
    /// let test = SyntheticDataset::new(SyntheticConfig::default(), Split::Test).unwrap();
    /// assert_ne!(train.sample_seed(0), test.sample_seed(0));
    /// ```
    pub fn sample_seed(&self, index: usize) -> u64 {
        item_seed(item_seed(self.config.seed, self.split.salt()), index as u64)
    }

    fn rng(&self, index: usize) -> StdRng {
        StdRng::seed_from_u64(self.sample_seed(index))
    }

    /// The scene of sample `index`.
    pub fn scene(&self, index: usize) -> Scene {
        Scene::sample(&mut self.rng(index), &self.config)
    }

    fn scene_and_captions(&self, index: usize) -> (Scene, Vec<String>) {
        let mut rng = self.rng(index);
        let scene = Scene::sample(&mut rng, &self.config);
        let mut templates: Vec<usize> = (0..TEMPLATE_COUNT).collect();
        templates.shuffle(&mut rng);
        let captions = templates
            .iter()
            .take(self.config.captions_per_image)
            .map(|&t| caption(&scene, t))
            .collect();
        (scene, captions)
    }

    /// The captions of sample `index` (no rendering).
    ///
    /// ```
    /// # use diffclip_data::synthetic::{SyntheticConfig, SyntheticDataset, Split};
    /// let ds = SyntheticDataset::new(SyntheticConfig::default(), Split::Train).unwrap();
    /// let main = ds.scene(3).objects[0].clone();
    /// assert!(ds.captions(3).iter().all(|c| c.contains(main.shape.name())));
    /// ```
    pub fn captions(&self, index: usize) -> Vec<String> {
        self.scene_and_captions(index).1
    }

    /// The labels of sample `index` (no rendering).
    pub fn labels(&self, index: usize) -> SyntheticLabels {
        SyntheticLabels::of(&self.scene(index))
    }

    /// The caption used for sample `index` in `epoch`: one of its captions, picked from
    /// `(seed, epoch, index)`.
    ///
    /// ```
    /// # use diffclip_data::synthetic::{SyntheticConfig, SyntheticDataset, Split};
    /// let ds = SyntheticDataset::new(SyntheticConfig::default(), Split::Train).unwrap();
    /// assert!(ds.captions(5).contains(&ds.caption_for_epoch(5, 3)));
    /// ```
    pub fn caption_for_epoch(&self, index: usize, epoch: u64) -> String {
        let mut captions = self.captions(index);
        captions.swap_remove(self.caption_pick(index, epoch))
    }

    /// Which of the captions [`caption_for_epoch`](Self::caption_for_epoch) picks.
    pub(crate) fn caption_pick(&self, index: usize, epoch: u64) -> usize {
        let pick = item_seed(
            item_seed(self.config.seed ^ 0xCA97_1045, epoch),
            index as u64,
        );
        (pick % self.config.captions_per_image as u64) as usize
    }

    /// The image of sample `index`: HWC RGB bytes.
    ///
    /// ```
    /// # use diffclip_data::synthetic::{SyntheticConfig, SyntheticDataset, Split};
    /// let ds = SyntheticDataset::new(SyntheticConfig::default(), Split::Train).unwrap();
    /// assert_eq!(ds.image_rgb(0), ds.sample(0).image);
    /// ```
    pub fn image_rgb(&self, index: usize) -> Vec<u8> {
        render(&self.scene(index), self.image_size())
    }

    /// The image of sample `index` through the preset's pipeline: `[3, S, S]` CHW f32. Only a
    /// random-geometry preset (`slip-train`) uses `epoch`, to vary the crop per epoch.
    pub fn image_chw(&self, index: usize, epoch: u64) -> Vec<f32> {
        self.normalise(&self.image_rgb(index), index, epoch)
    }

    /// The image of sample `index` normalised by the preset's mean/std, never cropped (what the
    /// classification and retrieval views use).
    ///
    /// ```
    /// # use diffclip_data::synthetic::{SyntheticConfig, SyntheticDataset, Split};
    /// let ds = SyntheticDataset::new(SyntheticConfig::default(), Split::Test).unwrap();
    /// assert_eq!(ds.image_eval(0), ds.image_chw(0, 5)); // square-imagenet: no crop
    /// ```
    pub fn image_eval(&self, index: usize) -> Vec<f32> {
        self.pipeline.normalize(&self.image_rgb(index))
    }

    pub(crate) fn normalise(&self, rgb: &[u8], index: usize, epoch: u64) -> Vec<f32> {
        match self.pipeline.config().geometry {
            Geometry::RandomResizedCrop { .. } => {
                let s = self.config.image_size;
                match DecodedImage::new(s, s, Pixels::Rgb(rgb.to_vec())) {
                    Ok(img) => {
                        let seed = item_seed(item_seed(self.sample_seed(index), epoch), 0x0C50_u64);
                        self.pipeline.process_image(&img, seed)
                    }
                    Err(_) => self.pipeline.normalize(rgb),
                }
            }
            _ => self.pipeline.normalize(rgb),
        }
    }

    /// Sample `index`: image, captions, labels and scene.
    pub fn sample(&self, index: usize) -> SyntheticSample {
        let (scene, captions) = self.scene_and_captions(index);
        let image = render(&scene, self.image_size());
        SyntheticSample {
            index,
            image,
            size: self.image_size(),
            captions,
            labels: SyntheticLabels::of(&scene),
            scene,
        }
    }

    /// The training view: one caption per sample per epoch (see [`ContrastiveView`]).
    pub fn contrastive(&self) -> ContrastiveView {
        ContrastiveView::new(self.clone())
    }

    /// The zero-shot classification view of `task` (see [`ClassificationView`]).
    pub fn classification(&self, task: ClassTask) -> ClassificationView {
        ClassificationView::new(self.clone(), task)
    }

    /// The retrieval view: every image with all its captions (see [`SyntheticRetrieval`]).
    pub fn retrieval(&self) -> SyntheticRetrieval {
        SyntheticRetrieval::new(self.clone())
    }
}

impl burn::data::dataset::Dataset<SyntheticSample> for SyntheticDataset {
    fn get(&self, index: usize) -> Result<SyntheticSample, burn::data::dataset::DatasetError> {
        if index >= self.len() {
            return Err(DataError::OutOfRange {
                index,
                len: self.len(),
            }
            .into_dataset_error());
        }
        Ok(self.sample(index))
    }

    fn len(&self) -> usize {
        SyntheticDataset::len(self)
    }
}
