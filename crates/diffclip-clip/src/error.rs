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
    #[error("invalid config {path}: {source}")]
    ConfigInvalid { path: String, source: Box<ClipError> },
    #[error("invalid config JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{what} must be finite, got {value}")]
    NotFinite { what: &'static str, value: f64 },
    #[error("model too large: {message}")]
    TooLarge { message: String },
    #[error("{}", match checkpoint { Some(c) => format!("{c} carries no model config: give --config or --preset"), None => "give --config MODEL.json or --preset NAME".to_string() })]
    NoConfig { checkpoint: Option<String> },
    #[error(transparent)]
    Checkpoint(Box<crate::CheckpointError>),
}
