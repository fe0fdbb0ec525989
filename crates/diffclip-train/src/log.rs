//! Metrics appended to a JSON-lines file, one object per logged step or evaluation.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::TrainError;

/// One training step's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Optimizer steps done, this one included (1-based).
    pub step: u64,
    /// The epoch the data position is in after this step (0-based).
    pub epoch: u64,
    /// The step's loss (mean over its accumulated micro-batches).
    pub loss: f32,
    /// The learning rate the step used.
    pub lr: f64,
    /// `exp(logit_scale)` after the update (the factor on cosine similarities).
    pub logit_scale: f32,
    /// Mean `lambda_full` over the vision tower's differential layers (None: no such layer).
    pub lambda_vision: Option<f32>,
    /// Mean `lambda_full` over the text tower's differential layers (None: no such layer).
    pub lambda_text: Option<f32>,
    /// Global L2 norm of the gradients before clipping.
    pub grad_norm: f64,
    /// Samples of this step divided by its wall time in seconds.
    pub samples_per_s: f64,
    /// Samples skipped because they failed to load, over all steps so far.
    pub skipped_samples: usize,
}

/// Appends JSON lines to a file.
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Open (create or append) `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, TrainError> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| TrainError::Io { path: path.display().to_string(), source })?;
        Ok(Self { path, file })
    }

    /// Open `path` to continue a run that resumes after `step`: complete records of steps up to
    /// `step` are kept; a torn last line (a kill mid-write) and records past `step` (written
    /// after the checkpoint by the interrupted run, and about to be written again) are cut. A
    /// whole line that is not a record is kept as it is: a note or a damaged record, it is not
    /// this function's to delete.
    ///
    /// ```
    /// # use diffclip_train::MetricsLog;
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("metrics.jsonl");
    /// std::fs::write(&path, "{\"step\":1}\nnote\n{\"step\":2}\n{\"step\":3}\n{\"st").unwrap();
    /// MetricsLog::resume(&path, 2).unwrap();
    /// assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"step\":1}\nnote\n{\"step\":2}\n");
    /// ```
    pub fn resume(path: impl AsRef<Path>, step: u64) -> Result<Self, TrainError> {
        let path = path.as_ref();
        let io = |source| TrainError::Io { path: path.display().to_string(), source };
        match diffclip_clip::files::read_regular(path) {
            Ok(bytes) => {
                let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                let text = String::from_utf8_lossy(&bytes[..complete]);
                let kept: String = text
                    .split_inclusive('\n')
                    .filter(|line| {
                        let record = serde_json::from_str::<serde_json::Value>(line).ok();
                        match record.as_ref().and_then(|v| v.get("step")).and_then(|s| s.as_u64()) {
                            Some(s) => s <= step,
                            None => true,
                        }
                    })
                    .collect();
                if kept.len() != bytes.len() {
                    diffclip_clip::files::write_atomic(path, kept.as_bytes()).map_err(|e| TrainError::Checkpoint(e.into()))?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        Self::open(path)
    }

    /// Create `path` empty (replacing an earlier run's log).
    pub fn create(path: impl AsRef<Path>) -> Result<Self, TrainError> {
        let path = path.as_ref();
        File::create(path).map_err(|source| TrainError::Io { path: path.display().to_string(), source })?;
        Self::open(path)
    }

    /// Append one JSON object as a line, in one write so a kill cannot interleave two records.
    pub fn write<T: Serialize>(&mut self, record: &T) -> Result<(), TrainError> {
        let mut line = serde_json::to_string(record).expect("records serialise");
        line.push('\n');
        self.file.write_all(line.as_bytes()).map_err(|source| TrainError::Io { path: self.path.display().to_string(), source })
    }
}
