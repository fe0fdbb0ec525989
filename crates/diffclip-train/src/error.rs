use thiserror::Error;

/// Errors that stop training. Checkpoints written before the error stay intact.
#[derive(Debug, Error)]
pub enum TrainError {
    /// A micro-batch's loss is NaN or infinite; the step is not applied.
    #[error("step {step}: loss is {loss} (not finite); stopping. {}", kept(checkpoint))]
    NonFinite {
        /// The step that failed (1-based, the step count it would have reached).
        step: u64,
        /// The loss value.
        loss: f32,
        /// The last good checkpoint, left intact (`None`: none was written).
        checkpoint: Option<String>,
    },
    /// A step's gradients hold NaN or infinity while its loss is finite (in f16 such a step
    /// is skipped at a smaller loss scale instead); the step is not applied.
    #[error("step {step}: the gradient norm is {norm} (not finite) though the loss is finite; stopping. {}", kept(checkpoint))]
    NonFiniteGradient {
        /// The step that failed (1-based).
        step: u64,
        /// The gradients' global L2 norm.
        norm: f64,
        /// The last good checkpoint, left intact (`None`: none was written).
        checkpoint: Option<String>,
    },
    /// The preprocessing preset could not be built.
    #[error("preprocessing: {0}")]
    Preprocess(#[from] diffclip_data::PreprocessError),
    /// A sample failed to load while bad samples are not skipped, or a batch could not be built
    /// (after the first step, a run says so as [`TrainError::DataStopped`]).
    #[error("data: {0}")]
    Data(#[from] diffclip_data::DataError),
    /// Every sample left for a batch failed to load.
    #[error("every sample of a batch failed to load at step {step}: {last_error}")]
    EmptyBatch {
        /// The step being assembled (1-based).
        step: u64,
        /// The last sample's load error.
        last_error: String,
    },
    /// Reading or writing model weights failed.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] diffclip_clip::CheckpointError),
    /// A training checkpoint cannot be resumed from (missing or inconsistent metadata,
    /// optimizer state that does not fit the model).
    #[error("{path}: {message}")]
    Resume {
        /// The checkpoint file (`<optimizer>` for optimizer state checked on its own).
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// A training checkpoint could not be written.
    #[error("cannot save {path}: {message}")]
    Save {
        /// The checkpoint file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The output folder already holds a run and neither resuming nor overwriting was asked for.
    #[error("{path} already holds a training run (checkpoint-latest.safetensors): continue it with --resume, or replace it with --overwrite")]
    OutputExists {
        /// The output folder.
        path: String,
    },
    /// Another job (a training run, an embed job) holds the output folder while it writes there.
    #[error("{path}: another job (a training run, an embed job) is writing to this folder: wait for it to finish, or give another --output")]
    OutputBusy {
        /// The output folder.
        path: String,
    },
    /// The output folder keeps an earlier run as `*.replaced` files (a run that replaced it
    /// failed before its first checkpoint), and overwriting was not asked for.
    #[error("{path} keeps files of an earlier training run aside as *.replaced (the run that replaced it failed before its first checkpoint): rename them all back (without .replaced) to use that run again, or remove them, or replace it with --overwrite")]
    OutputKeepsReplaced {
        /// The output folder.
        path: String,
    },
    /// A run resumed from another folder's checkpoint would continue into an output folder that
    /// holds a run of its own (whose checkpoint and metrics it would replace).
    #[error("{path} holds another training run than the one resumed from {resumed}: resume into a new --output or into the folder of {resumed}, or continue {path}'s own run with --resume and no path")]
    OutputHoldsAnotherRun {
        /// The output folder.
        path: String,
        /// The checkpoint resumed from.
        resumed: String,
    },
    /// The output folder holds the metrics of a run that stopped before its first checkpoint
    /// (nothing to resume), and overwriting was not asked for.
    #[error("{path} holds the metrics.jsonl of a run that wrote no checkpoint (nothing to resume): replace it with --overwrite")]
    OutputHasMetrics {
        /// The output folder.
        path: String,
    },
    /// An output file or folder could not be made or written (it names the path).
    #[error(transparent)]
    File(#[from] diffclip_clip::files::FileError),
    /// A file or folder could not be created, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// [`RunOptions::stop`](crate::RunOptions::stop) asked the run to end: it did after
    /// `step`, with that step's checkpoint written (`checkpoint`, when there is an output and a
    /// step was trained).
    #[error("stopped after step {step}{}", match checkpoint { Some(p) => format!(": its checkpoint {p} is written, continue with --resume"), None if *step == 0 => " (before the first: nothing was trained)".into(), None => " (no output folder: nothing was saved)".into() })]
    Interrupted {
        /// The last step trained.
        step: u64,
        /// The checkpoint written, if the run has an output folder.
        checkpoint: Option<String>,
    },
    /// The data failed a run after `step` steps (a sample that cannot be read under
    /// `BadSamplePolicy::Fail`, a batch left empty, data that cannot go on): those steps are
    /// kept, their checkpoint written as an interrupted run's is, at the data position of the
    /// last of them. Before the first step, or in a run replacing an earlier one still kept
    /// aside (which then stays), the data's own error is returned instead.
    #[error("{error}; stopped after step {step}{}", match checkpoint { Some(p) => format!(": its checkpoint {p} is written, continue with --resume once the data is mended"), None => " (no output folder: nothing was saved)".into() })]
    DataStopped {
        /// The last step trained.
        step: u64,
        /// The checkpoint written, if the run has an output folder.
        checkpoint: Option<String>,
        /// What the data did.
        error: Box<TrainError>,
    },
    /// A resumed run was given data other than the stopped run's (a CSV edited, images added,
    /// shards replaced): its place in the epoch order would pick other samples.
    #[error("the data differ from those the stopped run trained on ({was}; now {now}): its place in the epoch order would pick other samples")]
    DataChanged {
        /// The stopped run's data ([`OpenedSource::fingerprint`](crate::OpenedSource)).
        was: String,
        /// The data given now.
        now: String,
    },
    /// The data cannot feed a run (no usable row, no image that reads, no shard that exists):
    /// the message names the data.
    #[error("{0}")]
    UnusableData(String),
    /// The training configuration (or its combination with the data or devices) is invalid.
    #[error("invalid training config: {0}")]
    Config(String),
    /// The model could not be built or cast (its config, its size, a precision the device
    /// lacks), kept whole so that callers can match it.
    #[error("model: {0}")]
    Model(#[from] diffclip_clip::ClipError),
    /// The tokenizer could not be built.
    #[error("tokenizer: {0}")]
    Tokenizer(#[from] diffclip_data::tokenizer::TokenizerError),
    /// A batch handed to the trainer does not fit the model (its shapes, or unpaired rows).
    #[error("batch: {0}")]
    Input(#[from] diffclip_clip::InputError),
    /// The evaluation hook failed.
    #[error("evaluation: {0}")]
    Eval(String),
}

/// What a run that stopped on a bad value leaves to resume from.
fn kept(checkpoint: &Option<String>) -> String {
    match checkpoint {
        Some(path) => format!("The last good checkpoint {path} is left intact."),
        None => "No checkpoint was written before it.".into(),
    }
}
