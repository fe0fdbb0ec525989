//! Folders of embedding shards `embeddings-NNNNN.safetensors` (`embed --output DIR`): writing
//! them ([`ShardJob`]) and exact search over them ([`search`]).

mod job;
mod stamp;

use std::path::{Path, PathBuf};

pub use job::{EmbedRow, Embedding, ImageSource, ShardJob, ShardPlan, ShardReport};

use crate::EvalError;

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

/// One search hit: cosine similarity and the row's `paths` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Cosine similarity to the query.
    pub score: f32,
    /// The file (or `LINE:n`) the row came from.
    pub path: String,
}

/// Exact top-`k` search of `query` (any scale) against the `tensor` rows of every shard in `dir`
/// (`image_embed` or `text_embed`), by cosine similarity. Shards are read one at a time, so
/// memory is one shard plus `k` hits whatever the collection's size. Ties keep the earlier row.
/// A shard without `tensor` is an error (the folder holds the other kind of embedding).
pub fn search(dir: &Path, tensor: &str, query: &[f32], k: usize) -> Result<Vec<Hit>, EvalError> {
    Ok(search_many(dir, tensor, &[query], k)?.pop().unwrap_or_default())
}

/// [`search`] for several queries at once: each shard is read once for all of them.
pub fn search_many(dir: &Path, tensor: &str, queries: &[&[f32]], k: usize) -> Result<Vec<Vec<Hit>>, EvalError> {
    let unit = |q: &[f32]| {
        let norm = q.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        q.iter().map(|v| v / norm).collect::<Vec<f32>>()
    };
    let queries: Vec<Vec<f32>> = queries.iter().map(|q| unit(q)).collect();
    let dim = queries.first().map_or(0, Vec::len);
    if queries.iter().any(|q| q.len() != dim) {
        return Err(EvalError::Invalid("queries of different lengths".into()));
    }
    let shards = list_shards(dir).map_err(|e| EvalError::io(dir, e))?;
    if shards.is_empty() {
        return Err(EvalError::dataset(dir, "no embeddings-NNNNN.safetensors shards"));
    }
    let mut hits: Vec<Vec<Hit>> = vec![Vec::new(); queries.len()];
    for shard in shards {
        let bad = |m: String| EvalError::Shard { path: shard.display().to_string(), message: m };
        let bytes = std::fs::read(&shard).map_err(|e| EvalError::io(&shard, e))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let paths: Vec<String> = meta.metadata().as_ref().and_then(|m| m.get("paths")).and_then(|p| serde_json::from_str(p).ok()).ok_or_else(|| bad("no `paths` metadata".into()))?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let Ok(view) = st.tensor(tensor) else { return Err(bad(missing_tensor(tensor, st.names()))) };
        let shape = view.shape();
        if view.dtype() != safetensors::Dtype::F32 || shape.len() != 2 || shape[0] != paths.len() || (shape[0] > 0 && shape[1] != dim) {
            return Err(bad(format!("{tensor} is {:?} {shape:?}, expected F32 [{}, {dim}]", view.dtype(), paths.len())));
        }
        let values: Vec<f32> = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        for (row, path) in values.chunks(dim.max(1)).zip(&paths) {
            let n = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            for (q, hits) in queries.iter().zip(&mut hits) {
                let score = row.iter().zip(q).map(|(a, b)| a * b).sum::<f32>() / n;
                if hits.len() < k || hits.last().is_some_and(|h| score > h.score) {
                    let at = hits.partition_point(|h| h.score >= score);
                    hits.insert(at, Hit { score, path: path.clone() });
                    hits.truncate(k);
                }
            }
        }
    }
    Ok(hits)
}
