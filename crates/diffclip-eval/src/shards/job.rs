//! Embedding a collection into shards on disk (`embed --images/--texts/--data --output DIR`):
//! shards `embeddings-NNNNN.safetensors`, resumable (finished shards are kept), splittable over
//! machines (`--shard I/N`), with unreadable samples skipped and reported. Decoding runs on its
//! own thread, a batch ahead of the encoder, so the model never waits for the files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use diffclip_clip::check_finite_rows;
use diffclip_clip::files::{F32Tensor, write_safetensors};
use diffclip_data::Pipeline;
use diffclip_data::datasets::{WebDataset, WebDatasetConfig};
use diffclip_data::preprocess::batch_tensor;
use rayon::prelude::*;

use super::stamp::{self, Stamp, rows_input};
use crate::progress::bar;
use crate::{Encoder, EvalError, Matrix};

/// How to cut a collection into shards and which of them this process writes.
///
/// ```
/// use diffclip_eval::shards::ShardJob;
/// let job = ShardJob::new("out").with_part(1, 4);
/// assert_eq!(job.shard_path(7), std::path::Path::new("out/embeddings-00007.safetensors"));
/// ```
#[derive(Debug, Clone)]
pub struct ShardJob {
    /// The output folder.
    pub dir: PathBuf,
    /// Rows per shard (the last one may be shorter); WebDataset input keeps one shard per tar.
    pub rows_per_shard: usize,
    /// This process's part `(i, n)`: it writes shards `k` with `k % n == i` (0-based `i`).
    pub part: (usize, usize),
    /// L2-normalise each row before writing.
    pub normalize: bool,
    /// Write rows with NaN or infinity instead of failing.
    pub allow_non_finite: bool,
    /// Stop at the first unreadable sample instead of skipping it.
    pub fail_on_bad: bool,
    /// Samples decoded and encoded together (the decoder runs one such batch ahead).
    pub batch_size: usize,
    /// What encodes the rows (checkpoint, preprocessing, truncation), in the caller's words:
    /// stored in each shard, and a re-run keeps a finished shard only when it is unchanged.
    pub source: String,
    /// The encoder's [`ModelKey`](crate::cache::ModelKey) (the checkpoint's bytes and the
    /// config), stored in each shard so that a search can tell whether its model is the one that
    /// embedded the rows ([`embedded_by`](crate::shards::embedded_by)).
    pub model_key: Option<String>,
}

/// One shard a job writes: its number, its progress steps and which input rows it holds
/// (compared with a finished shard's on a re-run: `rows A..B of N, ids HASH`, `tar PATH`).
#[derive(Debug, Clone)]
pub struct ShardPlan {
    /// The shard number `k` (`embeddings-{k:05}.safetensors`).
    pub k: usize,
    /// Progress steps it counts for.
    pub steps: u64,
    /// Its input rows, described.
    pub input: String,
}

/// What a job did.
#[derive(Debug, Default)]
pub struct ShardReport {
    /// Shards written now.
    pub written: Vec<PathBuf>,
    /// Shards already present (a resumed job, the same model and rows) and left as they were.
    pub kept: Vec<PathBuf>,
    /// Samples skipped now (file, `TAR:KEY` or `LINE:n`), with the reason.
    pub skipped: Vec<(String, String)>,
    /// Samples skipped when the kept shards were written, as those shards record them
    /// (metadata key `skipped`; none in shards written before it was stored).
    pub skipped_before: Vec<(String, String)>,
}

impl ShardReport {
    /// Adds `other`'s shards and skips to this report.
    pub fn extend(&mut self, other: ShardReport) {
        self.written.extend(other.written);
        self.kept.extend(other.kept);
        self.skipped.extend(other.skipped);
        self.skipped_before.extend(other.skipped_before);
    }
}

/// Where a row's image comes from.
#[derive(Debug, Clone)]
pub enum RowImage {
    /// An image file.
    File(PathBuf),
    /// Encoded bytes already read (a WebDataset member).
    Encoded(Vec<u8>),
    /// A sample that could not be read, and why (a broken tar member).
    Unreadable(String),
}

/// One row of a shard: its id (written to `paths`), an image and/or a caption.
#[derive(Debug, Clone)]
pub struct EmbedRow {
    /// The file, `TAR:KEY` or `LINE:n` the row came from.
    pub id: String,
    /// The image, when the job embeds images.
    pub image: Option<RowImage>,
    /// The caption, when the job embeds texts.
    pub caption: Option<String>,
}

/// What a job embeds: images (decoded by `pipeline`) and/or captions; `unit` names the
/// progress steps (`"rows"`, or e.g. `"tars"` when each shard is one step).
#[derive(Debug, Clone, Copy)]
pub struct Embedding<'a> {
    /// Decode and embed each row's image with this pipeline (`image_embed`).
    pub pipeline: Option<&'a Pipeline>,
    /// Embed each row's caption (`text_embed`).
    pub texts: bool,
    /// The progress bar's unit.
    pub unit: &'static str,
}

/// A batch of decoded rows on its way from the decoder thread to the encoder.
enum Decoded {
    Batch { pixels: Vec<Vec<f32>>, captions: Vec<String>, ids: Vec<String>, steps: u64 },
    EndShard { k: usize, skipped: Vec<(String, String)>, steps: u64 },
    Failed(EvalError),
}

impl ShardJob {
    /// A single-process job writing to `dir`: 4096 rows per shard, batches of 64,
    /// unnormalised rows, bad samples skipped.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into(), rows_per_shard: 4096, part: (0, 1), normalize: false, allow_non_finite: false, fail_on_bad: false, batch_size: 64, source: String::new(), model_key: None }
    }

    /// This process's part `i` of `n` (0-based).
    pub fn with_part(mut self, i: usize, n: usize) -> Self {
        self.part = (i, n);
        self
    }

    /// Makes the output folder and holds it for this job while the guard lives: exclusively,
    /// or shared by the parts of a job split with [`with_part`](Self::with_part). The job's
    /// runs hold it themselves; a program holds it around them too, so that what it writes
    /// after them (a list of skipped samples) is this job's as well.
    pub fn hold(&self) -> Result<Option<diffclip_clip::files::FolderHold>, EvalError> {
        self.check()?;
        diffclip_clip::files::create_output_dir(&self.dir)?;
        hold_folder(&self.dir, self.part.1 > 1)
    }

    /// The path of shard `k`.
    pub fn shard_path(&self, k: usize) -> PathBuf {
        self.dir.join(format!("embeddings-{k:05}.safetensors"))
    }

    /// Whether this process writes shard `k`.
    fn owns(&self, k: usize) -> bool {
        k % self.part.1 == self.part.0
    }

    fn check(&self) -> Result<(), EvalError> {
        let (i, n) = self.part;
        if n == 0 || i >= n || self.rows_per_shard == 0 || self.batch_size == 0 {
            return Err(EvalError::Invalid(format!("shard part {i}/{n} with {} rows per shard, batches of {}", self.rows_per_shard, self.batch_size)));
        }
        Ok(())
    }

    /// Embeds the image `files` into shards holding `image_embed` `[rows, E]` and, in the
    /// metadata key `paths`, the JSON list of each row's file (a file whose name is not UTF-8
    /// is left out and reported, as an unreadable one is: JSON could not name it exactly).
    pub fn embed_images(&self, encoder: &Encoder<'_>, pipeline: &Pipeline, files: &[PathBuf]) -> Result<ShardReport, EvalError> {
        // A name that is not UTF-8 would be stored altered (another file's name, or none's): left out.
        let image = |f: &PathBuf| match f.to_str() {
            Some(_) => RowImage::File(f.clone()),
            None => RowImage::Unreadable("its name is not UTF-8, so an index cannot name it exactly: rename it".into()),
        };
        let rows: Vec<EmbedRow> = files.iter().map(|f| EmbedRow { id: f.display().to_string(), image: Some(image(f)), caption: None }).collect();
        self.embed_rows(encoder, Some(pipeline), false, &rows)
    }

    /// Embeds `texts` into shards holding `text_embed` and, in `paths`, each row's `LINE:<n>`
    /// (the 1-based line of the caption file).
    pub fn embed_texts(&self, encoder: &Encoder<'_>, texts: &[(usize, String)]) -> Result<ShardReport, EvalError> {
        let rows: Vec<EmbedRow> = texts.iter().map(|(n, t)| EmbedRow { id: format!("LINE:{n}"), image: None, caption: Some(t.clone()) }).collect();
        self.embed_rows(encoder, None, true, &rows)
    }

    /// Embeds `rows` in order into shards of `rows_per_shard`. Each shard holds `image_embed`
    /// when `pipeline` is given (images decoded with it) and `text_embed` when `texts`,
    /// row-aligned. A row whose image cannot be read, or that lacks the image or caption the
    /// job embeds, is left out whole (and reported), unless `fail_on_bad`.
    pub fn embed_rows(&self, encoder: &Encoder<'_>, pipeline: Option<&Pipeline>, texts: bool, rows: &[EmbedRow]) -> Result<ShardReport, EvalError> {
        self.check()?;
        let per = self.rows_per_shard;
        let range = |k: usize| k * per..((k + 1) * per).min(rows.len());
        // What each row's embedding reads: its image file as it is now, its caption.
        let content = |r: &EmbedRow| {
            let image = match (&r.image, pipeline) {
                (Some(RowImage::File(path)), Some(_)) => stamp::file_content(path),
                _ => String::new(),
            };
            format!("{image}\0{}", if texts { r.caption.as_deref().unwrap_or("") } else { "" })
        };
        let plan = |k: usize| ShardPlan { k, steps: range(k).len() as u64, input: rows_input(range(k), rows.len(), rows[range(k)].iter().map(|r| &r.id), rows[range(k)].iter().map(content)) };
        let shards: Vec<ShardPlan> = (0..rows.len().div_ceil(per)).filter(|&k| self.owns(k)).map(plan).collect();
        let what = Embedding { pipeline, texts, unit: "rows" };
        self.run(encoder, what, shards, |k| Ok(rows[range(k)].to_vec()))
    }

    /// Runs the decoder thread over this process's `shards` (rows from `rows_of(k)`), and
    /// encodes and writes what it sends. A finished shard is kept when this job would write the
    /// same (model, tensors, normalisation, rows) and is an error otherwise. With
    /// `what.unit == "rows"` progress counts rows; otherwise each shard is one step (its rows
    /// are only known once read).
    pub fn run<F>(&self, encoder: &Encoder<'_>, what: Embedding<'_>, shards: Vec<ShardPlan>, rows_of: F) -> Result<ShardReport, EvalError>
    where
        F: Fn(usize) -> Result<Vec<EmbedRow>, EvalError> + Sync,
    {
        let _held = self.hold()?;
        let mut report = ShardReport::default();
        let mut tensors = Vec::new();
        if what.pipeline.is_some() {
            tensors.push("image_embed".to_string());
        }
        if what.texts {
            tensors.push("text_embed".to_string());
        }
        let (mut todo, mut stamps, mut kept_steps) = (Vec::new(), HashMap::new(), 0);
        for shard in &shards {
            let path = self.shard_path(shard.k);
            let stamp = Stamp { source: self.source.clone(), model_key: self.model_key.clone(), tensors: tensors.clone(), normalize: self.normalize, input: shard.input.clone() };
            if stamp.check(&path)? {
                report.skipped_before.extend(skipped_in(&path));
                report.kept.push(path);
                kept_steps += shard.steps;
            } else {
                todo.push(shard.k);
                stamps.insert(shard.k, stamp);
            }
        }
        let pb = bar(shards.iter().map(|s| s.steps as usize).sum(), what.unit, encoder.progress());
        pb.inc(kept_steps);
        let encoder = encoder.clone().with_progress(false);
        std::thread::scope(|scope| {
            let (tx, rx) = sync_channel(1);
            scope.spawn(|| self.decode_all(&what, &todo, &rows_of, tx));
            self.encode_all(&encoder, &what, &stamps, rx, &mut report, &|steps| pb.inc(steps))
        })?;
        pb.finish_and_clear();
        Ok(report)
    }

    /// The decoder thread: reads each shard's rows and decodes them batch by batch.
    fn decode_all<F>(&self, what: &Embedding<'_>, shards: &[usize], rows_of: &F, tx: SyncSender<Decoded>)
    where
        F: Fn(usize) -> Result<Vec<EmbedRow>, EvalError> + Sync,
    {
        let per_row = what.unit == "rows";
        for &k in shards {
            let rows = match rows_of(k) {
                Ok(rows) => rows,
                Err(e) => return drop(tx.send(Decoded::Failed(e))),
            };
            let mut skipped = Vec::new();
            for chunk in rows.chunks(self.batch_size) {
                let decoded: Vec<Result<Option<Vec<f32>>, String>> = chunk.par_iter().map(|row| decode(what, row)).collect();
                let (mut pixels, mut captions, mut ids) = (Vec::new(), Vec::new(), Vec::new());
                for (row, result) in chunk.iter().zip(decoded) {
                    match result {
                        Ok(p) => {
                            pixels.extend(p);
                            captions.extend(row.caption.clone());
                            ids.push(row.id.clone());
                        }
                        Err(message) if self.fail_on_bad => return drop(tx.send(Decoded::Failed(EvalError::Image { path: row.id.clone(), message }))),
                        Err(message) => skipped.push((row.id.clone(), message)),
                    }
                }
                let steps = if per_row { chunk.len() as u64 } else { 0 };
                if tx.send(Decoded::Batch { pixels, captions, ids, steps }).is_err() {
                    return; // the encoder stopped on an error
                }
            }
            if tx.send(Decoded::EndShard { k, skipped, steps: u64::from(!per_row) }).is_err() {
                return;
            }
        }
    }

    /// The encoder side: embeds each batch, writes a shard when its last batch has arrived.
    fn encode_all(&self, encoder: &Encoder<'_>, what: &Embedding<'_>, stamps: &HashMap<usize, Stamp>, rx: Receiver<Decoded>, report: &mut ShardReport, progress: &dyn Fn(u64)) -> Result<(), EvalError> {
        let (mut images, mut texts, mut ids) = (Vec::<f32>::new(), Vec::<f32>::new(), Vec::<String>::new());
        // The projections' widths: a shard whose every row was skipped still has its columns.
        let width = |p: &burn::module::Param<burn::tensor::Tensor<2>>| p.lazy_shape().dims::<2>()[1];
        let (mut image_dim, mut text_dim) = (width(&encoder.model().image_projection), width(&encoder.model().text_projection));
        for message in rx {
            match message {
                Decoded::Failed(e) => return Err(e),
                Decoded::Batch { pixels, captions, ids: batch_ids, steps } => {
                    if let (Some(p), false) = (what.pipeline, pixels.is_empty()) {
                        let m = encoder.encode_images(batch_tensor(pixels, p.config().size as usize, encoder.device())?)?;
                        image_dim = m.cols();
                        images.extend(m.into_data());
                    }
                    if !captions.is_empty() {
                        let m = encoder.encode_texts(&captions)?;
                        text_dim = m.cols();
                        texts.extend(m.into_data());
                    }
                    ids.extend(batch_ids);
                    progress(steps);
                }
                Decoded::EndShard { k, skipped, steps } => {
                    let path = self.shard_path(k);
                    let mut tensors = Vec::new();
                    if what.pipeline.is_some() {
                        tensors.push(("image_embed", self.finish(&path, "image_embed", std::mem::take(&mut images), ids.len(), image_dim)?));
                    }
                    if what.texts {
                        tensors.push(("text_embed", self.finish(&path, "text_embed", std::mem::take(&mut texts), ids.len(), text_dim)?));
                    }
                    // Checked again: another job sharing the folder (a split job of other
                    // settings) may have written this shard while the rows were embedded.
                    if std::fs::symlink_metadata(&path).is_ok() {
                        stamps[&k].check(&path)?;
                    }
                    self.write(&path, &tensors, &std::mem::take(&mut ids), &stamps[&k].to_json(), &skipped)?;
                    report.written.push(path);
                    report.skipped.extend(skipped);
                    progress(steps);
                }
            }
        }
        Ok(())
    }

    /// The `[rows, dim]` matrix of one tensor of a shard, normalised and checked as asked.
    fn finish(&self, path: &Path, name: &str, data: Vec<f32>, rows: usize, dim: usize) -> Result<Matrix, EvalError> {
        let embed = Matrix::new(rows, dim, data)?;
        let embed = if self.normalize { embed.l2_normalized() } else { embed };
        if !self.allow_non_finite {
            check_finite_rows(&format!("{} {name}", path.display()), embed.data(), embed.cols())?;
        }
        Ok(embed)
    }

    fn write(&self, path: &Path, tensors: &[(&str, Matrix)], ids: &[String], stamp: &str, skipped: &[(String, String)]) -> Result<(), EvalError> {
        diffclip_clip::files::create_output_dir(&self.dir)?;
        let mut meta = HashMap::from([("paths".to_string(), serde_json::to_string(ids).expect("strings serialise")), (stamp::KEY.to_string(), stamp.to_string())]);
        // Recorded so that a re-run keeping this shard can still list what it left out.
        if !skipped.is_empty() {
            meta.insert(SKIPPED_KEY.to_string(), serde_json::to_string(skipped).expect("strings serialise"));
        }
        let tensors: Vec<F32Tensor> = tensors.iter().map(|(name, m)| F32Tensor { name: name.to_string(), shape: vec![m.rows(), m.cols()], data: m.data() }).collect();
        write_safetensors(path, &tensors, meta).map_err(|e| EvalError::Shard { path: path.display().to_string(), message: e.to_string() })
    }
}

/// The metadata key of a shard's skipped samples: a JSON list of `[id, why]` pairs.
const SKIPPED_KEY: &str = "skipped";

/// The samples the shard at `path` records as skipped when it was written (its header alone is
/// read); none when it records none or cannot be read.
fn skipped_in(path: &Path) -> Vec<(String, String)> {
    let header = diffclip_clip::checkpoint::safetensors_header(path).ok().flatten();
    let listed = header.as_ref().and_then(|h| h.get("__metadata__")?.get(SKIPPED_KEY)?.as_str().map(str::to_string));
    listed.and_then(|l| serde_json::from_str(&l).ok()).unwrap_or_default()
}

/// Holds `dir` for one job while it runs ([`diffclip_clip::files::hold_folder`]): exclusively,
/// or shared by the parts of a job split with [`ShardJob::with_part`]. Another job writing there
/// at the same time would mix its shards with this one's.
fn hold_folder(dir: &Path, shared: bool) -> Result<Option<diffclip_clip::files::FolderHold>, EvalError> {
    diffclip_clip::files::hold_folder(dir, shared).map_err(|e| EvalError::Shard {
        path: dir.display().to_string(),
        message: match e.kind() {
            std::io::ErrorKind::WouldBlock => "another job (an embed job, a training run) is writing to this folder: wait for it to finish, or give another --output (the parts of one job split with --shard may share it)".into(),
            _ => e.to_string(),
        },
    })
}

/// A row's pixels (`None` when the job embeds no images), or why the row cannot be used.
fn decode(what: &Embedding<'_>, row: &EmbedRow) -> Result<Option<Vec<f32>>, String> {
    if let Some(RowImage::Unreadable(why)) = &row.image {
        return Err(why.clone());
    }
    if what.texts && row.caption.is_none() {
        return Err("no caption".into());
    }
    match (what.pipeline, &row.image) {
        (None, _) => Ok(None),
        (Some(_), None) => Err("no image".into()),
        (Some(p), Some(RowImage::File(f))) => p.process_file(f, 0).map(Some).map_err(|e| e.to_string()),
        (Some(p), Some(RowImage::Encoded(bytes))) => p.process_bytes(bytes, &row.id, 0).map(Some).map_err(|e| e.to_string()),
        (Some(_), Some(RowImage::Unreadable(why))) => Err(why.clone()),
    }
}

impl ShardJob {
    /// Embeds WebDataset `tars`, one output shard per tar (shard `k` holds tar `k`'s samples, so
    /// `--shard I/N` splits by tar and a re-run keeps finished tars). Each row's id is
    /// `TAR:KEY`; images are decoded with `what.pipeline`, captions embedded when `what.texts`,
    /// and a sample needs only those members.
    /// A broken member or sample is skipped (and reported) unless `fail_on_bad`; a missing or
    /// unreadable tar always fails.
    pub fn embed_webdataset(&self, encoder: &Encoder<'_>, what: Embedding<'_>, tars: &[PathBuf], config: &WebDatasetConfig) -> Result<ShardReport, EvalError> {
        self.check()?;
        let shards: Vec<ShardPlan> = (0..tars.len()).filter(|&k| self.owns(k)).map(|k| ShardPlan { k, steps: 1, input: format!("tar {}, content {}", tars[k].display(), stamp::file_content(&tars[k])) }).collect();
        let what = Embedding { unit: "tars", ..what };
        // A sample needs only the members this job embeds (captions alone, say).
        let config = WebDatasetConfig { require_image: what.pipeline.is_some(), require_caption: what.texts, ..config.clone() };
        self.run(encoder, what, shards, |k| {
            let tar = &tars[k];
            // Fail on a tar that is not there at all, rather than writing an empty shard for it.
            diffclip_data::files::open_regular(tar).map_err(|e| EvalError::io(tar, e))?;
            Ok(WebDataset::samples_of(vec![tar.clone()], &config)
                .map(|sample| match sample {
                    Ok(s) => EmbedRow {
                        id: format!("{}:{}", tar.display(), s.key),
                        image: what.pipeline.is_some().then_some(RowImage::Encoded(s.image)),
                        caption: what.texts.then_some(s.caption),
                    },
                    Err(e) => EmbedRow { id: tar.display().to_string(), image: Some(RowImage::Unreadable(e.to_string())), caption: None },
                })
                .collect())
        })
    }
}
