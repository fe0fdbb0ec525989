//! Metrics appended to a JSON-lines file, one object per logged step or evaluation.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::TrainError;

/// One training step's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: u64,
    pub epoch: u64,
    pub loss: f32,
    pub lr: f64,
    pub logit_scale: f32,
    /// Mean `lambda_full` over the differential layers of each tower (None: no such layer).
    pub lambda_vision: Option<f32>,
    pub lambda_text: Option<f32>,
    pub grad_norm: f64,
    pub samples_per_s: f64,
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

    /// Append one JSON object as a line.
    pub fn write<T: Serialize>(&mut self, record: &T) -> Result<(), TrainError> {
        let line = serde_json::to_string(record).expect("records serialise");
        writeln!(self.file, "{line}").map_err(|source| TrainError::Io { path: self.path.display().to_string(), source })
    }
}
