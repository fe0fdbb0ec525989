//! Turning a trained CLIP into a DiffCLIP and fine-tuning it (`diffclip::clip::convert`).
//!
//! 1. Trains a compact standard-attention CLIP on the built-in synthetic data (or loads one,
//!    `--checkpoint`).
//! 2. Converts it four ways (the default: matched head pairs, λ from 0, calibrated RMSNorm gains;
//!    then interleaved pairs; unit gains; and the naive start λ ≈ λ_init = 0.8) and measures how
//!    close each is to the original before any fine-tuning: embedding cosine and held-out metrics.
//! 3. Fine-tunes, for the same extra steps and over seeds: the original CLIP trained further,
//!    the converted DiffCLIP (also with a 10× lower learning rate for the copied weights, with
//!    the copied weights frozen for the first quarter of the steps, and from the naive start),
//!    and a DiffCLIP trained from scratch; with the statistics of `examples/reproduce.rs`.
//!
//! ```text
//! cargo run --release --example convert -- [--seeds 0,1,2] [--pretrain-steps N] [--steps N] [--output DIR] [--overwrite]
//! ```
//! Writes `results.json`, `table.md`, `runs.json`, `timing.json`, `loss.png` and the
//! pretrained `clip.safetensors` to `--output` (default `convert-out/`).

#[path = "quickstart/plots.rs"]
#[allow(dead_code)] // line charts are the quickstart's
mod plots;

use diffclip::eprintln;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

#[path = "common/shape.rs"]
mod shape_args;
use shape_args::{ShapeArgs, SynthArgs};
use std::time::Instant;

use burn::module::Module;
use clap::Parser;
use diffclip::clip::convert::{Calibration, ConvertOptions, LambdaStart, NormInit, Pairing, convert_to_diffclip, embedding_cosine};
use diffclip::clip::{Clip, ClipConfig, load_checkpoint, save_safetensors};
use diffclip::data::{ClipItem, SyntheticConfig, SyntheticDataset};
use diffclip::eval::compare::{SeedRuns, difference_table, markdown_tables, over_seeds};
use diffclip::eval::heldout::{HELDOUT_METRICS, MEAN_SCORE, evaluate_synthetic_heldout};
use diffclip::train::synthetic::{CompactShape, RunOutcome, SyntheticTask, compact_train_config, expected_seconds, init_compact, train_and_evaluate};
use diffclip::train::{LrScale, TrainConfig};
use serde_json::{Value, json};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

#[derive(Parser, Debug)]
#[command(about = "Convert a trained CLIP into a DiffCLIP and compare fine-tuning it with the alternatives")]
struct Args {
    #[command(flatten)]
    shape: ShapeArgs,
    #[command(flatten)]
    data: SynthArgs,
    /// Steps of the CLIP that is converted (seed 0).
    #[arg(long, default_value_t = 250)]
    pretrain_steps: u64,
    /// Convert this standard-attention CLIP (saved with its config, e.g.
    /// `quickstart-out/clip.safetensors`) instead of pretraining one.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Extra (fine-tuning) steps of every arm.
    #[arg(long, default_value_t = 50)]
    steps: u64,
    /// Peak learning rate of the fine-tuning (10 % warm-up, cosine), for every arm.
    #[arg(long, default_value_t = 5e-4)]
    finetune_lr: f64,
    #[arg(long, default_value = "convert-out")]
    output: PathBuf,
}

fn main() -> ExitCode {
    diffclip::cli::run_main(|| diffclip::cli::closed_output_is_success(run(Args::parse())))
}

/// The starting points compared before fine-tuning: the default (matched head pairs, λ from 0,
/// calibrated RMSNorm gains), then one change at a time back to the naive conversion.
fn conversions() -> [(&'static str, ConvertOptions); 4] {
    let interleaved = ConvertOptions { pairing: Pairing::Interleaved, ..ConvertOptions::default() };
    let unit = ConvertOptions { norm: NormInit::Unit, ..interleaved.clone() };
    let naive = ConvertOptions { lambda_start: LambdaStart::Fresh, ..unit.clone() };
    [("matched-calibrated", ConvertOptions::default()), ("interleaved-calibrated", interleaved), ("interleaved-unit-gain", unit), ("naive", naive)]
}

/// The fine-tuning arms, in report order (starting points and factors: `run`, [`lr_scale`]).
const ARMS: [&str; 6] = ["clip-continued", "converted", "converted-low-lr", "converted-freeze", "converted-naive", "scratch"];

/// Parameters added by the conversion (the rest are copied from the CLIP), by optimizer key
/// (`visual.blocks.0.attn.Differential.lambda_q1`).
fn is_new(key: &str) -> bool {
    key.contains(".attn.Differential.lambda_") || key.contains(".attn.Differential.diff_norm.")
}

fn lr_scale(arm: &str, steps: u64) -> Option<LrScale> {
    match arm {
        "converted-low-lr" => Some(Box::new(|k: &str, _| if is_new(k) { 1.0 } else { 0.1 })),
        "converted-freeze" => Some(Box::new(move |k: &str, step| if is_new(k) || step >= steps / 4 { 1.0 } else { 0.0 })),
        _ => None,
    }
}

/// `--checkpoint`'s model config (convert has no --config or --preset: the checkpoint must
/// carry it), checked against the synthetic task, which is built from the flags.
fn checkpoint_config(path: &std::path::Path, image_size: usize) -> Res<ClipConfig> {
    let config = ClipConfig::select(None, None, Some(path)).map_err(|e| match e {
        diffclip::clip::ClipError::NoConfig { .. } => format!("--checkpoint {}: carries no model config; convert reads checkpoints written by train, save_safetensors or save_burnpack, which store it", path.display()),
        // Checkpoint errors start with the file's name already.
        e => format!("--checkpoint: {e}"),
    })?;
    let (size, context) = (config.vision.image_size, config.text.context_length);
    if size != image_size || context != diffclip::train::synthetic::CONTEXT {
        return Err(format!("{}: a model of {size} px images and {context} tokens, but the task has --image-size {image_size} and {} tokens", path.display(), diffclip::train::synthetic::CONTEXT).into());
    }
    Ok(config)
}

fn run(args: Args) -> Res<()> {
    let shape = args.shape.shape();
    // A checkpoint brings its own shape: the size flags are checked only when they are used.
    if args.checkpoint.is_none() {
        shape.check()?;
    }
    if args.data.seeds.is_empty() || args.steps == 0 || args.pretrain_steps == 0 || args.shape.batch_size < 2 {
        return Err("need at least one seed, --steps and --pretrain-steps >= 1 and --batch-size >= 2".into());
    }
    args.data.check(args.shape.batch_size)?;
    // Before any pretraining: a bad fine-tuning rate would waste it.
    if !(args.finetune_lr.is_finite() && args.finetune_lr > 0.0) {
        return Err(format!("--finetune-lr must be a finite number > 0, got {}", args.finetune_lr).into());
    }
    let synth = SyntheticConfig { seed: args.data.data_seed, image_size: args.shape.image_size as u32, train_size: args.data.train_size, test_size: args.data.test_size, ..SyntheticConfig::default() };
    let task = SyntheticTask::new(synth)?;
    let device = diffclip::backend::device(&args.shape.backend)?.autodiff();
    // The model to convert: --checkpoint's, of its own shape, or one pretrained here.
    let given = match &args.checkpoint {
        Some(path) => Some((path, checkpoint_config(path, args.shape.image_size)?)),
        None => None,
    };
    let shape = match &given {
        Some((_, config)) => {
            let theirs = CompactShape { width: config.vision.width, vision_layers: config.vision.layers, text_layers: config.text.layers, image_size: config.vision.image_size };
            if theirs != shape {
                eprintln!("note: the model is --checkpoint's (width {}, {} vision and {} text layers): --width, --vision-layers and --text-layers do not apply", theirs.width, theirs.vision_layers, theirs.text_layers);
            }
            theirs
        }
        None => shape,
    };
    // A model that is DiffCLIP already has nothing to convert: said before any folder is made.
    if let Some((path, config)) = &given {
        for (tower, attention, layers) in [("vision", &config.vision.attention, config.vision.layers), ("text", &config.text.attention, config.text.layers)] {
            if let Some(l) = (0..layers).find(|&l| attention.kind_of(l).is_ok_and(|k| k == diffclip::clip::attention::AttentionKind::Differential)) {
                return Err(format!("--checkpoint {}: {tower} layer {l} is already differential; convert takes a standard-attention CLIP", path.display()).into());
            }
        }
    }
    args.shape.create_output(&args.output)?;
    let start = Instant::now();
    // No pretraining when --checkpoint gives the model to convert.
    let pretrain = if args.checkpoint.is_some() { 0 } else { args.pretrain_steps };
    let total = pretrain + (args.data.seeds.len() * ARMS.len()) as u64 * args.steps;
    eprintln!("{total} training steps in all: up to about {:.0} min on 2 CPU cores (the slowest 2-core host measured)", expected_seconds(&shape, args.shape.batch_size, total) / 60.0);

    let (original, clip_config, pretrain_seconds) = match given {
        Some((path, config)) => {
            let mut model = config.init_lazy(&device.clone().inner())?;
            load_checkpoint(&mut model, path)?;
            (model, config, 0.0)
        }
        None => {
            eprintln!("[pretrain] clip, seed 0, {} steps", args.pretrain_steps);
            let (model, config) = init_compact("clip", &shape, 0, &device)?;
            let pre = train_and_evaluate(model, config.clone(), compact_train_config(args.pretrain_steps, args.shape.batch_size, 0, 0), None, None, &task)?;
            save_safetensors(&pre.model, Some(&config), args.output.join("clip.safetensors"))?;
            (pre.model, config, pre.train_seconds)
        }
    };
    let original_metrics = evaluate_synthetic_heldout(&original, &task.test, &task.batcher, 0)?.metrics;

    let inner = device.clone().inner();
    let calibration = batch(&task, &task.train, args.shape.batch_size, &inner)?;
    let probe = batch(&task, &task.test, 256, &inner)?;
    let mut closeness = serde_json::Map::new();
    let mut starts: BTreeMap<&str, (Clip, ClipConfig)> = BTreeMap::new();
    for (name, options) in conversions() {
        let (conv, config, report) = convert_to_diffclip(&original, &clip_config, &options, Some(&calibration))?;
        let (ci, ct) = embedding_cosine(&original, &conv, probe.images.clone(), probe.texts.clone());
        let before = evaluate_synthetic_heldout(&conv, &task.test, &task.batcher, 0)?;
        eprintln!("[convert] {name}: embedding cosine image {ci:.4}, text {ct:.4}; mean score before fine-tuning {:.1} %", 100.0 * before.metrics.mean_score());
        closeness.insert(name.into(), json!({ "options": options, "image_cosine": ci, "text_cosine": ct, "before_finetuning": before.metrics, "mean_score": before.metrics.mean_score(), "layers": report.layers }));
        starts.insert(name, (conv, config));
    }

    let mut outcomes: BTreeMap<(&str, u64), RunOutcome> = BTreeMap::new();
    for (i, (seed, arm)) in args.data.seeds.iter().flat_map(|s| ARMS.iter().map(move |a| (*s, *a))).enumerate() {
        eprintln!("[run {}/{}] {arm}, seed {seed}, {} steps", i + 1, args.data.seeds.len() * ARMS.len(), args.steps);
        let (model, config) = match arm {
            "clip-continued" => (original.clone().fork(&device).train(), clip_config.clone()),
            "scratch" => {
                let config = starts["matched-calibrated"].1.clone();
                device.seed(seed);
                (config.init(&device)?, config)
            }
            "converted-naive" => fork(&starts["naive"], &device),
            _ => fork(&starts["matched-calibrated"], &device),
        };
        let train = TrainConfig { lr: args.finetune_lr, ..compact_train_config(args.steps, args.shape.batch_size, 1000 + seed, 0) };
        outcomes.insert((arm, seed), train_and_evaluate(model, config, train, None, lr_scale(arm, args.steps), &task)?);
    }

    let metrics: Vec<&str> = HELDOUT_METRICS.iter().copied().chain(std::iter::once(MEAN_SCORE)).collect();
    let groups: Vec<SeedRuns<'_>> = ARMS.iter().map(|a| SeedRuns { name: a.to_string(), runs: args.data.seeds.iter().map(|&s| (s, &outcomes[&(*a, s)].test)).collect() }).collect();
    let (arms, vs_clip) = over_seeds(&groups, "clip-continued", &metrics, args.shape.bootstrap)?;
    let (_, vs_scratch) = over_seeds(&groups, "scratch", &metrics, args.shape.bootstrap)?;
    let lambdas: BTreeMap<String, Vec<Value>> = ARMS.iter().map(|a| (a.to_string(), args.data.seeds.iter().map(|&s| json!(outcomes[&(*a, s)].lambdas.last())).collect())).collect();
    let results = json!({
        "config": { "seeds": args.data.seeds, "pretrain_steps": (pretrain > 0).then_some(pretrain), "steps": args.steps, "finetune_lr": args.finetune_lr, "batch_size": args.shape.batch_size,
                    "data_seed": args.data.data_seed, "train_size": args.data.train_size, "test_size": args.data.test_size, "shape": shape, "bootstrap_resamples": args.shape.bootstrap },
        "checkpoint": args.checkpoint, "model": clip_config, "original": original_metrics, "original_mean_score": original_metrics.mean_score(),
        "conversion": closeness, "arms": arms, "final_lambda": lambdas, "vs_clip_continued": vs_clip, "vs_scratch": vs_scratch,
    });
    diffclip::clip::files::write_atomic(&args.output.join("results.json"), serde_json::to_string_pretty(&results)?.as_bytes())?;
    let order: Vec<String> = ARMS.iter().map(|a| a.to_string()).collect();
    let mut table = closeness_table(&results);
    table += &format!("\nAfter {} fine-tuning steps (lr {}), mean ± sample sd over seeds {:?}; accuracies in %.\n\n", args.steps, args.finetune_lr, args.data.seeds);
    table += &markdown_tables(&results["arms"], &results["vs_clip_continued"], &order, &metrics, "clip-continued");
    table += "\n";
    table += &difference_table(&results["vs_scratch"], &order, &[MEAN_SCORE, "heldout_loss"], "scratch");
    diffclip::clip::files::write_atomic(&args.output.join("table.md"), table.as_bytes())?;
    let runs: Vec<Value> = outcomes.iter().map(|((a, s), o)| json!({ "arm": a, "seed": s, "losses": o.losses, "lambdas": o.lambdas })).collect();
    diffclip::clip::files::write_atomic(&args.output.join("runs.json"), serde_json::to_string(&runs)?.as_bytes())?;
    let timing: BTreeMap<String, f64> = outcomes.iter().map(|((a, s), o)| (format!("{a}/seed{s}"), o.train_seconds)).collect();
    diffclip::clip::files::write_atomic(&args.output.join("timing.json"), serde_json::to_string_pretty(&json!({ "total_seconds": start.elapsed().as_secs_f64(), "pretrain_seconds": pretrain_seconds, "runs": timing }))?.as_bytes())?;
    plots::init_fonts();
    let bands: Vec<plots::Band> = ARMS.iter().map(|a| plots::band(a, &args.data.seeds.iter().map(|&s| plots::smooth(&outcomes[&(*a, s)].losses, 5)).collect::<Vec<_>>())).collect();
    plots::band_chart(&args.output.join("loss.png"), &format!("Fine-tuning loss, moving average of 5 steps (mean ± sd over {} seeds)", args.data.seeds.len()), "extra step", "contrastive loss", &bands)?;
    eprintln!("wrote {} in {:.1} min", args.output.display(), start.elapsed().as_secs_f64() / 60.0);
    // Printed once every file is written: a closed or full output loses no result.
    diffclip::cli::print_line(table)?;
    Ok(())
}

fn fork((model, config): &(Clip, ClipConfig), device: &diffclip::burn::tensor::Device) -> (Clip, ClipConfig) {
    (model.clone().fork(device).train(), config.clone())
}

/// The first `n` images of `ds` with their first caption, as a calibration/probe batch.
fn batch(task: &SyntheticTask, ds: &SyntheticDataset, n: usize, device: &diffclip::burn::tensor::Device) -> Res<Calibration> {
    let items = (0..n.min(ds.len())).map(|i| ClipItem { image: ds.image_eval(i), size: ds.image_size(), caption: ds.captions(i).swap_remove(0), label: None }).collect();
    let b = task.batcher.try_batch(items, device)?;
    Ok(Calibration { images: b.images, texts: b.texts })
}

/// How close each conversion starts: embedding cosine to the original on 256 test pairs and the
/// held-out metrics before fine-tuning, against the original CLIP.
fn closeness_table(r: &Value) -> String {
    let pct = |v: &Value| v.as_f64().map_or("–".into(), |x| format!("{:.1}", 100.0 * x));
    let mut s = String::from("Before fine-tuning (the converted CLIP and the original; accuracies in %).\n\n| model | image emb. cosine | text emb. cosine | zero-shot shape | zero-shot colour | I→T R@1 | T→I R@1 | mean score | held-out loss | mean layer rel. error | same, before the RMSNorm (pairing and λ only) |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    let o = &r["original"];
    s += &format!("| original CLIP | 1 | 1 | {} | {} | {} | {} | {} | {:.3} | | |\n", pct(&o["zero_shot_shape_top1"]), pct(&o["zero_shot_color_top1"]), pct(&o["image_to_text_r1"]), pct(&o["text_to_image_r1"]), pct(&r["original_mean_score"]), o["heldout_loss"].as_f64().unwrap_or(f64::NAN));
    for (name, c) in r["conversion"].as_object().into_iter().flatten() {
        let b = &c["before_finetuning"];
        let layer_mean = |key: &str| {
            let v: Vec<f64> = c["layers"].as_array().into_iter().flatten().filter_map(|l| l[key].as_f64()).collect();
            if v.is_empty() { "–".to_string() } else { format!("{:.3}", v.iter().sum::<f64>() / v.len() as f64) }
        };
        let (err, pairing) = (layer_mean("rel_error"), layer_mean("pairing_error"));
        s += &format!(
            "| {name} | {:.4} | {:.4} | {} | {} | {} | {} | {} | {:.3} | {err} | {pairing} |\n",
            c["image_cosine"].as_f64().unwrap_or(f64::NAN), c["text_cosine"].as_f64().unwrap_or(f64::NAN), pct(&b["zero_shot_shape_top1"]), pct(&b["zero_shot_color_top1"]),
            pct(&b["image_to_text_r1"]), pct(&b["text_to_image_r1"]), pct(&c["mean_score"]), b["heldout_loss"].as_f64().unwrap_or(f64::NAN)
        );
    }
    s
}
