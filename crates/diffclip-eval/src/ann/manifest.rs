//! `DIR/index.hnsw.json`, the manifest written last when an index is saved: what the graph
//! covers (each shard's fingerprint), how it was built, the sizes and SHA-256 of the two graph
//! files, and the recall measured after the build. An index is used only when its manifest
//! matches the shards and the files.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::rows::ShardPrint;
use super::{AnnConfig, IndexError};

/// Base name of the index files of `tensor`: `index.hnsw.graph` and `index.hnsw.data` (written
/// by `hnsw_rs`) and `index.hnsw.json` for `image_embed`, `index-text_embed.hnsw.*` for
/// another: a folder of image–text pairs holds one index of each without either replacing
/// the other.
pub(crate) fn basename(tensor: &str) -> String {
    match tensor {
        "image_embed" => "index".into(),
        other => format!("index-{other}"),
    }
}
/// Version of this manifest and of the checks made on the graph files.
const FORMAT: u32 = 1;
/// Largest manifest read (a few hundred bytes per shard).
const MAX_BYTES: u64 = 256 << 20;

/// Size and SHA-256 of one graph file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FilePrint {
    pub bytes: u64,
    pub sha256: String,
}

/// The manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub format: u32,
    /// The library that wrote the graph files.
    pub library: String,
    /// The indexed tensor (`image_embed` or `text_embed`).
    pub tensor: String,
    pub rows: usize,
    pub dim: usize,
    pub config: AnnConfig,
    pub shards: Vec<ShardPrint>,
    pub graph: FilePrint,
    pub data: FilePrint,
    /// Recall@10 against exact search measured after the build (`None`: not measured).
    pub recall_at_10: Option<f64>,
    pub build_seconds: f64,
}

/// The three index paths of `tensor` in a folder.
pub(crate) fn paths(dir: &Path, tensor: &str) -> [PathBuf; 3] {
    paths_named(dir, &basename(tensor))
}

/// The three index paths of base name `base` in a folder.
pub(crate) fn paths_named(dir: &Path, base: &str) -> [PathBuf; 3] {
    ["graph", "data", "json"].map(|ext| dir.join(format!("{base}.hnsw.{ext}")))
}

/// The library string recorded in new manifests.
pub(crate) fn library() -> String {
    "hnsw_rs 0.3".into()
}

impl Manifest {
    /// Reads `path`: [`IndexError::Missing`] when absent, [`IndexError::Corrupt`] when it does not
    /// parse, [`IndexError::Stale`] when an older format or another library wrote it.
    pub fn read(path: &Path) -> Result<Self, IndexError> {
        let meta = match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(IndexError::Missing { path: path.display().to_string() }),
            r => r.map_err(|e| IndexError::io(path, e))?,
        };
        if !meta.is_file() || meta.len() > MAX_BYTES {
            return Err(IndexError::corrupt(path, "not a regular file of at most 256 MiB"));
        }
        let bytes = std::fs::read(path).map_err(|e| IndexError::io(path, e))?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| IndexError::corrupt(path, e.to_string()))?;
        let (format, writer) = (value.get("format").and_then(|f| f.as_u64()), value.get("library").and_then(|l| l.as_str()));
        if format != Some(FORMAT.into()) || writer != Some(library().as_str()) {
            let message = format!("written as format {format:?} by {writer:?}; this version writes format {FORMAT} with {}", library());
            return Err(IndexError::Stale { path: path.display().to_string(), message });
        }
        serde_json::from_value(value).map_err(|e| IndexError::corrupt(path, e.to_string()))
    }

    /// A new manifest (format and library filled in).
    #[allow(clippy::too_many_arguments)]
    pub fn new(tensor: &str, rows: usize, dim: usize, config: AnnConfig, shards: Vec<ShardPrint>, graph: FilePrint, data: FilePrint, build_seconds: f64) -> Self {
        Self { format: FORMAT, library: library(), tensor: tensor.into(), rows, dim, config, shards, graph, data, recall_at_10: None, build_seconds }
    }

    /// Writes it atomically (the commit point of a save).
    pub fn write(&self, path: &Path) -> Result<(), IndexError> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| IndexError::Invalid(e.to_string()))?;
        Ok(diffclip_clip::files::write_atomic(path, &json)?)
    }

    /// `Ok` when `now` (the shards found now) are the ones indexed; else what changed.
    pub fn check_shards(&self, now: &[ShardPrint]) -> Result<(), String> {
        let mut changes = Vec::new();
        for s in now {
            match self.shards.iter().find(|o| o.name == s.name) {
                None => changes.push(format!("{} added", s.name)),
                Some(o) if o != s => changes.push(format!("{} changed", s.name)),
                Some(_) => {}
            }
        }
        changes.extend(self.shards.iter().filter(|o| !now.iter().any(|s| s.name == o.name)).map(|o| format!("{} removed", o.name)));
        if changes.is_empty() {
            return Ok(());
        }
        let more = changes.len().saturating_sub(5);
        changes.truncate(5);
        Err(format!("{}{}", changes.join(", "), if more > 0 { format!(" and {more} more") } else { String::new() }))
    }
}
