//! Embedding a collection into shards on disk (`embed --images/--texts --output DIR`): fixed-size
//! shards `embeddings-NNNNN.safetensors`, resumable (finished shards are kept), splittable over
//! machines (`--shard I/N`), with unreadable files skipped and reported.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use diffclip_clip::check_finite_rows;
use diffclip_clip::files::{F32Tensor, write_safetensors};
use diffclip_data::Pipeline;
use diffclip_data::preprocess::batch_tensor;
use rayon::prelude::*;

use crate::progress::bar;
use crate::{Encoder, EvalError, Matrix};


/// How to cut a collection into shards and which of them this process writes.
#[derive(Debug, Clone)]
pub struct ShardJob {
    /// The output folder.
    pub dir: PathBuf,
    /// Rows per shard (the last one may be shorter).
    pub rows_per_shard: usize,
    /// This process's part `(i, n)`: it writes shards `k` with `k % n == i` (0-based `i`).
    pub part: (usize, usize),
    /// L2-normalise each row before writing.
    pub normalize: bool,
    /// Write rows with NaN or infinity instead of failing.
    pub allow_non_finite: bool,
    /// Stop at the first unreadable file instead of skipping it.
    pub fail_on_bad: bool,
}

/// What a job did.
#[derive(Debug, Default)]
pub struct ShardReport {
    /// Shards written now.
    pub written: Vec<PathBuf>,
    /// Shards already present (a resumed job) and left as they were.
    pub kept: Vec<PathBuf>,
    /// Files skipped, with the reason.
    pub skipped: Vec<(String, String)>,
}

impl ShardJob {
    /// The path of shard `k`.
    pub fn shard_path(&self, k: usize) -> PathBuf {
        self.dir.join(format!("embeddings-{k:05}.safetensors"))
    }

    /// The shards of `len` rows this process owns, as `(k, row range)`.
    fn my_shards(&self, len: usize) -> Result<Vec<(usize, std::ops::Range<usize>)>, EvalError> {
        let (i, n) = self.part;
        if n == 0 || i >= n || self.rows_per_shard == 0 {
            return Err(EvalError::Invalid(format!("shard part {i}/{n} with {} rows per shard", self.rows_per_shard)));
        }
        let per = self.rows_per_shard;
        Ok((0..len.div_ceil(per)).filter(|k| k % n == i).map(|k| (k, k * per..((k + 1) * per).min(len))).collect())
    }

    /// Embeds the image `files` (preprocessed by `pipeline`) into shards holding `image_embed`
    /// `[rows, E]` and, in the metadata key `paths`, the JSON list of each row's file. An
    /// unreadable file is left out of its shard (and reported) unless `fail_on_bad`.
    pub fn embed_images(&self, encoder: &Encoder<'_>, pipeline: &Pipeline, files: &[PathBuf]) -> Result<ShardReport, EvalError> {
        let mut report = ShardReport::default();
        let shards = self.my_shards(files.len())?;
        let pb = bar(shards.iter().map(|(_, r)| r.len()).sum(), "images", encoder.progress());
        for (k, range) in shards {
            let path = self.shard_path(k);
            if is_complete(&path) {
                report.kept.push(path);
                pb.inc(range.len() as u64);
                continue;
            }
            // Decode in parallel; keep the readable ones in order.
            let decoded: Vec<(usize, Result<Vec<f32>, String>)> =
                range.clone().into_par_iter().map(|i| (i, pipeline.process_file(&files[i], 0).map_err(|e| e.to_string()))).collect();
            let (mut rows, mut paths) = (Vec::new(), Vec::new());
            for (i, result) in decoded {
                match result {
                    Ok(pixels) => {
                        rows.push(pixels);
                        paths.push(files[i].display().to_string());
                    }
                    Err(e) if self.fail_on_bad => return Err(EvalError::Image { path: files[i].display().to_string(), message: e }),
                    Err(e) => report.skipped.push((files[i].display().to_string(), e)),
                }
            }
            let embed = if rows.is_empty() {
                Matrix::zeros(0, 0)
            } else {
                let images = batch_tensor(rows, pipeline.config().size as usize, encoder.device());
                encoder.clone().with_progress(false).encode_images(images)?
            };
            self.write(&path, "image_embed", embed, &paths)?;
            report.written.push(path);
            pb.inc(range.len() as u64);
        }
        pb.finish_and_clear();
        Ok(report)
    }

    /// Embeds `texts` into shards holding `text_embed` and, in `paths`, each row's
    /// `LINE:<n>` (1-based line of the caption file).
    pub fn embed_texts(&self, encoder: &Encoder<'_>, texts: &[(usize, String)]) -> Result<ShardReport, EvalError> {
        let mut report = ShardReport::default();
        for (k, range) in self.my_shards(texts.len())? {
            let path = self.shard_path(k);
            if is_complete(&path) {
                report.kept.push(path);
                continue;
            }
            let chunk = &texts[range];
            let lines: Vec<&str> = chunk.iter().map(|(_, t)| t.as_str()).collect();
            let embed = encoder.encode_texts(&lines)?;
            let ids: Vec<String> = chunk.iter().map(|(n, _)| format!("LINE:{n}")).collect();
            self.write(&path, "text_embed", embed, &ids)?;
            report.written.push(path);
        }
        Ok(report)
    }

    fn write(&self, path: &Path, name: &str, embed: Matrix, ids: &[String]) -> Result<(), EvalError> {
        let embed = if self.normalize { embed.l2_normalized() } else { embed };
        if !self.allow_non_finite {
            check_finite_rows(&format!("{} {name}", path.display()), embed.data(), embed.cols())?;
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| EvalError::io(&self.dir, e))?;
        let meta = HashMap::from([("paths".to_string(), serde_json::to_string(ids).expect("strings serialise"))]);
        let tensor = F32Tensor { name: name.into(), shape: vec![embed.rows(), embed.cols()], data: embed.data() };
        write_safetensors(path, &[tensor], meta).map_err(|e| EvalError::Cache { path: path.display().to_string(), message: e.to_string() })
    }
}

/// A shard counts as done when its header parses and lists its rows (writes are atomic, so a
/// torn one cannot exist; a foreign file of that name is rewritten). Only the header is read.
fn is_complete(path: &Path) -> bool {
    diffclip_clip::checkpoint::safetensors_header(path)
        .ok()
        .flatten()
        .is_some_and(|h| h.get("__metadata__").and_then(|m| m.get("paths")).is_some())
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
pub fn search(dir: &Path, tensor: &str, query: &[f32], k: usize) -> Result<Vec<Hit>, EvalError> {
    let norm = query.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    let q: Vec<f32> = query.iter().map(|v| v / norm).collect();
    let mut shards: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| EvalError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("embeddings-")) && p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    shards.sort();
    if shards.is_empty() {
        return Err(EvalError::dataset(dir, "no embeddings-NNNNN.safetensors shards"));
    }
    let mut hits: Vec<Hit> = Vec::new();
    for shard in shards {
        let bad = |m: String| EvalError::Cache { path: shard.display().to_string(), message: m };
        let bytes = std::fs::read(&shard).map_err(|e| EvalError::io(&shard, e))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let paths: Vec<String> = meta.metadata().as_ref().and_then(|m| m.get("paths")).and_then(|p| serde_json::from_str(p).ok()).ok_or_else(|| bad("no `paths` metadata".into()))?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let Ok(view) = st.tensor(tensor) else { continue };
        let shape = view.shape();
        if view.dtype() != safetensors::Dtype::F32 || shape.len() != 2 || shape[0] != paths.len() || (shape[0] > 0 && shape[1] != q.len()) {
            return Err(bad(format!("{tensor} is {:?} {shape:?}, expected F32 [{}, {}]", view.dtype(), paths.len(), q.len())));
        }
        let values: Vec<f32> = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        for (row, path) in values.chunks(q.len().max(1)).zip(paths) {
            let n = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            let score = row.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>() / n;
            if hits.len() < k || hits.last().is_some_and(|h| score > h.score) {
                let at = hits.partition_point(|h| h.score >= score);
                hits.insert(at, Hit { score, path });
                hits.truncate(k);
            }
        }
    }
    Ok(hits)
}
