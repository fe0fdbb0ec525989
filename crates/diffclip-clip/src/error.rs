use diffclip_encoders::EncoderError;
use thiserror::Error;

/// Errors building a model or reading its configuration.
#[derive(Debug, Error)]
pub enum ClipError {
    #[error("vision tower: {0}")]
    Vision(EncoderError),
    #[error("text tower: {0}")]
    Text(EncoderError),
    #[error("embed_dim must be positive")]
    EmbedDim,
    #[error("unknown preset '{name}'; known presets: {known}")]
    UnknownPreset { name: String, known: String },
    #[error("cannot read config {path}: {source}")]
    ConfigIo { path: String, source: std::io::Error },
    #[error("invalid config {path}: {source}")]
    ConfigParse { path: String, source: serde_json::Error },
}
