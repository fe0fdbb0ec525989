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
    /// No missing, unexpected or mis-shaped keys: the checkpoint matches the model.
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
    /// Opening, reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file's structure is none of the containers this crate reads.
    #[error("{path}: not a safetensors, PyTorch or burnpack file")]
    UnknownContainer {
        /// The file.
        path: String,
    },
    /// The container is recognised but its contents could not be parsed (or its metadata is
    /// invalid).
    #[error("{path}: {message}")]
    Read {
        /// The file (`<model>` when reading the model's own tensors).
        path: String,
        /// What the reader reported.
        message: String,
    },
    /// One tensor is malformed or cannot be mapped onto the model's layout (wrong rank,
    /// shape and data disagree, duplicate target, fused q/k/v not divisible by 3, ...).
    #[error("{path}: key '{key}': {message}")]
    Transform {
        /// The file (or the origin named by the caller).
        path: String,
        /// The tensor's key.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A weight stored as integers or bool (or another non-float type).
    #[error("{path}: key '{key}': stored as {dtype}, but weights must be floating point (F64, F32, F16 or BF16)")]
    Dtype {
        /// The file.
        path: String,
        /// The tensor's key.
        key: String,
        /// The stored element type, as the reader names it.
        dtype: String,
    },
    /// A tensor's bytes differ from the checksum written with them (or the tensors differ from
    /// those summed): the file was damaged after it was written.
    #[error("{path}: {message}")]
    Damaged {
        /// The file.
        path: String,
        /// The tensor at fault and what differs.
        message: String,
    },
    /// Keys or shapes do not match the model's; nothing was loaded.
    #[error("{path}: checkpoint does not match the model: {mismatch}")]
    Mismatch {
        /// The file (or the origin named by the caller).
        path: String,
        /// Every missing, unexpected and mis-shaped key.
        mismatch: KeyMismatch,
    },
    /// Burn refused to apply the (matching) tensors to the model.
    #[error("{path}: {message}")]
    Apply {
        /// The file (or the origin named by the caller).
        path: String,
        /// Burn's report of the errors, missing and unused tensors.
        message: String,
    },
    /// Writing a checkpoint failed.
    #[error("{path}: cannot write: {message}")]
    Write {
        /// The output file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// Writing an output file failed.
    #[error(transparent)]
    File(#[from] crate::files::FileError),
}
