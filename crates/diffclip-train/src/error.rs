use thiserror::Error;

/// Errors that stop training. Checkpoints written before the error stay intact.
#[derive(Debug, Error)]
pub enum TrainError {
    #[error("step {step}: loss is {loss} (not finite); stopping. The last good checkpoint is left intact.")]
    NonFinite { step: u64, loss: f32 },
    #[error("data: {0}")]
    Data(#[from] diffclip_data::DataError),
    #[error("every sample of a batch failed to load at step {step}: {last_error}")]
    EmptyBatch { step: u64, last_error: String },
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] diffclip_clip::CheckpointError),
    #[error("{path}: {message}")]
    Resume { path: String, message: String },
    #[error("cannot save {path}: {message}")]
    Save { path: String, message: String },
    #[error("{path} already holds a training run (checkpoint or metrics.jsonl): continue it with --resume, or replace it with --overwrite")]
    OutputExists { path: String },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("invalid training config: {0}")]
    Config(String),
    #[error("evaluation: {0}")]
    Eval(String),
}
