use diffclip_attention::AttentionError;
use thiserror::Error;

/// Invalid encoder configuration, reported by `init`.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum EncoderError {
    #[error("layer {layer}: {source}")]
    Attention { layer: usize, source: AttentionError },
    #[error("image size {image_size} is not divisible by patch size {patch_size}")]
    PatchSize { image_size: usize, patch_size: usize },
    #[error("per-layer attention list has {got} entries but the encoder has {layers} layers")]
    LayerCount { got: usize, layers: usize },
    #[error("{what} must be positive")]
    Zero { what: &'static str },
    #[error("{what} must be a finite number > 0, got {value}")]
    NotPositive { what: &'static str, value: f64 },
}
