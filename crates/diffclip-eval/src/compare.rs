//! Comparing model variants trained with several seeds on the same test set: mean and sample
//! sd of each held-out metric over seeds, and the paired difference of each variant to a
//! baseline (t-interval over seeds, bootstrap over test samples, and both tests' p-values
//! Holm-adjusted over every comparison made), as JSON and markdown. Used by
//! `examples/reproduce.rs` and `examples/convert.rs`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::EvalError;
use crate::heldout::{HeldOut, bootstrap_heldout_diff};
use crate::stats::{excludes_zero, holm, mean, paired_t_interval, paired_t_p_value, sample_sd};

/// The evaluated runs of one variant, one per seed.
pub struct SeedRuns<'a> {
    /// Variant name.
    pub name: String,
    /// `(seed, final held-out evaluation)`; every variant must have the same seeds in the same order.
    pub runs: Vec<(u64, &'a HeldOut)>,
}

/// The statistics of `groups` over seeds for `metrics` (names understood by [`HeldOut::value`]).
///
/// Returns `(variants, vs_baseline)`: `variants[name] = {"seeds": {"<seed>": {metric: value}},
/// "mean": {metric: mean}, "sd": {metric: sample sd}}`, and for every other variant
/// `vs_baseline[name][metric] = {"diff_mean", "diff_sd", "n_seeds", "ci95" (paired t over seeds,
/// null below two seeds), "ci95_bootstrap" (over test samples, seed pairs kept), "p_t",
/// "p_bootstrap" (the two tests' two-sided p-values), "p_t_holm", "p_bootstrap_holm" (each
/// Holm–Bonferroni adjusted over every variant × metric of `vs_baseline`: many comparisons
/// find a few "differences" by chance, and an adjusted p below 0.05 holds with all of them
/// counted)}`; empty when no group is named `baseline`. `resamples` bootstrap resamples,
/// seeded with 0.
///
/// Runs are paired by position, so every variant must list the same seeds in the same order,
/// each once: otherwise an error naming the variant (a pairing of different seeds would report
/// a difference of initialisations, not of variants).
///
/// ```
/// use std::collections::BTreeMap;
/// use diffclip_eval::compare::{SeedRuns, markdown_tables, over_seeds};
/// use diffclip_eval::heldout::{HeldOut, HeldOutMetrics};
/// // One held-out evaluation: `hits` of 10 test images classified right.
/// let run = |hits: usize| {
///     let outcomes: Vec<f64> = (0..10).map(|i| if i < hits { 1.0 } else { 0.0 }).collect();
///     let metrics = HeldOutMetrics {
///         step: 100, heldout_loss: 1.0, zero_shot_shape_top1: hits as f64 / 10.0, zero_shot_color_top1: 0.0,
///         image_to_text_r1: 0.0, image_to_text_r5: 0.0, text_to_image_r1: 0.0, text_to_image_r5: 0.0,
///     };
///     HeldOut { metrics, per_sample: BTreeMap::from([("zero_shot_shape_top1".to_string(), outcomes)]) }
/// };
/// fn seeded(runs: &[HeldOut]) -> Vec<(u64, &HeldOut)> {
///     runs.iter().enumerate().map(|(seed, h)| (seed as u64, h)).collect()
/// }
/// let (clip, diff) = ([run(5), run(6), run(5)], [run(7), run(8), run(8)]);
/// let groups = [SeedRuns { name: "baseline".into(), runs: seeded(&clip) }, SeedRuns { name: "diffclip".into(), runs: seeded(&diff) }];
/// let metrics = ["zero_shot_shape_top1"];
/// let (variants, vs) = over_seeds(&groups, "baseline", &metrics, 1000)?;
/// let d = &vs["diffclip"]["zero_shot_shape_top1"];
/// assert!((d["diff_mean"].as_f64().unwrap() - 0.7 / 3.0).abs() < 1e-9); // (2 + 2 + 3) / 3 hits of 10
/// assert_eq!(d["n_seeds"], 3);
/// let order = ["baseline".to_string(), "diffclip".to_string()];
/// assert!(markdown_tables(&variants, &vs, &order, &metrics, "baseline").contains("| diffclip |"));
/// # Ok::<(), diffclip_eval::EvalError>(())
/// ```
pub fn over_seeds(
    groups: &[SeedRuns<'_>],
    baseline: &str,
    metrics: &[&str],
    resamples: usize,
) -> Result<(Value, Value), EvalError> {
    let seeds = |g: &SeedRuns<'_>| g.runs.iter().map(|r| r.0).collect::<Vec<u64>>();
    if let Some(first) = groups.first() {
        let want = seeds(first);
        if let Some(s) = want.iter().enumerate().find_map(|(i, s)| want[..i].contains(s).then_some(s)) {
            return Err(EvalError::Invalid(format!("seed {s} appears twice among the runs of {}", first.name)));
        }
        if let Some(g) = groups.iter().find(|g| seeds(g) != want) {
            return Err(EvalError::Invalid(format!("{} has seeds {:?} but {} has {want:?}: runs are paired by seed", g.name, seeds(g), first.name)));
        }
    }
    let values = |g: &SeedRuns<'_>, m: &str| {
        g.runs
            .iter()
            .map(|(_, h)| h.value(m).unwrap_or(f64::NAN))
            .collect::<Vec<f64>>()
    };
    let mut variants = serde_json::Map::new();
    for g in groups {
        let seeds: BTreeMap<String, BTreeMap<&str, f64>> = g
            .runs
            .iter()
            .map(|(s, h)| {
                (
                    s.to_string(),
                    metrics
                        .iter()
                        .map(|m| (*m, h.value(m).unwrap_or(f64::NAN)))
                        .collect(),
                )
            })
            .collect();
        let means: BTreeMap<&str, f64> =
            metrics.iter().map(|m| (*m, mean(&values(g, m)))).collect();
        let sds: BTreeMap<&str, f64> = metrics
            .iter()
            .map(|m| (*m, sample_sd(&values(g, m))))
            .collect();
        variants.insert(
            g.name.clone(),
            json!({ "seeds": seeds, "mean": means, "sd": sds }),
        );
    }
    let mut vs = serde_json::Map::new();
    if let Some(base) = groups.iter().find(|g| g.name == baseline) {
        for g in groups.iter().filter(|g| g.name != baseline) {
            let mut per = serde_json::Map::new();
            for m in metrics {
                let (a, b) = (values(g, m), values(base, m));
                let diffs: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
                let t = paired_t_interval(&a, &b, 0.95);
                let (ha, hb): (Vec<&HeldOut>, Vec<&HeldOut>) = (
                    g.runs.iter().map(|r| r.1).collect(),
                    base.runs.iter().map(|r| r.1).collect(),
                );
                let boot = bootstrap_heldout_diff(&ha, &hb, m, resamples, 0);
                per.insert(
                    m.to_string(),
                    json!({
                        "diff_mean": mean(&diffs),
                        "diff_sd": sample_sd(&diffs),
                        "n_seeds": diffs.len(),
                        "ci95": t.map(|t| t.ci),
                        "ci95_bootstrap": boot.as_ref().map(|b| b.ci),
                        "p_t": paired_t_p_value(&a, &b),
                        "p_bootstrap": boot.map(|b| b.p_value),
                    }),
                );
            }
            vs.insert(g.name.clone(), per.into());
        }
    }
    adjust_over_family(&mut vs, "p_t", "p_t_holm");
    adjust_over_family(&mut vs, "p_bootstrap", "p_bootstrap_holm");
    Ok((variants.into(), vs.into()))
}

/// Writes `adjusted`, the Holm–Bonferroni adjustment of every entry's `p` over all of `vs`
/// (`null` where `p` is).
fn adjust_over_family(vs: &mut serde_json::Map<String, Value>, p: &str, adjusted: &str) {
    let raw: Vec<f64> = vs.values().flat_map(|per| per.as_object().into_iter().flat_map(|m| m.values())).map(|e| e[p].as_f64().unwrap_or(f64::NAN)).collect();
    let mut holm = holm(&raw).into_iter();
    for entry in vs.values_mut().flat_map(|per| per.as_object_mut().into_iter().flat_map(|m| m.values_mut())) {
        entry[adjusted] = json!(holm.next().filter(|p| !p.is_nan()));
    }
}

/// Markdown tables of [`over_seeds`]' output: [`summary_table`] then [`difference_table`].
pub fn markdown_tables(
    variants: &Value,
    vs: &Value,
    order: &[String],
    metrics: &[&str],
    baseline: &str,
) -> String {
    summary_table(variants, order, metrics) + "\n" + &difference_table(vs, order, metrics, baseline)
}

fn scale(metric: &str) -> f64 {
    if metric == "heldout_loss" { 1.0 } else { 100.0 }
}

/// Mean ± sd of each metric per variant (in `order`); accuracies and recalls in %,
/// `heldout_loss` as is.
pub fn summary_table(variants: &Value, order: &[String], metrics: &[&str]) -> String {
    let f = |x: &Value, m: &str| {
        x.as_f64()
            .filter(|x| x.is_finite())
            .map_or("–".to_string(), |x| format!("{:.2}", scale(m) * x))
    };
    let mut s = String::from("| variant |");
    for m in metrics {
        s += &format!(" {m} |");
    }
    s += &format!("\n|---|{}\n", "---|".repeat(metrics.len()));
    for v in order {
        s += &format!("| {v} |");
        for m in metrics {
            s += &format!(
                " {} ± {} |",
                f(&variants[v]["mean"][m], m),
                f(&variants[v]["sd"][m], m)
            );
        }
        s += "\n";
    }
    s
}

/// Each variant's difference to `baseline` with the t-interval over seeds and the bootstrap
/// interval over test samples (`*` marks an interval that excludes zero), each with its
/// Holm-adjusted p-value ([`over_seeds`]).
pub fn difference_table(vs: &Value, order: &[String], metrics: &[&str], baseline: &str) -> String {
    let ci = |x: &Value, m: &str| match (x[0].as_f64(), x[1].as_f64()) {
        (Some(lo), Some(hi)) => format!(
            "[{:+.2}, {:+.2}]{}",
            scale(m) * lo,
            scale(m) * hi,
            if excludes_zero([lo, hi]) { " *" } else { "" }
        ),
        _ => "–".to_string(),
    };
    let p = |x: &Value| match x.as_f64() {
        Some(p) if p < 0.001 => "<0.001".to_string(),
        Some(p) => format!("{p:.3}"),
        None => "–".to_string(),
    };
    let family = |key: &str| vs.as_object().into_iter().flat_map(|v| v.values()).flat_map(|per| per.as_object().into_iter().flat_map(|m| m.values())).filter(|e| e[key].is_number()).count();
    let counted = match (family("p_t_holm"), family("p_bootstrap_holm")) {
        (t, b) if t == b => format!("all {t} variant × metric comparisons"),
        (t, b) => format!("the {t} (seeds) and {b} (test samples) variant × metric comparisons that have one"),
    };
    let mut s = format!(
        "Difference to {baseline} (variant − {baseline}), mean over seeds, with the 95 % paired t-interval over seeds and the 95 % bootstrap interval over test samples; `*`: the interval excludes 0. Holm p: the test's two-sided p-value, Holm–Bonferroni adjusted over {counted} to {baseline}; below 0.05, a difference holds with every comparison counted.\n\n"
    );
    s += "| variant | metric | difference | t-interval (seeds) | Holm p (seeds) | bootstrap (test samples) | Holm p (samples) |\n|---|---|---|---|---|---|---|\n";
    for v in order.iter().filter(|v| vs.get(v.as_str()).is_some()) {
        for m in metrics {
            let d = &vs[v][m];
            s += &format!(
                "| {v} | {m} | {:+.2} | {} | {} | {} | {} |\n",
                scale(m) * d["diff_mean"].as_f64().unwrap_or(f64::NAN),
                ci(&d["ci95"], m),
                p(&d["p_t_holm"]),
                ci(&d["ci95_bootstrap"], m),
                p(&d["p_bootstrap_holm"])
            );
        }
    }
    s
}
