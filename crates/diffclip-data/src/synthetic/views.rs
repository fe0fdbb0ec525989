//! The training, classification and retrieval views of a [`SyntheticDataset`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::datasets::{
    ClassificationDataset, ClipDataset, ClipItem, DataError, RetrievalDataset, impl_burn_dataset,
};

use super::SyntheticDataset;
use super::labels::ClassTask;

fn check(index: usize, len: usize) -> Result<(), DataError> {
    if index < len {
        Ok(())
    } else {
        Err(DataError::OutOfRange { index, len })
    }
}

/// Contrastive training pairs: item `i` is image `i` with one of its captions, picked
/// deterministically from `(seed, epoch, i)`, and `label: Some(shape class)`. The epoch is
/// shared by clones (set it through the `Arc` a data loader holds).
///
/// ```
/// use diffclip_data::datasets::ClipDataset;
/// use diffclip_data::synthetic::{SyntheticConfig, SyntheticDataset, Split};
/// let ds = SyntheticDataset::new(SyntheticConfig::default(), Split::Train).unwrap();
/// let view = ds.contrastive();
/// view.set_epoch(2);
/// let item = view.get_item(7).unwrap();
/// assert_eq!(item.caption, ds.caption_for_epoch(7, 2));
/// assert_eq!(item.image, ds.image_chw(7, 2));
/// ```
#[derive(Debug, Clone)]
pub struct ContrastiveView {
    dataset: SyntheticDataset,
    epoch: Arc<AtomicU64>,
}

impl ContrastiveView {
    /// The view of `dataset`, at epoch 0.
    pub fn new(dataset: SyntheticDataset) -> Self {
        Self {
            dataset,
            epoch: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The dataset.
    pub fn dataset(&self) -> &SyntheticDataset {
        &self.dataset
    }

    /// Sets the epoch (all clones see it).
    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::Relaxed);
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.dataset.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.dataset.is_empty()
    }
}

impl ClipDataset for ContrastiveView {
    fn set_epoch(&self, epoch: u64) {
        ContrastiveView::set_epoch(self, epoch);
    }

    fn num_items(&self) -> usize {
        self.dataset.len()
    }

    fn image_size(&self) -> usize {
        self.dataset.image_size()
    }

    fn try_get(&self, index: usize) -> Result<ClipItem, DataError> {
        check(index, self.dataset.len())?;
        let epoch = self.epoch();
        let mut sample = self.dataset.sample(index);
        let caption = sample
            .captions
            .swap_remove(self.dataset.caption_pick(index, epoch));
        Ok(ClipItem {
            image: self.dataset.normalise(&sample.image, index, epoch),
            size: sample.size,
            caption,
            label: Some(sample.labels.shape),
        })
    }
}

impl_burn_dataset!(ContrastiveView);

/// Zero-shot classification: item `i` is image `i` with `label: Some(task class)` and the first
/// template filled with its class name as caption.
///
/// ```
/// use diffclip_data::datasets::{ClassificationDataset, ClipDataset};
/// use diffclip_data::synthetic::{ClassTask, SyntheticConfig, SyntheticDataset, Split};
/// let ds = SyntheticDataset::new(SyntheticConfig::default(), Split::Test).unwrap();
/// let colors = ds.classification(ClassTask::Color);
/// let item = colors.get_item(3).unwrap();
/// assert_eq!(item.label, Some(ds.labels(3).color));
/// assert_eq!(colors.label(3).unwrap(), ds.labels(3).color);
/// ```
#[derive(Debug, Clone)]
pub struct ClassificationView {
    dataset: SyntheticDataset,
    task: ClassTask,
    class_names: Vec<String>,
    templates: Vec<String>,
}

impl ClassificationView {
    /// The `task` view of `dataset`.
    pub fn new(dataset: SyntheticDataset, task: ClassTask) -> Self {
        let class_names = task.class_names(dataset.config().max_objects);
        Self {
            dataset,
            task,
            class_names,
            templates: task.templates(),
        }
    }

    /// The task.
    pub fn task(&self) -> ClassTask {
        self.task
    }

    /// The dataset.
    pub fn dataset(&self) -> &SyntheticDataset {
        &self.dataset
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.dataset.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.dataset.is_empty()
    }
}

impl ClipDataset for ClassificationView {
    fn num_items(&self) -> usize {
        self.dataset.len()
    }

    fn image_size(&self) -> usize {
        self.dataset.image_size()
    }

    fn try_get(&self, index: usize) -> Result<ClipItem, DataError> {
        check(index, self.dataset.len())?;
        let sample = self.dataset.sample(index);
        let label = sample.labels.get(self.task);
        Ok(ClipItem {
            image: self.dataset.pipeline().normalize(&sample.image),
            size: sample.size,
            caption: crate::metadata::fill_template(&self.templates[0], &self.class_names[label]),
            label: Some(label),
        })
    }
}

impl ClassificationDataset for ClassificationView {
    fn class_names(&self) -> &[String] {
        &self.class_names
    }

    fn templates(&self) -> &[String] {
        &self.templates
    }

    fn label(&self, index: usize) -> Result<usize, DataError> {
        check(index, self.dataset.len())?;
        Ok(self.dataset.labels(index).get(self.task))
    }
}

impl_burn_dataset!(ClassificationView);

/// Retrieval over the split: every image with all its `captions_per_image` captions
/// (captions are generated when the view is made; images on demand). As a [`ClipDataset`],
/// item `i` is image `i` with its first caption.
///
/// ```
/// use diffclip_data::datasets::RetrievalDataset;
/// use diffclip_data::synthetic::{SyntheticConfig, SyntheticDataset, Split};
/// let ds = SyntheticDataset::new(SyntheticConfig { test_size: 4, ..Default::default() }, Split::Test).unwrap();
/// let r = ds.retrieval();
/// assert_eq!(r.caption_to_image(), [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]);
/// assert_eq!(&r.captions()[3..6], ds.captions(1).as_slice());
/// ```
#[derive(Debug, Clone)]
pub struct SyntheticRetrieval {
    dataset: SyntheticDataset,
    captions: Vec<String>,
    caption_to_image: Vec<usize>,
}

impl SyntheticRetrieval {
    /// The retrieval view of `dataset`.
    pub fn new(dataset: SyntheticDataset) -> Self {
        let mut captions = Vec::new();
        let mut caption_to_image = Vec::new();
        for i in 0..dataset.len() {
            let c = dataset.captions(i);
            caption_to_image.extend(std::iter::repeat_n(i, c.len()));
            captions.extend(c);
        }
        Self {
            dataset,
            captions,
            caption_to_image,
        }
    }

    /// The dataset.
    pub fn dataset(&self) -> &SyntheticDataset {
        &self.dataset
    }
}

impl RetrievalDataset for SyntheticRetrieval {
    fn num_images(&self) -> usize {
        self.dataset.len()
    }

    fn image_size(&self) -> usize {
        self.dataset.image_size()
    }

    fn load_image(&self, index: usize) -> Result<Vec<f32>, DataError> {
        check(index, self.dataset.len())?;
        Ok(self.dataset.image_eval(index))
    }

    fn captions(&self) -> &[String] {
        &self.captions
    }

    fn caption_to_image(&self) -> &[usize] {
        &self.caption_to_image
    }
}

impl ClipDataset for SyntheticRetrieval {
    fn num_items(&self) -> usize {
        self.dataset.len()
    }

    fn image_size(&self) -> usize {
        self.dataset.image_size()
    }

    fn try_get(&self, index: usize) -> Result<ClipItem, DataError> {
        let image = RetrievalDataset::load_image(self, index)?;
        let caption = self.captions[index * self.dataset.config().captions_per_image].clone();
        Ok(ClipItem {
            image,
            size: self.dataset.image_size(),
            caption,
            label: None,
        })
    }
}

impl_burn_dataset!(SyntheticRetrieval);
