//! The README's main command: train a compact CLIP and a compact DiffCLIP of the same shape on
//! the built-in synthetic data (same seed, data order and steps), evaluate both on held-out
//! data and compare them. One seed only: differences are reported with their bootstrap interval
//! over test images, and called "no clear difference" when it contains zero (for the comparison
//! over seeds, see `examples/reproduce.rs`).
//!
//! ```text
//! cargo run --release --example quickstart -- [--steps N] [--seed S] [--output DIR] [--overwrite]
//!     [--variants clip,diffclip,diffclip-star,diffclip-dagger]
//! ```

#[path = "quickstart/plots.rs"]
#[allow(dead_code)] // the band charts are for reproduce/convert
mod plots;

use diffclip::eprintln;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[path = "common/shape.rs"]
mod shape_args;
use shape_args::ShapeArgs;

use burn::module::Module;
use clap::Parser;
use diffclip::clip::{Clip, save_safetensors};
use diffclip::data::SyntheticConfig;
use diffclip::eval::Encoder;
use diffclip::eval::attention::{AttentionHeatmaps, attention_heatmaps, panel_names, panel_titles, save_comparison_png, save_overlay_png};
use diffclip::eval::heldout::{HELDOUT_METRICS, HeldOut, HeldOutMetrics, MEAN_SCORE, bootstrap_heldout_diff};
use diffclip::eval::stats::excludes_zero;
use diffclip::train::TrainError;
use diffclip::train::synthetic::{RunOutcome, SyntheticTask, compact_train_config, init_compact, train_and_evaluate};

#[derive(Parser, Debug)]
#[command(about = "Train CLIP and DiffCLIP on the built-in synthetic data and compare them")]
struct Args {
    #[command(flatten)]
    shape: ShapeArgs,
    /// Optimizer steps per model.
    #[arg(long, default_value_t = 400)]
    steps: u64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value = "quickstart-out")]
    output: PathBuf,
    /// Comma-separated: clip, diffclip, diffclip-star, diffclip-dagger.
    #[arg(long, default_value = "clip,diffclip")]
    variants: String,
    /// Evaluate every N steps (for the curves).
    #[arg(long, default_value_t = 100)]
    eval_every: u64,
}

fn main() -> ExitCode {
    diffclip::cli::run_main(|| diffclip::cli::closed_output_is_success(run(Args::parse())))
}

/// Everything reported for one variant (the `runs` of `metrics.json`).
#[derive(Debug, Clone, serde::Serialize)]
struct Run {
    variant: String,
    params: usize,
    final_loss: f32,
    samples_per_s: f64,
    train_seconds: f64,
    losses: Vec<f32>,
    curve: Vec<HeldOutMetrics>,
    test: HeldOutMetrics,
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let shape = args.shape.shape();
    shape.check()?;
    if args.steps == 0 {
        return Err("--steps must be at least 1".into());
    }
    if args.shape.batch_size < 2 {
        return Err("--batch-size must be at least 2 (the contrastive loss needs negatives)".into());
    }
    let variants: Vec<&str> = args.variants.split(',').map(str::trim).collect();
    for (i, v) in variants.iter().enumerate() {
        diffclip::train::synthetic::compact_config(v, &shape)?;
        if variants[..i].contains(v) {
            return Err(format!("--variants lists {v} twice: a model compared with itself").into());
        }
    }
    let device = diffclip::backend::device(&args.shape.backend)?.autodiff();
    args.shape.create_output(&args.output)?;
    let task = SyntheticTask::new(SyntheticConfig { seed: args.seed, image_size: args.shape.image_size as u32, ..SyntheticConfig::default() })?;
    let chance = task.chance();
    let (mut runs, mut tests, mut maps) = (Vec::new(), Vec::new(), Vec::new());
    for variant in &variants {
        let (model, config) = init_compact(variant, &shape, args.seed, &device)?;
        eprintln!("training {variant} ({} parameters) for {} steps", model.num_params(), args.steps);
        let train = compact_train_config(args.steps, args.shape.batch_size, args.seed, args.eval_every);
        let out: RunOutcome = train_and_evaluate(model, config.clone(), train, Some(args.output.join(variant)), None, &task)?;
        save_safetensors(&out.model, Some(&config), args.output.join(format!("{variant}.safetensors")))?;
        maps.push(attention_maps(&out.model, &task, &args.output.join("attention"), variant)?);
        runs.push(Run {
            variant: variant.to_string(),
            params: out.params,
            final_loss: out.final_loss,
            samples_per_s: out.samples_per_s,
            train_seconds: out.train_seconds,
            losses: out.losses,
            curve: out.curve,
            test: out.test.metrics.clone(),
        });
        tests.push(out.test);
    }
    compare_attention(&task, &args.output.join("attention"), &variants, &maps)?;
    write_plots(&args.output, &runs)?;
    let mut report = table(&runs, chance);
    let comparisons = compare(&variants, &tests, args.shape.bootstrap, args.seed, &mut report);
    let summary = serde_json::json!({
        "steps": args.steps, "batch_size": args.shape.batch_size, "seed": args.seed,
        "chance": { "shape_top1": chance.0, "color_top1": chance.1, "retrieval_r1": chance.2 },
        "runs": runs,
        "vs_first": comparisons,
    });
    // Written before the report is printed: a closed or full output loses no result.
    diffclip::clip::files::write_atomic(&args.output.join("metrics.json"), serde_json::to_string_pretty(&summary)?.as_bytes())?;
    eprintln!("wrote {}", args.output.join("metrics.json").display());
    Ok(diffclip::cli::print_line(report)?)
}

/// The results table, Markdown.
fn table(runs: &[Run], chance: (f64, f64, f64)) -> String {
    let mut t = String::from("\n| model | params | zero-shot shape top-1 | zero-shot colour top-1 | I→T R@1 | I→T R@5 | T→I R@1 | T→I R@5 | final loss | held-out loss | samples/s |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in runs {
        let m = &r.test;
        t += &format!(
            "| {} | {} | {:.1}% | {:.1}% | {:.1}% | {:.1}% | {:.1}% | {:.1}% | {:.3} | {:.3} | {:.0} |\n",
            r.variant, r.params, 100.0 * m.zero_shot_shape_top1, 100.0 * m.zero_shot_color_top1, 100.0 * m.image_to_text_r1,
            100.0 * m.image_to_text_r5, 100.0 * m.text_to_image_r1, 100.0 * m.text_to_image_r5, r.final_loss, m.heldout_loss, r.samples_per_s
        );
    }
    t + &format!("| chance | | {:.1}% | {:.1}% | {:.1}% | | {:.1}% | | | | |", 100.0 * chance.0, 100.0 * chance.1, 100.0 * chance.2, 100.0 * chance.2)
}

/// Each variant against the first: the difference of every metric with its 95 % bootstrap
/// interval over test images (one seed: this is test-set noise only, not seed noise), and a
/// verdict on the mean score that names a better model only when the interval excludes zero.
fn compare(variants: &[&str], tests: &[HeldOut], resamples: usize, seed: u64, report: &mut String) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    let Some(base) = tests.first() else { return out.into() };
    let metrics: Vec<&str> = std::iter::once(MEAN_SCORE).chain(HELDOUT_METRICS).collect();
    for (v, t) in variants.iter().zip(tests).skip(1) {
        *report += &format!("\n\n{v} − {} (95 % bootstrap interval over test images, {resamples} resamples):", variants[0]);
        let mut per_metric = serde_json::Map::new();
        for m in &metrics {
            let Some(b) = bootstrap_heldout_diff(&[t], &[base], m, resamples, seed) else { continue };
            let pct = if *m == "heldout_loss" { 1.0 } else { 100.0 };
            *report += &format!("\n  {m:<22} {:+7.2} [{:+.2}, {:+.2}]{}", pct * b.diff_mean, pct * b.ci[0], pct * b.ci[1], if excludes_zero(b.ci) { "" } else { "  (contains 0)" });
            per_metric.insert(m.to_string(), serde_json::json!({ "diff": b.diff_mean, "ci95_bootstrap": b.ci }));
        }
        if let Some(b) = bootstrap_heldout_diff(&[t], &[base], MEAN_SCORE, resamples, seed) {
            let (d, lo, hi) = (100.0 * b.diff_mean, 100.0 * b.ci[0], 100.0 * b.ci[1]);
            if excludes_zero(b.ci) {
                let word = if d > 0.0 { "higher" } else { "lower" };
                *report += &format!("\nmean held-out score: {v} is {word} than {} by {:.1} points (95 % CI [{lo:+.1}, {hi:+.1}], this seed only)", variants[0], d.abs());
            } else {
                *report += &format!("\nmean held-out score: no clear difference between {v} and {} ({d:+.1} points, 95 % CI [{lo:+.1}, {hi:+.1}] contains 0)", variants[0]);
            }
        }
        out.insert(v.to_string(), per_metric.into());
    }
    out.into()
}

/// Titled overlays (first, subtracted and effective maps of differential layers, with λ) of the
/// last vision layer for four test images, queried with their own first caption.
fn attention_maps(model: &Clip, task: &SyntheticTask, dir: &Path, variant: &str) -> Result<Vec<(String, AttentionHeatmaps)>, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let encoder = Encoder::new(model)?.with_progress(false);
    let test = &task.test;
    let mut all = Vec::new();
    for i in 0..4.min(test.len()) {
        let caption = test.captions(i).into_iter().next().unwrap_or_default();
        let maps = attention_heatmaps(&encoder, test.image_eval(i), Some(&caption), None)?;
        save_overlay_png(&dir.join(format!("{variant}-{i}.png")), &test.image_rgb(i), test.image_size(), &maps)?;
        let about = serde_json::json!({
            "caption": caption, "panels": panel_names(&maps), "titles": panel_titles(&maps), "lambda": maps.lambda, "similarity": maps.similarity,
        });
        diffclip::clip::files::write_atomic(&dir.join(format!("{variant}-{i}.json")), serde_json::to_string_pretty(&about)?.as_bytes())?;
        all.push((caption, maps));
    }
    Ok(all)
}

/// One figure per test image with every variant's maps side by side (`compare-<i>.png`).
fn compare_attention(task: &SyntheticTask, dir: &Path, variants: &[&str], maps: &[Vec<(String, AttentionHeatmaps)>]) -> Result<(), Box<dyn std::error::Error>> {
    for i in 0..maps.first().map_or(0, Vec::len) {
        let rows: Vec<(&str, &AttentionHeatmaps)> = variants.iter().zip(maps).map(|(v, m)| (*v, &m[i].1)).collect();
        let caption = format!("test image {i}, query: \"{}\"", maps[0][i].0);
        save_comparison_png(&dir.join(format!("compare-{i}.png")), &task.test.image_rgb(i), task.test.image_size(), &rows, Some(&caption))?;
    }
    Ok(())
}

fn write_plots(dir: &Path, runs: &[Run]) -> Result<(), TrainError> {
    plots::init_fonts();
    let loss: Vec<plots::Series> = runs.iter().map(|r| plots::Series { name: r.variant.clone(), points: plots::smooth(&r.losses, 10) }).collect();
    let err = |e: Box<dyn std::error::Error>| TrainError::Eval(format!("plot: {e}"));
    plots::line_chart(&dir.join("loss.png"), "Training loss (moving average of 10 steps)", "step", "contrastive loss", &loss).map_err(err)?;
    let mut acc = Vec::new();
    for r in runs {
        let curve = |f: fn(&HeldOutMetrics) -> f64| r.curve.iter().map(|m| (m.step as f64, 100.0 * f(m))).collect::<Vec<_>>();
        acc.push(plots::Series { name: format!("{} zero-shot shape", r.variant), points: curve(|m| m.zero_shot_shape_top1) });
        acc.push(plots::Series { name: format!("{} I→T R@1", r.variant), points: curve(|m| m.image_to_text_r1) });
        acc.push(plots::Series { name: format!("{} T→I R@1", r.variant), points: curve(|m| m.text_to_image_r1) });
    }
    plots::line_chart(&dir.join("accuracy.png"), "Held-out accuracy", "step", "%", &acc).map_err(err)?;
    Ok(())
}
