//! Pretrain any CLIP / DiffCLIP preset or custom model on your own image–caption data.
//!
//! ```text
//! cargo run --release --example train -- --data csv:train.csv --preset diffclip_tiny \
//!     --batch-size 64 --steps 1000 --output runs/tiny
//! cargo run --release --features wgpu --example train -- --backend wgpu \
//!     --data 'wds:cc3m/{00000..00331}.tar' --preset diffclip_vit_b16 \
//!     --batch-size 256 --accum-steps 16 --epochs 40 --eval folder:imagenet/val --output runs/cc3m
//! cargo run --release --example train -- --data 'wds:cc3m/{00000..00331}.tar' --output runs/cc3m --resume
//! ```
//!
//! Data sources (`--data`): `csv:PATH` (image path and caption columns; `.csv` is
//! comma-separated, anything else tab-separated unless `--csv-separator`), `wds:PATTERN`
//! (WebDataset tar shards as img2dataset writes them, streamed), `folder:PATH` (an image folder
//! `PATH/CLASS/*.jpg` whose captions come from class templates), `synthetic` (the built-in set).
//! See `docs/training.md` for the paper's recipe and multi-GPU use.

use diffclip::eprintln;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[path = "common/csv.rs"]
mod csv_args;
use csv_args::CsvArgs;
#[path = "train/data_flags.rs"]
mod data_flags;

use burn::module::Module;
use burn::tensor::Device;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use diffclip::clip::{Clip, ClipConfig, save_safetensors};
use diffclip::data::datasets::BadSamplePolicy;
use diffclip::data::{ClipBatcher, ClipTokenizer, DataError, TokenizerConfig, Truncation};
use diffclip::eval::EvalError;
use diffclip::eval::eval_set::{EvalSet, EvalSetOptions};
use diffclip::train::parallel::GradSync;
use diffclip::train::{
    AdamWConfig, DataParallel, EvalHook, LossKind, LrDecay, RunLength, RunOptions, SourceOptions, TrainConfig, TrainError,
    TrainSource, Trainer,
};

#[derive(Parser, Debug)]
#[command(
    about = "Train CLIP / DiffCLIP on image–caption data (CSV, WebDataset shards, image folders, synthetic)"
)]
struct Args {
    /// Training data: csv:PATH, wds:PATTERN (e.g. 'wds:cc3m/{00000..00331}.tar'), folder:PATH,
    /// synthetic. On --resume this and the other data flags default to the stopped run's.
    #[arg(long, required_unless_present = "resume")]
    data: Option<String>,
    #[command(flatten)]
    csv: CsvArgs,
    /// Caption templates for folder: data and eval, one per line with {c} for the class name
    /// (default "a photo of a {c}."); training captions use the first.
    #[arg(long)]
    templates: Option<PathBuf>,
    /// wds: samples per epoch (default: the sum of img2dataset's *_stats.json "successes");
    /// synthetic: size of the training set (default 20000).
    #[arg(long, value_parser = diffclip::cli::at_least_one)]
    train_num_samples: Option<usize>,
    /// wds: shuffle buffer in samples (shards are also shuffled every epoch).
    #[arg(long, default_value_t = 2000)]
    shuffle_buffer: usize,
    /// Bad samples (unreadable image, broken tar member): skip and count them, or stop.
    #[arg(long, default_value = "skip", value_parser = ["skip", "fail"])]
    bad_samples: String,

    /// Model preset (diffclip_vit_b16, clip_vit_b16, diffclip_tiny, ...).
    #[arg(long, conflicts_with = "config")]
    preset: Option<String>,
    /// Model config JSON (see README).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Image side in pixels (overrides the model's vision image size; a multiple of its patch size).
    #[arg(long)]
    image_size: Option<usize>,

    /// Samples per micro-batch (the global batch is batch-size x accum-steps).
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Micro-batches per optimizer step (gradient accumulation).
    #[arg(long, default_value_t = 1)]
    accum_steps: usize,
    /// Peak learning rate (paper: 5e-4).
    #[arg(long, default_value_t = 5e-4)]
    lr: f64,
    /// Final learning rate of the cosine schedule.
    #[arg(long, default_value_t = 0.0)]
    min_lr: f64,
    /// AdamW weight decay on matrices (1-D parameters and logit_scale are never decayed; paper: 0.5).
    #[arg(long, default_value_t = 0.5)]
    wd: f64,
    /// AdamW β2 (paper: 0.98).
    #[arg(long, default_value_t = 0.98)]
    beta2: f64,
    /// AdamW ε (open_clip's 1e-6; the SLIP code the paper trained with uses 1e-8).
    #[arg(long, default_value_t = 1e-6)]
    adam_eps: f64,
    /// Linear warm-up steps.
    #[arg(long, conflicts_with = "warmup_epochs")]
    warmup_steps: Option<u64>,
    /// Linear warm-up in epochs (default 1 epoch, as in the paper, when the epoch size is known).
    #[arg(long)]
    warmup_epochs: Option<f64>,
    /// After warm-up: cosine decay to --min-lr, or constant.
    #[arg(long, default_value = "cosine", value_parser = ["cosine", "constant"])]
    schedule: String,
    /// Length of the run in epochs (fractions allowed).
    #[arg(long, conflicts_with = "steps")]
    epochs: Option<f64>,
    /// Length of the run in optimizer steps.
    #[arg(long)]
    steps: Option<u64>,
    /// Clip the global gradient norm to this value.
    #[arg(long)]
    grad_clip: Option<f64>,
    /// Contrastive loss: clip (symmetric InfoNCE) or siglip (needs logit_bias_init in the model config).
    #[arg(long, default_value = "clip", value_parser = ["clip", "siglip"])]
    loss: String,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Compute in f32, or mixed precision in bf16 or f16 (f32 master weights and AdamW state;
    /// f16 with dynamic loss scaling). Needs a device with that arithmetic (flex: both; wgpu: f16).
    /// bf16 and f16 on flex keep the model f32 and multiply in that type (bf16 on AMX on Intel
    /// Xeons, AVX512-BF16 on AMD).
    #[arg(long, default_value = "f32")]
    precision: diffclip::clip::Precision,

    /// Backend: flex, ndarray, wgpu, cuda (as compiled in).
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Data-parallel replicas: GPUs 0..N of the backend (the features of all replicas are
    /// gathered before the loss). On flex/ndarray the replicas share the one CPU device.
    #[arg(long, default_value_t = 1)]
    devices: usize,
    /// Threads that load and decode images (0: one per core).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Output folder: checkpoint-latest.safetensors, metrics.jsonl, model.safetensors.
    #[arg(long, default_value = "train-out")]
    output: PathBuf,
    /// Continue from a training checkpoint (without a value: OUTPUT/checkpoint-latest.safetensors).
    #[arg(long, num_args = 0..=1, default_missing_value = "latest", value_name = "PATH")]
    resume: Option<String>,
    /// Replace an earlier run in OUTPUT (its checkpoint, metrics and model) instead of refusing.
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
    /// Write the checkpoint every N steps (0: only at the end).
    #[arg(long, default_value_t = 500)]
    checkpoint_every: u64,

    /// Held-out evaluation: synthetic, csv:PATH (retrieval), folder:PATH (zero-shot).
    #[arg(long)]
    eval: Option<String>,
    /// Evaluate every N steps (0: only at the end); needs --eval.
    #[arg(long, default_value_t = 0, requires = "eval")]
    eval_every: u64,
    /// Over-long captions: keep-eot (open_clip) or drop-eot (the DiffCLIP authors' tokenizer).
    #[arg(long, default_value = "keep-eot")]
    truncate: String,
    /// Training preprocessing: slip-train (random resized crop, the paper's), openai, slip, square-imagenet.
    /// Evaluation uses slip for slip-train, else the same.
    #[arg(long, default_value = "slip-train")]
    preprocess: String,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let matches = Args::command().get_matches();
    let args = match Args::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    diffclip::cli::run_main(|| run(args, &matches))
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Flags that a resumed run takes from its checkpoint instead.
const FROM_CHECKPOINT: &[&str] = &[
    "preset", "config", "image_size", "batch_size", "accum_steps", "lr", "min_lr", "wd", "beta2", "adam_eps", "warmup_steps",
    "warmup_epochs", "schedule", "grad_clip", "loss", "seed", "precision",
];

/// The most replicas `--devices` accepts.
const MAX_DEVICES: usize = 1024;

fn run(args: Args, matches: &ArgMatches) -> Res<()> {
    let device: Device = diffclip::backend::device(&args.backend)?;
    let policy = if args.bad_samples == "fail" { BadSamplePolicy::Fail } else { BadSamplePolicy::Skip };
    // More replicas than any machine has devices is a typo, not a run.
    if args.devices == 0 || args.devices > MAX_DEVICES {
        return Err(format!("--devices must be from 1 to {MAX_DEVICES}, got {}", args.devices).into());
    }
    // Flags that are wrong whatever the model and data are refused before anything is built.
    RunLength { steps: args.steps, epochs: args.epochs, warmup_steps: args.warmup_steps, warmup_epochs: args.warmup_epochs }.check()?;
    args.truncate.parse::<Truncation>()?;
    let resume = args.resume.as_ref().map(|p| if p == "latest" { args.output.join("checkpoint-latest.safetensors") } else { PathBuf::from(p) });
    let parallel = match args.devices {
        1 => None,
        n => {
            let (devices, note) = diffclip::backend::replica_devices(&args.backend, &device, n);
            note.iter().for_each(|n| eprintln!("note: {n}"));
            let parallel = DataParallel::new(devices)?;
            let sync = match parallel.grad_sync() {
                GradSync::AllReduce => "all_reduce",
                GradSync::Merge => "copies added on the main device",
            };
            eprintln!("data parallel over {} replicas (the first: {:?}); gradients summed by {sync}", parallel.devices().len(), parallel.devices()[0]);
            Some(parallel)
        }
    };
    let options = RunOptions {
        output: Some(args.output.clone()),
        overwrite: args.overwrite,
        workers: args.workers,
        bad_samples: policy,
        parallel,
        // Ctrl-C, SIGTERM (a scheduler's preemption) or SIGHUP ends the run after its step, with that
        // step's checkpoint written; a second one ends the process at once.
        // Installed at the first step's check: until then Ctrl-C ends the setup as usual.
        stop: Some(std::sync::Arc::new(|| diffclip::http::Shutdown::on_signals().is_stopping())),
        ..RunOptions::default()
    };
    // One run writes a folder at a time, from its first read of it (the checkpoint a resume
    // continues) to its last write (the model). A folder made only to be held goes again when
    // the run ends with nothing written into it (refused by a later check).
    let made = diffclip::cli::RemovedIfEmpty::made_by(&args.output);
    let _held = match diffclip::train::hold_output(&args.output) {
        Ok(held) => held,
        // Refused, the folder is the holder's, which may have made it a moment ago.
        Err(e) => {
            std::mem::forget(made);
            return Err(e.into());
        }
    };
    let _made = made;
    let mut trainer = match &resume {
        Some(path) => resumed_trainer(path, &device, matches, options)?,
        None => fresh_trainer(&args, &device, options)?,
    };
    // A resumed run reads its data as the stopped one did, unless told otherwise.
    let stored_data = resume.is_some() && matches.value_source("data") != Some(clap::parser::ValueSource::CommandLine);
    let (args, matches) = match &resume {
        Some(path) => {
            let (argv, warnings) = data_flags::resumed_argv(std::env::args_os().collect(), matches, &trainer.config.data);
            warnings.iter().for_each(|w| eprintln!("warning: {w}"));
            // The stopped run's settings go back in as flags: a bad one came from the checkpoint.
            let matches = Args::command().try_get_matches_from(argv).map_err(|e| {
                let said = e.to_string().lines().next().unwrap_or_default().trim_start_matches("error: ").to_string();
                format!("{}: the data settings stored in this checkpoint do not parse ({said}); give those data flags again to override them", path.display())
            })?;
            (Args::from_arg_matches(&matches)?, matches)
        }
        None => (args, matches.clone()),
    };
    trainer.config.data = data_flags::current(&matches);
    let truncation: Truncation = args.truncate.parse()?;
    let data_spec = args.data.as_deref().ok_or("give --data")?;
    let model_config = trainer.model_config.clone();
    let image_size = model_config.vision.image_size as u32;

    // Data, then the run's length from its epoch size.
    let templates = read_templates(args.templates.as_deref())?;
    let csv = args.csv.config()?;
    let source_options = SourceOptions {
        image_size,
        preprocess: args.preprocess.clone(),
        seed: trainer.config.seed,
        policy,
        templates: templates.clone(),
        csv: csv.clone(),
        shuffle_buffer: args.shuffle_buffer,
        num_samples: args.train_num_samples,
        workers: args.workers,
    };
    let opened = TrainSource::open(&data_spec.parse()?, &source_options).map_err(|e| match stored_data {
        true => format!("{e} (--data {data_spec} is the stopped run's, stored in its checkpoint: give --data to read other data)"),
        false => e.to_string(),
    })?;
    opened.warnings.iter().for_each(|w| eprintln!("warning: {w}"));
    eprintln!("data: {}", opened.description);
    let rows_left_out = opened.rows_left_out;
    // A resumed run's place in the epoch indexes the stopped run's data: data changed since is
    // refused, unless named again on the command line (then taken, with a warning).
    match trainer.use_data(&opened.fingerprint, !stored_data) {
        Ok(Some(was)) => eprintln!("warning: the data differ from the stopped run's ({was}; now {}): training goes on from the same place in the epoch order", opened.fingerprint),
        Ok(None) => {}
        Err(e) => return Err(format!("{e}; --data {data_spec} is the stopped run's, stored in its checkpoint: give --data {data_spec} again to train on the data as they are now").into()),
    }
    let source = opened.source;
    source.check_batch(trainer.config.batch_size)?;
    if args.devices > trainer.config.batch_size {
        return Err(format!("--devices {} is more than the batch of {} samples: some replicas would have none", args.devices, trainer.config.batch_size).into());
    }
    let per_step = trainer.config.batch_size * trainer.config.accum_steps;
    let epoch_len = source.epoch_len();
    let length = RunLength { steps: args.steps, epochs: args.epochs, warmup_steps: args.warmup_steps, warmup_epochs: args.warmup_epochs };
    let (stopped_steps, stopped_schedule) = (trainer.config.steps, trainer.config.schedule());
    match length.steps(epoch_len, per_step)? {
        Some(steps) => trainer.config.steps = steps,
        None if resume.is_none() => return Err("give --steps N or --epochs N".into()),
        None => {}
    }
    if resume.is_none() {
        trainer.config.warmup_steps = length.warmup(epoch_len, per_step, trainer.config.steps)?;
    }
    trainer.config.warnings().iter().for_each(|w| eprintln!("warning: {w}"));
    if trainer.state.step >= trainer.config.steps {
        return Err(format!("the checkpoint is at step {} already; give --steps larger than that to train on", trainer.state.step).into());
    }
    if resume.is_some() && stopped_steps != trainer.config.steps && trainer.config.decay == LrDecay::Cosine {
        // The cosine spans the whole run, so another length moves every later learning rate.
        let at = trainer.state.step;
        let (was, now) = (stopped_schedule.lr(at), trainer.config.schedule().lr(at));
        let how = if trainer.config.steps > stopped_steps { "stretch" } else { "shorten" };
        // Still in the warm-up the rate is the same now; it moves later.
        let rate = if now == was { format!("the learning rate is still {now:.3e} at step {at}, and differs after the warm-up") } else { format!("the learning rate at step {at} is {now:.3e} instead of {was:.3e}") };
        eprintln!("note: {} steps instead of the stopped run's {} {how} its cosine schedule: {rate}", trainer.config.steps, stopped_steps);
    }
    trainer.config.checkpoint_every = args.checkpoint_every;
    trainer.config.eval_every = args.eval_every;
    trainer.config.progress = !args.quiet;
    // A resumed run's settings come from its checkpoint: checked before the run is announced.
    trainer.config.check()?;
    // Held-out evaluation, opened before the run is announced: slip where training crops at random (slip-train).
    let preprocess = if args.preprocess == "slip-train" { "slip".into() } else { args.preprocess.clone() };
    let eval_options = EvalSetOptions { image_size, preprocess, seed: trainer.config.seed, templates, csv };
    // A CSV held-out set is read with the training CSV's column flags: an error about the
    // header's columns names them.
    let eval_set = match args.eval.as_deref() {
        Some(spec) => Some(EvalSet::open(&spec.parse()?, &eval_options).map_err(|e| {
            let columns = matches!(&e, EvalError::Data(DataError::Csv { line: 1, message, .. }) if message.contains("column"));
            let hint = if columns { " (its columns are read as --csv-image-column and --csv-caption-column say, as for --data)" } else { "" };
            format!("--eval {spec}: {e}{hint}")
        })?),
        None => None,
    };

    // A failed evaluation (an unreadable image, say) is reported and logged, and training goes
    // on: the run's model is written, and the program fails at the end.
    let mut eval_failed: Option<String> = None;
    let mut hook = |m: &Clip, step: u64| -> Result<serde_json::Value, TrainError> {
        match eval_set.as_ref().expect("hook only with an eval set").evaluate(m, truncation) {
            Ok(v) => {
                eprintln!("\neval at step {step}: {v}");
                Ok(v)
            }
            Err(e) => {
                let why = format!("step {step}: {e}");
                eprintln!("\nwarning: --eval failed at {why}; training goes on");
                eval_failed.get_or_insert(why);
                Ok(serde_json::json!({ "error": e.to_string() }))
            }
        }
    };
    let eval_hook: Option<EvalHook<'_>> = if eval_set.is_some() { Some(&mut hook) } else { None };

    let tokenizer = ClipTokenizer::with_config(TokenizerConfig { context_length: model_config.text.context_length, truncation })?;
    // An earlier run in --output is refused before this one is announced or prepared.
    trainer.check_output()?;
    // The trained model's destination is checked before the training it would hold.
    let export = args.output.join("model.safetensors");
    if let Some(kind) = std::fs::metadata(&export).ok().and_then(|m| diffclip::data::files::file_kind(m.file_type())) {
        return Err(format!("{} is {kind}, where the trained model is to be written: remove it first", export.display()).into());
    }
    // A model already there (another run's, or one `convert` wrote) is not this run's to replace;
    // beside a checkpoint (this run's when resumed in place), the trainer decides.
    if !args.overwrite && export.is_file() && !trainer.checkpoint_path().is_some_and(|p| p.exists()) {
        let fix = if resume.is_some() { "remove it" } else { "replace it with --overwrite" };
        return Err(format!("{} already holds a model: {fix}, or give another --output", export.display()).into());
    }
    // Announced once every check this program makes has passed.
    let epochs = epoch_len.map_or("epoch size unknown".into(), |n| format!("{:.2} epochs of {n}", trainer.config.steps as f64 * per_step as f64 / n as f64));
    let c = &trainer.config;
    eprintln!(
        "training {} steps of {per_step} samples ({} x {}), lr {:.2e}, warm-up {} steps, {epochs}; output {}",
        c.steps, c.batch_size, c.accum_steps, c.lr, c.warmup_steps, args.output.display()
    );
    let start = Instant::now();
    let fitted = source.fit(&mut trainer, &ClipBatcher::new(tokenizer), eval_hook);
    // The run this one replaces, still kept (this one failed before its first checkpoint), is said.
    if let Err(e) = &fitted
        && args.overwrite
        && resume.is_none()
        && diffclip::train::replaced_run_kept(&args.output)
        && !matches!(e, TrainError::Interrupted { step: 1.., .. } | TrainError::DataStopped { .. })
    {
        return Err(format!("{e} (the run this one replaced is kept in {} as *.replaced: rename those files back to use it)", args.output.display()).into());
    }
    let report = match fitted {
        // Stopped by a signal or the data after some steps: those steps are a model too, written
        // as a finished run's is, beside the checkpoint to continue from.
        Err(stopped @ (TrainError::Interrupted { step: 1.., .. } | TrainError::DataStopped { .. })) => {
            let model = match save_safetensors(&trainer.model.clone().valid(), Some(&model_config), &export) {
                Ok(()) => format!("the model so far is written to {}", export.display()),
                Err(e) => format!("the model so far could not be written ({e})"),
            };
            let eval = eval_failed.map(|why| format!("; --eval failed at {why}")).unwrap_or_default();
            return Err(format!("{stopped}; {model}{eval}").into());
        }
        report => report?,
    };
    save_safetensors(&trainer.model.clone().valid(), Some(&model_config), &export)?;
    eprintln!(
        "done: step {} of {}, final loss {:.4}, {:.1} samples/s over {:.1}s, {} samples skipped{}; wrote {} and {}",
        trainer.state.step,
        trainer.config.steps,
        report.final_loss,
        report.samples_per_s,
        start.elapsed().as_secs_f64(),
        report.skipped_samples,
        if rows_left_out > 0 { format!(" (and {rows_left_out} bad row{} left out as the data was opened)", if rows_left_out == 1 { "" } else { "s" }) } else { String::new() },
        args.output.join("checkpoint-latest.safetensors").display(),
        export.display()
    );
    // The run trained on what it could read; when that is the lesser part, the data needs a look.
    if report.skipped_samples as u64 > trainer.state.samples_seen {
        eprintln!("warning: more samples were skipped ({}) than trained on ({}): most of the data cannot be read", report.skipped_samples, trainer.state.samples_seen);
    }
    match eval_failed {
        Some(why) => Err(format!("--eval failed at {why} (the trained model and checkpoint are written)").into()),
        None => Ok(()),
    }
}

/// Continues the run in `path`: its model and hyper-parameters win over the flags.
fn resumed_trainer(path: &Path, device: &Device, matches: &ArgMatches, options: RunOptions) -> Res<Trainer> {
    // Continued as it lies, its log would stay aside and the failed run's go on in its place.
    if path.extension().is_some_and(|e| e == "replaced") {
        return Err(format!("--resume {}: a run kept aside by one that replaced it; rename its files back first (without .replaced), then resume its checkpoint-latest.safetensors", path.display()).into());
    }
    if !path.exists() {
        // A run kept aside by one that replaced it and failed: said how to get it back.
        let kept = diffclip::train::replaced(path);
        let files = diffclip::train::REPLACED_FILES.join(", ");
        let hint = if kept.exists() { format!(" ({} is of an earlier run kept aside: rename its files back, without .replaced ({files}), to continue it)", kept.display()) } else { String::new() };
        return Err(format!("--resume: no checkpoint at {}{hint}", path.display()).into());
    }
    let given = |id: &&str| matches.value_source(id) == Some(ValueSource::CommandLine);
    let ignored: Vec<&str> = FROM_CHECKPOINT.iter().copied().filter(given).collect();
    if !ignored.is_empty() {
        eprintln!(
            "note: on --resume the checkpoint's model and hyper-parameters are used; ignoring --{}",
            ignored.join(", --").replace('_', "-")
        );
    }
    let t = Trainer::resume(path, device.clone().autodiff(), options)?;
    eprintln!("resuming {} at step {} (epoch {}, position {})", path.display(), t.state.step, t.state.epoch, t.state.position);
    Ok(t)
}

/// A new model and optimizer from the flags.
fn fresh_trainer(args: &Args, device: &Device, options: RunOptions) -> Res<Trainer> {
    let mut config = ClipConfig::select(args.config.as_deref(), args.preset.as_deref(), None)?;
    if let Some(size) = args.image_size {
        if size == 0 || size % config.vision.patch_size != 0 {
            return Err(format!("--image-size {size} is not a positive multiple of the patch size {}", config.vision.patch_size).into());
        }
        config.vision.image_size = size;
    }
    let loss = if args.loss == "siglip" { LossKind::Siglip } else { LossKind::Clip };
    let decay = if args.schedule == "constant" { LrDecay::Constant } else { LrDecay::Cosine };
    let tc = TrainConfig {
        batch_size: args.batch_size,
        accum_steps: args.accum_steps,
        lr: args.lr,
        min_lr: args.min_lr,
        decay,
        adamw: AdamWConfig { weight_decay: args.wd, beta2: args.beta2, eps: args.adam_eps, ..AdamWConfig::default() },
        grad_clip: args.grad_clip,
        loss,
        seed: args.seed,
        precision: args.precision,
        ..TrainConfig::default()
    };
    tc.check()?;
    tc.check_model(&config, device)?;
    let ad = device.clone().autodiff();
    ad.seed(args.seed);
    let model = config.init(&ad)?;
    eprintln!("model: {} parameters, {}px images", model.num_params(), config.vision.image_size);
    Ok(Trainer::new(model, config, tc, options))
}

/// `--templates`: `diffclip_eval::metadata::templates_from` (a file, one template per line with
/// `{c}` or `{}`, or a shipped set such as `openai`); default `a photo of a {c}.`.
fn read_templates(path: Option<&Path>) -> Res<Vec<String>> {
    let Some(path) = path else {
        return Ok(vec!["a photo of a {c}.".into()]);
    };
    let spec = path.to_str().ok_or_else(|| format!("--templates {}: not a UTF-8 path", path.display()))?;
    Ok(diffclip::eval::metadata::templates_from(spec).map_err(|e| format!("--templates: {e}"))?)
}

