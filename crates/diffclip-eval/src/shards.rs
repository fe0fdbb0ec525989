//! Folders of embedding shards `embeddings-NNNNN.safetensors` (`embed --output DIR`): writing
//! them ([`ShardJob`]) and exact search over them ([`search`], or [`ExactIndex`] in memory).

mod exact;
mod job;
mod stamp;

use std::path::{Path, PathBuf};

pub use exact::{ExactIndex, Hit, search, search_many};
pub(crate) use exact::{dot, keep_top, normalized};
pub use job::{EmbedRow, Embedding, ImageSource, ShardJob, ShardPlan, ShardReport};


/// Why a shard without `tensor` cannot be searched: it was embedded for the other kind
/// (`embed --texts` or `--embed texts` writes only `text_embed`), named so the user can switch.
pub(crate) fn missing_tensor<S: AsRef<str>>(tensor: &str, present: impl IntoIterator<Item = S>) -> String {
    let mut present: Vec<String> = present.into_iter().map(|s| s.as_ref().to_string()).filter(|s| s != "__metadata__").collect();
    present.sort();
    format!("holds no {tensor} (it holds {}): search the kind of embedding the folder was written with", if present.is_empty() { "nothing".into() } else { present.join(", ") })
}

/// What made the first shard of `dir`, as the job that wrote it described its encoder
/// ([`ShardJob::source`]: checkpoint, model key, dtype, preprocessing, truncation), so a search
/// can say when its model is another. `None` when there is no shard or no record.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// assert_eq!(diffclip_eval::shards::embedded_by(dir.path()), None);
/// ```
pub fn embedded_by(dir: &Path) -> Option<String> {
    let first = list_shards(dir).ok()?.into_iter().next()?;
    let header = diffclip_clip::checkpoint::safetensors_header(&first).ok()??;
    let job = header.get("__metadata__")?.get(stamp::KEY)?.as_str()?;
    serde_json::from_str::<stamp::Stamp>(job).ok().map(|s| s.source)
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
