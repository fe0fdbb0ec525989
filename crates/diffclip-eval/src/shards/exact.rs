//! Exact search by cosine similarity: streamed from the shards ([`search_many`], one shard in
//! memory at a time) or from the whole collection held in memory ([`ExactIndex`], for many
//! queries one after another). Both score and rank the same way, so they give the same hits
//! to the bit.

use std::path::Path;

use rayon::prelude::*;

use super::{list_shards, missing_tensor};
use crate::EvalError;

/// One search hit: cosine similarity and the row's `paths` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Cosine similarity to the query.
    pub score: f32,
    /// The file (or `LINE:n`) the row came from.
    pub path: String,
}

/// Rows scored per parallel task; per-block results merge in row order, so the hits do not
/// depend on the number of threads.
const BLOCK_ROWS: usize = 4096;

/// Exact top-`k` search of `query` (any scale) against the `tensor` rows of every shard in `dir`
/// (`image_embed` or `text_embed`), by cosine similarity. Shards are read one at a time, so
/// memory is about twice one shard (its bytes and its unit rows) plus `k` hits whatever the
/// collection's size. Ties keep the earlier row;
/// a row holding NaN scores NaN and ranks after every other; a query holding NaN or infinity is
/// an error. A shard without `tensor` is an error (the folder holds the other kind of
/// embedding).
pub fn search(dir: &Path, tensor: &str, query: &[f32], k: usize) -> Result<Vec<Hit>, EvalError> {
    Ok(search_many(dir, tensor, &[query], k)?.pop().unwrap_or_default())
}

/// [`search`] for several queries at once: each shard is read once for all of them.
pub fn search_many(dir: &Path, tensor: &str, queries: &[&[f32]], k: usize) -> Result<Vec<Vec<Hit>>, EvalError> {
    let Some(first) = queries.first() else { return Ok(Vec::new()) };
    // Checked and normalised once for every shard.
    let unit = unit_queries(queries, Some(first.len()))?;
    // Each query's best rows so far: score, row of the collection, path.
    let mut tops: Vec<Vec<(f32, usize, String)>> = vec![Vec::new(); queries.len()];
    let mut base = 0;
    for shard in shard_files(dir)? {
        let block = ExactIndex::read_shard(&shard, tensor, Some(first.len()))?;
        for (top, best) in tops.iter_mut().zip(block.top_rows(&unit, k)) {
            top.extend(best.into_iter().map(|(score, i)| (score, base + i, block.paths[i].clone())));
            keep_top(top, k, |t| (t.0, t.1));
        }
        base += block.rows();
    }
    Ok(tops.into_iter().map(|top| top.into_iter().map(|(score, _, path)| Hit { score, path }).collect()).collect())
}

/// Every row of a shard folder in memory, L2-normalised, for exact search without reading the
/// shards again: a process answering queries one after another (`search --queries -`) pays
/// the reading once. Holds `rows × dim` f32 plus the paths; hits are [`search`]'s, to the bit.
///
/// ```no_run
/// # fn main() -> Result<(), diffclip_eval::EvalError> {
/// use diffclip_eval::shards::ExactIndex;
/// let index = ExactIndex::open("index/".as_ref(), "image_embed")?;
/// let hits = index.search(&[0.1; 512], 10)?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct ExactIndex {
    dim: usize,
    unit: Vec<f32>,
    paths: Vec<String>,
    non_finite: usize,
}

impl ExactIndex {
    /// Reads the `tensor` rows of every shard in `dir` (the errors of [`search`]).
    pub fn open(dir: &Path, tensor: &str) -> Result<Self, EvalError> {
        let shards = shard_files(dir)?;
        let mut all = Self::default();
        // The rows' exact size from the shards' headers, reserved once: memory peaks at the
        // collection plus one shard, never at the files' size (other tensors) or a regrowth.
        let mut values = 0usize;
        for shard in &shards {
            values = values.checked_add(Self::values_in(shard, tensor)?).ok_or_else(|| too_big(dir, u64::MAX))?;
        }
        all.unit.try_reserve_exact(values).map_err(|_| too_big(dir, values as u64 * 4))?;
        for shard in shards {
            let block = Self::read_shard(&shard, tensor, (!all.paths.is_empty()).then_some(all.dim))?;
            if !block.paths.is_empty() {
                all.dim = block.dim;
                all.unit.extend(block.unit);
                all.paths.extend(block.paths);
                all.non_finite += block.non_finite;
            }
        }
        Ok(all)
    }

    /// Rows holding NaN or infinity (written by `embed --allow-non-finite`, or damaged): they
    /// score NaN and rank after every other row, so a caller may want to say so once.
    pub fn non_finite_rows(&self) -> usize {
        self.non_finite
    }

    /// How many values `tensor` holds in `shard`, from the shard's header alone (the first
    /// 8 + header-length bytes; the full check is [`Self::read_shard`]'s).
    fn values_in(shard: &Path, tensor: &str) -> Result<usize, EvalError> {
        use std::io::Read;
        let bad = |m: String| EvalError::Shard { path: shard.display().to_string(), message: m };
        let mut file = diffclip_clip::files::open_regular(shard).map_err(|e| EvalError::io(shard, e))?;
        let mut len = [0u8; 8];
        file.read_exact(&mut len).map_err(|e| EvalError::io(shard, e))?;
        let len = u64::from_le_bytes(len);
        // safetensors' own limit on a header.
        if len > 100_000_000 {
            return Err(bad(format!("a header of {len} bytes")));
        }
        let mut header = Vec::with_capacity(len as usize);
        file.take(len).read_to_end(&mut header).map_err(|e| EvalError::io(shard, e))?;
        let header: serde_json::Value = serde_json::from_slice(&header).map_err(|e| bad(format!("header: {e}")))?;
        let Some(entry) = header.get(tensor) else {
            let names = header.as_object().map(|o| o.keys().filter(|k| *k != "__metadata__").cloned().collect::<Vec<_>>()).unwrap_or_default();
            return Err(bad(missing_tensor(tensor, names)));
        };
        let shape: Option<Vec<usize>> = entry.get("shape").and_then(|s| s.as_array()).map(|dims| dims.iter().filter_map(|d| d.as_u64().map(|d| d as usize)).collect());
        match shape {
            Some(dims) if dims.len() == 2 => dims[0].checked_mul(dims[1]).ok_or_else(|| bad(format!("{tensor} has shape {dims:?}"))),
            _ => Err(bad(format!("{tensor} has no 2-d shape in the header"))),
        }
    }

    /// Rows held.
    pub fn rows(&self) -> usize {
        self.paths.len()
    }

    /// Values per row (0 when there are no rows).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The top-`k` rows for `query` (any scale), best first.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, EvalError> {
        Ok(self.search_many(&[query], k)?.pop().unwrap_or_default())
    }

    /// [`Self::search`] for several queries, in parallel over blocks of rows. A query of the
    /// wrong length or holding NaN or infinity is an error.
    pub fn search_many(&self, queries: &[&[f32]], k: usize) -> Result<Vec<Vec<Hit>>, EvalError> {
        let unit = unit_queries(queries, (!self.paths.is_empty()).then_some(self.dim))?;
        Ok(self.top_rows(&unit, k).into_iter().map(|top| top.into_iter().map(|(score, i)| Hit { score, path: self.paths[i].clone() }).collect()).collect())
    }

    /// Each unit query's best `k` rows (score, row), best first ([`keep_top`]'s order): every
    /// block of rows ranked on its own, in parallel, then the blocks' bests together.
    fn top_rows(&self, unit: &[Vec<f32>], k: usize) -> Vec<Vec<(f32, usize)>> {
        let blocks: Vec<Vec<Vec<(f32, usize)>>> = (0..self.rows().div_ceil(BLOCK_ROWS))
            .into_par_iter()
            .map(|b| {
                let first = b * BLOCK_ROWS;
                let rows = &self.unit[first * self.dim..(first + BLOCK_ROWS).min(self.rows()) * self.dim];
                let mut scored = Vec::with_capacity(BLOCK_ROWS);
                unit.iter()
                    .map(|q| {
                        scored.clear();
                        scored.extend(rows.chunks_exact(self.dim).enumerate().map(|(i, row)| (dot(q, row), first + i)));
                        keep_top(&mut scored, k, |t| *t);
                        scored.clone()
                    })
                    .collect()
            })
            .collect();
        let mut tops: Vec<Vec<(f32, usize)>> = vec![Vec::new(); unit.len()];
        for block in blocks {
            for (top, best) in tops.iter_mut().zip(block) {
                top.extend(best);
            }
        }
        for top in &mut tops {
            keep_top(top, k, |t| *t);
        }
        tops
    }

    /// One shard's rows, normalised; `dim`, when known, is the row length it must have.
    fn read_shard(shard: &Path, tensor: &str, dim: Option<usize>) -> Result<Self, EvalError> {
        let bad = |m: String| EvalError::Shard { path: shard.display().to_string(), message: m };
        // Its layout from the header first: a file that is no shard is not read whole.
        diffclip_clip::checkpoint::check_safetensors(shard).map_err(|e| match e {
            diffclip_clip::checkpoint::CheckpointError::Read { message, .. } => bad(message),
            e => bad(e.to_string()),
        })?;
        let bytes = diffclip_clip::files::read_regular(shard).map_err(|e| EvalError::io(shard, e))?;
        // The parser's errors, said with the tensor at fault where it can be named.
        let said = |e: safetensors::SafeTensorError| bad(diffclip_clip::checkpoint::safetensors_problem(&bytes).unwrap_or_else(|| e.to_string()));
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(said)?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(said)?;
        // Rows and their list checked before either is read.
        diffclip_clip::checksum::Checksums::check_file(meta.metadata().as_ref(), &st, |name| name == tensor).map_err(bad)?;
        let paths = super::shard_paths(meta.metadata().as_ref().and_then(|m| m.get("paths")).map(String::as_str)).map_err(bad)?;
        let Ok(view) = st.tensor(tensor) else { return Err(bad(missing_tensor(tensor, st.names()))) };
        let shape = view.shape();
        if shape.len() == 2 && shape[0] != paths.len() {
            return Err(bad(format!("its `paths` metadata names {} rows, but {tensor} holds {}", paths.len(), shape[0])));
        }
        let fits = shape.len() == 2 && shape[0] == paths.len() && (shape[0] == 0 || dim.is_none_or(|d| shape[1] == d)) && (shape[0] == 0 || shape[1] > 0);
        if view.dtype() != safetensors::Dtype::F32 || !fits {
            let want = dim.map_or("E".to_string(), |d| d.to_string());
            return Err(bad(format!("{tensor} is {:?} {shape:?}, expected F32 [{}, {want}]", view.dtype(), paths.len())));
        }
        let dim = if paths.is_empty() { dim.unwrap_or(0) } else { shape[1] };
        let mut unit = Vec::with_capacity(paths.len() * dim);
        let (mut row, mut non_finite) = (Vec::with_capacity(dim), 0);
        for bytes in view.data().chunks_exact(4 * dim.max(1)) {
            row.clear();
            row.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
            non_finite += usize::from(row.iter().any(|v| !v.is_finite()));
            unit.extend(normalized(&row));
        }
        Ok(Self { dim, unit, paths, non_finite })
    }
}

/// The error for a collection whose rows (`bytes`) cannot be held in memory.
fn too_big(dir: &Path, bytes: u64) -> EvalError {
    EvalError::dataset(dir, format!("{bytes} bytes of rows do not fit in memory: search the shards streamed (`search`) or through the approximate index"))
}

/// The shards of `dir`, at least one.
fn shard_files(dir: &Path) -> Result<Vec<std::path::PathBuf>, EvalError> {
    let shards = list_shards(dir).map_err(|e| EvalError::io(dir, e))?;
    if shards.is_empty() {
        return Err(EvalError::dataset(dir, "no embeddings-NNNNN.safetensors shards"));
    }
    Ok(shards)
}

/// `queries` normalised, once checked: finite, and `dim` values each when `dim` is known.
fn unit_queries(queries: &[&[f32]], dim: Option<usize>) -> Result<Vec<Vec<f32>>, EvalError> {
    if let Some(dim) = dim
        && let Some(q) = queries.iter().find(|q| q.len() != dim)
    {
        return Err(EvalError::Invalid(format!("a query of {} values against rows of {dim}", q.len())));
    }
    if queries.iter().any(|q| q.iter().any(|v| !v.is_finite())) {
        return Err(EvalError::Invalid("the query holds NaN or infinity".into()));
    }
    Ok(queries.iter().map(|q| normalized(q)).collect())
}

/// Keeps the best `k` of `items`, best first: the higher score first (`-0.0` ties with `0.0`),
/// NaN after every number, and among equal scores the lower row (`rank` gives score and row).
/// Linear in `items` plus `k log k`, whatever `k` is.
pub(crate) fn keep_top<T>(items: &mut Vec<T>, k: usize, rank: impl Fn(&T) -> (f32, usize)) {
    let key = |s: f32| if s.is_nan() { f32::NEG_INFINITY } else { s };
    let order = |a: &T, b: &T| {
        let ((sa, ra), (sb, rb)) = (rank(a), rank(b));
        key(sb).partial_cmp(&key(sa)).unwrap_or(std::cmp::Ordering::Equal).then(ra.cmp(&rb))
    };
    if items.len() > k {
        if k == 0 {
            items.clear();
            return;
        }
        items.select_nth_unstable_by(k - 1, order);
        items.truncate(k);
    }
    items.sort_unstable_by(order);
}

/// `row / ‖row‖` (a zero row stays zero). The norm is taken in f64: the squares of f32 values
/// past 1.8e19 overflow f32 and those below 1e-23 vanish, which would zero or blow up the row.
pub(crate) fn normalized(row: &[f32]) -> Vec<f32> {
    // Eight lanes, as in `dot`: a single running sum would wait on each add.
    let (chunks, rest) = row.as_chunks::<8>();
    let mut acc = [0f64; 8];
    for c in chunks {
        for i in 0..8 {
            acc[i] += f64::from(c[i]) * f64::from(c[i]);
        }
    }
    let squares = acc.iter().sum::<f64>() + rest.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>();
    let norm = squares.sqrt().max(f64::MIN_POSITIVE);
    match (1.0 / norm) as f32 {
        inv if inv.is_normal() => row.iter().map(|&v| v * inv).collect(),
        // 1/‖row‖ outside f32's normal range: divide in f64.
        _ => row.iter().map(|&v| (f64::from(v) / norm) as f32).collect(),
    }
}

/// Dot product in eight lanes (the compiler vectorises it; a plain `sum` stays serial).
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (ca, ra) = a.as_chunks::<8>();
    let (cb, rb) = b.as_chunks::<8>();
    let mut acc = [0f32; 8];
    for (x, y) in ca.iter().zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + ra.iter().zip(rb).map(|(x, y)| x * y).sum::<f32>()
}

#[cfg(test)]
mod tests {
    use diffclip_clip::files::{F32Tensor, write_safetensors};

    use super::*;

    /// The header alone gives the size to reserve: the named tensor's values, not the file's
    /// (which also holds the other tensor and the paths); a header that is missing, too long or
    /// not JSON is the shard's error.
    #[test]
    fn a_shard_header_gives_the_rows_size() {
        let dir = tempfile::tempdir().unwrap();
        let shard = dir.path().join("embeddings-00000.safetensors");
        let paths = serde_json::to_string(&["a.png", "b.png", "c.png"]).unwrap();
        let (image, text) = (vec![0.5f32; 3 * 4], vec![0.25f32; 3 * 8]);
        let tensors = [
            F32Tensor { name: "image_embed".into(), shape: vec![3, 4], data: &image },
            F32Tensor { name: "text_embed".into(), shape: vec![3, 8], data: &text },
        ];
        write_safetensors(&shard, &tensors, [("paths".to_string(), paths)].into()).unwrap();
        assert_eq!(ExactIndex::values_in(&shard, "image_embed").unwrap(), 12);
        assert_eq!(ExactIndex::values_in(&shard, "text_embed").unwrap(), 24);
        let err = ExactIndex::values_in(&shard, "pooled").unwrap_err().to_string();
        assert!(err.contains("pooled") && err.contains("image_embed") && !err.contains("__metadata__"), "{err}");
        let index = ExactIndex::open(dir.path(), "text_embed").unwrap();
        assert_eq!((index.unit.len(), index.unit.capacity()), (24, 24));

        let bad = dir.path().join("bad.safetensors");
        for (bytes, want) in [(vec![1u8, 2, 3], "failed to fill"), ((1u64 << 40).to_le_bytes().to_vec(), "a header of"), ([&4u64.to_le_bytes()[..], b"{]x}"].concat(), "header:")] {
            std::fs::write(&bad, &bytes).unwrap();
            let err = ExactIndex::values_in(&bad, "image_embed").unwrap_err().to_string();
            assert!(err.contains(want), "{want}: {err}");
        }
    }
}
