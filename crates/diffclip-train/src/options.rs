//! How one run is driven, as opposed to what it trains (`TrainConfig`, stored in checkpoints).

use std::path::PathBuf;
use std::sync::Arc;

use diffclip_data::BadSamplePolicy;

use crate::{DataParallel, LrScale};

/// Where a run writes, how it treats bad samples and an earlier run's folder, on which devices
/// it splits batches, and per-parameter learning-rate factors. None of it is stored in a
/// checkpoint: a resumed run is given its options again.
///
/// ```
/// use diffclip_train::RunOptions;
/// let o = RunOptions { output: Some("runs/a".into()), overwrite: true, ..RunOptions::default() };
/// assert_eq!(o.workers, 0);
/// ```
#[derive(Default)]
pub struct RunOptions {
    /// Where checkpoints (`checkpoint-latest.safetensors`) and `metrics.jsonl` go; `None`:
    /// nothing is written.
    pub output: Option<PathBuf>,
    /// A fresh run (step 0) into an output folder that holds an earlier run's checkpoint or
    /// metrics replaces them; without it that is an error ([`TrainError::OutputExists`](crate::TrainError::OutputExists); [`TrainError::OutputHasMetrics`](crate::TrainError::OutputHasMetrics) when no checkpoint was written, [`TrainError::OutputKeepsReplaced`](crate::TrainError::OutputKeepsReplaced) for a run kept aside).
    pub overwrite: bool,
    /// Threads that load and decode samples (0: one per core).
    pub workers: usize,
    /// Skip and count a sample that fails to load, or stop the run with its error.
    pub bad_samples: BadSamplePolicy,
    /// Split every micro-batch across several devices (see [`crate::parallel`]); `None`: the
    /// whole batch on the trainer's device, which must be the replicas' main device.
    pub parallel: Option<DataParallel>,
    /// Per-parameter learning-rate factors (e.g. a lower rate for weights copied from another
    /// model, or freezing them for the first steps); `None`: every factor is 1.
    pub lr_scale: Option<LrScale>,
    /// End the run after this many steps without a final checkpoint, as a kill would: for
    /// testing resume.
    pub stop_after: Option<u64>,
    /// Asked before each step (e.g. whether Ctrl-C or `SIGTERM` came): once it answers `true`
    /// the run writes the checkpoint of its last step and ends with
    /// [`TrainError::Interrupted`](crate::TrainError::Interrupted), to be resumed from there.
    pub stop: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
}
