//! The paper's comparison in miniature, with statistics: CLIP, DiffCLIP, DiffCLIP* and DiffCLIP†
//! (compact models, built-in synthetic data) trained with several seeds, each seed giving every
//! variant the same initialisation seed, data order and budget. Reports mean ± sd over seeds of
//! every held-out metric, the paired difference of each variant against CLIP with a 95 %
//! t-interval over seeds and a 95 % bootstrap interval over test samples, and band plots.
//!
//! ```text
//! cargo run --release --example reproduce -- [--seeds 0,1,...,9] [--steps N] [--output DIR]
//! ```
//! Writes `results.json`, `table.md`, `runs.json` (curves; rewritten after each run, so a
//! stopped comparison keeps its finished runs), `timing.json` and PNG plots to `--output`
//! (default `reproduce-out/`). See `docs/reproduction.md`.

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

use clap::Parser;
use diffclip::data::SyntheticConfig;
use diffclip::eval::compare::{SeedRuns, markdown_tables, over_seeds};
use diffclip::eval::heldout::{HELDOUT_METRICS, MEAN_SCORE};
use diffclip::train::synthetic::{RunOutcome, SyntheticTask, compact_config, compact_train_config, expected_seconds, init_compact, train_and_evaluate};
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(about = "CLIP vs DiffCLIP variants over seeds on the synthetic data, with statistics")]
// Ten seeds by default: three gave verdicts that ten overturned (docs/reproduction.md, §1).
#[command(mut_arg("seeds", |a| a.default_value("0,1,2,3,4,5,6,7,8,9")))]
struct Args {
    #[command(flatten)]
    shape: ShapeArgs,
    #[command(flatten)]
    data: SynthArgs,
    /// Optimizer steps per run (the default is chosen in docs/reproduction.md).
    #[arg(long, default_value_t = 300)]
    steps: u64,
    #[arg(long, default_value = "clip,diffclip,diffclip-star,diffclip-dagger", value_delimiter = ',')]
    variants: Vec<String>,
    #[arg(long, default_value = "reproduce-out")]
    output: PathBuf,
    /// Held-out evaluation every N steps (the curves); 0: only at the end.
    #[arg(long, default_value_t = 50)]
    eval_every: u64,
}

fn main() -> ExitCode {
    diffclip::cli::run_main(|| diffclip::cli::closed_output_is_success(run(Args::parse())))
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let shape = args.shape.shape();
    for (i, v) in args.variants.iter().enumerate() {
        compact_config(v, &shape)?;
        if args.variants[..i].contains(v) {
            return Err(format!("--variants lists {v} twice").into());
        }
    }
    // Every difference is to CLIP: without it there is nothing to compare.
    if !args.variants.iter().any(|v| v == "clip") {
        return Err(format!("--variants {} has no clip: the differences are each variant's to clip", args.variants.join(",")).into());
    }
    if args.data.seeds.is_empty() || args.steps == 0 || args.shape.batch_size < 2 {
        return Err("need at least one seed, --steps >= 1 and --batch-size >= 2".into());
    }
    args.data.check(args.shape.batch_size)?;
    let synth = SyntheticConfig { seed: args.data.data_seed, image_size: args.shape.image_size as u32, train_size: args.data.train_size, test_size: args.data.test_size, ..SyntheticConfig::default() };
    let task = SyntheticTask::new(synth)?;
    let device = diffclip::backend::device(&args.shape.backend)?.autodiff();
    args.shape.create_output(&args.output)?;
    // Replacing an earlier comparison: its results go first, so that a stop part-way leaves
    // this one's runs.json alone, not beside the earlier results.
    if args.shape.overwrite {
        let figures = CURVES.iter().map(|m| format!("{m}.png"));
        for name in ["results.json", "table.md", "runs.json", "timing.json", "loss.png"].map(String::from).into_iter().chain(figures) {
            match std::fs::remove_file(args.output.join(&name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(format!("{}: {e}", args.output.join(name).display()).into()),
                _ => {}
            }
        }
    }

    let total = args.data.seeds.len() * args.variants.len();
    let estimate = total as f64 * expected_seconds(&shape, args.shape.batch_size, args.steps);
    // The estimate is the slowest 2-core host's (a Xeon; an AMD EPYC took a quarter of it).
    eprintln!("{total} runs ({} variants × {} seeds) of {} steps: up to about {:.0} min on 2 CPU cores; the time left is measured after each run", args.variants.len(), args.data.seeds.len(), args.steps, estimate / 60.0);
    let start = Instant::now();
    let mut outcomes: BTreeMap<(String, u64), RunOutcome> = BTreeMap::new();
    for (i, (seed, variant)) in args.data.seeds.iter().flat_map(|s| args.variants.iter().map(move |v| (*s, v))).enumerate() {
        eprintln!("[run {}/{total}] {variant}, seed {seed}", i + 1);
        let (model, config) = init_compact(variant, &shape, seed, &device)?;
        let train = compact_train_config(args.steps, args.shape.batch_size, seed, args.eval_every);
        outcomes.insert((variant.clone(), seed), train_and_evaluate(model, config, train, None, None, &task)?);
        // Each finished run is kept at once: a run stopped later (Ctrl-C, a crash) loses only its own.
        diffclip::clip::files::write_atomic(&args.output.join("runs.json"), serde_json::to_string(&runs_json(&outcomes))?.as_bytes())?;
        let per_run = start.elapsed().as_secs_f64() / (i + 1) as f64;
        eprintln!("[run {}/{total}] done; about {:.1} min left", i + 1, per_run * (total - i - 1) as f64 / 60.0);
    }

    let metrics: Vec<&str> = HELDOUT_METRICS.iter().copied().chain(std::iter::once(MEAN_SCORE)).collect();
    let results = statistics(&args, &metrics, &outcomes)?;
    diffclip::clip::files::write_atomic(&args.output.join("results.json"), serde_json::to_string_pretty(&results)?.as_bytes())?;
    let table = tables(&args, &metrics, &results, &task);
    diffclip::clip::files::write_atomic(&args.output.join("table.md"), table.as_bytes())?;
    let timing: BTreeMap<String, f64> = outcomes.iter().map(|((v, s), o)| (format!("{v}/seed{s}"), o.train_seconds)).collect();
    diffclip::clip::files::write_atomic(&args.output.join("timing.json"), serde_json::to_string_pretty(&json!({ "total_seconds": start.elapsed().as_secs_f64(), "runs": timing }))?.as_bytes())?;
    write_plots(&args, &outcomes)?;
    eprintln!("wrote {} in {:.1} min", args.output.display(), start.elapsed().as_secs_f64() / 60.0);
    // Printed once every file is written: a closed or full output loses no result.
    diffclip::cli::print_line(table)?;
    Ok(())
}

/// `results.json`: the config, per variant every metric per seed with mean and sample sd, and
/// per non-CLIP variant the paired difference to CLIP (see `diffclip::eval::compare`).
fn statistics(args: &Args, metrics: &[&str], outcomes: &BTreeMap<(String, u64), RunOutcome>) -> Result<Value, diffclip::eval::EvalError> {
    let groups: Vec<SeedRuns<'_>> =
        args.variants.iter().map(|v| SeedRuns { name: v.clone(), runs: args.data.seeds.iter().map(|&s| (s, &outcomes[&(v.clone(), s)].test)).collect() }).collect();
    let (variants, vs_clip) = over_seeds(&groups, "clip", metrics, args.shape.bootstrap)?;
    Ok(json!({
        "config": { "seeds": args.data.seeds, "steps": args.steps, "batch_size": args.shape.batch_size, "eval_every": args.eval_every, "data_seed": args.data.data_seed,
                    "train_size": args.data.train_size, "test_size": args.data.test_size, "width": args.shape.width, "vision_layers": args.shape.vision_layers,
                    "text_layers": args.shape.text_layers, "image_size": args.shape.image_size, "bootstrap_resamples": args.shape.bootstrap },
        "variants": variants,
        "vs_clip": vs_clip,
    }))
}

/// `table.md`: mean ± sd per variant with the chance levels, then the differences to CLIP.
fn tables(args: &Args, metrics: &[&str], r: &Value, task: &SyntheticTask) -> String {
    let (shape, color, retr) = task.chance();
    let chance = format!("Chance: shape {:.2} %, colour {:.2} %, retrieval R@1 {:.2} %.", 100.0 * shape, 100.0 * color, 100.0 * retr);
    let head = format!("Mean ± sample sd over seeds {:?} ({} steps, batch {}); accuracies and recalls in %. {chance}\n\n", args.data.seeds, args.steps, args.shape.batch_size);
    head + &markdown_tables(&r["variants"], &r["vs_clip"], &args.variants, metrics, "clip")
}

fn runs_json(outcomes: &BTreeMap<(String, u64), RunOutcome>) -> Value {
    let runs: Vec<Value> = outcomes
        .iter()
        .map(|((v, s), o)| json!({ "variant": v, "seed": s, "params": o.params, "losses": o.losses, "curve": o.curve, "lambdas": o.lambdas }))
        .collect();
    json!(runs)
}

/// The held-out metrics drawn as curves, one figure each (`<metric>.png`).
const CURVES: [&str; 4] = ["zero_shot_shape_top1", "image_to_text_r1", "text_to_image_r1", "heldout_loss"];

/// Mean ± sd bands over seeds: the training loss (moving average of 10 steps) and the held-out
/// curves of four metrics.
fn write_plots(args: &Args, outcomes: &BTreeMap<(String, u64), RunOutcome>) -> Result<(), Box<dyn std::error::Error>> {
    plots::init_fonts();
    let per_variant = |f: &dyn Fn(&RunOutcome) -> Vec<(f64, f64)>| -> Vec<plots::Band> {
        args.variants.iter().map(|v| plots::band(v, &args.data.seeds.iter().map(|&s| f(&outcomes[&(v.clone(), s)])).collect::<Vec<_>>())).collect()
    };
    let title = format!("mean ± sd over {} seeds", args.data.seeds.len());
    let loss = per_variant(&|o| plots::smooth(&o.losses, 10));
    plots::band_chart(&args.output.join("loss.png"), &format!("Training loss, moving average of 10 steps ({title})"), "step", "contrastive loss", &loss)?;
    for m in CURVES {
        let pct = if m == "heldout_loss" { 1.0 } else { 100.0 };
        let bands = per_variant(&|o| o.curve.iter().map(|c| (c.step as f64, pct * c.get(m).unwrap_or(f64::NAN))).collect());
        let unit = if m == "heldout_loss" { "loss" } else { "%" };
        plots::band_chart(&args.output.join(format!("{m}.png")), &format!("Held-out {m} ({title})"), "step", unit, &bands)?;
    }
    Ok(())
}

