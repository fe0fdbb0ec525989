//! Dataset items and their batches: [`ClipItem`] -> [`ClipBatch`] with [`ClipBatcher`].

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rayon::prelude::*;

use std::sync::Arc;

use crate::tokenizer::{ClipTokenizer, TextTokenizer};

use super::error::DataError;
use super::traits::ClipDataset;

/// One preprocessed image with one caption (and a class label for classification sets): what
/// every dataset in this crate yields and [`ClipBatcher`] batches.
///
/// ```
/// use diffclip_data::datasets::ClipItem;
/// let item = ClipItem { image: vec![0.0; 3 * 8 * 8], size: 8, caption: "a red circle".into(), label: Some(0) };
/// assert_eq!(item.image.len(), 3 * item.size * item.size);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ClipItem {
    /// `[3, size, size]` CHW f32, normalised by the pipeline's mean/std.
    pub image: Vec<f32>,
    /// Image side in pixels.
    pub size: usize,
    /// The caption (classification sets: the class name in their prompt template).
    pub caption: String,
    /// The class index, for classification sets.
    pub label: Option<usize>,
}

/// A batch on a device: images `[B, 3, S, S]` f32, token ids `[B, context]` and, when every item
/// has one, labels `[B]`.
///
/// ```
/// use burn::tensor::Device;
/// use diffclip_data::datasets::{ClipBatcher, ClipItem};
/// let item = ClipItem { image: vec![0.5; 3 * 4 * 4], size: 4, caption: "a cat".into(), label: Some(2) };
/// let batch = ClipBatcher::default().try_batch(vec![item.clone(), item], &Device::flex()).unwrap();
/// assert_eq!(batch.images.dims(), [2, 3, 4, 4]);
/// assert_eq!(batch.texts.dims(), [2, 77]);
/// assert_eq!(batch.labels.unwrap().dims(), [2]);
/// ```
#[derive(Debug, Clone)]
pub struct ClipBatch {
    /// `[B, 3, S, S]` normalised images.
    pub images: Tensor<4>,
    /// `[B, context_length]` token ids.
    pub texts: Tensor<2, Int>,
    /// `[B]` class indices, when every item has a label.
    pub labels: Option<Tensor<1, Int>>,
}

/// Stacks [`ClipItem`]s into a [`ClipBatch`], tokenizing the captions with any
/// [`TextTokenizer`] (the built-in CLIP BPE by default, or a `tokenizer.json`'s). Implements
/// Burn's [`Batcher`], so it plugs into `DataLoaderBuilder::new(batcher)`.
///
/// ```
/// use diffclip_data::datasets::ClipBatcher;
/// use diffclip_data::tokenizer::{ClipTokenizer, TokenizerConfig};
/// let tok = ClipTokenizer::with_config(TokenizerConfig { context_length: 32, ..Default::default() }).unwrap();
/// assert_eq!(ClipBatcher::new(tok).tokenizer().context_length(), 32);
/// ```
#[derive(Debug, Clone)]
pub struct ClipBatcher {
    tokenizer: Arc<dyn TextTokenizer>,
}

impl Default for ClipBatcher {
    /// The built-in CLIP tokenizer, 77 tokens.
    fn default() -> Self {
        Self::new(ClipTokenizer::new())
    }
}

impl ClipBatcher {
    /// A batcher that tokenizes with `tokenizer`.
    pub fn new(tokenizer: impl TextTokenizer + 'static) -> Self {
        Self::shared(Arc::new(tokenizer))
    }

    /// A batcher that tokenizes with a shared tokenizer (as an `Encoder` holds one).
    pub fn shared(tokenizer: Arc<dyn TextTokenizer>) -> Self {
        Self { tokenizer }
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Arc<dyn TextTokenizer> {
        &self.tokenizer
    }

    /// Batches `items`; fails if they are empty or their images differ in size.
    pub fn try_batch(&self, items: Vec<ClipItem>, device: &Device) -> Result<ClipBatch, DataError> {
        let first = items
            .first()
            .ok_or_else(|| DataError::Config("cannot batch zero items".into()))?;
        let size = first.size;
        let per = 3 * size * size;
        if let Some(bad) = items
            .iter()
            .find(|it| it.size != size || it.image.len() != per)
        {
            return Err(DataError::Config(format!(
                "cannot batch images of different sizes: {size}x{size} and {}x{} ({} values)",
                bad.size,
                bad.size,
                bad.image.len()
            )));
        }
        let b = items.len();
        let labels: Option<Vec<i64>> = items.iter().map(|it| it.label.map(|l| l as i64)).collect();
        let captions: Vec<&str> = items.iter().map(|it| it.caption.as_str()).collect();
        let ids = self.tokenizer.tokenize_batch(&captions)?;
        let context = self.tokenizer.context_length();
        // A tokenizer of one's own might return rows of another length: an error, not a panic.
        if let Some((i, row)) = ids.iter().enumerate().find(|(_, r)| r.len() != context) {
            return Err(DataError::Config(format!("the tokenizer gave caption {i} {} ids, not its context length {context}", row.len())));
        }
        let ids: Vec<i64> = ids.into_iter().flatten().map(i64::from).collect();
        let texts = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, context]), device);
        let mut flat = Vec::with_capacity(b * per);
        for it in &items {
            flat.extend_from_slice(&it.image);
        }
        let images = Tensor::<4>::from_data(TensorData::new(flat, [b, 3, size, size]), device);
        let labels = labels.map(|l| Tensor::<1, Int>::from_data(TensorData::new(l, [b]), device));
        Ok(ClipBatch {
            images,
            texts,
            labels,
        })
    }

    /// Reads `indices` from `dataset` in parallel (rayon, with the dataset's bad-sample policy)
    /// and batches them: the simplest way to feed a training loop without a Burn data loader.
    ///
    /// ```
    /// use burn::tensor::Device;
    /// use diffclip_data::datasets::ClipBatcher;
    /// use diffclip_data::synthetic::{SyntheticConfig, SyntheticDataset, Split};
    /// let config = SyntheticConfig { image_size: 32, ..Default::default() };
    /// let train = SyntheticDataset::new(config, Split::Train).unwrap().contrastive();
    /// let batch = ClipBatcher::default().batch_indices(&train, &[0, 1, 2], &Device::flex()).unwrap();
    /// assert_eq!(batch.images.dims(), [3, 3, 32, 32]);
    /// ```
    pub fn batch_indices<D: ClipDataset + ?Sized>(
        &self,
        dataset: &D,
        indices: &[usize],
        device: &Device,
    ) -> Result<ClipBatch, DataError> {
        let items = indices
            .par_iter()
            .map(|&i| dataset.get_item(i))
            .collect::<Result<Vec<_>, _>>()?;
        self.try_batch(items, device)
    }
}

impl Batcher<ClipItem, ClipBatch> for ClipBatcher {
    /// [`ClipBatcher::try_batch`].
    ///
    /// # Panics
    /// If the items' images differ in size or there are no items: a programming error (one
    /// dataset's images all go through one pipeline; Burn's loaders never batch zero items);
    /// or if the tokenizer fails on a caption (use `try_batch` where it can).
    fn batch(&self, items: Vec<ClipItem>, device: &Device) -> ClipBatch {
        match self.try_batch(items, device) {
            Ok(batch) => batch,
            Err(e) => panic!("ClipBatcher: {e}"),
        }
    }
}
