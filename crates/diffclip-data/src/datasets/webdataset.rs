//! WebDataset tar shards as img2dataset writes them, streamed without unpacking.

use std::path::PathBuf;

use burn::tensor::Device;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::batch::{ClipBatch, ClipBatcher, ClipItem};
use super::brace::expand_braces;
use super::error::DataError;
use super::loader::ImageLoader;
use super::shard::{MemberSpec, RawSamples, WdsSample};
use super::shuffle::ShuffleBuffer;
use super::skip::{BadSamplePolicy, SkipCounter};

/// Which members make a sample, and shuffling.
///
/// ```
/// use diffclip_data::datasets::WebDatasetConfig;
/// let c: WebDatasetConfig = serde_json::from_str(r#"{"shuffle_buffer": 1000}"#).unwrap();
/// assert_eq!(c.caption_extension, "txt");
/// assert_eq!(c.image_extensions, ["jpg", "jpeg", "png", "webp"]);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebDatasetConfig {
    /// Image member extensions, in order of preference.
    pub image_extensions: Vec<String>,
    /// Caption member extension.
    pub caption_extension: String,
    /// Shuffle the shard order every epoch (seeded by the loader's seed and epoch).
    pub shuffle_shards: bool,
    /// Shuffle buffer size in samples (0 = stream order).
    pub shuffle_buffer: usize,
    /// Samples the reader thread may read ahead.
    pub prefetch: usize,
    /// A sample without an image member is a bad sample; when false it comes with no image
    /// bytes (for jobs that only read captions).
    pub require_image: bool,
    /// A sample without a caption member is a bad sample; when false its caption is empty
    /// (for jobs that only read images).
    pub require_caption: bool,
}

impl Default for WebDatasetConfig {
    fn default() -> Self {
        Self {
            image_extensions: ["jpg", "jpeg", "png", "webp"].map(String::from).to_vec(),
            caption_extension: "txt".into(),
            shuffle_shards: false,
            shuffle_buffer: 0,
            prefetch: 256,
            require_image: true,
            require_caption: true,
        }
    }
}

/// A streaming image–caption dataset over tar shards (`KEY.jpg|png|webp` + `KEY.txt`
/// [+ `KEY.json`]). Shards are read in order (or shuffled per epoch) on a background thread;
/// nothing is unpacked to disk. Bad samples (undecodable image, missing caption, broken member
/// or shard) follow the loader's [`BadSamplePolicy`].
///
/// ```no_run
/// use burn::tensor::Device;
/// use diffclip_data::datasets::{ClipBatcher, ImageLoader, WebDataset, WebDatasetConfig};
/// use diffclip_data::preprocess::Pipeline;
/// let loader = ImageLoader::new(Pipeline::from_name("slip-train", 224)?).with_seed(0);
/// let config = WebDatasetConfig { shuffle_shards: true, shuffle_buffer: 2000, ..Default::default() };
/// let wds = WebDataset::new("cc3m/{00000..00331}.tar", config, loader)?;
/// for epoch in 0..2 {
///     wds.set_epoch(epoch);
///     for batch in wds.batches(ClipBatcher::default(), 256, Device::flex()) {
///         let batch = batch?; // images [256, 3, 224, 224], texts [256, 77]
///     }
///     println!("skipped {} bad samples", wds.skip_counter().skipped());
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct WebDataset {
    shards: Vec<PathBuf>,
    config: WebDatasetConfig,
    loader: ImageLoader,
}

impl WebDataset {
    /// Shards from a brace pattern (`data/{00000..00099}.tar`, see [`expand_braces`]).
    /// Shards are opened only when read: a missing one is an error (or a skip) then.
    pub fn new(
        pattern: &str,
        config: WebDatasetConfig,
        loader: ImageLoader,
    ) -> Result<Self, DataError> {
        let shards = expand_braces(pattern)?
            .into_iter()
            .map(PathBuf::from)
            .collect();
        Self::from_shards(shards, config, loader)
    }

    /// An explicit shard list; a shard listed twice is refused (its samples would be read
    /// twice an epoch).
    pub fn from_shards(
        shards: Vec<PathBuf>,
        config: WebDatasetConfig,
        loader: ImageLoader,
    ) -> Result<Self, DataError> {
        if shards.is_empty() {
            return Err(DataError::Config("no shards".into()));
        }
        if let Some((first, again)) = crate::files::first_repeat(&shards) {
            return Err(DataError::Config(format!(
                "shard {} is listed twice (shards {} and {} of {}): its samples would be read twice an epoch",
                shards[first].display(), first + 1, again + 1, shards.len()
            )));
        }
        if config.image_extensions.is_empty() {
            return Err(DataError::Config("no image extensions".into()));
        }
        Ok(Self {
            shards,
            config,
            loader,
        })
    }

    /// The shards, in pattern order.
    pub fn shards(&self) -> &[PathBuf] {
        &self.shards
    }

    /// The configuration.
    pub fn config(&self) -> &WebDatasetConfig {
        &self.config
    }

    /// The image loader (pipeline, seed, epoch, policy, skip counter).
    pub fn loader(&self) -> &ImageLoader {
        &self.loader
    }

    /// Skipped samples so far.
    pub fn skip_counter(&self) -> &SkipCounter {
        self.loader.skip_counter()
    }

    /// Sets the epoch (shard order, shuffle buffer and random crops depend on it).
    pub fn set_epoch(&self, epoch: u64) {
        self.loader.set_epoch(epoch);
    }

    /// The shard order of the current epoch.
    pub fn epoch_shards(&self) -> Vec<PathBuf> {
        let mut shards = self.shards.clone();
        if self.config.shuffle_shards {
            shards.shuffle(&mut StdRng::seed_from_u64(self.loader.epoch_seed()));
        }
        shards
    }

    /// The undecoded samples of this epoch's shards in stream order (no shuffle buffer, no
    /// policy): errors come out as `Err`.
    pub fn raw_samples(&self) -> RawSamples {
        Self::samples_of(self.epoch_shards(), &self.config)
    }

    /// The undecoded samples of `shards` in order, read on a background thread, for callers
    /// that decode themselves (no loader, no shuffling); errors come out as `Err`.
    pub fn samples_of(shards: Vec<PathBuf>, config: &WebDatasetConfig) -> RawSamples {
        let spec = MemberSpec {
            image_exts: config.image_extensions.iter().map(|e| e.to_ascii_lowercase()).collect(),
            caption_ext: config.caption_extension.to_ascii_lowercase(),
            require_image: config.require_image,
            require_caption: config.require_caption,
        };
        RawSamples::spawn(shards, spec, config.prefetch)
    }

    fn shuffled(&self) -> Box<dyn Iterator<Item = Result<WdsSample, DataError>> + Send> {
        let raw = self.raw_samples();
        match self.config.shuffle_buffer {
            0 | 1 => Box::new(raw),
            n => Box::new(ShuffleBuffer::new(
                raw,
                n,
                self.loader.epoch_seed() ^ 0x5348_5546,
            )),
        }
    }

    fn decode(&self, position: usize, sample: &WdsSample) -> Result<ClipItem, DataError> {
        let image = self
            .loader
            .load_bytes(&sample.image, sample.image_name(), position)?;
        Ok(ClipItem {
            image,
            size: self.loader.image_size(),
            caption: sample.caption.clone(),
            label: None,
        })
    }

    /// Decoded items of the current epoch, one at a time. Under [`BadSamplePolicy::Skip`] bad
    /// samples are counted and left out (no `Err` is yielded); under
    /// [`BadSamplePolicy::Fail`] the first error is yielded and the stream ends.
    pub fn items(&self) -> impl Iterator<Item = Result<ClipItem, DataError>> + '_ {
        let mut stream = self.shuffled().enumerate();
        let mut failed = false;
        std::iter::from_fn(move || {
            while !failed {
                let (pos, sample) = stream.next()?;
                match sample.and_then(|s| self.decode(pos, &s)) {
                    Ok(item) => return Some(Ok(item)),
                    Err(e) => match self.loader.policy() {
                        BadSamplePolicy::Skip => self.loader.skip_counter().record(&e),
                        BadSamplePolicy::Fail => {
                            failed = true;
                            self.loader.skip_counter().set_last_error(&e);
                            return Some(Err(e));
                        }
                    },
                }
            }
            None
        })
    }

    /// Batches of the current epoch on `device`, images decoded in parallel (rayon). Every
    /// batch has `batch_size` items except possibly the last; the policy is applied as in
    /// [`items`](Self::items).
    pub fn batches(
        &self,
        batcher: ClipBatcher,
        batch_size: usize,
        device: Device,
    ) -> impl Iterator<Item = Result<ClipBatch, DataError>> + '_ {
        let batch_size = batch_size.max(1);
        let mut stream = self.shuffled().enumerate();
        let mut done = false;
        std::iter::from_fn(move || {
            let mut items = Vec::with_capacity(batch_size);
            while !done && items.len() < batch_size {
                let chunk: Vec<_> = stream.by_ref().take(batch_size - items.len()).collect();
                if chunk.is_empty() {
                    done = true;
                    break;
                }
                let decoded: Vec<_> = chunk
                    .into_par_iter()
                    .map(|(pos, s)| s.and_then(|s| self.decode(pos, &s)))
                    .collect();
                for result in decoded {
                    match result {
                        Ok(item) => items.push(item),
                        Err(e) if self.loader.policy() == BadSamplePolicy::Skip => {
                            self.loader.skip_counter().record(&e)
                        }
                        Err(e) => {
                            done = true;
                            self.loader.skip_counter().set_last_error(&e);
                            return Some(Err(e));
                        }
                    }
                }
            }
            (!items.is_empty()).then(|| batcher.try_batch(items, &device))
        })
    }
}
