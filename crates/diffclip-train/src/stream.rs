//! WebDataset shards as a [`ClipStream`] for [`Trainer::fit_stream`](crate::Trainer::fit_stream).

use std::collections::VecDeque;

use diffclip_data::datasets::{ShuffleBuffer, WdsSample, WebDataset};
use diffclip_data::{ClipItem, DataError};

use crate::TrainError;
use crate::feed::{ClipStream, SampleStream, par_map};

/// A [`WebDataset`] as a restartable training stream: the epoch's shard order and shuffle
/// buffer are exactly those of [`WebDataset::items`] (seeded by the loader's seed and the
/// epoch); the first `skip` entries of a resumed epoch are read from the tar files but not
/// decoded; images are decoded `chunk` at a time on `workers` threads.
///
/// ```no_run
/// use diffclip_data::datasets::{ImageLoader, WebDataset, WebDatasetConfig};
/// use diffclip_data::preprocess::Pipeline;
/// use diffclip_train::WdsStream;
/// let loader = ImageLoader::new(Pipeline::from_name("slip-train", 224)?).with_seed(0);
/// let wds = WebDataset::new("cc3m/{00000..00331}.tar", WebDatasetConfig::default(), loader)?;
/// let stream = WdsStream::new(wds).with_workers(8);
/// // trainer.fit_stream(&stream, &batcher, None)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct WdsStream {
    wds: WebDataset,
    workers: usize,
    chunk: usize,
}

impl WdsStream {
    /// The stream of `wds`, decoding on one thread per core, 64 samples at a time.
    pub fn new(wds: WebDataset) -> Self {
        Self {
            wds,
            workers: 0,
            chunk: 64,
        }
    }

    /// Decoding threads (0: one per core).
    pub fn with_workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Samples decoded together (read-ahead).
    pub fn with_chunk(mut self, chunk: usize) -> Self {
        self.chunk = chunk.max(1);
        self
    }

    /// The dataset.
    pub fn dataset(&self) -> &WebDataset {
        &self.wds
    }
}

impl ClipStream for WdsStream {
    fn open(&self, epoch: u64, skip: usize) -> Result<SampleStream<'_>, TrainError> {
        self.wds.set_epoch(epoch);
        let loader = self.wds.loader().clone();
        let raw = self.wds.raw_samples();
        // The same order as `WebDataset::items` (its shuffle-buffer seed).
        let shuffled: Box<dyn Iterator<Item = Result<WdsSample, DataError>> + Send> =
            match self.wds.config().shuffle_buffer {
                0 | 1 => Box::new(raw),
                n => Box::new(ShuffleBuffer::new(
                    raw,
                    n,
                    loader.epoch_seed() ^ 0x5348_5546,
                )),
            };
        let mut entries = shuffled.enumerate().skip(skip);
        let mut ready: VecDeque<Result<ClipItem, DataError>> = VecDeque::new();
        let (workers, chunk) = (self.workers, self.chunk);
        Ok(Box::new(std::iter::from_fn(move || {
            if ready.is_empty() {
                let batch: Vec<(usize, Result<WdsSample, DataError>)> =
                    entries.by_ref().take(chunk).collect();
                let decoded = par_map(&batch, workers, |(pos, sample)| {
                    let sample = sample
                        .as_ref()
                        .map_err(|e| DataError::Config(e.to_string()))?;
                    let image = loader.load_bytes(&sample.image, sample.image_name(), *pos)?;
                    Ok(ClipItem {
                        image,
                        size: loader.image_size(),
                        caption: sample.caption.clone(),
                        label: None,
                    })
                });
                for r in &decoded {
                    if let Err(e) = r {
                        loader.skip_counter().record(e);
                    }
                }
                ready.extend(decoded);
            }
            ready.pop_front()
        })))
    }
}
