//! [`AnnIndex`]: build an HNSW graph over every row of a shard folder, save it beside the
//! shards, open it again (checked), search it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Instant;

use diffclip_clip::files::{FileError, write_atomic_with};
use hnsw_rs::prelude::{AnnT, Hnsw, HnswIo};
use rayon::prelude::*;

use super::distance::{UnitCosine, dot, normalized};
use super::manifest::{self, Manifest, basename};
use super::rows::{self, Shard};
use super::{AnnConfig, IndexError, dump_check};
use crate::progress::bar;
use crate::shards::Hit;

/// Rows inserted one at a time before parallel insertion starts (see [`AnnIndex::build`]).
const SEQUENTIAL_ROWS: usize = 256;

/// An approximate nearest-neighbour index of one tensor (`image_embed` or `text_embed`) of a
/// shard folder: an HNSW graph of the L2-normalised rows, searched by cosine similarity like
/// [`crate::shards::search`], saved beside the shards as `index.hnsw.graph`,
/// `index.hnsw.data` (the graph and its rows, written by `hnsw_rs`) and `index.hnsw.json` (the
/// manifest: the shards covered, the parameters, checksums, the recall measured at build);
/// a `text_embed` index as `index-text_embed.hnsw.*`, so a folder of pairs holds both.
///
/// ```no_run
/// use diffclip_eval::ann::{AnnConfig, AnnIndex};
/// # fn main() -> Result<(), diffclip_eval::ann::IndexError> {
/// let dir = std::path::Path::new("index/");
/// // Opens the saved index, or builds it when missing or when the shards changed.
/// let (index, rebuilt) = AnnIndex::open_or_build(dir, "image_embed", AnnConfig::default())?;
/// if rebuilt.is_some() {
///     println!("recall@10 {:?}", index.build_recall());
/// }
/// for hit in index.search(&vec![0.1; index.dim()], 10)? {
///     println!("{:.4} {}", hit.score, hit.path);
/// }
/// # Ok(()) }
/// ```
pub struct AnnIndex {
    dir: PathBuf,
    hnsw: Hnsw<'static, f32, UnitCosine>,
    pub(super) manifest: Manifest,
    /// Each row's `paths` entry, by row id (rows numbered over the sorted shards).
    paths: Vec<String>,
    ef_search: usize,
}

impl std::fmt::Debug for AnnIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnnIndex").field("dir", &self.dir).field("tensor", &self.manifest.tensor).field("rows", &self.rows()).field("dim", &self.dim()).finish()
    }
}

impl AnnIndex {
    /// Builds the index over every row of `tensor` in the shards of `dir`, saves it there
    /// (replacing any older one) and, unless `config.recall_queries` is 0, measures its
    /// recall@10 against exact search first ([`Self::build_recall`]). Rows must be finite; the
    /// shards are read one at a time.
    pub fn build(dir: &Path, tensor: &str, config: AnnConfig) -> Result<Self, IndexError> {
        config.check()?;
        let start = Instant::now();
        let shards = rows::list(dir)?;
        let bytes: u64 = shards.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
        let (mut hnsw, mut prints, mut paths, mut dim) = (None, Vec::new(), Vec::new(), 0);
        let pb = bar(shards.len(), "indexing", true);
        for path in &shards {
            let mut shard = Shard::open(path, tensor)?;
            if shard.print.rows > 0 {
                if dim != 0 && shard.cols != dim {
                    return Err(IndexError::shard(path, format!("{tensor} has {} columns, earlier shards {dim}", shard.cols)));
                }
                dim = shard.cols;
                // 16 layers: hnsw_rs's maximum, which its dump requires.
                let graph = hnsw.get_or_insert_with(|| Hnsw::new(config.m, (bytes / (4 * dim as u64)) as usize, 16, config.ef_construction, UnitCosine));
                let unit: Vec<Vec<f32>> = shard.rows()?.par_chunks(dim).map(normalized).collect();
                let mut items: Vec<(&[f32], usize)> = unit.iter().enumerate().map(|(i, r)| (r.as_slice(), paths.len() + i)).collect();
                // Rows inserted in parallel into a near-empty graph can miss each other and be
                // left unreachable; the first rows go in one by one (deterministic: hnsw_rs
                // seeds its level generator), so small collections give the same graph each time.
                let rest = items.split_off(SEQUENTIAL_ROWS.saturating_sub(paths.len()).min(items.len()));
                items.iter().for_each(|&item| graph.insert_slice(item));
                graph.parallel_insert_slice(&rest);
                paths.append(&mut shard.paths);
            }
            prints.push(shard.print);
            pb.inc(1);
        }
        pb.finish_and_clear();
        let Some(mut hnsw) = hnsw else {
            return Err(IndexError::shard(dir, format!("no {tensor} rows in the shards")));
        };
        hnsw.set_searching_mode(true);
        let (graph, data) = save_graph(dir, tensor, &hnsw)?;
        let manifest = Manifest::new(tensor, paths.len(), dim, config, prints, graph, data, start.elapsed().as_secs_f64());
        let mut index = Self { dir: dir.into(), hnsw, manifest, paths, ef_search: config.ef_search };
        if config.recall_queries > 0 {
            index.manifest.recall_at_10 = Some(index.recall_at_k(config.recall_queries, 10)?);
        }
        index.manifest.write(&manifest::paths(dir, tensor)[2])?;
        Ok(index)
    }

    /// Opens the index saved in `dir` for `tensor`: [`IndexError::Missing`] when there is none,
    /// [`IndexError::Stale`] when the shards changed since it was built (one added, removed or
    /// rewritten: names, sizes, modification times, headers and the first and last rows of each
    /// are compared),
    /// [`IndexError::Corrupt`] when a file of it is damaged. The graph files are untrusted:
    /// they are checked completely (structure, ids, links, unit rows, SHA-256) before
    /// `hnsw_rs` reads them.
    pub fn open(dir: &Path, tensor: &str) -> Result<Self, IndexError> {
        match Self::open_named(dir, tensor, &basename(tensor)) {
            // A text index saved before each tensor had a name of its own: still good.
            Err(IndexError::Missing { .. }) if tensor != "image_embed" && Manifest::read(&manifest::paths_named(dir, "index")[2]).is_ok_and(|m| m.tensor == tensor) => Self::open_named(dir, tensor, "index"),
            opened => opened,
        }
    }

    /// [`open`](Self::open) of the index files named `base`.
    fn open_named(dir: &Path, tensor: &str, base: &str) -> Result<Self, IndexError> {
        let [graph, data, json] = manifest::paths_named(dir, base);
        let manifest = Manifest::read(&json)?;
        let stale = |message: String| IndexError::Stale { path: json.display().to_string(), message };
        if manifest.tensor != tensor {
            return Err(stale(format!("it indexes {}, not {tensor}", manifest.tensor)));
        }
        let (mut prints, mut paths) = (Vec::new(), Vec::with_capacity(manifest.rows.min(1 << 24)));
        for path in rows::list(dir)? {
            let mut shard = Shard::open(&path, tensor)?;
            if shard.print.rows > 0 && shard.cols != manifest.dim {
                return Err(stale(format!("{} has {} columns, the index {}", shard.print.name, shard.cols, manifest.dim)));
            }
            paths.append(&mut shard.paths);
            prints.push(shard.print);
        }
        manifest.check_shards(&prints).map_err(stale)?;
        if paths.len() != manifest.rows {
            return Err(IndexError::corrupt(&json, format!("{} rows, the shards hold {}", manifest.rows, paths.len())));
        }
        manifest.config.check().map_err(|e| IndexError::corrupt(&json, e.to_string()))?;
        dump_check::check(&graph, &data, &manifest)?;
        let hnsw = load_graph(dir, base, &graph)?;
        if hnsw.get_nb_point() != manifest.rows {
            return Err(IndexError::corrupt(&graph, "hnsw_rs read a different number of rows"));
        }
        Ok(Self { dir: dir.into(), hnsw, ef_search: manifest.config.ef_search, manifest, paths })
    }

    /// [`Self::open`], or [`Self::build`] with `config` when the index is missing or stale; the
    /// second value is then why it was built. A corrupt index stays an error (remove it or call
    /// [`Self::build`]).
    pub fn open_or_build(dir: &Path, tensor: &str, config: AnnConfig) -> Result<(Self, Option<IndexError>), IndexError> {
        match Self::open(dir, tensor) {
            Ok(index) => Ok((index, None)),
            Err(why @ (IndexError::Missing { .. } | IndexError::Stale { .. })) => Ok((Self::build(dir, tensor, config)?, Some(why))),
            Err(e) => Err(e),
        }
    }

    /// The `k` rows nearest to `query` (any scale; its length must be [`Self::dim`]) by cosine
    /// similarity, best first, as exact search returns them. Approximate: a true neighbour can
    /// be missed ([`Self::recall_at_k`] measures how often). `k` at least [`Self::rows`] gives
    /// every row.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, IndexError> {
        if query.len() != self.dim() {
            return Err(IndexError::Invalid(format!("the query has {} values, the index {} columns", query.len(), self.dim())));
        }
        if query.iter().any(|v| !v.is_finite()) {
            return Err(IndexError::Invalid("the query holds NaN or infinity".into()));
        }
        let hits = self.nearest(&normalized(query), k);
        Ok(hits.into_iter().filter_map(|(id, score)| Some(Hit { score, path: self.paths.get(id)?.clone() })).collect())
    }

    /// `(row id, cosine)` of the `k` nearest rows to a unit `query`.
    pub(super) fn nearest(&self, query: &[f32], k: usize) -> Vec<(usize, f32)> {
        let k = k.min(self.rows());
        if k == 0 {
            return Vec::new();
        }
        let found: Vec<(usize, f32)> = self.hnsw.search(query, k, self.ef_search.max(k)).into_iter().map(|n| (n.d_id, 1.0 - n.distance)).collect();
        if found.len() == k {
            return found;
        }
        // Parallel insertion can leave a row the graph search never reaches; a query that needs
        // more rows than it reached ranks every stored (unit) row exactly instead.
        let mut all: Vec<(usize, f32)> = self.hnsw.get_point_indexation().into_iter().map(|p| (p.get_origin_id(), dot(query, p.get_v()))).collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(k);
        all
    }

    /// Sets ef_search, the candidates examined per query (1..=100000; at least `k` are):
    /// higher finds more true neighbours, slower.
    pub fn set_ef_search(&mut self, ef_search: usize) -> Result<(), IndexError> {
        AnnConfig { ef_search, ..self.manifest.config }.check()?;
        self.ef_search = ef_search;
        Ok(())
    }

    /// The shard folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Rows indexed.
    pub fn rows(&self) -> usize {
        self.manifest.rows
    }

    /// Columns of each row (the embedding size).
    pub fn dim(&self) -> usize {
        self.manifest.dim
    }

    /// The parameters it was built with.
    pub fn config(&self) -> AnnConfig {
        self.manifest.config
    }

    /// Recall@10 against exact search measured when it was built (`None`: not measured).
    pub fn build_recall(&self) -> Option<f64> {
        self.manifest.recall_at_10
    }

    /// Seconds the build took (graph and save, before the recall measurement).
    pub fn build_seconds(&self) -> f64 {
        self.manifest.build_seconds
    }
}

/// Saves the graph through `hnsw_rs`'s dump into a private folder, then moves each file into
/// place atomically. The manifest (written after) is removed first, so that an interrupted
/// save leaves no index rather than a mismatched one.
fn save_graph(dir: &Path, tensor: &str, hnsw: &Hnsw<'static, f32, UnitCosine>) -> Result<(manifest::FilePrint, manifest::FilePrint), IndexError> {
    let [graph, data, json] = manifest::paths(dir, tensor);
    let base = basename(tensor);
    match std::fs::remove_file(&json) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(IndexError::io(&json, e)),
        _ => {}
    }
    remove_stale_saves(dir, &base, &[&graph, &data, &json])?;
    let tmp = dir.join(format!(".{base}.hnsw.tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).map_err(|e| IndexError::io(&tmp, e))?;
    let result = (|| {
        // hnsw_rs panics when it cannot create its files.
        let failed = |m: String| Err(IndexError::io(&tmp, std::io::Error::other(m)));
        match catch_unwind(AssertUnwindSafe(|| hnsw.file_dump(&tmp, &base))) {
            Ok(Ok(name)) if name == base => {}
            Ok(Ok(name)) => return failed(format!("hnsw_rs wrote {name}, not {base}")),
            Ok(Err(e)) => return failed(format!("hnsw_rs could not save the graph: {e}")),
            Err(_) => return failed("hnsw_rs could not create its files".into()),
        }
        for target in [&graph, &data] {
            let from = tmp.join(target.file_name().unwrap_or_default());
            write_atomic_with(target, |t| std::fs::rename(&from, t).map_err(|source| FileError::Io { path: from.display().to_string(), source }))?;
        }
        Ok((dump_check::print(&graph)?, dump_check::print(&data)?))
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// Removes what killed saves left: their private folders `.index.hnsw.tmp<PID>` and the
/// temporary files of [`write_atomic_with`], when their process no longer runs.
fn remove_stale_saves(dir: &Path, base: &str, targets: &[&Path]) -> Result<(), IndexError> {
    for t in targets {
        diffclip_clip::files::remove_stale_temps(t)?;
    }
    let prefix = format!(".{base}.hnsw.tmp");
    for entry in std::fs::read_dir(dir).map_err(|e| IndexError::io(dir, e))?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(&prefix)).and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() && entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(entry.path()).map_err(|e| IndexError::io(entry.path(), e))?;
        }
    }
    Ok(())
}

/// Reads the (checked) graph files with `hnsw_rs`. Its reader borrows its `HnswIo` for the
/// graph's life (for memory-mapped rows, unused here): that small struct is leaked, once per
/// load. A panic in it is this file's error.
fn load_graph(dir: &Path, base: &str, graph: &Path) -> Result<Hnsw<'static, f32, UnitCosine>, IndexError> {
    let read = || Box::leak(Box::new(HnswIo::new(dir, base))).load_hnsw::<f32, UnitCosine>();
    match catch_unwind(AssertUnwindSafe(read)) {
        Ok(Ok(hnsw)) => Ok(hnsw),
        Ok(Err(e)) => Err(IndexError::corrupt(graph, format!("hnsw_rs: {e}"))),
        Err(_) => Err(IndexError::corrupt(graph, "hnsw_rs failed reading it")),
    }
}
