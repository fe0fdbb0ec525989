//! What to do with bad samples, and counting the ones skipped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::batch::ClipItem;
use super::error::DataError;
use super::traits::ClipDataset;

/// How a dataset treats a sample it cannot read (corrupt image, broken tar member, bad row).
///
/// ```
/// use diffclip_data::datasets::BadSamplePolicy;
/// assert_eq!(BadSamplePolicy::default(), BadSamplePolicy::Skip);
/// let p: BadSamplePolicy = serde_json::from_str("\"fail\"").unwrap();
/// assert_eq!(p, BadSamplePolicy::Fail);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BadSamplePolicy {
    /// Skip it, count it in the [`SkipCounter`] and go on. Map-style datasets return the next
    /// good sample in index order instead (so an epoch keeps its length); streaming datasets
    /// leave it out; bad CSV rows / JSON entries are dropped when the file is read.
    #[default]
    Skip,
    /// Return the error (a Burn data loader then yields `Err` for that batch).
    Fail,
}

#[derive(Debug, Default)]
struct Inner {
    skipped: AtomicUsize,
    last_error: Mutex<Option<String>>,
}

/// A shared count of skipped samples with the last error's message. Cheap to clone; clones share
/// the count, so the caller can keep one while a data loader's workers use the dataset.
///
/// ```
/// use diffclip_data::datasets::{DataError, SkipCounter};
/// let counter = SkipCounter::new();
/// let seen_by_worker = counter.clone();
/// seen_by_worker.record(&DataError::Config("bad row".into()));
/// assert_eq!(counter.skipped(), 1);
/// assert!(counter.last_error().unwrap().contains("bad row"));
/// counter.reset();
/// assert_eq!(counter.skipped(), 0);
/// ```
#[derive(Debug, Clone, Default)]
pub struct SkipCounter {
    inner: Arc<Inner>,
}

impl SkipCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one skipped sample and remembers its error.
    pub fn record(&self, error: &DataError) {
        self.inner.skipped.fetch_add(1, Ordering::Relaxed);
        self.set_last_error(error);
    }

    /// Remembers an error without counting it as skipped (used by [`BadSamplePolicy::Fail`]).
    ///
    /// ```
    /// # use diffclip_data::datasets::{DataError, SkipCounter};
    /// let c = SkipCounter::new();
    /// c.set_last_error(&DataError::Config("x".into()));
    /// assert_eq!(c.skipped(), 0);
    /// assert!(c.last_error().is_some());
    /// ```
    pub fn set_last_error(&self, error: &DataError) {
        if let Ok(mut last) = self.inner.last_error.lock() {
            *last = Some(error.to_string());
        }
    }

    /// How many samples were skipped since creation or the last [`reset`](Self::reset).
    pub fn skipped(&self) -> usize {
        self.inner.skipped.load(Ordering::Relaxed)
    }

    /// The message of the last error seen, if any.
    pub fn last_error(&self) -> Option<String> {
        self.inner.last_error.lock().ok().and_then(|l| l.clone())
    }

    /// Sets the count to zero and forgets the last error (e.g. at the start of an epoch).
    pub fn reset(&self) {
        self.inner.skipped.store(0, Ordering::Relaxed);
        if let Ok(mut last) = self.inner.last_error.lock() {
            *last = None;
        }
    }
}

/// How many following indices a map-style dataset tries before giving up on a request.
pub const MAX_SUBSTITUTES: usize = 64;

/// Applies `policy` to a fallible random-access read: with [`BadSamplePolicy::Skip`] a bad
/// `index` is counted and the next indices (wrapping, at most [`MAX_SUBSTITUTES`]) are tried;
/// with [`BadSamplePolicy::Fail`] the error is remembered and returned.
///
/// Only the failure of `index` itself is counted, so over one epoch the count is the number of
/// bad samples.
///
/// ```
/// use diffclip_data::datasets::{get_with_policy, BadSamplePolicy, DataError, SkipCounter};
/// let read = |i: usize| if i == 1 { Err(DataError::Config("bad".into())) } else { Ok(i * 10) };
/// let c = SkipCounter::new();
/// assert_eq!(get_with_policy(3, 1, BadSamplePolicy::Skip, &c, read).unwrap(), 20);
/// assert_eq!(c.skipped(), 1);
/// assert!(get_with_policy(3, 1, BadSamplePolicy::Fail, &c, read).is_err());
/// ```
pub fn get_with_policy<T>(
    len: usize,
    index: usize,
    policy: BadSamplePolicy,
    counter: &SkipCounter,
    read: impl Fn(usize) -> Result<T, DataError>,
) -> Result<T, DataError> {
    if index >= len {
        return Err(DataError::OutOfRange { index, len });
    }
    let first = match read(index) {
        Ok(item) => return Ok(item),
        Err(e) => e,
    };
    match policy {
        BadSamplePolicy::Fail => {
            counter.set_last_error(&first);
            Err(first)
        }
        BadSamplePolicy::Skip => {
            counter.record(&first);
            let mut last = first.to_string();
            let tries = MAX_SUBSTITUTES.min(len);
            for step in 1..tries {
                match read((index + step) % len) {
                    Ok(item) => return Ok(item),
                    Err(e) => last = e.to_string(),
                }
            }
            Err(DataError::TooManyBad {
                index,
                tried: tries,
                last,
            })
        }
    }
}

/// A map-style dataset whose caller applies the bad-sample policy: [`get_item`] returns a bad
/// sample's error instead of substituting the next good one, after recording it in the
/// [`SkipCounter`] (counted under [`BadSamplePolicy::Skip`], only remembered under
/// [`BadSamplePolicy::Fail`]), as the [`WebDataset`](super::WebDataset) stream does.
///
/// For callers that skip and count bad samples themselves, like `diffclip-train`'s trainer
/// (which counts every `Err` it gets as a skipped sample): without it a CSV or image-folder
/// dataset under `Skip` hands over substitutes and the caller's count stays at zero.
///
/// [`get_item`]: ClipDataset::get_item
///
/// ```
/// use diffclip_data::datasets::{BadSamplePolicy, ClipDataset, CsvConfig, CsvDataset, ImageLoader, ReportBadSamples};
/// use diffclip_data::preprocess::Pipeline;
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::write(dir.path().join("t.csv"), "filepath,title\nnone.png,gone\n").unwrap();
/// let ds = CsvDataset::open(dir.path().join("t.csv"), &CsvConfig::default(),
///                           ImageLoader::new(Pipeline::from_name("openai", 8).unwrap())).unwrap();
/// let counter = ds.skip_counter().clone();
/// let ds = ReportBadSamples::new(ds, BadSamplePolicy::Skip, counter.clone());
/// assert!(ds.get_item(0).unwrap_err().to_string().contains("none.png"));
/// assert_eq!(counter.skipped(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct ReportBadSamples<D> {
    inner: D,
    policy: BadSamplePolicy,
    counter: SkipCounter,
}

impl<D: ClipDataset> ReportBadSamples<D> {
    /// Wraps `inner`; bad samples are recorded in `counter` according to `policy` (pass the
    /// dataset's own, e.g. `ds.loader().policy()` and `ds.skip_counter().clone()`).
    pub fn new(inner: D, policy: BadSamplePolicy, counter: SkipCounter) -> Self {
        Self {
            inner,
            policy,
            counter,
        }
    }

    /// The wrapped dataset.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The counter bad samples are recorded in.
    pub fn skip_counter(&self) -> &SkipCounter {
        &self.counter
    }
}

impl<D: ClipDataset> ClipDataset for ReportBadSamples<D> {
    fn num_items(&self) -> usize {
        self.inner.num_items()
    }

    fn image_size(&self) -> usize {
        self.inner.image_size()
    }

    fn try_get(&self, index: usize) -> Result<ClipItem, DataError> {
        self.inner.try_get(index)
    }

    fn get_item(&self, index: usize) -> Result<ClipItem, DataError> {
        let len = self.inner.num_items();
        if index >= len {
            return Err(DataError::OutOfRange { index, len });
        }
        self.inner
            .try_get(index)
            .inspect_err(|e| match self.policy {
                BadSamplePolicy::Skip => self.counter.record(e),
                BadSamplePolicy::Fail => self.counter.set_last_error(e),
            })
    }

    fn set_epoch(&self, epoch: u64) {
        self.inner.set_epoch(epoch);
    }
}
