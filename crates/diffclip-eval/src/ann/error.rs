//! The error of the approximate index: every variant names the file or folder concerned.

use thiserror::Error;

/// Why an approximate index could not be built, opened or searched.
#[derive(Debug, Error)]
pub enum IndexError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A shard that cannot be indexed (not safetensors, no `paths`, wrong dtype or shape,
    /// non-finite rows), or a folder without shards.
    #[error("{path}: {message}")]
    Shard {
        /// The shard or the folder.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// No index beside the shards.
    #[error("{path}: no approximate index here (build it: AnnIndex::build, or search --approximate)")]
    Missing {
        /// The index's manifest (`DIR/index.hnsw.json`).
        path: String,
    },
    /// The shards changed (added, removed or rewritten) since the index was built.
    #[error("{path}: the index is stale: {message}; rebuild it (AnnIndex::build, or search --rebuild-index)")]
    Stale {
        /// The index's manifest.
        path: String,
        /// What changed.
        message: String,
    },
    /// An index file that is truncated, damaged or not one this version writes.
    #[error("{path}: corrupt index: {message}; rebuild it (AnnIndex::build, or search --rebuild-index)")]
    Corrupt {
        /// The index file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An argument out of its range (a query of the wrong length, M = 0, ...).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// Writing an index file failed.
    #[error(transparent)]
    File(#[from] diffclip_clip::files::FileError),
}

impl IndexError {
    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Self::Io { path: path.as_ref().display().to_string(), source }
    }

    pub(crate) fn shard(path: impl AsRef<std::path::Path>, message: impl Into<String>) -> Self {
        Self::Shard { path: path.as_ref().display().to_string(), message: message.into() }
    }

    pub(crate) fn corrupt(path: impl AsRef<std::path::Path>, message: impl Into<String>) -> Self {
        Self::Corrupt { path: path.as_ref().display().to_string(), message: message.into() }
    }
}
