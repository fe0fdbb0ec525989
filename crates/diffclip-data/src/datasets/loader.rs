//! Loading images through a preprocessing pipeline, with per-epoch seeds and a bad-sample policy.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::preprocess::{Pipeline, item_seed};

use super::error::DataError;
use super::skip::{BadSamplePolicy, SkipCounter, get_with_policy};

/// What every file-backed dataset shares: the [`Pipeline`], a base seed and the current epoch
/// (which drive random crops: item `i` of epoch `e` always gets the same crop), the
/// [`BadSamplePolicy`] and the [`SkipCounter`]. Clones share the epoch and the counter.
///
/// ```
/// use diffclip_data::datasets::{BadSamplePolicy, ImageLoader};
/// use diffclip_data::preprocess::Pipeline;
/// let loader = ImageLoader::new(Pipeline::from_name("slip-train", 32).unwrap())
///     .with_seed(7)
///     .with_policy(BadSamplePolicy::Fail);
/// let s0 = loader.sample_seed(3);
/// loader.set_epoch(1);
/// assert_ne!(loader.sample_seed(3), s0);
/// assert!(loader.load("/no/such.png", 0).unwrap_err().to_string().contains("/no/such.png"));
/// ```
#[derive(Debug, Clone)]
pub struct ImageLoader {
    pipeline: Pipeline,
    seed: u64,
    epoch: Arc<AtomicU64>,
    policy: BadSamplePolicy,
    counter: SkipCounter,
}

impl ImageLoader {
    /// A loader with seed 0, epoch 0, [`BadSamplePolicy::Skip`] and a fresh counter.
    pub fn new(pipeline: Pipeline) -> Self {
        Self {
            pipeline,
            seed: 0,
            epoch: Arc::new(AtomicU64::new(0)),
            policy: BadSamplePolicy::default(),
            counter: SkipCounter::new(),
        }
    }

    /// Sets the base seed of random geometry.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the policy.
    pub fn with_policy(mut self, policy: BadSamplePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Uses `counter` (e.g. one shared by several datasets) instead of its own.
    pub fn with_counter(mut self, counter: SkipCounter) -> Self {
        self.counter = counter;
        self
    }

    /// The pipeline.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Output side `S` of the images (`[3, S, S]`).
    pub fn image_size(&self) -> usize {
        self.pipeline.size()
    }

    /// The policy.
    pub fn policy(&self) -> BadSamplePolicy {
        self.policy
    }

    /// The skip counter (clones share it).
    pub fn skip_counter(&self) -> &SkipCounter {
        &self.counter
    }

    /// Sets the epoch (shared by all clones, so it works through a data loader's `Arc`).
    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::Relaxed);
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// The seed of the current epoch (base seed mixed with the epoch); streaming datasets
    /// shuffle with it.
    pub fn epoch_seed(&self) -> u64 {
        item_seed(self.seed, self.epoch())
    }

    /// The preprocessing seed of item `index` in the current epoch.
    pub fn sample_seed(&self, index: usize) -> u64 {
        item_seed(self.epoch_seed(), index as u64)
    }

    /// Decodes and preprocesses the image file of item `index` into `[3, S, S]` CHW f32.
    pub fn load(&self, path: impl AsRef<Path>, index: usize) -> Result<Vec<f32>, DataError> {
        Ok(self.pipeline.process_file(path, self.sample_seed(index))?)
    }

    /// Decodes and preprocesses in-memory image bytes; `name` labels errors.
    ///
    /// ```
    /// # use diffclip_data::datasets::ImageLoader;
    /// # use diffclip_data::preprocess::Pipeline;
    /// let loader = ImageLoader::new(Pipeline::from_name("openai", 8).unwrap());
    /// let err = loader.load_bytes(b"not an image", "shard.tar:0001.jpg", 0).unwrap_err();
    /// assert!(err.to_string().contains("shard.tar:0001.jpg"));
    /// ```
    pub fn load_bytes(
        &self,
        bytes: &[u8],
        name: impl AsRef<Path>,
        index: usize,
    ) -> Result<Vec<f32>, DataError> {
        Ok(self
            .pipeline
            .process_bytes(bytes, name, self.sample_seed(index))?)
    }

    /// [`get_with_policy`] with this loader's policy and counter.
    pub fn get_with_policy<T>(
        &self,
        len: usize,
        index: usize,
        read: impl Fn(usize) -> Result<T, DataError>,
    ) -> Result<T, DataError> {
        get_with_policy(len, index, self.policy, &self.counter, read)
    }
}
