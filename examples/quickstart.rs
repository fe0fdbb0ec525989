//! The README's main command: train a compact CLIP and a compact DiffCLIP of the same shape on
//! the built-in synthetic data (same seed, data order and steps), evaluate both on held-out
//! data and compare them.
//!
//! ```text
//! cargo run --release --example quickstart -- [--steps N] [--seed S] [--output DIR]
//!     [--variants clip,diffclip,diffclip-star,diffclip-dagger]
//! ```

#[path = "quickstart/plots.rs"]
mod plots;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;
use clap::Parser;
use diffclip::attention::{AttentionKind, LambdaInit};
use diffclip::clip::loss::{MAX_LOGIT_SCALE, clip_loss_normalized};
use diffclip::clip::{Clip, ClipConfig, save_safetensors};
use diffclip::eval::attention::{attention_heatmaps, panel_names, save_overlay_png};
use diffclip::eval::{Encoder, Evaluator};
use diffclip::data::synthetic::{ClassTask, Split};
use diffclip::data::{ClipBatcher, ClipItem, ClipTokenizer, SyntheticConfig, SyntheticDataset, TokenizerConfig};
use diffclip::encoders::{TextConfig, VisionConfig};
use diffclip::train::{TrainConfig, TrainError, Trainer};

#[derive(Parser, Debug)]
#[command(about = "Train CLIP and DiffCLIP on the built-in synthetic data and compare them")]
struct Args {
    /// Optimizer steps per model.
    #[arg(long, default_value_t = 400)]
    steps: u64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    #[arg(long, default_value = "quickstart-out")]
    output: PathBuf,
    /// Comma-separated: clip, diffclip, diffclip-star, diffclip-dagger.
    #[arg(long, default_value = "clip,diffclip")]
    variants: String,
    /// Evaluate every N steps (for the curves).
    #[arg(long, default_value_t = 100)]
    eval_every: u64,
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Width of both towers.
    #[arg(long, default_value_t = 96)]
    width: usize,
    #[arg(long, default_value_t = 4)]
    vision_layers: usize,
    #[arg(long, default_value_t = 2)]
    text_layers: usize,
    /// Image side in pixels (patch size 8).
    #[arg(long, default_value_t = 64)]
    image_size: usize,
}

fn main() -> ExitCode {
    diffclip::allocator::keep_freed_memory();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Text context for the synthetic captions (all are far shorter than 77 tokens).
const CONTEXT: usize = 32;

fn compact(variant: &str, args: &Args) -> Result<ClipConfig, String> {
    let mut vision = VisionConfig::timm(args.image_size, 8, args.width, args.vision_layers, 4);
    let mut text = TextConfig::new(args.width, args.text_layers, 4);
    text.context_length = CONTEXT;
    let (v, t, sched) = match variant {
        "clip" => (AttentionKind::Standard, AttentionKind::Standard, false),
        "diffclip" => (AttentionKind::Differential, AttentionKind::Differential, false),
        "diffclip-star" => (AttentionKind::Differential, AttentionKind::Differential, true),
        "diffclip-dagger" => (AttentionKind::Differential, AttentionKind::Standard, false),
        other => return Err(format!("unknown variant '{other}' (clip, diffclip, diffclip-star, diffclip-dagger)")),
    };
    vision.attention.kind = v;
    text.attention.kind = t;
    if sched {
        vision.attention.lambda_init = LambdaInit::DepthSchedule;
        text.attention.lambda_init = LambdaInit::DepthSchedule;
    }
    Ok(ClipConfig { embed_dim: args.width, vision, text, logit_scale_init: (1.0f64 / 0.07).ln(), logit_bias_init: None })
}

/// Held-out metrics of one model.
#[derive(Debug, Clone, serde::Serialize)]
struct Metrics {
    step: u64,
    /// Contrastive loss on 256 held-out pairs (image, its first caption).
    heldout_loss: f32,
    zero_shot_shape_top1: f64,
    zero_shot_color_top1: f64,
    image_to_text_r1: f64,
    image_to_text_r5: f64,
    text_to_image_r1: f64,
    text_to_image_r5: f64,
}

fn evaluate(model: &Clip, test: &SyntheticDataset, batcher: &ClipBatcher, step: u64) -> Result<Metrics, Box<dyn std::error::Error>> {
    let heldout_loss = heldout_loss(model, test, batcher)?;
    let ev = Evaluator::new(Encoder::new(model)?.with_progress(false).with_batch_size(128));
    let shape = ev.zero_shot_dataset(&test.classification(ClassTask::Shape), None)?;
    let color = ev.zero_shot_dataset(&test.classification(ClassTask::Color), None)?;
    let r = ev.retrieval_dataset(&test.retrieval(), None, &[1, 5])?;
    Ok(Metrics {
        step,
        heldout_loss,
        zero_shot_shape_top1: shape.top1,
        zero_shot_color_top1: color.top1,
        image_to_text_r1: r.image_to_text[0].recall,
        image_to_text_r5: r.image_to_text[1].recall,
        text_to_image_r1: r.text_to_image[0].recall,
        text_to_image_r5: r.text_to_image[1].recall,
    })
}

/// The training loss on held-out pairs: the first caption of each of 256 test images.
fn heldout_loss(model: &Clip, test: &SyntheticDataset, batcher: &ClipBatcher) -> Result<f32, Box<dyn std::error::Error>> {
    let device = model.devices().into_iter().next().ok_or("model without parameters")?;
    let items = (0..test.len().min(256))
        .map(|i| ClipItem { image: test.image_eval(i), size: test.image_size(), caption: test.captions(i).swap_remove(0), label: None })
        .collect();
    let batch = batcher.try_batch(items, &device)?;
    let out = model.forward(batch.images, batch.texts);
    Ok(clip_loss_normalized(out.image_embed, out.text_embed, out.logit_scale_exp.clamp_max(MAX_LOGIT_SCALE)).into_scalar::<f32>())
}

/// Everything reported for one variant.
#[derive(Debug, Clone, serde::Serialize)]
struct Run {
    variant: String,
    params: usize,
    final_loss: f32,
    samples_per_s: f64,
    train_seconds: f64,
    losses: Vec<f32>,
    curve: Vec<Metrics>,
    test: Metrics,
}

/// Flags checked up front, so a bad value is reported by its flag name.
fn check_flags(args: &Args) -> Result<(), String> {
    let positive = [("--steps", args.steps as usize), ("--batch-size", args.batch_size), ("--width", args.width), ("--vision-layers", args.vision_layers), ("--text-layers", args.text_layers), ("--image-size", args.image_size)];
    if let Some((flag, _)) = positive.iter().find(|(_, v)| *v == 0) {
        return Err(format!("{flag} must be at least 1"));
    }
    if args.batch_size < 2 {
        return Err("--batch-size must be at least 2 (the contrastive loss needs negatives)".into());
    }
    if args.width % 4 != 0 {
        return Err(format!("--width must be a multiple of 4 (the towers have 4 heads), got {}", args.width));
    }
    if args.image_size % 8 != 0 {
        return Err(format!("--image-size must be a multiple of the patch size 8, got {}", args.image_size));
    }
    Ok(())
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    check_flags(&args)?;
    let device: Device = diffclip::backend::device(&args.backend)?;
    std::fs::create_dir_all(&args.output)?;
    let synth = SyntheticConfig { seed: args.seed, image_size: args.image_size as u32, ..SyntheticConfig::default() };
    let train = SyntheticDataset::new(synth.clone(), Split::Train)?;
    let test = SyntheticDataset::new(synth, Split::Test)?;
    let tokenizer = ClipTokenizer::with_config(TokenizerConfig { context_length: CONTEXT, ..Default::default() })?;
    let batcher = ClipBatcher::new(tokenizer);
    let data = train.contrastive();
    let chance = (1.0 / 6.0, 1.0 / 8.0, 1.0 / test.len() as f64);
    let mut runs = Vec::new();
    for variant in args.variants.split(',').map(str::trim) {
        let config = compact(variant, &args)?;
        let ad = device.clone().autodiff();
        ad.seed(args.seed);
        let model = config.init(&ad)?;
        let params = model.num_params();
        eprintln!("training {variant} ({params} parameters) for {} steps", args.steps);
        let tc = TrainConfig {
            steps: args.steps,
            batch_size: args.batch_size,
            lr: 1e-3,
            warmup_steps: args.steps / 10,
            adamw: diffclip::train::AdamWConfig { weight_decay: 0.1, ..Default::default() },
            grad_clip: Some(1.0),
            seed: args.seed,
            eval_every: args.eval_every,
            ..TrainConfig::default()
        };
        let mut trainer = Trainer::new(model, tc, ad);
        trainer.model_config = Some(config.clone());
        trainer.output = Some(args.output.join(variant));
        trainer.overwrite = true; // the quickstart's output is regenerated on every run
        let mut curve = Vec::new();
        let mut hook = |m: &Clip, step: u64| {
            let metrics = evaluate(m, &test, &batcher, step).map_err(|e| TrainError::Eval(e.to_string()))?;
            curve.push(metrics.clone());
            Ok(serde_json::to_value(metrics).expect("serialises"))
        };
        let start = Instant::now();
        let report = trainer.fit(&data, &batcher, Some(&mut hook))?;
        let train_seconds = start.elapsed().as_secs_f64();
        let model = trainer.model.clone().valid();
        save_safetensors(&model, Some(&config), args.output.join(format!("{variant}.safetensors")))?;
        let test_metrics = curve.last().cloned().ok_or("no evaluation ran")?;
        write_attention_maps(&model, &test, &args.output.join("attention"), variant)?;
        runs.push(Run {
            variant: variant.to_string(),
            params,
            final_loss: report.final_loss,
            samples_per_s: report.samples_per_s,
            train_seconds,
            losses: report.losses,
            curve,
            test: test_metrics,
        });
    }
    write_plots(&args.output, &runs)?;
    print_table(&runs, chance);
    let summary = serde_json::json!({
        "steps": args.steps, "batch_size": args.batch_size, "seed": args.seed,
        "chance": { "shape_top1": chance.0, "color_top1": chance.1, "retrieval_r1": chance.2 },
        "runs": runs,
    });
    std::fs::write(args.output.join("metrics.json"), serde_json::to_string_pretty(&summary)?)?;
    eprintln!("wrote {}", args.output.join("metrics.json").display());
    Ok(())
}

fn print_table(runs: &[Run], chance: (f64, f64, f64)) {
    println!();
    println!("| model | params | zero-shot shape top-1 | zero-shot colour top-1 | I→T R@1 | I→T R@5 | T→I R@1 | T→I R@5 | final loss | held-out loss | samples/s |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in runs {
        let m = &r.test;
        println!(
            "| {} | {} | {:.1}% | {:.1}% | {:.1}% | {:.1}% | {:.1}% | {:.1}% | {:.3} | {:.3} | {:.0} |",
            r.variant, r.params, 100.0 * m.zero_shot_shape_top1, 100.0 * m.zero_shot_color_top1, 100.0 * m.image_to_text_r1,
            100.0 * m.image_to_text_r5, 100.0 * m.text_to_image_r1, 100.0 * m.text_to_image_r5, r.final_loss, m.heldout_loss, r.samples_per_s
        );
    }
    println!("| chance | | {:.1}% | {:.1}% | {:.1}% | | {:.1}% | | | | |", 100.0 * chance.0, 100.0 * chance.1, 100.0 * chance.2, 100.0 * chance.2);
    if let Some(best) = runs.iter().max_by(|a, b| score(a).total_cmp(&score(b))) {
        println!("\nbest mean held-out score: {} ({:.1}%)", best.variant, 100.0 * score(best));
    }
}

/// Mean of the six held-out metrics, to name a winner.
fn score(r: &Run) -> f64 {
    let m = &r.test;
    (m.zero_shot_shape_top1 + m.zero_shot_color_top1 + m.image_to_text_r1 + m.image_to_text_r5 + m.text_to_image_r1 + m.text_to_image_r5) / 6.0
}

/// Attention overlays (first, subtracted and effective maps for differential layers) of the last
/// vision layer for a few test images, queried with their own first caption.
fn write_attention_maps(model: &Clip, test: &SyntheticDataset, dir: &std::path::Path, variant: &str) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let encoder = Encoder::new(model)?.with_progress(false);
    for i in 0..4 {
        let caption = test.captions(i).into_iter().next().unwrap_or_default();
        let maps = attention_heatmaps(&encoder, test.image_eval(i), Some(&caption), None)?;
        let path = dir.join(format!("{variant}-{i}.png"));
        save_overlay_png(&path, &test.image_rgb(i), test.image_size(), &maps)?;
        std::fs::write(dir.join(format!("{variant}-{i}.json")), serde_json::to_string_pretty(&serde_json::json!({
            "caption": caption, "panels": panel_names(&maps), "lambda": maps.lambda, "similarity": maps.similarity,
        }))?)?;
    }
    Ok(())
}

fn write_plots(dir: &std::path::Path, runs: &[Run]) -> Result<(), Box<dyn std::error::Error>> {
    plots::init_fonts();
    let loss: Vec<plots::Series> = runs.iter().map(|r| plots::Series { name: r.variant.clone(), points: plots::smooth(&r.losses, 10) }).collect();
    plots::line_chart(&dir.join("loss.png"), "Training loss (moving average of 10 steps)", "step", "contrastive loss", &loss)?;
    let mut acc = Vec::new();
    for r in runs {
        let curve = |f: fn(&Metrics) -> f64| r.curve.iter().map(|m| (m.step as f64, 100.0 * f(m))).collect::<Vec<_>>();
        acc.push(plots::Series { name: format!("{} zero-shot shape", r.variant), points: curve(|m| m.zero_shot_shape_top1) });
        acc.push(plots::Series { name: format!("{} I→T R@1", r.variant), points: curve(|m| m.image_to_text_r1) });
        acc.push(plots::Series { name: format!("{} T→I R@1", r.variant), points: curve(|m| m.text_to_image_r1) });
    }
    plots::line_chart(&dir.join("accuracy.png"), "Held-out accuracy", "step", "%", &acc)?;
    Ok(())
}
