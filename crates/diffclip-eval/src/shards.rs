//! Folders of embedding shards `embeddings-NNNNN.safetensors` (`embed --output DIR`): writing
//! them ([`ShardJob`]) and exact search over them ([`search`], or [`ExactIndex`] in memory).

mod exact;
mod folder;
mod job;
mod stamp;

use std::path::{Path, PathBuf};

pub use exact::{ExactIndex, Hit, search, search_many};
pub use folder::folder_problems;
pub(crate) use exact::{dot, keep_top, normalized};
pub use job::{EmbedRow, Embedding, RowImage, ShardJob, ShardPlan, ShardReport};


/// Why a shard without `tensor` cannot be searched: it was embedded for the other kind
/// (`embed --texts` or `--embed texts` writes only `text_embed`), named so the user can switch.
pub(crate) fn missing_tensor<S: AsRef<str>>(tensor: &str, present: impl IntoIterator<Item = S>) -> String {
    let mut present: Vec<String> = present.into_iter().map(|s| s.as_ref().to_string()).filter(|s| s != "__metadata__").collect();
    present.sort();
    format!("holds no {tensor} (it holds {}): search the kind of embedding the folder was written with", if present.is_empty() { "nothing".into() } else { present.join(", ") })
}

/// The row names of a shard from its `paths` metadata (a JSON list of strings), or why there
/// are none.
pub(crate) fn shard_paths(paths: Option<&str>) -> Result<Vec<String>, String> {
    let paths = paths.ok_or("no `paths` metadata")?;
    serde_json::from_str(paths).map_err(|e| format!("its `paths` metadata is not a JSON list of strings ({e})"))
}

/// What embedded a folder of shards, as its first shard records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedBy {
    /// The job's description of its encoder ([`ShardJob::source`]: checkpoint, model key,
    /// dtype, preprocessing, truncation).
    pub source: String,
    /// The encoder's model key ([`ShardJob::model_key`]); `None` for shards written before
    /// it was stored.
    pub model_key: Option<String>,
}

impl EmbeddedBy {
    /// Whether a model of key `key` embedded these rows: by the stored key, or for older shards
    /// by the key's first 16 characters in the description, as `embed` wrote it then.
    ///
    /// ```
    /// use diffclip_eval::shards::EmbeddedBy;
    /// let by = EmbeddedBy { source: "m.pt".into(), model_key: Some("ab12".into()) };
    /// assert!(by.is_model("ab12") && !by.is_model("ab13"));
    /// let older = EmbeddedBy { source: "m.pt (model key 0123456789abcdef), dtype F32".into(), model_key: None };
    /// assert!(older.is_model("0123456789abcdef99"));
    /// ```
    pub fn is_model(&self, key: &str) -> bool {
        match &self.model_key {
            Some(stored) => stored == key,
            None => key.get(..16).is_some_and(|start| self.source.contains(&format!("(model key {start})"))),
        }
    }
}

/// What made the first shard of `dir`, so a search can say when its model is another. `None`
/// when there is no shard or no record.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// assert_eq!(diffclip_eval::shards::embedded_by(dir.path()), None);
/// ```
pub fn embedded_by(dir: &Path) -> Option<EmbeddedBy> {
    let first = list_shards(dir).ok()?.into_iter().next()?;
    stamp::Stamp::of(&first).map(|s| EmbeddedBy { source: s.source, model_key: s.model_key })
}

/// The `embeddings-*.safetensors` shards of `dir`, sorted: the collection's row order.
pub fn list_shards(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut shards = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("embeddings-")) && p.extension().is_some_and(|e| e == "safetensors") {
            shards.push(p);
        }
    }
    shards.sort();
    Ok(shards)
}
