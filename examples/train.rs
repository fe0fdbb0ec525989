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

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use diffclip::clip::{Clip, ClipConfig, save_safetensors};
use diffclip::data::datasets::{
    BadSamplePolicy, ClassificationDataset, ClipDataset, CsvConfig, CsvDataset, ImageFolderDataset,
    ImageLoader, ReportBadSamples, WebDataset, WebDatasetConfig,
};
use diffclip::data::synthetic::{ClassTask, Split};
use diffclip::data::{
    ClipBatcher, ClipTokenizer, Pipeline, SyntheticConfig, SyntheticDataset, TokenizerConfig,
    Truncation,
};
use diffclip::eval::{Encoder, Evaluator, ImageSource};
use diffclip::train::{
    AdamWConfig, DataParallel, LossKind, TrainConfig, TrainError, Trainer, WdsStream,
};

#[derive(Parser, Debug)]
#[command(
    about = "Train CLIP / DiffCLIP on image–caption data (CSV, WebDataset shards, image folders, synthetic)"
)]
struct Args {
    /// Training data: csv:PATH, wds:PATTERN (e.g. 'wds:cc3m/{00000..00331}.tar'), folder:PATH, synthetic.
    #[arg(long)]
    data: String,
    /// CSV/TSV column holding image paths (relative to the file's folder).
    #[arg(long, default_value = "filepath")]
    csv_image_column: String,
    /// CSV/TSV column holding captions.
    #[arg(long, default_value = "title")]
    csv_caption_column: String,
    /// CSV field separator (one character, or 'tab'); default from the extension (.csv: ',', else tab).
    #[arg(long)]
    csv_separator: Option<String>,
    /// Caption templates for folder: data and eval, one per line with {c} for the class name
    /// (default "a photo of a {c}."); training captions use the first.
    #[arg(long)]
    templates: Option<PathBuf>,
    /// wds: samples per epoch (default: the sum of img2dataset's *_stats.json "successes");
    /// synthetic: size of the training set (default 20000).
    #[arg(long)]
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
    /// Evaluate every N steps (0: only at the end).
    #[arg(long, default_value_t = 0)]
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
    diffclip::allocator::keep_freed_memory();
    let matches = Args::command().get_matches();
    let args = match Args::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    match run(args, &matches) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Where the training samples come from.
enum Source {
    Map(Box<dyn ClipDataset>, String),
    Stream(WdsStream, Option<usize>),
}

impl Source {
    /// Samples per epoch, when known.
    fn epoch_len(&self) -> Option<usize> {
        match self {
            Source::Map(d, _) => Some(d.num_items()),
            Source::Stream(_, n) => *n,
        }
    }
}

fn run(args: Args, matches: &ArgMatches) -> Res<()> {
    let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    let device: Device = diffclip::backend::device(&args.backend)?;
    let ad = device.clone().autodiff();
    let truncation: Truncation = args.truncate.parse()?;
    let policy = if args.bad_samples == "fail" {
        BadSamplePolicy::Fail
    } else {
        BadSamplePolicy::Skip
    };
    if args.devices == 0 {
        return Err("--devices must be at least 1".into());
    }

    // Model and training state: fresh, or from the checkpoint.
    let resume = args.resume.as_ref().map(|p| {
        if p == "latest" {
            args.output.join("checkpoint-latest.safetensors")
        } else {
            PathBuf::from(p)
        }
    });
    let mut trainer = match &resume {
        Some(path) => {
            if !path.exists() {
                return Err(format!("--resume: no checkpoint at {}", path.display()).into());
            }
            let ignored: Vec<&str> = [
                "preset",
                "config",
                "image_size",
                "batch_size",
                "accum_steps",
                "lr",
                "min_lr",
                "wd",
                "beta2",
                "warmup_steps",
                "warmup_epochs",
                "schedule",
                "grad_clip",
                "loss",
                "seed",
            ]
            .into_iter()
            .filter(|id| given(id))
            .collect();
            if !ignored.is_empty() {
                eprintln!(
                    "note: on --resume the checkpoint's model and hyper-parameters are used; ignoring --{}",
                    ignored.join(", --").replace('_', "-")
                );
            }
            let t = Trainer::resume(path, ad.clone())?;
            eprintln!(
                "resuming {} at step {} (epoch {}, position {})",
                path.display(),
                t.state.step,
                t.state.epoch,
                t.state.position
            );
            t
        }
        None => {
            let mut config = ClipConfig::select(args.config.as_deref(), args.preset.as_deref(), None)?;
            if let Some(size) = args.image_size {
                if size == 0 || size % config.vision.patch_size != 0 {
                    return Err(format!(
                        "--image-size {size} is not a positive multiple of the patch size {}",
                        config.vision.patch_size
                    )
                    .into());
                }
                config.vision.image_size = size;
            }
            if args.loss == "siglip" && config.logit_bias_init.is_none() {
                return Err("--loss siglip needs a model with a logit bias (set \"logit_bias_init\", e.g. -10, in --config)".into());
            }
            let tc = TrainConfig {
                steps: 0,
                batch_size: args.batch_size,
                accum_steps: args.accum_steps,
                lr: args.lr,
                min_lr: args.min_lr,
                warmup_steps: 0,
                decay: serde_json::from_value(serde_json::json!(args.schedule)).map_err(|_| format!("--schedule must be cosine or constant, not {}", args.schedule))?,
                adamw: AdamWConfig {
                    weight_decay: args.wd,
                    beta2: args.beta2,
                    ..AdamWConfig::default()
                },
                grad_clip: args.grad_clip,
                loss: if args.loss == "siglip" {
                    LossKind::Siglip
                } else {
                    LossKind::Clip
                },
                seed: args.seed,
                ..TrainConfig::default()
            };
            ad.seed(args.seed);
            let model = config.init(&ad)?;
            eprintln!(
                "model: {} parameters, {}px images",
                model.num_params(),
                config.vision.image_size
            );
            let mut t = Trainer::new(model, tc, ad.clone());
            t.model_config = Some(config);
            t
        }
    };
    let model_config = trainer.model_config.clone().expect("set above");
    let image_size = model_config.vision.image_size;
    let context_length = model_config.text.context_length;

    // Data.
    let templates = read_templates(args.templates.as_deref())?;
    let source = open_source(&args, image_size, policy, &templates)?;
    if let Source::Map(d, name) = &source
        && d.num_items() < trainer.config.batch_size
    {
        return Err(format!(
            "{name} has {} usable samples, fewer than one batch of {}",
            d.num_items(),
            trainer.config.batch_size
        )
        .into());
    }

    // Length, warm-up, run control.
    let per_step = (trainer.config.batch_size * trainer.config.accum_steps) as f64;
    let epoch_len = source.epoch_len();
    let epochs_to_steps = |epochs: f64, flag: &str| -> Res<u64> {
        let n = epoch_len.ok_or_else(|| format!("{flag} needs the epoch size: give --train-num-samples (no *_stats.json found beside the shards)"))?;
        Ok((epochs * n as f64 / per_step).ceil().max(1.0) as u64)
    };
    match (args.steps, args.epochs) {
        (Some(s), _) => trainer.config.steps = s,
        (None, Some(e)) => trainer.config.steps = epochs_to_steps(e, "--epochs")?,
        (None, None) if resume.is_none() => return Err("give --steps N or --epochs N".into()),
        (None, None) => {}
    }
    if resume.is_none() {
        trainer.config.warmup_steps = match (args.warmup_steps, args.warmup_epochs) {
            (Some(s), _) => s,
            (None, Some(e)) => epochs_to_steps(e, "--warmup-epochs")?,
            // The paper warms up for one of its 40 epochs.
            (None, None) => match epoch_len {
                Some(n) => ((n as f64 / per_step).ceil() as u64).min(trainer.config.steps / 2),
                None => trainer.config.steps / 40,
            },
        };
    }
    if trainer.state.step >= trainer.config.steps {
        return Err(format!(
            "the checkpoint is at step {} already; give --steps larger than that to train on",
            trainer.state.step
        )
        .into());
    }
    trainer.config.checkpoint_every = args.checkpoint_every;
    trainer.config.eval_every = args.eval_every;
    trainer.config.progress = !args.quiet;
    trainer.output = Some(args.output.clone());
    trainer.overwrite = args.overwrite;
    trainer.workers = args.workers;
    trainer.fail_on_bad_samples = policy == BadSamplePolicy::Fail;
    if args.devices > 1 {
        let devices = replica_devices(&args.backend, &device, args.devices)?;
        eprintln!(
            "data parallel over {} replicas: {:?}",
            devices.len(),
            devices
        );
        trainer.parallel = Some(DataParallel::new(devices)?);
    }
    eprintln!(
        "training {} steps of {} samples ({} x {}), lr {:.2e}, warm-up {} steps, {}; output {}",
        trainer.config.steps,
        per_step,
        trainer.config.batch_size,
        trainer.config.accum_steps,
        trainer.config.lr,
        trainer.config.warmup_steps,
        match epoch_len {
            Some(n) => format!(
                "{:.2} epochs of {n}",
                trainer.config.steps as f64 * per_step / n as f64
            ),
            None => "epoch size unknown".into(),
        },
        args.output.display()
    );

    // Evaluation.
    let eval_pipeline = match args.preprocess.as_str() {
        "slip-train" => "slip",
        other => other,
    };
    let eval_set = args
        .eval
        .as_deref()
        .map(|spec| EvalSet::open(spec, image_size, eval_pipeline, &templates, &args))
        .transpose()?;
    let mut hook = |m: &Clip, step: u64| -> Result<serde_json::Value, TrainError> {
        let set = eval_set.as_ref().expect("hook only with an eval set");
        let v = set
            .evaluate(m, truncation)
            .map_err(|e| TrainError::Eval(e.to_string()))?;
        eprintln!("\neval at step {step}: {v}");
        Ok(v)
    };

    let tokenizer = ClipTokenizer::with_config(TokenizerConfig {
        context_length,
        truncation,
    })?;
    let batcher = ClipBatcher::new(tokenizer);
    let start = Instant::now();
    let eval_hook: Option<diffclip::train::EvalHook<'_>> = if eval_set.is_some() {
        Some(&mut hook)
    } else {
        None
    };
    let report = match &source {
        Source::Map(d, _) => trainer.fit(d.as_ref(), &batcher, eval_hook),
        Source::Stream(s, _) => trainer.fit_stream(s, &batcher, eval_hook),
    }?;
    let model = trainer.model.clone().valid();
    let export = args.output.join("model.safetensors");
    save_safetensors(&model, Some(&model_config), &export)?;
    eprintln!(
        "done: step {} of {}, final loss {:.4}, {:.1} samples/s over {:.1}s, {} samples skipped; wrote {} and {}",
        trainer.state.step,
        trainer.config.steps,
        report.final_loss,
        report.samples_per_s,
        start.elapsed().as_secs_f64(),
        report.skipped_samples,
        args.output.join("checkpoint-latest.safetensors").display(),
        export.display()
    );
    Ok(())
}

/// `--templates`: `diffclip_eval::metadata::templates_from` (a file, one template per line with
/// `{c}` or `{}`, or a shipped set such as `openai`); default `a photo of a {c}.`.
fn read_templates(path: Option<&Path>) -> Res<Vec<String>> {
    let Some(path) = path else {
        return Ok(vec!["a photo of a {c}.".into()]);
    };
    let spec = path
        .to_str()
        .ok_or_else(|| format!("--templates {}: not a UTF-8 path", path.display()))?;
    Ok(diffclip::eval::metadata::templates_from(spec)?)
}

fn csv_config(args: &Args) -> Res<CsvConfig> {
    let separator = match args.csv_separator.as_deref() {
        None => None,
        Some("tab" | "\\t" | "\t") => Some('\t'),
        Some(s) if s.chars().count() == 1 && s.is_ascii() => s.chars().next(),
        Some(s) => {
            return Err(
                format!("--csv-separator '{s}' must be a single ASCII character or 'tab'").into(),
            );
        }
    };
    Ok(CsvConfig {
        image_column: args.csv_image_column.clone(),
        caption_column: args.csv_caption_column.clone(),
        separator,
        ..CsvConfig::default()
    })
}

fn open_source(
    args: &Args,
    image_size: usize,
    policy: BadSamplePolicy,
    templates: &[String],
) -> Res<Source> {
    let loader = ImageLoader::new(Pipeline::from_name(&args.preprocess, image_size as u32)?)
        .with_seed(args.seed)
        .with_policy(policy);
    let (kind, rest) = args
        .data
        .split_once(':')
        .unwrap_or((args.data.as_str(), ""));
    match kind {
        "csv" => {
            let path = PathBuf::from(rest);
            let ds = CsvDataset::open(&path, &csv_config(args)?, loader)?;
            let name = path.display().to_string();
            if ds.is_empty() {
                let why = ds
                    .skip_counter()
                    .last_error()
                    .map(|e| format!(" (last bad row: {e})"))
                    .unwrap_or_default();
                return Err(format!("{name}: no usable rows{why}").into());
            }
            if ds.skip_counter().skipped() > 0 {
                eprintln!(
                    "warning: {name}: skipped {} bad rows (last: {})",
                    ds.skip_counter().skipped(),
                    ds.skip_counter().last_error().unwrap_or_default()
                );
            }
            check_readable(&ds, &name)?;
            eprintln!("data: {name}, {} image–caption pairs", ds.len());
            // The trainer skips and counts the samples that come back as `Err` (as the
            // WebDataset stream yields them); substitutes would keep its count at zero.
            let (policy, counter) = (ds.loader().policy(), ds.skip_counter().clone());
            let ds = ReportBadSamples::new(ds, policy, counter);
            Ok(Source::Map(Box::new(ds), name))
        }
        "folder" => {
            let ds = ImageFolderDataset::open(rest, loader)?.with_templates(templates.to_vec())?;
            let name = rest.to_string();
            if ds.is_empty() {
                return Err(format!("{name}: no images in the class folders").into());
            }
            check_readable(&ds, &name)?;
            eprintln!(
                "data: {name}, {} images in {} classes, captions \"{}\"",
                ds.len(),
                ds.class_names().len(),
                templates[0]
            );
            // The trainer skips and counts the samples that come back as `Err` (as the
            // WebDataset stream yields them); substitutes would keep its count at zero.
            let (policy, counter) = (ds.loader().policy(), ds.skip_counter().clone());
            let ds = ReportBadSamples::new(ds, policy, counter);
            Ok(Source::Map(Box::new(ds), name))
        }
        "synthetic" => {
            let mut cfg = SyntheticConfig {
                image_size: image_size as u32,
                seed: args.seed,
                ..SyntheticConfig::default()
            };
            if let Some(n) = args.train_num_samples {
                cfg.train_size = n;
            }
            let ds = SyntheticDataset::new(cfg, Split::Train)?;
            eprintln!(
                "data: built-in synthetic set, {} samples of {image_size}px",
                ds.len()
            );
            Ok(Source::Map(
                Box::new(ds.contrastive()),
                "the synthetic set".into(),
            ))
        }
        "wds" => {
            let config = WebDatasetConfig {
                shuffle_shards: true,
                shuffle_buffer: args.shuffle_buffer,
                ..WebDatasetConfig::default()
            };
            let wds = WebDataset::new(rest, config, loader)?;
            let missing: Vec<String> = wds
                .shards()
                .iter()
                .filter(|p| !p.exists())
                .map(|p| p.display().to_string())
                .collect();
            if missing.len() == wds.shards().len() {
                return Err(format!(
                    "{rest}: none of the {} shards exists (first: {})",
                    missing.len(),
                    missing[0]
                )
                .into());
            }
            if !missing.is_empty() {
                eprintln!(
                    "warning: {} of {} shards are missing (first: {}); they will be skipped",
                    missing.len(),
                    wds.shards().len(),
                    missing[0]
                );
            }
            let n = args
                .train_num_samples
                .or_else(|| stats_successes(wds.shards()));
            eprintln!(
                "data: {} WebDataset shards, {}",
                wds.shards().len(),
                n.map(|n| format!("{n} samples per epoch"))
                    .unwrap_or_else(|| "epoch size unknown".into())
            );
            Ok(Source::Stream(
                WdsStream::new(wds).with_workers(args.workers),
                n,
            ))
        }
        _ => Err(format!(
            "--data '{}': expected csv:PATH, wds:PATTERN, folder:PATH or synthetic",
            args.data
        )
        .into()),
    }
}

/// Fail early when the first images cannot be read at all (wrong paths, wrong root).
fn check_readable(ds: &dyn ClipDataset, name: &str) -> Res<()> {
    let n = ds.num_items().min(8);
    let mut last = None;
    for i in 0..n {
        match ds.try_get(i) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) => {
            Err(format!("{name}: none of the first {n} images can be read; last error: {e}").into())
        }
        None => Ok(()),
    }
}

/// Sum of img2dataset's per-shard `NNNNN_stats.json` "successes", when every shard has one.
fn stats_successes(shards: &[PathBuf]) -> Option<usize> {
    let mut total = 0usize;
    for shard in shards {
        let stem = shard.file_stem()?.to_string_lossy().into_owned();
        let stats = shard.with_file_name(format!("{stem}_stats.json"));
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(stats).ok()?).ok()?;
        total += v.get("successes")?.as_u64()? as usize;
    }
    Some(total)
}

/// Devices for `--devices N`.
fn replica_devices(backend: &str, device: &Device, n: usize) -> Res<Vec<Device>> {
    let devices: Vec<Device> = match backend {
        #[cfg(feature = "cuda")]
        "cuda" => (0..n).map(|i| Device::cuda(i)).collect(),
        #[cfg(feature = "wgpu")]
        "wgpu" => (0..n)
            .map(|i| Device::wgpu(burn::tensor::DeviceKind::DiscreteGpu(i)))
            .collect(),
        _ => {
            eprintln!(
                "note: {backend} has a single device: the {n} replicas share it (this exercises the data-parallel path, it is not faster)"
            );
            vec![device.clone(); n]
        }
    };
    Ok(devices.into_iter().map(|d| d.autodiff()).collect())
}

/// A held-out set for `--eval`.
enum EvalSet {
    Synthetic(SyntheticDataset),
    Pairs {
        name: String,
        paths: Vec<PathBuf>,
        captions: Vec<String>,
        pipeline: Pipeline,
    },
    Folder(ImageFolderDataset),
}

impl EvalSet {
    fn open(
        spec: &str,
        image_size: usize,
        preprocess: &str,
        templates: &[String],
        args: &Args,
    ) -> Res<Self> {
        let pipeline = Pipeline::from_name(preprocess, image_size as u32)?;
        let (kind, rest) = spec.split_once(':').unwrap_or((spec, ""));
        match kind {
            "synthetic" => {
                let cfg = SyntheticConfig {
                    image_size: image_size as u32,
                    seed: args.seed,
                    test_size: 500,
                    ..SyntheticConfig::default()
                };
                Ok(EvalSet::Synthetic(SyntheticDataset::new(cfg, Split::Test)?))
            }
            "csv" => {
                let loader = ImageLoader::new(pipeline.clone()).with_policy(BadSamplePolicy::Fail);
                let ds = CsvDataset::open(rest, &csv_config(args)?, loader)?;
                if ds.len() < 2 {
                    return Err(format!(
                        "--eval {spec}: retrieval needs at least 2 rows, found {}",
                        ds.len()
                    )
                    .into());
                }
                let paths = ds.rows().iter().map(|r| r.image.clone()).collect();
                let captions = ds.rows().iter().map(|r| r.caption.clone()).collect();
                Ok(EvalSet::Pairs {
                    name: rest.into(),
                    paths,
                    captions,
                    pipeline,
                })
            }
            "folder" => {
                let loader = ImageLoader::new(pipeline).with_policy(BadSamplePolicy::Fail);
                Ok(EvalSet::Folder(
                    ImageFolderDataset::open(rest, loader)?.with_templates(templates.to_vec())?,
                ))
            }
            _ => {
                Err(format!("--eval '{spec}': expected synthetic, csv:PATH or folder:PATH").into())
            }
        }
    }

    fn evaluate(&self, model: &Clip, truncation: Truncation) -> Res<serde_json::Value> {
        let ev = Evaluator::new(
            Encoder::new(model)?
                .with_truncation(truncation)?
                .with_progress(false)
                .with_batch_size(128),
        );
        let retrieval_json = |r: &diffclip::eval::RetrievalMetrics| {
            serde_json::json!({
                "image_to_text_r1": r.image_to_text[0].recall, "image_to_text_r5": r.image_to_text[1].recall,
                "text_to_image_r1": r.text_to_image[0].recall, "text_to_image_r5": r.text_to_image[1].recall,
            })
        };
        Ok(match self {
            EvalSet::Synthetic(test) => {
                let shape = ev.zero_shot_dataset(&test.classification(ClassTask::Shape), None)?;
                let color = ev.zero_shot_dataset(&test.classification(ClassTask::Color), None)?;
                let r = ev.retrieval_dataset(&test.retrieval(), None, &[1, 5])?;
                let mut v = retrieval_json(&r);
                v["zero_shot_shape_top1"] = shape.top1.into();
                v["zero_shot_color_top1"] = color.top1.into();
                v
            }
            EvalSet::Pairs {
                name,
                paths,
                captions,
                pipeline,
            } => {
                let images = ImageSource::files(paths.clone(), pipeline)
                    .map_err(|e| format!("{name}: {e}"))?;
                let to_image: Vec<usize> = (0..captions.len()).collect();
                retrieval_json(&ev.retrieval(&images, captions, &to_image, &[1, 5])?)
            }
            EvalSet::Folder(ds) => {
                let m = ev.zero_shot_dataset(ds, None)?;
                serde_json::json!({ "zero_shot_top1": m.top1, "zero_shot_top5": m.top5 })
            }
        })
    }
}
