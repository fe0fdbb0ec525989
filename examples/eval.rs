//! Evaluate a CLIP / DiffCLIP model: zero-shot, retrieval, linear probe, few-shot, robustness,
//! MMVP-style pairs and attention maps, on data from disk or on the built-in synthetic set.
//!
//! ```text
//! cargo run --release --example eval -- --preset diffclip_tiny --task all        # synthetic data
//! cargo run --release --example eval -- --model diffclip-vit-b16-cc12m \
//!     --task zeroshot --data imagenet/val --classnames imagenet1k --templates openai
//! cargo run --release --example eval -- --checkpoint ckpt.pt --preset diffclip_vit_b16 \
//!     --task zeroshot --data imagenet/val --classnames imagenet1k --templates openai
//! cargo run --release --example eval -- --checkpoint ckpt.pt --preset diffclip_vit_b16 \
//!     --task robustness --set imagenet=val --set imagenet-a=imagenet-a --set imagenet-r=imagenet-r
//! ```
//! Layouts, options and metric definitions: `docs/eval.md`. Prints tables, writes JSON
//! (`--output`), exits non-zero with a message naming the file (and line) on bad data.

#[path = "eval/disk.rs"]
mod disk;
#[path = "eval/synth.rs"]
mod synth;

use diffclip::eprintln;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use diffclip::clip::{ClipConfig, Precision};
use diffclip::pretrained::Pretrained;
use diffclip::data::synthetic::{Split, SyntheticConfig};
use diffclip::data::{Pipeline, Truncation};
use diffclip::eval::probe::{FewShotConfig, LinearProbeConfig};
use diffclip::eval::report::{self, Table};
use diffclip::eval::{EmbeddingCache, Encoder, Evaluator, Labelled, ModelKey, metadata};
use serde_json::{Value, json};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Task {
    Zeroshot,
    Retrieval,
    LinearProbe,
    Fewshot,
    Robustness,
    Pairs,
    Attention,
    All,
}

#[derive(Parser, Debug)]
#[command(about = "Evaluate a CLIP / DiffCLIP model (see docs/eval.md)")]
struct Args {
    /// A released model by name (`diffclip-vit-b16-cc12m`, `openai-vit-b16`, ...; see
    /// `diffclip::pretrained`), read from the Hugging Face cache: its preset, checkpoint,
    /// tokenizer, truncation and preprocessing (`--preprocess` and `--drop-eot` still apply).
    #[arg(long, conflicts_with_all = ["config", "preset", "checkpoint"])]
    model: Option<String>,
    /// Weights (.pt, .safetensors, .bpk); without it (or --model) the model is randomly initialised.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Preset name (diffclip_vit_b16, diffclip_tiny, ...).
    #[arg(long, conflicts_with = "config")]
    preset: Option<String>,
    /// Model config JSON.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Compute in f32, bf16 or f16; embeddings stay f32. On the CPU (flex) bf16 and f16 keep
    /// the weights f32 and multiply in that type (bf16 on AMX on Intel Xeons, AVX512-BF16 on
    /// AMD); otherwise the weights are cast after loading.
    #[arg(long, default_value = "f32")]
    dtype: Precision,
    #[arg(long, value_enum, default_value = "all")]
    task: Task,
    /// Dataset path (layouts in docs/eval.md); omitted: the built-in synthetic dataset.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Robustness set NAME=PATH (repeat): imagenet, imagenet-v2, imagenet-sketch, imagenet-a, imagenet-r.
    #[arg(long = "set", value_name = "NAME=PATH")]
    sets: Vec<String>,
    /// Class names: a metadata set (imagenet1k, pets, ...) or a file with one per line.
    #[arg(long)]
    classnames: Option<String>,
    /// Templates: openai, simple, a dataset name, or a file with one per line ({c} = class).
    #[arg(long)]
    templates: Option<String>,
    /// Preprocessing preset for image files: slip (DiffCLIP), openai, square-imagenet; default:
    /// the model's layout's (slip for DiffCLIP's timm layout, openai for the OpenAI layout).
    #[arg(long)]
    preprocess: Option<String>,
    #[arg(long, default_value_t = 64, value_parser = diffclip::cli::at_least_one)]
    batch_size: usize,
    /// Embedding cache directory (used when a checkpoint is given).
    #[arg(long, default_value = "eval-cache")]
    cache_dir: PathBuf,
    #[arg(long)]
    no_cache: bool,
    /// JSON results.
    #[arg(long, default_value = "eval-results.json")]
    output: PathBuf,
    /// Backend: flex, ndarray, wgpu (as compiled in).
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Few-shot k values.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2, 4, 8, 16])]
    shots: Vec<usize>,
    /// Few-shot seeds.
    #[arg(long, value_delimiter = ',', default_values_t = [0u64, 1, 2])]
    seeds: Vec<u64>,
    /// Drop EOT on over-long captions (the DiffCLIP authors' tokenizer) instead of keeping it
    /// (with --model: its registry's truncation unless this is given).
    #[arg(long)]
    drop_eot: bool,
    /// Attention: image file (default: the first synthetic test image).
    #[arg(long)]
    image: Option<PathBuf>,
    /// Attention: text query (default: that image's first caption when synthetic).
    #[arg(long, value_parser = diffclip::cli::non_blank)]
    query: Option<String>,
    /// Attention: PNG to write (default: beside --output, named by its stem:
    /// eval-results-attention.png).
    #[arg(long)]
    heatmap: Option<PathBuf>,
    /// Attention: vision layer (default: the last).
    #[arg(long)]
    layer: Option<usize>,
    /// Attention: a second checkpoint (with its config, as `save_safetensors` writes) whose maps
    /// of the same image go beside this model's in `<heatmap>-compare.png`.
    #[arg(long)]
    compare: Option<PathBuf>,
    /// Synthetic: test images.
    #[arg(long, default_value_t = 500)]
    synthetic_test: usize,
    /// Synthetic: training images (linear probe, few-shot).
    #[arg(long, default_value_t = 2000)]
    synthetic_train: usize,
    #[arg(long, default_value_t = 0)]
    synthetic_seed: u64,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

impl Args {
    /// The attention figure's path: `--heatmap`, else beside the results (`eval-results.json`
    /// gives `eval-results-attention.png`), never a file of the current folder nobody named.
    fn heatmap(&self) -> PathBuf {
        let stem = self.output.file_stem().map_or("eval".into(), |s| s.to_string_lossy());
        self.heatmap.clone().unwrap_or_else(|| self.output.with_file_name(format!("{stem}-attention.png")))
    }
}

fn main() -> ExitCode {
    diffclip::cli::run_main(|| diffclip::cli::closed_output_is_success(run(Args::parse())))
}

/// Everything a task needs.
struct Ctx<'a> {
    args: &'a Args,
    eval: Evaluator<'a>,
    pipeline: Pipeline,
    synth: SyntheticConfig,
}

/// Whether `path` (which may not exist yet) lies inside the folder `root`, links resolved.
fn inside(path: &std::path::Path, root: &std::path::Path) -> bool {
    let Ok(root) = std::fs::canonicalize(root) else { return false };
    // The nearest part of `path` that exists, resolved, with the rest (not made yet) after it.
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let resolved = path.ancestors().find_map(|a| std::fs::canonicalize(a).ok().map(|c| c.join(path.strip_prefix(a).unwrap_or(std::path::Path::new("")))));
    resolved.is_some_and(|p| p.starts_with(&root))
}

/// Whether `path` holds an earlier run's results (a JSON object with `model` and `results`).
fn is_results_file(path: &std::path::Path) -> bool {
    let Ok(bytes) = diffclip::clip::files::read_regular_capped(path, 1 << 30) else { return false };
    // An empty file (made by `mktemp`, say) holds nothing to lose.
    bytes.is_empty() || serde_json::from_slice::<serde_json::Value>(&bytes).is_ok_and(|v| v.get("model").is_some() && v.get("results").is_some())
}

/// Whether `path` begins as a PNG image does (its 8-byte signature).
fn is_png(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 8];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok() && head == *b"\x89PNG\r\n\x1a\n"
}

fn run(args: Args) -> Res<()> {
    use diffclip::clip::files::{check_output, resolve_output};
    let inputs: Vec<&std::path::Path> =
        [args.checkpoint.as_deref(), args.config.as_deref(), args.data.as_deref(), args.image.as_deref(), args.compare.as_deref()].into_iter().flatten().collect();
    let output = resolve_output(&args.output)?;
    check_output(&output, &inputs)?;
    if !args.sets.is_empty() && !matches!(args.task, Task::Robustness | Task::All) {
        let task = args.task.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default();
        return Err(format!("--set applies to --task robustness (and all), not {task}").into());
    }
    // Outputs stay out of the folders read (--data, each --set): they would replace their
    // files, or be read as data (a class, a stray file) by the next run.
    let sets = disk::named_sets(&args.sets)?;
    let read = args.data.iter().map(|d| ("--data", d.clone())).chain(sets.into_iter().map(|(_, p)| ("--set", p)));
    let cache = ((args.checkpoint.is_some() || args.model.is_some()) && !args.no_cache && args.task != Task::Attention).then_some(("--cache-dir", args.cache_dir.clone()));
    let figures = matches!(args.task, Task::Attention | Task::All).then(|| ("--heatmap", args.heatmap()));
    let outputs: Vec<(&str, PathBuf)> = [("--output", output.clone())].into_iter().chain(figures).chain(cache).collect();
    for (data_flag, root) in read.filter(|(_, d)| d.is_dir()) {
        for (flag, path) in &outputs {
            if inside(path, &root) {
                return Err(format!("{flag} {} is inside {data_flag} {}: an evaluation's outputs do not go into the data it reads (give {flag} elsewhere)", path.display(), root.display()).into());
            }
        }
    }
    // An existing file is replaced only when it is an earlier evaluation's results.
    if output.is_file() && !is_results_file(&output) {
        return Err(format!("--output {} exists and is not an evaluation's results file: it is not replaced (give a new path)", args.output.display()).into());
    }
    if matches!(args.task, Task::Attention | Task::All) {
        // The figures must not replace an input or the results file either.
        let inputs: Vec<&std::path::Path> = inputs.iter().copied().chain([args.output.as_path()]).collect();
        // The compared model is checked before any figure is drawn.
        if let Some(other) = &args.compare {
            ClipConfig::select(None, None, Some(other)).map_err(|e| match e {
                diffclip::clip::ClipError::NoConfig { .. } => format!("--compare {}: carries no model config; the compared checkpoint must carry its own (written by save_safetensors or save_burnpack, such as train's model.safetensors)", other.display()),
                // Checkpoint errors start with the file's name already.
                e => format!("--compare: {e}"),
            })?;
        }
        let compare = args.compare.is_some().then(|| synth::compare_path(&args.heatmap()));
        for figure in std::iter::once(args.heatmap()).chain(compare) {
            let target = resolve_output(&figure)?;
            check_output(&target, &inputs).map_err(|e| format!("--heatmap: {e}"))?;
            // Neither may exist yet: the same path, spelled alike once absolute.
            if std::path::absolute(&target)? == std::path::absolute(&output)? {
                return Err(format!("--heatmap {} is also --output", figure.display()).into());
            }
            // An existing file is replaced only when it is a figure (a PNG image) too.
            if target.is_file() && !is_png(&target) {
                return Err(format!("--heatmap {} exists and is not a PNG image: it is not replaced (give a new path)", figure.display()).into());
            }
        }
        // The figures are PNG: another extension would name a file that is not what it says.
        if !args.heatmap().extension().is_some_and(|e| e.eq_ignore_ascii_case("png")) {
            return Err(format!("--heatmap {}: the figure is a PNG image; give a path ending in .png", args.heatmap().display()).into());
        }
    }
    if let Some(data) = &args.data {
        std::fs::metadata(data).map_err(|e| format!("--data {}: {e}", data.display()))?;
    }
    // The synthetic set brings its own classes and prompts: these flags would be ignored
    // (robustness sets use ImageNet's class names, with --templates).
    if args.data.is_none() {
        if args.classnames.is_some() {
            return Err("--classnames applies to --data: the built-in synthetic set has its own classes, --set ImageNet's".into());
        }
        if args.templates.is_some() && args.sets.is_empty() {
            return Err("--templates applies to --data and --set: the built-in synthetic set has its own prompts".into());
        }
    }
    let device = diffclip::backend::device(&args.backend)?;
    let pretrained = args.model.as_deref().map(Pretrained::named).transpose()?;
    let config = match pretrained {
        Some(entry) => entry.config(),
        None => ClipConfig::select(args.config.as_deref(), args.preset.as_deref(), args.checkpoint.as_deref())?,
    };
    diffclip::cli::check_batch(&config, args.batch_size, diffclip::clip::Workload::Inference, "--batch-size", &device)?;
    if let Some(layer) = args.layer.filter(|&l| l >= config.vision.layers) {
        return Err(format!("--layer {layer}: the vision tower has {} layers (0 to {})", config.vision.layers, config.vision.layers - 1).into());
    }
    // A checkpoint comes with its preprocessing and tokenizer (LoadedModel); random weights
    // are drawn now.
    let loaded = match (&args.model, &args.checkpoint) {
        (None, None) => None,
        // The programs' one loader, which says what it read.
        _ => Some(diffclip::cli::load_model(args.model.as_deref(), args.config.as_deref(), args.preset.as_deref(), args.checkpoint.as_deref(), &device)?),
    };
    let mut config_json = serde_json::to_string(&config)?;
    if args.dtype != Precision::F32 {
        // Reduced-precision embeddings differ: they get their own cache entries (products of
        // f32 weights on the CPU differ from a cast model's).
        let products = if args.dtype.products_on(&device) { "-products" } else { "" };
        config_json.push_str(&format!("|dtype={}{products}", args.dtype));
    }
    let mut cache = None;
    let (model, checkpoint, tokenizer, preprocess) = match loaded {
        Some(loaded) => {
            // The attention figure alone caches nothing.
            if !args.no_cache && args.task != Task::Attention {
                // Checked now: a cache that cannot be written would fail the task after its encoding.
                diffclip::clip::files::create_output_dir(&args.cache_dir).map_err(|e| format!("--cache-dir: {e}"))?;
                cache = Some(EmbeddingCache::new(
                    &args.cache_dir,
                    ModelKey::with_contents(Some(&loaded.checkpoint), &config_json)?,
                ));
            }
            (loaded.model, Some(loaded.checkpoint), Some(loaded.tokenizer), loaded.preprocess)
        }
        None => {
            eprintln!("warning: no --checkpoint or --model: evaluating randomly initialised weights");
            (config.init(&device)?, None, None, diffclip::layout_preprocess(&config))
        }
    };
    let model = model.with_precision(args.dtype)?;
    let mut encoder = Encoder::new(&model)?
        .with_batch_size(args.batch_size)
        .with_progress(!args.quiet);
    if let Some(tokenizer) = tokenizer {
        encoder = encoder.with_tokenizer(tokenizer)?;
    }
    if args.drop_eot {
        encoder = encoder.with_truncation(Truncation::DropEot)?;
    }
    let size = encoder.image_size();
    let mut eval = Evaluator::new(encoder);
    if let Some(c) = cache {
        eval = eval.with_cache(c);
    }
    let synth = SyntheticConfig {
        image_size: size as u32,
        train_size: args.synthetic_train,
        test_size: args.synthetic_test,
        seed: args.synthetic_seed,
        ..Default::default()
    };
    let ctx = Ctx {
        args: &args,
        eval,
        pipeline: Pipeline::from_name(args.preprocess.as_deref().unwrap_or(preprocess), size as u32)?,
        synth,
    };

    let tasks = match args.task {
        Task::All => vec![
            Task::Zeroshot,
            Task::Retrieval,
            Task::LinearProbe,
            Task::Fewshot,
            Task::Robustness,
            Task::Pairs,
            Task::Attention,
        ],
        t => vec![t],
    };
    let mut results = serde_json::Map::new();
    let (mut skipped, mut failed) = (Vec::new(), serde_json::Map::new());
    // Tables go to standard output as each task ends; a closed or full output stops the tables,
    // not the evaluation: the results file is still written, then the output's error returned.
    let mut shown = Ok(());
    let mut show = |text: &dyn std::fmt::Display| {
        if shown.is_ok() {
            shown = diffclip::cli::print_line(text);
        }
    };
    for task in tasks {
        // Data given but no evaluation found its layout there: a results file of nothing is no
        // success, and the attention figure (the last task) is not drawn for it.
        if let Some(data) = args.data.as_ref().filter(|_| task == Task::Attention && args.task == Task::All && failed.is_empty() && results.is_empty()) {
            return Err(format!("--data {}: no evaluation found its data there (layouts in docs/eval.md); skipped: {}", data.display(), skipped.join(", ")).into());
        }
        let name = format!("{task:?}").to_lowercase();
        match run_task(&ctx, task) {
            Ok(Some((value, tables))) => {
                for t in tables {
                    show(&t);
                }
                results.insert(name, value);
            }
            Ok(None) => skipped.push(name),
            // Under --task all one task's failure keeps the others' results.
            Err(e) if args.task == Task::All => {
                eprintln!("error: {name}: {e}");
                failed.insert(name, e.to_string().into());
            }
            Err(e) => return Err(format!("{name}: {e}").into()),
        }
    }
    if !skipped.is_empty() {
        show(&format!("skipped (no data under --data): {}", skipped.join(", ")));
    }
    // Paths as text: a name that is not UTF-8 would make the JSON value panic.
    let text = |p: &Option<PathBuf>| p.as_deref().map(|p| p.to_string_lossy().into_owned());
    let out = json!({ "model": { "name": args.model, "config": config, "checkpoint": text(&checkpoint), "dtype": args.dtype }, "data": text(&args.data), "results": results, "skipped": skipped, "failed": failed });
    diffclip::clip::files::write_atomic(&args.output, serde_json::to_string_pretty(&out)?.as_bytes())?;
    eprintln!("wrote {}", args.output.display());
    if !failed.is_empty() {
        let names: Vec<&str> = failed.keys().map(String::as_str).collect();
        return Err(format!("{} failed (their errors are above and under \"failed\" in {})", names.join(", "), args.output.display()).into());
    }
    Ok(shown?)
}

type Outcome = Option<(Value, Vec<Table>)>;

fn run_task(ctx: &Ctx<'_>, task: Task) -> Res<Outcome> {
    let data = ctx.args.data.as_deref();
    let explicit = ctx.args.task != Task::All;
    match (task, data) {
        (Task::Zeroshot, Some(d)) => disk::zeroshot_files(ctx, d, explicit),
        (Task::Zeroshot, None) => synth::zeroshot_synthetic(ctx),
        (Task::Retrieval, Some(d)) => disk::retrieval_files(ctx, d, explicit),
        (Task::Retrieval, None) => synth::retrieval_synthetic(ctx),
        (Task::LinearProbe | Task::Fewshot, Some(d)) => {
            disk::probe_files(ctx, d, task == Task::Fewshot, explicit)
        }
        (Task::LinearProbe | Task::Fewshot, None) => {
            synth::probe_synthetic(ctx, task == Task::Fewshot)
        }
        (Task::Robustness, _) if !ctx.args.sets.is_empty() || data.is_some() => {
            disk::robustness_files(ctx, data, explicit)
        }
        (Task::Robustness, _) => synth::robustness_synthetic(ctx),
        (Task::Pairs, Some(d)) => disk::pairs_files(ctx, d, explicit),
        (Task::Pairs, None) => synth::pairs_synthetic(ctx),
        (Task::Attention, _) => synth::attention(ctx),
        (Task::All, _) => Ok(None),
    }
}

fn synthetic_key(cfg: &SyntheticConfig, split: Split, what: &str) -> Option<String> {
    Some(format!(
        "synthetic {} {split:?} {what}",
        serde_json::to_string(cfg).unwrap_or_default()
    ))
}

fn default_templates(ctx: &Ctx<'_>) -> Res<Vec<String>> {
    let spec = match (&ctx.args.templates, &ctx.args.classnames) {
        (Some(t), _) => t.clone(),
        (None, Some(c)) if metadata::templates(c).is_ok() => c.clone(),
        _ => "openai".into(),
    };
    Ok(metadata::templates_from(&spec)?)
}

fn probe_configs(ctx: &Ctx<'_>) -> (LinearProbeConfig, FewShotConfig) {
    let fs = FewShotConfig {
        shots: ctx.args.shots.clone(),
        seeds: ctx.args.seeds.clone(),
        ..Default::default()
    };
    (LinearProbeConfig::default(), fs)
}

fn probe_run(
    ctx: &Ctx<'_>,
    title: &str,
    tr: Labelled<'_, '_>,
    va: Option<Labelled<'_, '_>>,
    te: Labelled<'_, '_>,
    k: usize,
    fewshot: bool,
) -> Res<Outcome> {
    let (lp_cfg, fs_cfg) = probe_configs(ctx);
    if fewshot {
        let points = ctx.eval.few_shot(tr, va, te, k, &fs_cfg)?;
        for (p, fewest) in points.iter().filter_map(|p| Some((p, p.fewest_shots.filter(|&f| f < p.shots)?))) {
            eprintln!("warning: few-shot, {title}: {} shots asked, but a class has only {fewest} training samples (all of them are used)", p.shots);
        }
        let t = report::few_shot_table(&format!("few-shot, {title}"), &points);
        return Ok(Some((serde_json::to_value(&points)?, vec![t])));
    }
    let r = ctx.eval.linear_probe(tr, va, te, k, &lp_cfg)?;
    if r.val_classes < k {
        eprintln!("warning: linear probe, {title}: C was chosen on {} validation samples of {} of the {k} classes: a choice that says little (give a validation set, or more training samples per class)", r.n_val, r.val_classes);
    }
    let t = report::linear_probe_table(&format!("linear probe, {title}"), &r);
    Ok(Some((serde_json::to_value(&r)?, vec![t])))
}
