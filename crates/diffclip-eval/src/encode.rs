//! `Encoder`: batched image and text embedding with one model, tokenizer and progress bars.

use std::sync::Arc;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use diffclip_clip::Clip;
use diffclip_data::preprocess::batch_tensor;
use diffclip_data::{ClipTokenizer, TextTokenizer, TokenizerConfig, Truncation};

use rayon::prelude::*;

use crate::progress::bar;
use crate::{EvalError, ImageSource, Matrix};

/// Batches of texts tokenized and sorted by length together in [`Encoder::encode_texts`]: enough
/// for batches of similar lengths, few enough that the token ids stay small (32 batches of 64
/// texts of 77 tokens are 0.6 MB).
const SORT_WINDOW: usize = 32;

/// Where the text tower pools a tokenized text: its largest id (the end-of-text token), first
/// occurrence.
fn pooled_position(ids: &[u32]) -> usize {
    ids.iter().enumerate().fold(0, |best, (i, &id)| if id > ids[best] { i } else { best })
}

/// Embeds images and texts in batches. Embeddings come back **unnormalised**, one row per input.
///
/// ```no_run
/// use burn::tensor::Device;
/// use diffclip_clip::ClipConfig;
/// use diffclip_eval::Encoder;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let model = ClipConfig::diffclip_tiny().init(&Device::flex())?;
/// let encoder = Encoder::new(&model)?.with_batch_size(64);
/// let text = encoder.encode_texts(&["a photo of a dog", "a photo of a cat"])?;
/// assert_eq!((text.rows(), text.cols()), (2, 32));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Encoder<'a> {
    model: &'a Clip,
    device: Device,
    tokenizer: Arc<dyn TextTokenizer>,
    batch_size: usize,
    progress: bool,
}

impl<'a> Encoder<'a> {
    /// An encoder on the model's device, with the built-in CLIP tokenizer ([`ClipTokenizer`])
    /// of the model's context length (open_clip truncation: EOT kept), batch size 64, progress
    /// bars on.
    pub fn new(model: &'a Clip) -> Result<Self, EvalError> {
        let device = model.devices().into_iter().next().ok_or_else(|| {
            EvalError::Invalid("the model has no parameters, hence no device".into())
        })?;
        let (_, _, context_length) = model.input_sizes();
        let tokenizer = ClipTokenizer::with_config(TokenizerConfig {
            context_length,
            truncation: Truncation::KeepEot,
        })?;
        Ok(Self {
            model,
            device,
            tokenizer: Arc::new(tokenizer),
            batch_size: 64,
            progress: true,
        })
    }

    /// Truncation of over-long texts: [`Truncation::DropEot`] reproduces the DiffCLIP authors'
    /// evaluation, [`Truncation::KeepEot`] (default) open_clip's.
    pub fn with_truncation(mut self, truncation: Truncation) -> Result<Self, EvalError> {
        let config = self.tokenizer.config().with_truncation(truncation);
        self.tokenizer = self.tokenizer.reconfigured(config)?;
        Ok(self)
    }

    /// Another tokenizer (for example a `HfTokenizer` reading the model's `tokenizer.json`),
    /// used as it is: its context length must be the model's, and its ids must fall in the
    /// model's vocabulary (checked when texts are encoded).
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// # use burn::tensor::Device;
    /// use diffclip_clip::ClipConfig;
    /// use diffclip_data::{ClipTokenizer, TokenizerConfig, Truncation};
    /// use diffclip_eval::Encoder;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let model = ClipConfig::diffclip_tiny().init(&Device::flex())?;
    /// let encoder = Encoder::new(&model)?;
    /// let context_length = encoder.tokenizer().context_length();
    /// let config = TokenizerConfig { context_length, truncation: Truncation::DropEot };
    /// let encoder = encoder.with_tokenizer(Arc::new(ClipTokenizer::with_config(config)?))?;
    /// assert_eq!(encoder.tokenizer().truncation(), Truncation::DropEot);
    /// # Ok(()) }
    /// ```
    pub fn with_tokenizer(mut self, tokenizer: Arc<dyn TextTokenizer>) -> Result<Self, EvalError> {
        let (_, _, context_length) = self.model.input_sizes();
        if tokenizer.context_length() != context_length {
            return Err(EvalError::Invalid(format!(
                "the tokenizer gives {} ids per text but the model's context length is {context_length}",
                tokenizer.context_length()
            )));
        }
        self.tokenizer = tokenizer;
        Ok(self)
    }

    /// Images or texts per forward pass (at least 1).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Show progress bars on stderr (they stay hidden when stderr is not a terminal).
    pub fn with_progress(mut self, progress: bool) -> Self {
        self.progress = progress;
        self
    }

    /// The model.
    pub fn model(&self) -> &'a Clip {
        self.model
    }

    /// The model's device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &dyn TextTokenizer {
        self.tokenizer.as_ref()
    }

    /// Whether progress bars are on.
    pub fn progress(&self) -> bool {
        self.progress
    }

    /// Images per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The input side `S` of the vision tower (`grid * patch`).
    pub fn image_size(&self) -> usize {
        self.model.input_sizes().1
    }

    /// Text embeddings `[texts.len(), E]`, one row per text in `texts`' order.
    ///
    /// Texts are tokenized 32 batches at a time and batched by length within those: the text
    /// tower computes a batch only up to its longest caption, so batches of similar lengths
    /// waste less on padding. The rows come back in the input order.
    pub fn encode_texts<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Matrix, EvalError> {
        let vocab = self.model.text.vocab_size;
        let pb = bar(texts.len(), "texts", self.progress);
        let mut parts = Vec::new();
        let ctx = self.tokenizer.context_length();
        let window_len = self.batch_size.saturating_mul(SORT_WINDOW);
        for (w, window) in texts.chunks(window_len).enumerate() {
            let texts: Vec<&str> = window.iter().map(|t| t.as_ref()).collect();
            let rows = self.tokenizer.tokenize_batch(&texts)?;
            let first = w * window_len; // the window's first text
            // A tokenizer of the caller's own must keep to the length it declares.
            if let Some((i, row)) = rows.iter().enumerate().find(|(_, r)| r.len() != ctx) {
                let index = first + i;
                return Err(EvalError::Invalid(format!("the tokenizer gave text {index} {} ids, not its context length {ctx}", row.len())));
            }
            if let Some((i, &id)) = rows.iter().enumerate().find_map(|(i, r)| r.iter().find(|&&id| id as usize >= vocab).map(|id| (i, id))) {
                let index = first + i;
                return Err(EvalError::Invalid(format!(
                    "text {index} ({:?}) has token id {id}, outside the model's vocabulary of {vocab}: the tokenizer is not the model's",
                    texts[i].chars().take(60).collect::<String>()
                )));
            }
            let mut order: Vec<usize> = (0..rows.len()).collect();
            order.sort_by_key(|&i| pooled_position(&rows[i]));
            let mut sorted = Vec::new();
            for batch in order.chunks(self.batch_size) {
                sorted.push(self.encode_ids(batch.iter().map(|&i| rows[i].as_slice()))?);
                pb.inc(batch.len() as u64);
            }
            let sorted = Matrix::vstack(&sorted.iter().collect::<Vec<_>>())?;
            let mut back = vec![0; order.len()];
            for (k, &i) in order.iter().enumerate() {
                back[i] = k;
            }
            parts.push(sorted.select_rows(&back)?);
        }
        pb.finish_and_clear();
        self.stack(parts)
    }

    /// The embeddings of tokenized texts, one batch.
    fn encode_ids<'r>(&self, rows: impl ExactSizeIterator<Item = &'r [u32]>) -> Result<Matrix, EvalError> {
        let (count, ctx) = (rows.len(), self.tokenizer.context_length());
        let ids: Vec<i64> = rows.flatten().map(|&id| i64::from(id)).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [count, ctx]), &self.device);
        Matrix::from_tensor(self.model.encode_text(ids))
    }

    /// Image embeddings of a preprocessed batch `[N, C, S, S]` (split into batches here), `C`
    /// the vision tower's input channels (3 for RGB).
    pub fn encode_images(&self, images: Tensor<4>) -> Result<Matrix, EvalError> {
        let dims = images.dims();
        let (chans, s, _) = self.model.input_sizes();
        if dims[1] != chans || dims[2] != s || dims[3] != s {
            return Err(EvalError::Shape(format!(
                "images must be [N, {chans}, {s}, {s}], got {dims:?}"
            )));
        }
        let pb = bar(dims[0], "images", self.progress);
        let mut parts = Vec::new();
        let mut start = 0;
        while start < dims[0] {
            let len = self.batch_size.min(dims[0] - start);
            let batch = images.clone().narrow(0, start, len);
            parts.push(Matrix::from_tensor(self.model.encode_image(batch))?);
            pb.inc(len as u64);
            start += len;
        }
        pb.finish_and_clear();
        self.stack(parts)
    }

    /// Image embeddings of a source: each batch is loaded in parallel (rayon), then embedded.
    /// The first unreadable image is an error naming it.
    pub fn encode_source(&self, source: &ImageSource<'_>) -> Result<Matrix, EvalError> {
        Ok(self.encode_source_inner(source, true)?.embeddings)
    }

    /// [`Self::encode_source`] that leaves out the images that cannot be loaded (a corrupt file
    /// among many) instead of stopping: the others' embeddings, which they are, and why each
    /// left-out one failed. Errors of the model itself still stop it.
    ///
    /// ```no_run
    /// # fn demo(encoder: &diffclip_eval::Encoder<'_>, source: &diffclip_eval::ImageSource<'_>) -> Result<(), diffclip_eval::EvalError> {
    /// let out = encoder.encode_source_skipping(source)?;
    /// for (i, why) in &out.skipped {
    ///     eprintln!("image {i} left out: {why}");
    /// }
    /// assert_eq!(out.embeddings.rows(), out.kept.len());
    /// # Ok(()) }
    /// ```
    pub fn encode_source_skipping(&self, source: &ImageSource<'_>) -> Result<SkippingEmbeddings, EvalError> {
        self.encode_source_inner(source, false)
    }

    fn encode_source_inner(&self, source: &ImageSource<'_>, fail_fast: bool) -> Result<SkippingEmbeddings, EvalError> {
        let s = self.image_size();
        if source.size() != s {
            return Err(EvalError::Invalid(format!(
                "the images are {0}x{0} but the model takes {s}x{s} (check the preprocessing size)",
                source.size()
            )));
        }
        let pb = bar(source.len(), "images", self.progress);
        let (mut parts, mut kept, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
        let mut start = 0;
        while start < source.len() {
            let len = self.batch_size.min(source.len() - start);
            let loaded: Vec<Result<Vec<f32>, EvalError>> = (start..start + len).into_par_iter().map(|i| source.load(i)).collect();
            let mut pixels = Vec::with_capacity(len);
            for (i, image) in (start..).zip(loaded) {
                match image {
                    Ok(p) => {
                        pixels.push(p);
                        kept.push(i);
                    }
                    Err(e) if fail_fast => return Err(e),
                    Err(e) => skipped.push((i, e)),
                }
            }
            if !pixels.is_empty() {
                let batch = batch_tensor(pixels, s, &self.device)?;
                parts.push(Matrix::from_tensor(self.model.encode_image(batch))?);
            }
            pb.inc(len as u64);
            start += len;
        }
        pb.finish_and_clear();
        Ok(SkippingEmbeddings { embeddings: self.stack(parts)?, kept, skipped })
    }

    fn stack(&self, parts: Vec<Matrix>) -> Result<Matrix, EvalError> {
        if parts.is_empty() {
            let dim = self.model.image_projection.val().dims()[1];
            return Ok(Matrix::zeros(0, dim));
        }
        Matrix::vstack(&parts.iter().collect::<Vec<_>>())
    }
}

/// What [`Encoder::encode_source_skipping`] returns.
#[derive(Debug)]
pub struct SkippingEmbeddings {
    /// `[kept.len(), E]`: the embeddings of the images that loaded, in source order.
    pub embeddings: Matrix,
    /// The source indices of those images.
    pub kept: Vec<usize>,
    /// The source indices left out, with the error of each.
    pub skipped: Vec<(usize, EvalError)>,
}
