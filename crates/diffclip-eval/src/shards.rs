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
