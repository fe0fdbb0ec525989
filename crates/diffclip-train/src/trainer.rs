//! The training loop.

use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::time::Instant;

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};
use diffclip_clip::loss::MAX_LOGIT_SCALE;
use diffclip_clip::{Clip, ClipConfig, Precision};
use diffclip_data::datasets::ClipDataset;
use diffclip_data::ClipBatcher;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::checkpoint::{Checkpoint, TrainState, save_training_checkpoint};
use crate::feed::{ClipStream, Cursor, Feed, Loaded, Source, prefetched};
use crate::parallel::contrastive_loss;
use crate::{AdamW, GradBuffer, RunOptions, MetricsLog, StepRecord, TrainConfig, TrainError, load_training_checkpoint};

/// `f16` mixed precision: the first loss scale (PyTorch `GradScaler`'s).
const INITIAL_LOSS_SCALE: f64 = 65536.0;

/// `f16` mixed precision: good steps in a row after which the loss scale doubles.
pub const LOSS_SCALE_GROWTH: u64 = 2000;

/// Called every `eval_every` steps and at the end with the model (on the inference device) and
/// the step; returns metrics to log (any JSON object).
pub type EvalHook<'a> = &'a mut dyn FnMut(&Clip, u64) -> Result<serde_json::Value, TrainError>;

/// A learning-rate multiplier per parameter: `(parameter path, step) -> factor`, where the path
/// is the optimizer's key (`visual.blocks.0.attn.q_proj.weight`) and `step` counts the updates
/// before this one. `0` freezes the parameter for that step (no update, no weight decay, its
/// moments untouched).
pub type LrScale = Box<dyn Fn(&str, u64) -> f64 + Send + Sync>;

/// Summary of a finished (or stopped) run.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// Optimizer steps done in this run (not counting steps before a resume).
    pub steps: u64,
    /// Loss of the last step (NaN if no step was done).
    pub final_loss: f32,
    /// Every step's loss in this run, in order.
    pub losses: Vec<f32>,
    /// Samples per second over the whole run (`batch_size * accum_steps` per step, wall time);
    /// 0 when the run was cut short by `stop_after`.
    pub samples_per_s: f64,
    /// Samples skipped because they failed to load, over all steps so far; 0 when the run was
    /// cut short by `stop_after`.
    pub skipped_samples: usize,
    /// The evaluation hook's results, one per evaluation, in order.
    pub evals: Vec<serde_json::Value>,
}

/// Owns the model, the optimizer and the position in the data.
///
/// ```
/// use burn::tensor::Device;
/// use diffclip_clip::ClipConfig;
/// use diffclip_data::synthetic::Split;
/// use diffclip_data::{ClipBatcher, ClipTokenizer, SyntheticConfig, SyntheticDataset};
/// use diffclip_train::{RunOptions, TrainConfig, Trainer};
/// let device = Device::flex().autodiff();
/// let synthetic = SyntheticConfig { image_size: 32, train_size: 64, test_size: 8, ..SyntheticConfig::default() };
/// let data = SyntheticDataset::new(synthetic, Split::Train).unwrap().contrastive();
/// let batcher = ClipBatcher::new(ClipTokenizer::new());
/// let dir = tempfile::tempdir().unwrap();
/// let options = || RunOptions { output: Some(dir.path().to_path_buf()), ..RunOptions::default() };
/// let config = TrainConfig { steps: 2, batch_size: 8, progress: false, ..TrainConfig::default() };
/// let model = ClipConfig::diffclip_tiny().init(&device).unwrap();
/// let mut trainer = Trainer::new(model, ClipConfig::diffclip_tiny(), config, options());
/// assert_eq!(trainer.fit(&data, &batcher, None).unwrap().steps, 2);
/// // A stopped run goes on from its checkpoint: weights, AdamW moments and data position.
/// let mut resumed = Trainer::resume(dir.path().join("checkpoint-latest.safetensors"), device, options()).unwrap();
/// resumed.config.steps = 3;
/// assert_eq!(resumed.fit(&data, &batcher, None).unwrap().steps, 1);
/// assert_eq!(resumed.state.step, 3);
/// ```
pub struct Trainer {
    /// The model being trained (on [`device`](Self::device)).
    pub model: Clip,
    /// Its configuration, stored in every checkpoint.
    pub model_config: ClipConfig,
    /// AdamW and its moments.
    pub optim: AdamW,
    /// The hyper-parameters (stored in checkpoints).
    pub config: TrainConfig,
    /// Steps done and the position in the data.
    pub state: TrainState,
    /// The autodiff device the model lives on.
    pub device: Device,
    options: RunOptions,
    /// The checkpoint this run was resumed from, if any.
    resumed_from: Option<PathBuf>,
    /// Whether this run replaces an earlier one kept aside as [`replaced`] files, to be let go
    /// at this run's first checkpoint.
    replacing: bool,
}

/// Mean `lambda_full` over a tower's differential layers.
pub fn mean_lambda(ls: Vec<Option<Tensor<1>>>) -> Option<f32> {
    let ls: Vec<Tensor<1>> = ls.into_iter().flatten().collect();
    let n = ls.len();
    (n > 0).then(|| Tensor::cat(ls, 0).sum().into_scalar::<f32>() / n as f32)
}

/// Where a file of a run replaced under [`RunOptions::overwrite`] waits until the new run has
/// written its first checkpoint: `NAME.replaced` beside it.
pub fn replaced(path: &std::path::Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".replaced");
    path.with_file_name(name)
}

/// The files of a replaced run in `dir` (see [`replaced`]) that a trainer under `overwrite`
/// move aside: its checkpoint, log and model.
pub const REPLACED_FILES: [&str; 3] = ["checkpoint-latest.safetensors", "metrics.jsonl", "model.safetensors"];

/// Removes the replaced run's files in `dir`, once the run replacing it can be resumed.
fn remove_replaced(dir: &std::path::Path) -> Result<(), TrainError> {
    for name in REPLACED_FILES {
        let file = replaced(&dir.join(name));
        match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(TrainError::Io { path: file.display().to_string(), source: e }),
            _ => {}
        }
    }
    Ok(())
}

/// Whether any of the files `names` of `dir` is kept aside as [`replaced`].
fn any_aside(dir: &std::path::Path, names: &[&str]) -> bool {
    names.iter().any(|name| std::fs::symlink_metadata(replaced(&dir.join(name))).is_ok())
}

/// Whether `dir` keeps a replaced run still (any of its [`REPLACED_FILES`] as [`replaced`], and
/// no live checkpoint): files beside it are then of a run that never wrote a checkpoint.
pub fn replaced_run_kept(dir: &std::path::Path) -> bool {
    // Beside a live checkpoint they are stale: its run checkpointed, then could not let them go.
    any_aside(dir, &REPLACED_FILES) && std::fs::symlink_metadata(dir.join(REPLACED_FILES[0])).is_err()
}

/// Moves `file` of an earlier run aside to its [`replaced`] name, or removes it when `kept`
/// ([`replaced_run_kept`], asked before anything of this run was moved) or empty (it holds
/// nothing to keep: the log of a run that failed before its first step).
fn move_aside(file: &std::path::Path, kept: bool) -> Result<(), TrainError> {
    // A link is moved too: left live it would stand for this run (and its target be written).
    let Ok(meta) = std::fs::symlink_metadata(file) else { return Ok(()) };
    if meta.is_dir() {
        return Ok(());
    }
    let empty = meta.is_file() && meta.len() == 0;
    let moved = if kept || empty { std::fs::remove_file(file) } else { std::fs::rename(file, replaced(file)) };
    moved.map_err(|e| TrainError::Io { path: file.display().to_string(), source: e })
}

/// Holds the output folder `dir` for one run while the returned guard lives
/// ([`diffclip_clip::files::hold_folder`]), made first: the `train` program holds it from its
/// first read of it to its last write, so that two runs never interleave their files. `fit`
/// holds it too while it runs (taken again on a thread that holds it already).
pub fn hold_output(dir: &std::path::Path) -> Result<Option<diffclip_clip::files::FolderHold>, TrainError> {
    diffclip_clip::files::create_output_dir(dir)?;
    diffclip_clip::files::hold_folder(dir, false).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock => TrainError::OutputBusy { path: dir.display().to_string() },
        _ => TrainError::Io { path: dir.display().to_string(), source: e },
    })
}

impl Trainer {
    /// A fresh run of `model` (built from `model_config`) on the device it lives on, which must
    /// be an autodiff device (`Device::flex().autodiff()`; `fit` refuses another).
    pub fn new(model: Clip, model_config: ClipConfig, config: TrainConfig, options: RunOptions) -> Self {
        let device = model.image_projection.val().device();
        Self { optim: AdamW::new(config.adamw.clone()), model, model_config, config, state: TrainState::default(), device, options, resumed_from: None, replacing: false }
    }

    /// Continue from a checkpoint written by a previous run (model, optimizer, data position).
    pub fn resume(path: impl AsRef<std::path::Path>, device: Device, options: RunOptions) -> Result<Self, TrainError> {
        let (model, optim, meta) = load_training_checkpoint(&path, &device)?;
        // Settings no run could have written would fail later, blamed on flags never given.
        if let Err(e) = meta.train.check() {
            let message = format!("its stored training settings are invalid: {}", match e { TrainError::Config(m) => m, e => e.to_string() });
            return Err(TrainError::Resume { path: path.as_ref().display().to_string(), message });
        }
        meta.state.check(&meta.train).map_err(|message| TrainError::Resume { path: path.as_ref().display().to_string(), message })?;
        let resumed_from = Some(path.as_ref().to_path_buf());
        Ok(Self { model, model_config: meta.model, optim, config: meta.train, state: meta.state, device, options, resumed_from, replacing: false })
    }

    /// Says what data this run trains on ([`OpenedSource::fingerprint`](crate::OpenedSource)),
    /// before [`fit`](Self::fit): stored in its checkpoints, and checked against theirs when the
    /// run was resumed. Data other than a stopped run's is [`TrainError::DataChanged`], unless
    /// `accept_change` (the user named the data again): then it is taken, and the stopped run's
    /// print returned for a warning.
    ///
    /// ```
    /// # use burn::tensor::Device;
    /// use diffclip_train::{Trainer, TrainError};
    /// # let device = Device::flex().autodiff();
    /// # let tiny = diffclip_clip::ClipConfig::diffclip_tiny();
    /// let mut t = Trainer::new(tiny.init(&device).unwrap(), tiny, Default::default(), Default::default());
    /// assert_eq!(t.use_data("CSV of 3 rows, CRC-32 00000001", false).unwrap(), None);
    /// t.state.step = 5; // as a resumed run's state
    /// let err = t.use_data("CSV of 4 rows, CRC-32 00000002", false).unwrap_err();
    /// assert!(matches!(err, TrainError::DataChanged { .. }));
    /// let was = t.use_data("CSV of 4 rows, CRC-32 00000002", true).unwrap();
    /// assert_eq!(was.as_deref(), Some("CSV of 3 rows, CRC-32 00000001"));
    /// ```
    pub fn use_data(&mut self, fingerprint: &str, accept_change: bool) -> Result<Option<String>, TrainError> {
        let changed = self.state.step > 0 && self.state.data.as_deref().is_some_and(|was| was != fingerprint);
        if changed && !accept_change {
            return Err(TrainError::DataChanged { was: self.state.data.clone().unwrap_or_default(), now: fingerprint.to_string() });
        }
        let was = self.state.data.replace(fingerprint.to_string());
        Ok(was.filter(|_| changed))
    }

    /// The same trainer with other run options (e.g. another output folder after a resume).
    pub fn with_options(self, options: RunOptions) -> Self {
        Self { options, ..self }
    }

    /// How this run is driven.
    pub fn options(&self) -> &RunOptions {
        &self.options
    }

    /// Whether this run may write to its output folder, checked without changing anything
    /// (`fit` checks again): a fresh run refuses an earlier run's checkpoint or metrics unless
    /// [`RunOptions::overwrite`]; a resumed run refuses a folder holding another run. Call it to
    /// refuse before announcing or preparing a run.
    ///
    /// ```
    /// use burn::tensor::Device;
    /// use diffclip_clip::ClipConfig;
    /// use diffclip_train::{RunOptions, TrainConfig, Trainer};
    /// let dir = tempfile::tempdir().unwrap();
    /// std::fs::write(dir.path().join("checkpoint-latest.safetensors"), b"an earlier run's").unwrap();
    /// let device = Device::flex().autodiff();
    /// let model = ClipConfig::diffclip_tiny().init(&device).unwrap();
    /// let options = RunOptions { output: Some(dir.path().to_path_buf()), ..RunOptions::default() };
    /// let trainer = Trainer::new(model, ClipConfig::diffclip_tiny(), TrainConfig::default(), options);
    /// assert!(trainer.check_output().is_err());
    /// ```
    pub fn check_output(&self) -> Result<(), TrainError> {
        let Some(dir) = self.options.output.as_deref() else { return Ok(()) };
        let ckpt = dir.join("checkpoint-latest.safetensors");
        let metrics = dir.join("metrics.jsonl");
        if self.continues() {
            // Resumed from another folder into one with a run of its own: that run is not this one
            // (a checkpoint kept in the folder itself rolls its run back, as asked).
            // Both resolved (a bare file name lies in the current folder).
            let home = |from: &std::path::Path| std::fs::canonicalize(from).ok().and_then(|f| f.parent().map(std::path::Path::to_path_buf));
            let here = std::fs::canonicalize(dir).ok();
            let elsewhere = self.resumed_from.as_deref().filter(|from| here.is_none() || home(from) != here);
            if elsewhere.is_some() && !ckpt.exists() && replaced_run_kept(dir) {
                return Err(TrainError::OutputKeepsReplaced { path: dir.display().to_string() });
            }
            if let Some(from) = elsewhere
                && (ckpt.exists() || std::fs::metadata(&metrics).is_ok_and(|m| m.len() > 0))
            {
                return Err(TrainError::OutputHoldsAnotherRun { path: dir.display().to_string(), resumed: from.display().to_string() });
            }
            // Continued in place beside files kept aside (a checkpoint renamed back alone): the
            // log of the run that failed would go on as this run's, and this run's stay aside.
            if elsewhere.is_none() && any_aside(dir, &REPLACED_FILES[1..]) {
                return Err(TrainError::OutputKeepsReplaced { path: dir.display().to_string() });
            }
        } else if !self.options.overwrite {
            let path = dir.display().to_string();
            if ckpt.exists() {
                return Err(TrainError::OutputExists { path });
            }
            // A replaced run kept aside (its replacement failed first) is a run too.
            if replaced_run_kept(dir) {
                return Err(TrainError::OutputKeepsReplaced { path });
            }
            // An empty log is a run that failed before its first step: nothing to keep.
            if std::fs::metadata(&metrics).is_ok_and(|m| m.is_file() && m.len() > 0) {
                return Err(TrainError::OutputHasMetrics { path });
            }
        }
        // A FIFO or device in the log's place would hang or swallow it, overwritten or not.
        if std::fs::metadata(&metrics).is_ok_and(|m| !m.is_file()) {
            let source = std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file");
            return Err(TrainError::Io { path: metrics.display().to_string(), source });
        }
        Ok(())
    }

    /// A run that goes on from a checkpoint (its own folder's log is cut back to its step).
    fn continues(&self) -> bool {
        self.state.step > 0 || self.resumed_from.is_some()
    }

    /// Prepares the output folder after [`Self::check_output`]: a continued run cuts
    /// `metrics.jsonl` back to its step; a fresh one removes an earlier checkpoint (allowed by
    /// then only under [`RunOptions::overwrite`]). Either way, temporary files of killed
    /// checkpoint writes are removed.
    fn open_output(&mut self, dir: &std::path::Path) -> Result<MetricsLog, TrainError> {
        self.check_output()?;
        diffclip_clip::files::create_output_dir(dir)?;
        let ckpt = dir.join("checkpoint-latest.safetensors");
        let metrics = dir.join("metrics.jsonl");
        diffclip_clip::files::remove_stale_temps(&ckpt).map_err(|e| TrainError::Checkpoint(e.into()))?;
        if self.continues() {
            return MetricsLog::resume(metrics, self.state.step);
        }
        // An earlier run (allowed here only under `overwrite`; without it only an empty log can
        // be here) is moved aside, not deleted, until this one writes its first checkpoint: a run
        // that fails first leaves it whole, as `*.replaced`, and never as what a later `--resume`
        // would continue. Files beside a replaced run still kept are a run that never wrote a
        // checkpoint: dropped.
        if self.options.overwrite {
            let kept = replaced_run_kept(dir);
            for name in REPLACED_FILES {
                move_aside(&dir.join(name), kept)?;
            }
            self.replacing = true;
        }
        MetricsLog::create(metrics)
    }

    /// Path of the rolling checkpoint in the output folder.
    pub fn checkpoint_path(&self) -> Option<PathBuf> {
        self.options.output.as_ref().map(|d| d.join("checkpoint-latest.safetensors"))
    }

    /// The checkpoint to resume from after a stop: the rolling one when there is one (a fresh
    /// run removes an earlier run's before its first step), else the one this run resumed from.
    fn kept_checkpoint(&self) -> Option<String> {
        self.checkpoint_path().filter(|p| p.is_file()).or_else(|| self.resumed_from.clone()).map(|p| p.display().to_string())
    }

    /// Train until `config.steps` on a random-access dataset (a seeded permutation per epoch),
    /// evaluating and checkpointing as configured.
    pub fn fit(&mut self, data: &dyn ClipDataset, batcher: &ClipBatcher, eval: Option<EvalHook<'_>>) -> Result<TrainReport, TrainError> {
        self.config.check()?;
        if data.num_items() < self.config.batch_size {
            return Err(TrainError::Config(format!("the dataset has {} samples, fewer than one batch of {}", data.num_items(), self.config.batch_size)));
        }
        // An epoch's order is a word per sample: refused now, not aborted in the allocator.
        let n = data.num_items();
        Vec::<usize>::new().try_reserve_exact(n).map_err(|_| TrainError::UnusableData(format!("the dataset's {n} samples need {:.1} GiB for an epoch's order, more than can be had", n as f64 * 8.0 / f64::from(1u32 << 30))))?;
        // A resumed position past the epoch would start the next one silently.
        if self.state.position > data.num_items() {
            return Err(TrainError::Config(format!("the run's data position {} is past the dataset's {} samples: the checkpoint was written for other data, or is damaged", self.state.position, data.num_items())));
        }
        data.set_epoch(self.state.epoch);
        self.run(Source::Map { data }, batcher, eval)
    }

    /// Train until `config.steps` on a streaming source. `state.epoch` / `state.position` count
    /// epochs and entries consumed (good or bad), so a resumed run reopens the stream where the
    /// checkpoint was written and sees exactly the samples an uninterrupted run would.
    pub fn fit_stream(&mut self, data: &dyn ClipStream, batcher: &ClipBatcher, eval: Option<EvalHook<'_>>) -> Result<TrainReport, TrainError> {
        self.config.check()?;
        self.run(Source::Stream { data }, batcher, eval)
    }

    /// Open the output, then train with micro-batches read one ahead on a loader thread.
    fn run(&mut self, source: Source<'_>, batcher: &ClipBatcher, eval: Option<EvalHook<'_>>) -> Result<TrainReport, TrainError> {
        if !self.device.is_autodiff() {
            // Without it there are no gradients: the first step would fail after writing.
            return Err(TrainError::Config(format!("the model is on {:?}, not an autodiff device: build it on `device.autodiff()`", self.device)));
        }
        if let Some(p) = self.model.precision().filter(|&p| p != Precision::F32) {
            // The master weights stay f32 (AdamW's updates would round away); each micro-batch
            // takes them to `TrainConfig::precision`.
            return Err(TrainError::Config(format!("the model computes in {p}: train the f32 model and set the training precision to {p} instead")));
        }
        if let Some(p) = &self.options.parallel
            && p.main() != &self.device
        {
            return Err(TrainError::Config(format!("the data-parallel main device {:?} is not the trainer's device {:?}", p.main(), self.device)));
        }
        self.config.check_model(&self.model_config, &self.device)?;
        // A device without that arithmetic is refused before anything is written.
        let replicas = self.options.parallel.as_ref().map(|p| p.devices()).unwrap_or_default();
        for device in std::iter::once(&self.device).chain(replicas) {
            self.config.precision.check(device).map_err(|e| TrainError::Config(e.to_string()))?;
        }
        // Two runs writing one folder would interleave their checkpoints and logs.
        let _held = match &self.options.output {
            Some(dir) => hold_output(dir)?,
            None => None,
        };
        let log = match self.options.output.clone() {
            Some(dir) => Some(self.open_output(&dir)?),
            None => None,
        };
        let s = &self.state;
        let feed = Feed {
            source,
            cursor: Cursor { epoch: s.epoch, position: s.position, skipped: s.skipped_samples },
            batch_size: self.config.batch_size,
            seed: self.config.seed,
            policy: self.options.bad_samples,
            workers: self.options.workers,
        };
        prefetched(feed, self.state.step, self.config.accum_steps, |batches| self.train(batches, log, batcher, eval))
    }

    /// The step loop, taking micro-batches from `batches`.
    fn train(&mut self, batches: Receiver<Loaded>, mut log: Option<MetricsLog>, batcher: &ClipBatcher, mut eval: Option<EvalHook<'_>>) -> Result<TrainReport, TrainError> {
        let f16 = self.config.precision == Precision::F16;
        if f16 && self.state.loss_scale == 0.0 {
            self.state.loss_scale = INITIAL_LOSS_SCALE;
        }
        let schedule = self.config.schedule();
        let bar = self.progress_bar();
        let start = Instant::now();
        let first_step = self.state.step;
        let mut report = TrainReport { steps: 0, final_loss: f32::NAN, losses: vec![], samples_per_s: 0.0, skipped_samples: 0, evals: vec![] };
        let mut saved_at = first_step;
        while self.state.step < self.config.steps {
            if self.options.stop_after.is_some_and(|n| self.state.step - first_step >= n) {
                return Ok(report);
            }
            if self.options.stop.as_ref().is_some_and(|asked| asked()) {
                let checkpoint = self.keep_progress(saved_at)?;
                bar.abandon();
                return Err(TrainError::Interrupted { step: self.state.step, checkpoint });
            }
            let step_start = Instant::now();
            let lr = schedule.lr(self.state.step);
            self.device.seed(self.config.seed.wrapping_add(self.state.step));
            let mut grads = GradBuffer::default();
            let mut loss_sum = 0.0f32;
            let mut samples = 0usize;
            let step_cursor = (self.state.epoch, self.state.position, self.state.skipped_samples);
            for _ in 0..self.config.accum_steps {
                let loaded = batches.recv().map_err(|_| TrainError::Config("the data loader stopped".into()))?;
                let (items, cursor) = match loaded {
                    Ok(loaded) => loaded,
                    // The steps trained are kept, at the data position of the last of them (a
                    // resumed run reads this step's samples again); but a run replacing one still
                    // kept aside has not proved itself, and the earlier run stays instead.
                    Err(e) if self.state.step > 0 && !self.keeps_replaced_run() => {
                        (self.state.epoch, self.state.position, self.state.skipped_samples) = step_cursor;
                        bar.abandon();
                        // A checkpoint that cannot be written must not hide what the data did.
                        let Ok(checkpoint) = self.keep_progress(saved_at) else { return Err(e) };
                        return Err(TrainError::DataStopped { step: self.state.step, checkpoint, error: Box::new(e) });
                    }
                    Err(e) => return Err(e),
                };
                (self.state.epoch, self.state.position, self.state.skipped_samples) = (cursor.epoch, cursor.position, cursor.skipped);
                samples += items.len();
                let batch = batcher.try_batch(items, &self.device)?;
                let factor = 1.0 / self.config.accum_steps as f64;
                if let Some(p) = &self.options.parallel {
                    // f16: the loss scaled up so small gradients do not flush to zero (a power
                    // of two, so dividing the value back is exact).
                    let scale = if f16 { self.state.loss_scale } else { 1.0 };
                    let out = p.loss_and_grads(&self.model, batch.images, batch.texts, self.config.loss, factor * scale, self.config.precision)?;
                    let value = (out.loss as f64 / scale) as f32;
                    if !value.is_finite() {
                        return Err(TrainError::NonFinite { step: self.state.step + 1, loss: value, checkpoint: self.kept_checkpoint() });
                    }
                    loss_sum += value;
                    grads.merge(out.grads, &self.device.clone().inner());
                    continue;
                }
                let loss = self.loss(batch.images, batch.texts)? * factor;
                let value = loss.clone().into_scalar::<f32>();
                if !value.is_finite() {
                    return Err(TrainError::NonFinite { step: self.state.step + 1, loss: value, checkpoint: self.kept_checkpoint() });
                }
                // f16: the loss scaled up so small gradients do not flush to zero.
                let loss = if f16 { loss * self.state.loss_scale } else { loss };
                let micro_grads = loss.backward();
                loss_sum += value;
                grads.accumulate(&self.model, &micro_grads);
            }
            let unscale = if f16 { 1.0 / self.state.loss_scale } else { 1.0 };
            let grad_norm = grads.norm() * unscale;
            if !f16 && !grad_norm.is_finite() {
                // Applied, it would turn every weight into NaN (and the next checkpoint with it).
                return Err(TrainError::NonFiniteGradient { step: self.state.step + 1, norm: grad_norm, checkpoint: self.kept_checkpoint() });
            }
            if f16 && !grad_norm.is_finite() {
                // Overflow at this scale: no update, a smaller scale next step.
                self.state.loss_scale /= 2.0;
                self.state.loss_scale_good_steps = 0;
                self.state.skipped_steps += 1;
            } else {
                // Clipping (and unscaling) happen inside the update, not as a pass of their own.
                let clip = GradBuffer::clip_factor(grad_norm, self.config.grad_clip);
                // The optimizer consumes the model and writes its weights in place (take_model).
                self.model = clamp_logit_scale(self.update(lr, &grads, clip * unscale)?);
                if f16 {
                    self.state.loss_scale_good_steps += 1;
                    if self.state.loss_scale_good_steps >= LOSS_SCALE_GROWTH {
                        self.state.loss_scale *= 2.0;
                        self.state.loss_scale_good_steps = 0;
                    }
                }
            }
            self.state.step += 1;
            self.state.samples_seen += samples as u64;
            self.state.last_loss = loss_sum;
            report.losses.push(loss_sum);
            report.final_loss = loss_sum;
            report.steps += 1;

            let record = StepRecord {
                step: self.state.step,
                epoch: self.state.epoch,
                loss: loss_sum,
                lr,
                logit_scale: self.model.logit_scale_exp().into_scalar::<f32>(),
                lambda_vision: mean_lambda(self.model.visual.lambdas()),
                lambda_text: mean_lambda(self.model.text.lambdas()),
                grad_norm,
                samples_per_s: samples as f64 / step_start.elapsed().as_secs_f64(),
                skipped_samples: self.state.skipped_samples,
            };
            bar.set_message(format!(
                "loss {:.4} lr {:.2e} scale {:.1} λv {} λt {} {:.0} samples/s",
                record.loss,
                lr,
                record.logit_scale,
                fmt_opt(record.lambda_vision),
                fmt_opt(record.lambda_text),
                record.samples_per_s
            ));
            bar.inc(1);
            if let Some(log) = log.as_mut() {
                log.write(&record)?;
            }
            let last = self.state.step == self.config.steps;
            // The checkpoint first: an evaluation that fails cannot take the step's training with it.
            if last || (self.config.checkpoint_every > 0 && self.state.step.is_multiple_of(self.config.checkpoint_every)) {
                self.save_checkpoint()?;
                saved_at = self.state.step;
            }
            if let (Some(hook), true) = (eval.as_mut(), last || (self.config.eval_every > 0 && self.state.step.is_multiple_of(self.config.eval_every))) {
                let metrics = hook(&self.model.clone().valid(), self.state.step)?;
                if let Some(log) = log.as_mut() {
                    log.write(&serde_json::json!({ "step": self.state.step, "eval": metrics }))?;
                }
                report.evals.push(metrics);
            }
        }
        bar.finish();
        let trained = (self.state.step - first_step).max(1);
        report.samples_per_s = (trained as f64 * (self.config.batch_size * self.config.accum_steps) as f64) / start.elapsed().as_secs_f64();
        report.skipped_samples = self.state.skipped_samples;
        Ok(report)
    }

    /// One optimizer update with `grads` (times `grad_scale`) at learning rate `lr`, times each parameter's
    /// [`lr_scale`](Self::lr_scale) factor. Parameters with the same factor are updated together;
    /// all of them see the same AdamW step count, so the update equals a single
    /// [`AdamW::step`] when every factor is 1.
    fn update(&mut self, lr: f64, grads: &GradBuffer, grad_scale: f64) -> Result<Clip, TrainError> {
        let mut model = self.take_model()?;
        let Some(scale) = &self.options.lr_scale else { return Ok(self.optim.step_scaled(model, lr, grads, grad_scale)) };
        let mut groups: std::collections::BTreeMap<u64, GradBuffer> = Default::default();
        for (key, g) in &grads.grads {
            let f = scale(key, self.state.step);
            if f.is_finite() && f > 0.0 {
                groups.entry(f.to_bits()).or_default().grads.insert(key.clone(), g.clone());
            }
        }
        let t = self.optim.step;
        for (bits, group) in &groups {
            self.optim.step = t;
            model = self.optim.step_scaled(model, lr * f64::from_bits(*bits), group, grad_scale);
        }
        self.optim.step = t + 1;
        Ok(model)
    }

    /// The model moved out for an update that consumes it, an unread lazy one left in its place
    /// (nothing allocated): the optimizer then holds each weight's only reference and writes it
    /// in place. A clone left behind made it copy every weight, most of a ViT-B/16 step's
    /// memory traffic outside the products.
    fn take_model(&mut self) -> Result<Clip, TrainError> {
        let placeholder = ClipConfig::diffclip_tiny().init_lazy(&self.device)?;
        Ok(std::mem::replace(&mut self.model, placeholder))
    }

    /// Whether this run replaces an earlier one whose files are still kept aside.
    fn keeps_replaced_run(&self) -> bool {
        self.replacing && self.options.output.as_deref().is_some_and(replaced_run_kept)
    }

    /// The steps trained since the last checkpoint, written, for a run that stops early: a
    /// resumed run goes on from here (one resumed into a new folder has no checkpoint there yet).
    /// The checkpoint's path, if the run has an output folder and has trained a step.
    fn keep_progress(&self, saved_at: u64) -> Result<Option<String>, TrainError> {
        let path = self.checkpoint_path().filter(|_| self.state.step > 0);
        if path.as_ref().is_some_and(|p| self.state.step > saved_at || !p.exists()) {
            self.save_checkpoint()?;
        }
        Ok(path.map(|p| p.display().to_string()))
    }

    /// Write the rolling checkpoint now (no-op without an output folder or model config).
    pub fn save_checkpoint(&self) -> Result<(), TrainError> {
        let Some(path) = self.checkpoint_path() else { return Ok(()) };
        let meta = Checkpoint { state: self.state.clone(), model: self.model_config.clone(), train: self.config.clone() };
        save_training_checkpoint(path, &self.model, &self.optim, &meta)?;
        // This run can now be resumed: a run it replaced is let go (left, should that fail: it
        // no longer stands for the folder's run, whose checkpoint is now live).
        if let (true, Some(dir)) = (self.replacing, &self.options.output) {
            let _ = remove_replaced(dir);
        }
        Ok(())
    }

    /// The loss of one micro-batch, in f32. Mixed precision runs the forward on the master
    /// weights taken to that precision ([`Clip::with_precision`]).
    fn loss(&self, images: Tensor<4>, texts: Tensor<2, burn::tensor::Int>) -> Result<Tensor<1>, TrainError> {
        let model = self.model.clone().with_precision(self.config.precision)?;
        let out = model.forward(images, texts);
        // The temperature (and SigLIP's bias) from the f32 master weights, as the replicas' loss
        // and autocast take them: bf16 would turn ln 100 into 4.59375, a scale of 98.9.
        Ok(contrastive_loss(&self.model, self.config.loss, out.image_embed, out.text_embed))
    }

    fn progress_bar(&self) -> ProgressBar {
        if !self.config.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(self.config.steps);
        bar.set_position(self.state.step);
        bar.set_style(ProgressStyle::with_template("{spinner} step {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}").expect("valid template"));
        bar
    }
}

fn fmt_opt(v: Option<f32>) -> String {
    v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into())
}

/// Keep `logit_scale` in `[0, ln 100]` after every step (the paper's recipe).
pub(crate) fn clamp_logit_scale(mut model: Clip) -> Clip {
    let (id, t, mapper) = model.logit_scale.consume();
    let require_grad = t.is_require_grad();
    let mut t = Tensor::from_inner(t.inner().clamp(0.0, MAX_LOGIT_SCALE.ln()));
    if require_grad {
        t = t.require_grad();
    }
    model.logit_scale = Param::from_mapped_value(id, t, mapper);
    model
}
