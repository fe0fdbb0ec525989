//! `diffclip_eval::stats` on known inputs. Reference values are from SciPy 1.18.1 / NumPy
//! (`scipy.stats.t.ppf`, `scipy.stats.t.cdf`, `scipy.stats.t.interval`, `scipy.special.betainc`,
//! `scipy.special.gammaln`, `numpy.std(ddof=1)`), computed for this test with the expressions
//! quoted next to each value.

use diffclip_eval::stats::*;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1.0)
}

#[test]
fn mean_and_sample_sd() {
    // numpy.std([2, 4, 4, 4, 5, 5, 7, 9], ddof=1) = 2.138089935299395
    let x = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
    assert_eq!(mean(&x), 5.0);
    assert!(close(sample_sd(&x), 2.138089935299395, 1e-14));
    assert!(sample_sd(&[1.0]).is_nan() && mean(&[]).is_nan());
}

#[test]
fn special_functions_match_scipy() {
    assert!(close(ln_gamma(0.5), 0.5723649429247, 1e-12)); // gammaln(0.5)
    assert!(close(ln_gamma(10.3), 13.482036786138359, 1e-12)); // gammaln(10.3)
    assert!(close(
        incomplete_beta(0.3, 2.5, 0.5),
        0.018927124071945658,
        1e-10
    )); // betainc(2.5, 0.5, 0.3)
    assert!(close(student_t_cdf(1.5, 3.0), 0.8847080673775886, 1e-10)); // t.cdf(1.5, 3)
    assert!(close(student_t_cdf(-0.7, 7.5), 0.2525278109369252, 1e-10)); // t.cdf(-0.7, 7.5)
}

#[test]
fn t_quantiles_match_scipy() {
    // scipy.stats.t.ppf(0.975, dof)
    let table = [
        (1.0, 12.706204736174694),
        (2.0, 4.302652729749462),
        (3.0, 3.1824463052837078),
        (4.0, 2.7764451051977934),
        (5.0, 2.5705818356363146),
        (9.0, 2.262157162798205),
        (29.0, 2.045229642132703),
        (30.0, 2.0422724563012378),
        (100.0, 1.9839715185235518),
    ];
    for (dof, want) in table {
        let got = student_t_quantile(0.975, dof);
        assert!(close(got, want, 1e-9), "dof {dof}: {got} vs {want}");
        assert!(close(student_t_quantile(0.025, dof), -want, 1e-9));
    }
    assert!(student_t_quantile(1.0, 3.0).is_nan() && student_t_quantile(0.5, 0.0).is_nan());
}

#[test]
fn paired_t_interval_matches_scipy() {
    // d = [0.62, 0.55, 0.71] - [0.50, 0.52, 0.60]; d.mean() = 0.08666666666666667,
    // d.std(ddof=1) = 0.04932882862316246,
    // t.interval(0.95, 2, loc=d.mean(), scale=d.std(ddof=1)/sqrt(3)) = (-0.0358729367926003, 0.20920627012593362)
    let d = paired_t_interval(&[0.62, 0.55, 0.71], &[0.50, 0.52, 0.60], 0.95).unwrap();
    assert_eq!(d.n, 3);
    assert!(close(d.diff_mean, 0.08666666666666667, 1e-12));
    assert!(close(d.diff_sd, 0.04932882862316246, 1e-12));
    assert!(close(d.ci[0], -0.0358729367926003, 1e-9), "{:?}", d.ci);
    assert!(close(d.ci[1], 0.20920627012593362, 1e-9), "{:?}", d.ci);
    assert!(!excludes_zero(d.ci));
    // Identical differences: a zero-width interval.
    let d = paired_t_interval(&[1.0, 2.0, 3.0], &[0.5, 1.5, 2.5], 0.95).unwrap();
    assert_eq!(d.ci, [0.5, 0.5]);
    assert!(excludes_zero(d.ci));
    assert!(paired_t_interval(&[1.0], &[0.0], 0.95).is_none());
    assert!(paired_t_interval(&[1.0, 2.0], &[0.0], 0.95).is_none());
}

#[test]
fn quantiles_interpolate_like_numpy() {
    // numpy.quantile([1, 2, 3, 4], [0.25, 0.5, 0.9]) = [1.75, 2.5, 3.7]
    let s = [1.0, 2.0, 3.0, 4.0];
    assert!(close(quantile_sorted(&s, 0.25), 1.75, 1e-15));
    assert!(close(quantile_sorted(&s, 0.5), 2.5, 1e-15));
    assert!(close(quantile_sorted(&s, 0.9), 3.7, 1e-15));
}

#[test]
fn bootstrap_of_a_paired_difference() {
    // A constant per-sample difference has a zero-width interval at that value.
    let a = vec![vec![1.0, 0.0, 1.0, 1.0]];
    let b = vec![vec![0.5, -0.5, 0.5, 0.5]];
    let r = bootstrap_paired_diff(&a, &b, 200, 0.95, 7).unwrap();
    assert_eq!((r.diff_mean, r.ci), (0.5, [0.5, 0.5]));

    // 0/1 outcomes of two models on 2,000 samples in two runs: the interval is reproducible from
    // the seed, contains the observed difference, and is close to the normal approximation
    // ±1.96·sd(d)/√n of the run-averaged per-sample difference d.
    let mut rng = SplitMix64::new(1);
    let n = 2000;
    let runs = |p: f64, rng: &mut SplitMix64| -> Vec<Vec<f64>> {
        (0..2)
            .map(|_| {
                (0..n)
                    .map(|_| f64::from(u8::from((rng.next_u64() as f64 / u64::MAX as f64) < p)))
                    .collect()
            })
            .collect()
    };
    let a = runs(0.6, &mut rng);
    let b = runs(0.5, &mut rng);
    let r1 = bootstrap_paired_diff(&a, &b, 2000, 0.95, 42).unwrap();
    let r2 = bootstrap_paired_diff(&a, &b, 2000, 0.95, 42).unwrap();
    assert_eq!(r1, r2);
    let d: Vec<f64> = (0..n)
        .map(|i| (a[0][i] - b[0][i] + a[1][i] - b[1][i]) / 2.0)
        .collect();
    assert!(close(r1.diff_mean, mean(&d), 1e-12));
    let half = 1.96 * sample_sd(&d) / (n as f64).sqrt();
    assert!(r1.ci[0] < r1.diff_mean && r1.diff_mean < r1.ci[1]);
    for (got, want) in [
        (r1.ci[0], r1.diff_mean - half),
        (r1.ci[1], r1.diff_mean + half),
    ] {
        assert!(
            (got - want).abs() < 0.15 * half,
            "{got} vs {want} (half width {half})"
        );
    }
    assert!(excludes_zero(r1.ci)); // 0.1 apart on 4,000 outcomes each

    assert!(bootstrap_paired_diff(&[], &[], 10, 0.95, 0).is_none());
    assert!(bootstrap_paired_diff(&[vec![1.0]], &[vec![1.0, 2.0]], 10, 0.95, 0).is_none());
    // A level outside (0, 1) has no percentile interval (95 for 0.95 gave a reversed one).
    for level in [0.0, 1.0, 95.0, -0.5, f64::NAN] {
        assert!(bootstrap_paired_diff(&a, &b, 10, level, 0).is_none(), "level {level}");
    }
}

#[test]
fn runs_are_paired_only_over_the_same_seeds() {
    use diffclip_eval::compare::{SeedRuns, over_seeds};
    use diffclip_eval::heldout::{HeldOut, HeldOutMetrics};
    let held = |acc: f64| HeldOut {
        metrics: HeldOutMetrics { step: 1, heldout_loss: 1.0, zero_shot_shape_top1: acc, zero_shot_color_top1: acc, image_to_text_r1: acc, image_to_text_r5: acc, text_to_image_r1: acc, text_to_image_r5: acc },
        per_sample: Default::default(),
    };
    let (h1, h2, h3) = (held(0.1), held(0.2), held(0.3));
    let runs = |name: &str, seeds: &[u64]| SeedRuns { name: name.into(), runs: seeds.iter().zip([&h1, &h2, &h3]).map(|(&s, h)| (s, h)).collect() };
    let metrics = ["zero_shot_shape_top1"];
    let (_, vs) = over_seeds(&[runs("clip", &[0, 1]), runs("diff", &[0, 1])], "clip", &metrics, 10).unwrap();
    assert_eq!(vs["diff"]["zero_shot_shape_top1"]["n_seeds"], 2);
    let e = over_seeds(&[runs("clip", &[0, 1]), runs("diff", &[1, 0])], "clip", &metrics, 10).unwrap_err().to_string();
    assert!(e.contains("diff has seeds [1, 0] but clip has [0, 1]"), "{e}");
    let e = over_seeds(&[runs("clip", &[0, 1]), runs("diff", &[0])], "clip", &metrics, 10).unwrap_err().to_string();
    assert!(e.contains("diff has seeds [0]"), "{e}");
    let e = over_seeds(&[runs("clip", &[0, 0]), runs("diff", &[0, 0])], "clip", &metrics, 10).unwrap_err().to_string();
    assert!(e.contains("seed 0 appears twice"), "{e}");
}

#[test]
fn p_values_match_scipy_and_statsmodels() {
    // scipy.stats.ttest_rel(a, b).pvalue (SciPy 1.17.1), statsmodels 0.15's multipletests
    let (a, b) = ([0.31, 0.28, 0.35, 0.30, 0.33], [0.25, 0.27, 0.29, 0.24, 0.31]);
    assert!(close(paired_t_p_value(&a, &b).unwrap(), 0.019575480904252127, 1e-10));
    assert!(close(paired_t_p_value(&[0.5, 0.52, 0.47], &[0.49, 0.48, 0.5]).unwrap(), 0.7735445931710808, 1e-10));
    assert_eq!(paired_t_p_value(&[1.0, 2.0], &[1.0, 2.0]), None, "no difference at all: no test");
    assert_eq!(paired_t_p_value(&[2.0, 3.0], &[1.0, 2.0]), Some(0.0), "the same difference every time");
    assert_eq!(paired_t_p_value(&[1.0], &[0.0]), None);
    assert_eq!(paired_t_p_value(&[1.0, f64::NAN], &[0.0, 0.0]), None);
    // multipletests(p, method="holm")[1]; the adjustment never lowers a p-value and keeps their order.
    let p = [0.04941362421328306, 0.11808289631180337, 0.3688312557327975, 0.0925147870269698];
    let want = [0.19765449685313224, 0.2775443610809094, 0.3688312557327975, 0.2775443610809094];
    for (got, want) in holm(&p).iter().zip(want) {
        assert!(close(*got, want, 1e-14), "{got} vs {want}");
    }
    assert!(holm(&[]).is_empty());
}

#[test]
fn bootstrap_p_value_counts_the_far_side_of_zero() {
    // Every sample better by 1: no resample reaches zero, so p is its floor 2 / (B + 1).
    let b = bootstrap_paired_diff(&[vec![1.0; 20]], &[vec![0.0; 20]], 999, 0.95, 0).unwrap();
    assert_eq!(b.p_value, 2.0 / 1000.0);
    // Half better, half worse: the resamples straddle zero, p near 1.
    let mixed: Vec<f64> = (0..40).map(|i| (i % 2) as f64).collect();
    let b = bootstrap_paired_diff(std::slice::from_ref(&mixed), &[vec![0.5; 40]], 999, 0.95, 0).unwrap();
    assert!(b.p_value > 0.8 && b.p_value <= 1.0, "{}", b.p_value);
}

#[test]
fn comparisons_over_seeds_carry_holm_adjusted_p_values() {
    use diffclip_eval::compare::{SeedRuns, difference_table, over_seeds};
    use diffclip_eval::heldout::{HeldOut, HeldOutMetrics};
    let held = |shape: f64, color: f64| HeldOut {
        metrics: HeldOutMetrics { step: 1, heldout_loss: 1.0, zero_shot_shape_top1: shape, zero_shot_color_top1: color, image_to_text_r1: 0.0, image_to_text_r5: 0.0, text_to_image_r1: 0.0, text_to_image_r5: 0.0 },
        per_sample: Default::default(),
    };
    let runs = |shape: [f64; 3], color: [f64; 3]| -> Vec<HeldOut> { (0..3).map(|i| held(shape[i], color[i])).collect() };
    let clip = runs([0.10, 0.20, 0.30], [0.50, 0.40, 0.45]);
    let diff = runs([0.15, 0.27, 0.33], [0.52, 0.41, 0.49]);
    let star = runs([0.12, 0.19, 0.36], [0.30, 0.35, 0.28]);
    fn group<'a>(name: &str, h: &'a [HeldOut]) -> SeedRuns<'a> {
        SeedRuns { name: name.into(), runs: h.iter().enumerate().map(|(s, h)| (s as u64, h)).collect() }
    }
    let metrics = ["zero_shot_shape_top1", "zero_shot_color_top1"];
    let (_, vs) = over_seeds(&[group("clip", &clip), group("diff", &diff), group("star", &star)], "clip", &metrics, 10).unwrap();
    // scipy.stats.ttest_rel, then statsmodels' Holm over the four comparisons.
    for (variant, metric, p, adjusted) in [
        ("diff", "zero_shot_shape_top1", 0.04941362421328306, 0.19765449685313224),
        ("diff", "zero_shot_color_top1", 0.11808289631180337, 0.2775443610809094),
        ("star", "zero_shot_shape_top1", 0.3688312557327975, 0.3688312557327975),
        ("star", "zero_shot_color_top1", 0.0925147870269698, 0.2775443610809094),
    ] {
        let e = &vs[variant][metric];
        assert!(close(e["p_t"].as_f64().unwrap(), p, 1e-10), "{variant} {metric}: {e}");
        assert!(close(e["p_t_holm"].as_f64().unwrap(), adjusted, 1e-10), "{variant} {metric}: {e}");
        assert!(e["p_bootstrap"].is_null() && e["p_bootstrap_holm"].is_null(), "no per-sample outcomes: no bootstrap");
    }
    let table = difference_table(&vs, &["diff".into(), "star".into()], &metrics, "clip");
    assert!(table.contains("adjusted over the 4 (seeds) and 0 (test samples) variant × metric comparisons that have one"), "{table}");
    assert!(table.contains("| diff | zero_shot_shape_top1 | +5.00 | [+0.03, +9.97] * | 0.198 | – | – |"), "{table}");
}
