//! The views that training and evaluation code can be generic over.

use super::batch::ClipItem;
use super::error::DataError;

/// A random-access dataset of [`ClipItem`]s that reports errors as [`DataError`].
///
/// Every dataset in this crate implements it and Burn's `Dataset<ClipItem>` (whose `get` is
/// [`get_item`](Self::get_item) with the error boxed).
///
/// ```
/// use diffclip_data::datasets::ClipDataset;
/// use diffclip_data::synthetic::{SyntheticConfig, SyntheticDataset, Split};
/// let test = SyntheticDataset::new(SyntheticConfig::default(), Split::Test).unwrap().contrastive();
/// assert_eq!(test.num_items(), 1_000);
/// assert_eq!(test.get_item(0).unwrap().size, 64);
/// ```
pub trait ClipDataset: Send + Sync {
    /// Number of items.
    fn num_items(&self) -> usize;

    /// Side `S` of the `[3, S, S]` images.
    fn image_size(&self) -> usize;

    /// Item `index`, or the error that made it unreadable (no bad-sample policy applied).
    fn try_get(&self, index: usize) -> Result<ClipItem, DataError>;

    /// Item `index` with the dataset's [`BadSamplePolicy`](super::BadSamplePolicy) applied.
    fn get_item(&self, index: usize) -> Result<ClipItem, DataError> {
        self.try_get(index)
    }

    /// Told by the training loop when a new epoch starts, so per-epoch choices (which caption,
    /// which random crop) follow the epoch; the default ignores it.
    fn set_epoch(&self, _epoch: u64) {}
}

/// A classification set: items carry `label: Some(class)` with `class < class_names().len()`.
///
/// ```
/// use diffclip_data::datasets::{ClassificationDataset, ClipDataset};
/// use diffclip_data::synthetic::{ClassTask, SyntheticConfig, SyntheticDataset, Split};
/// let ds = SyntheticDataset::new(SyntheticConfig::default(), Split::Test).unwrap();
/// let shapes = ds.classification(ClassTask::Shape);
/// assert_eq!(shapes.class_names().len(), 6);
/// assert!(shapes.templates()[0].contains("{c}"));
/// assert!(shapes.get_item(0).unwrap().label.unwrap() < 6);
/// ```
pub trait ClassificationDataset: ClipDataset {
    /// Human-readable class names, by class index.
    fn class_names(&self) -> &[String];

    /// Zero-shot prompt templates; `{c}` stands for the class name (as in
    /// `zeroshot_metadata.json`; filled by [`crate::metadata::fill_template`]).
    fn templates(&self) -> &[String];

    /// The class of item `index` without loading its image.
    fn label(&self, index: usize) -> Result<usize, DataError>;
}

/// A retrieval set: images, each with one or more captions.
///
/// ```
/// use diffclip_data::datasets::RetrievalDataset;
/// use diffclip_data::synthetic::{SyntheticConfig, SyntheticDataset, Split};
/// let ds = SyntheticDataset::new(SyntheticConfig { test_size: 10, ..Default::default() }, Split::Test).unwrap();
/// let r = ds.retrieval();
/// assert_eq!(r.num_images(), 10);
/// assert_eq!(r.captions().len(), 30); // 3 captions per image
/// assert_eq!(r.caption_to_image()[3], 1);
/// ```
pub trait RetrievalDataset: Send + Sync {
    /// Number of images.
    fn num_images(&self) -> usize;

    /// Side `S` of the `[3, S, S]` images.
    fn image_size(&self) -> usize;

    /// Image `index` as `[3, S, S]` CHW f32.
    fn load_image(&self, index: usize) -> Result<Vec<f32>, DataError>;

    /// Every caption, grouped by image (an image's captions are consecutive).
    fn captions(&self) -> &[String];

    /// For each caption, the index of its image.
    fn caption_to_image(&self) -> &[usize];
}

/// Implements Burn's `Dataset<ClipItem>` through [`ClipDataset::get_item`].
macro_rules! impl_burn_dataset {
    ($ty:ty) => {
        impl burn::data::dataset::Dataset<$crate::datasets::ClipItem> for $ty {
            fn get(
                &self,
                index: usize,
            ) -> Result<$crate::datasets::ClipItem, burn::data::dataset::DatasetError> {
                $crate::datasets::ClipDataset::get_item(self, index)
                    .map_err($crate::datasets::DataError::into_dataset_error)
            }

            fn len(&self) -> usize {
                $crate::datasets::ClipDataset::num_items(self)
            }
        }
    };
}
pub(crate) use impl_burn_dataset;
