use diffclip_attention::AttentionError;
use thiserror::Error;

/// Invalid encoder configuration, reported by `init`.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum EncoderError {
    /// One layer's attention configuration is invalid.
    #[error("layer {layer}: {source}")]
    Attention {
        /// Index of the offending block (0-based).
        layer: usize,
        /// What the attention layer rejected.
        source: AttentionError,
    },
    /// `image_size` is not a multiple of `patch_size`.
    #[error("image size {image_size} is not divisible by patch size {patch_size}")]
    PatchSize {
        /// Input side in pixels.
        image_size: usize,
        /// Patch side in pixels.
        patch_size: usize,
    },
    /// The per-layer attention list does not have one entry per layer.
    #[error("per-layer attention list has {got} entries but the encoder has {layers} layers")]
    LayerCount {
        /// Entries in the per-layer list.
        got: usize,
        /// Layers the encoder has ([`LayerAttention::kind_of`](crate::LayerAttention::kind_of)
        /// reports the layer asked for plus one, the fewest entries that would have served).
        layers: usize,
    },
    /// A size that must be at least 1 is 0.
    #[error("{what} must be positive")]
    Zero {
        /// Name of the field (or derived size).
        what: &'static str,
    },
    /// The text context holds fewer than the start and end tokens.
    #[error("context_length must be at least 2 (start and end of text), got {got}")]
    ContextTooShort {
        /// The rejected length.
        got: usize,
    },
    /// A ratio or epsilon is zero, negative, NaN or infinite.
    #[error("{what} must be a finite number > 0, got {value}")]
    NotPositive {
        /// Name of the field.
        what: &'static str,
        /// The rejected value.
        value: f64,
    },
    /// A value that may have any sign is NaN, infinite or beyond its bound.
    #[error("{what} must be a number from -{bound} to {bound}, got {value}")]
    OutOfRange {
        /// Name of the field.
        what: &'static str,
        /// The largest magnitude accepted.
        bound: f64,
        /// The rejected value.
        value: f64,
    },
}
