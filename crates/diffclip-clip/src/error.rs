use diffclip_encoders::EncoderError;
use thiserror::Error;

/// Errors building a model or reading its configuration.
#[derive(Debug, Error)]
pub enum ClipError {
    /// The vision tower's configuration is invalid.
    #[error("vision tower: {0}")]
    Vision(EncoderError),
    /// The text tower's configuration is invalid.
    #[error("text tower: {0}")]
    Text(EncoderError),
    /// `embed_dim` is 0.
    #[error("embed_dim must be positive")]
    EmbedDim,
    /// The device cannot compute in the precision asked for (wgpu has no bf16, ndarray neither).
    #[error("{device} cannot compute in {precision}")]
    Precision {
        /// The precision asked for.
        precision: crate::Precision,
        /// The device, as Burn prints it.
        device: String,
    },
    /// No preset has this name.
    #[error("unknown preset '{name}'; known presets: {known}")]
    UnknownPreset {
        /// The name asked for.
        name: String,
        /// Every preset name, comma-separated.
        known: String,
    },
    /// A config file could not be read.
    #[error("cannot read config {path}: {source}")]
    ConfigIo {
        /// The config file.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A config file is not valid JSON for [`ClipConfig`](crate::ClipConfig) (syntax, types,
    /// unknown fields).
    #[error("invalid config {path}: {source}")]
    ConfigParse {
        /// The config file.
        path: String,
        /// The JSON parser's error.
        source: serde_json::Error,
    },
    /// A config file parses but fails the checks (or the size limits).
    #[error("invalid config {path}: {source}")]
    ConfigInvalid {
        /// The config file.
        path: String,
        /// The check that failed.
        source: Box<ClipError>,
    },
    /// A config string is not valid JSON for [`ClipConfig`](crate::ClipConfig).
    #[error("invalid config JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A float setting is NaN or infinite.
    #[error("{what} must be finite, got {value}")]
    NotFinite {
        /// Name of the field.
        what: &'static str,
        /// The rejected value.
        value: f64,
    },
    /// The model exceeds the parameter or memory limit it was validated against.
    #[error("model too large: {message}")]
    TooLarge {
        /// The sizes and the limit exceeded.
        message: String,
    },
    /// A batch needs more memory than is available ([`crate::ModelLimits::check_batch`]).
    #[error("a batch of {batch} needs ~{need_gib:.1} GiB for {workload}, more than the {available_gib:.1} GiB of memory available: use a smaller batch")]
    BatchTooLarge {
        /// Samples in the batch.
        batch: usize,
        /// What the batch is run for.
        workload: crate::Workload,
        /// The estimate.
        need_gib: f64,
        /// What the OS reports as available.
        available_gib: f64,
    },
    /// Neither a config file nor a preset was given, and the checkpoint (if any) stores no config.
    #[error("{}", match checkpoint { Some(c) => format!("{c} carries no model config: give --config or --preset"), None => "give --config MODEL.json or --preset NAME".to_string() })]
    NoConfig {
        /// The checkpoint that was searched for a config, if one was given.
        checkpoint: Option<String>,
    },
    /// Reading the config stored in a checkpoint failed.
    #[error(transparent)]
    Checkpoint(Box<crate::CheckpointError>),
}
