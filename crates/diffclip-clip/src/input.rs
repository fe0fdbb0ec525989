//! Checking model inputs before they reach the model, so bad data is an error, not a panic.

use thiserror::Error;

use crate::{Clip, ClipConfig};

/// An input batch that does not fit the model.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum InputError {
    /// The image batch is not `[B, in_chans, image_size, image_size]`.
    #[error("images must be [B, {chans}, {size}, {size}], got {got:?}")]
    ImageShape {
        /// Channels the model expects.
        chans: usize,
        /// Image side in pixels the model expects.
        size: usize,
        /// The batch's shape.
        got: Vec<usize>,
    },
    /// The token batch is not `[B, L]` with `1 <= L <= context_length`.
    #[error("token ids must be [B, L] with 1 <= L <= {context}, got {got:?}")]
    TokenShape {
        /// The model's context length.
        context: usize,
        /// The batch's shape.
        got: Vec<usize>,
    },
    /// A token id is negative or not below the vocabulary size (the first such id).
    #[error("token id {id} at row {row}, position {pos} is outside the vocabulary (0..{vocab})")]
    TokenId {
        /// The offending id.
        id: i64,
        /// Its row in the batch (0-based).
        row: usize,
        /// Its position in the row (0-based).
        pos: usize,
        /// The model's vocabulary size.
        vocab: usize,
    },
    /// A batch with no rows.
    #[error("an empty batch")]
    Empty,
    /// Image–text pairs whose two halves have different row counts.
    #[error("a batch of pairs needs as many texts as images: {images} images, {texts} texts")]
    Unpaired {
        /// Rows of the image batch.
        images: usize,
        /// Rows of the token batch.
        texts: usize,
    },
    /// Outputs with NaN or infinity (NaN weights or pixels, a degenerate config).
    #[error("{what}: rows {rows} are not finite (NaN or infinite)")]
    NonFinite {
        /// Which output (e.g. `image_embed`).
        what: String,
        /// The non-finite rows (0-based, the first 20, then how many more).
        rows: String,
    },
}

/// Errors if any row of the row-major `[_, cols]` matrix `data` holds a NaN or infinity, naming
/// the rows (the first 20, then how many more).
///
/// ```
/// use diffclip_clip::check_finite_rows;
/// assert!(check_finite_rows("image_embed", &[1.0, 2.0, 3.0, 4.0], 2).is_ok());
/// let err = check_finite_rows("image_embed", &[1.0, 2.0, f32::NAN, 4.0], 2).unwrap_err();
/// assert_eq!(err.to_string(), "image_embed: rows 1 are not finite (NaN or infinite)");
/// ```
pub fn check_finite_rows(what: &str, data: &[f32], cols: usize) -> Result<(), InputError> {
    let bad: Vec<usize> = data.chunks(cols.max(1)).enumerate().filter(|(_, r)| r.iter().any(|v| !v.is_finite())).map(|(i, _)| i).collect();
    if bad.is_empty() {
        return Ok(());
    }
    let mut rows = bad.iter().take(20).map(ToString::to_string).collect::<Vec<_>>().join(", ");
    if bad.len() > 20 {
        rows.push_str(&format!(" and {} more", bad.len() - 20));
    }
    Err(InputError::NonFinite { what: what.to_string(), rows })
}

impl ClipConfig {
    /// Check an image batch shape `[B, C, H, W]`.
    pub fn check_images(&self, shape: &[usize]) -> Result<(), InputError> {
        let v = &self.vision;
        if shape.first() == Some(&0) {
            return Err(InputError::Empty);
        }
        if shape.len() != 4 || shape[1] != v.in_chans || shape[2] != v.image_size || shape[3] != v.image_size {
            return Err(InputError::ImageShape { chans: v.in_chans, size: v.image_size, got: shape.to_vec() });
        }
        Ok(())
    }

    /// Check a token batch `[B, L]` (row-major ids).
    pub fn check_tokens(&self, shape: &[usize], ids: &[i64]) -> Result<(), InputError> {
        let t = &self.text;
        if shape.first() == Some(&0) {
            return Err(InputError::Empty);
        }
        if shape.len() != 2 || shape[1] == 0 || shape[1] > t.context_length {
            return Err(InputError::TokenShape { context: t.context_length, got: shape.to_vec() });
        }
        if let Some(i) = ids.iter().position(|&id| id < 0 || id as usize >= t.vocab_size) {
            return Err(InputError::TokenId { id: ids[i], row: i / shape[1], pos: i % shape[1], vocab: t.vocab_size });
        }
        Ok(())
    }
}

impl Clip {
    /// The inputs this model takes, read from its own weights' shapes (no weight is read, so
    /// a lazily initialised model stays so): `(in_chans, image_size, context_length)`, images
    /// `[B, in_chans, image_size, image_size]` and token rows of at most `context_length`.
    ///
    /// ```
    /// use burn::tensor::Device;
    /// use diffclip_clip::ClipConfig;
    /// let c = ClipConfig::diffclip_tiny();
    /// let model = c.init_lazy(&Device::flex()).unwrap();
    /// assert_eq!(model.input_sizes(), (c.vision.in_chans, c.vision.image_size, c.text.context_length));
    /// ```
    pub fn input_sizes(&self) -> (usize, usize, usize) {
        // The patch convolution's weight is [width, in_chans, patch, patch]; the position table
        // holds the class token and grid² patches.
        let [_, chans, patch, _] = self.visual.patch_embed.proj.weight.lazy_shape().dims::<4>();
        let tokens = self.visual.pos_embed.lazy_shape().dims::<3>()[1];
        let size = (tokens.saturating_sub(1) as f64).sqrt().round() as usize * patch;
        (chans, size, self.text.positional_embedding.lazy_shape().dims::<2>()[0])
    }

    /// Check the shapes of a batch of image–text pairs against this model's own weights (for a
    /// model whose config is not at hand): `images [B, C, H, W]` as its patch embedding and
    /// position table take them, `texts [B, L]` with `1 <= L <=` its context length, `B > 0`
    /// rows in both. Shapes only: [`ClipConfig::check_tokens`] also checks the ids. Reads no
    /// weight (a lazily initialised model stays so).
    ///
    /// ```
    /// use burn::tensor::Device;
    /// use diffclip_clip::{ClipConfig, InputError};
    /// let model = ClipConfig::diffclip_tiny().init(&Device::flex()).unwrap();
    /// let size = ClipConfig::diffclip_tiny().vision.image_size;
    /// assert!(model.check_pairs(&[2, 3, size, size], &[2, 77]).is_ok());
    /// assert_eq!(model.check_pairs(&[2, 3, size, size], &[3, 77]), Err(InputError::Unpaired { images: 2, texts: 3 }));
    /// assert!(model.check_pairs(&[2, 3, size + 1, size], &[2, 77]).is_err());
    /// ```
    pub fn check_pairs(&self, images: &[usize], texts: &[usize]) -> Result<(), InputError> {
        let (chans, size, context) = self.input_sizes();
        if images.first() == Some(&0) || texts.first() == Some(&0) {
            return Err(InputError::Empty);
        }
        if images.len() != 4 || images[1..] != [chans, size, size] {
            return Err(InputError::ImageShape { chans, size, got: images.to_vec() });
        }
        if texts.len() != 2 || texts[1] == 0 || texts[1] > context {
            return Err(InputError::TokenShape { context, got: texts.to_vec() });
        }
        if images[0] != texts[0] {
            return Err(InputError::Unpaired { images: images[0], texts: texts[0] });
        }
        Ok(())
    }
}
