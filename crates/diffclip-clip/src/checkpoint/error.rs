use std::fmt;

use thiserror::Error;

/// Keys that did not line up between a checkpoint and the model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyMismatch {
    /// In the model, not in the file: (key, expected shape).
    pub missing: Vec<(String, Vec<usize>)>,
    /// In the file, not in the model: (key, found shape).
    pub unexpected: Vec<(String, Vec<usize>)>,
    /// (key, expected shape, found shape).
    pub shapes: Vec<(String, Vec<usize>, Vec<usize>)>,
}

impl KeyMismatch {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.shapes.is_empty()
    }
}

impl fmt::Display for KeyMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} missing, {} unexpected, {} mis-shaped keys", self.missing.len(), self.unexpected.len(), self.shapes.len())?;
        for (k, s) in &self.missing {
            write!(f, "\n  missing     {k}: expected {s:?}")?;
        }
        for (k, s) in &self.unexpected {
            write!(f, "\n  unexpected  {k}: found {s:?}")?;
        }
        for (k, e, s) in &self.shapes {
            write!(f, "\n  wrong shape {k}: expected {e:?}, found {s:?}")?;
        }
        Ok(())
    }
}

/// Errors reading, converting, applying or writing a checkpoint. Each names the file.
#[derive(Debug, Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: not a safetensors, PyTorch or burnpack file")]
    UnknownContainer { path: String },
    #[error("{path}: {message}")]
    Read { path: String, message: String },
    #[error("{path}: key '{key}': {message}")]
    Transform { path: String, key: String, message: String },
    /// A weight stored as integers or bool (or another non-float type).
    #[error("{path}: key '{key}': stored as {dtype}, but weights must be floating point (F64, F32, F16 or BF16)")]
    Dtype { path: String, key: String, dtype: String },
    #[error("{path}: checkpoint does not match the model: {mismatch}")]
    Mismatch { path: String, mismatch: KeyMismatch },
    #[error("{path}: {message}")]
    Apply { path: String, message: String },
    #[error("{path}: cannot write: {message}")]
    Write { path: String, message: String },
    /// Writing an output file failed.
    #[error(transparent)]
    File(#[from] crate::files::FileError),
}
