//! Statistics for comparing models over seeds: mean, sample standard deviation, the paired
//! t-interval over seeds, and a seeded percentile bootstrap of a paired difference over test
//! samples. Plain `f64` functions, independent of Burn.
//!
//! ```
//! use diffclip_eval::stats::{mean, paired_t_interval, sample_sd};
//! assert_eq!(mean(&[1.0, 2.0, 3.0]), 2.0);
//! assert_eq!(sample_sd(&[1.0, 2.0, 3.0]), 1.0);
//! let d = paired_t_interval(&[0.5, 0.6, 0.7], &[0.4, 0.4, 0.4], 0.95).unwrap();
//! assert!((d.diff_mean - 0.2).abs() < 1e-12);
//! assert!(d.ci[0] < 0.2 && d.ci[1] > 0.2);
//! ```

use serde::{Deserialize, Serialize};

/// Arithmetic mean in numpy's summation order ([`pairwise_sum`](crate::ranking::pairwise_sum)),
/// so it equals `np.mean` to the bit; `NaN` for an empty slice.
///
/// ```
/// use diffclip_eval::stats::{mean, sample_sd};
/// assert_eq!(mean(&[1.0, 2.0, 3.0, 4.0]), 2.5);
/// assert!((sample_sd(&[1.0, 2.0, 3.0, 4.0]) - 1.290_994_448_735_805_6).abs() < 1e-15);
/// assert!(mean(&[]).is_nan() && sample_sd(&[1.0]).is_nan());
/// ```
pub fn mean(xs: &[f64]) -> f64 {
    crate::ranking::pairwise_sum(xs) / xs.len() as f64
}

/// Sample standard deviation (denominator `n - 1`, numpy's `ddof=1`); `NaN` below 2 values.
pub fn sample_sd(xs: &[f64]) -> f64 {
    let n = xs.len();
    if n < 2 {
        return f64::NAN;
    }
    let m = mean(xs);
    (xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1) as f64).sqrt()
}

/// The mean difference of paired values with a confidence interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedDiff {
    /// Number of pairs.
    pub n: usize,
    /// Mean of `a_i - b_i`.
    pub diff_mean: f64,
    /// Sample standard deviation of `a_i - b_i`.
    pub diff_sd: f64,
    /// `diff_mean ± t_{(1+level)/2, n-1} · diff_sd / √n`.
    pub ci: [f64; 2],
}

/// Paired t-interval of `a - b` at `level` (e.g. 0.95): the differences `a_i - b_i` are treated
/// as a sample of `n` values and the interval uses Student's t with `n - 1` degrees of freedom.
/// `None` with fewer than two pairs, unequal lengths or a level outside `(0, 1)`.
///
/// ```
/// use diffclip_eval::stats::paired_t_interval;
/// // Differences 1, 2, 3, 4, 5: mean 3, sd √2.5, t(0.975, 4) = 2.776445105.
/// let d = paired_t_interval(&[1.2, 2.5, 3.1, 4.8, 5.0], &[0.2, 0.5, 0.1, 0.8, 0.0], 0.95).unwrap();
/// assert_eq!((d.n, d.diff_mean), (5, 3.0));
/// assert!((d.ci[0] - 1.036_757_1).abs() < 1e-6 && (d.ci[1] - 4.963_242_9).abs() < 1e-6, "{:?}", d.ci);
/// assert!(paired_t_interval(&[1.0], &[0.0], 0.95).is_none());
/// ```
pub fn paired_t_interval(a: &[f64], b: &[f64], level: f64) -> Option<PairedDiff> {
    if a.len() != b.len() || a.len() < 2 || !(level > 0.0 && level < 1.0) {
        return None;
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let n = d.len();
    let (m, sd) = (mean(&d), sample_sd(&d));
    let half = student_t_quantile(0.5 + level / 2.0, (n - 1) as f64) * sd / (n as f64).sqrt();
    Some(PairedDiff {
        n,
        diff_mean: m,
        diff_sd: sd,
        ci: [m - half, m + half],
    })
}

/// Two-sided p-value of the paired t-test of `a - b` against zero (`scipy.stats.ttest_rel`):
/// `2 · P(T > |t|)`, `T` Student's t with `n - 1` degrees of freedom. `None` with fewer than
/// two pairs, unequal lengths, a value that is not finite, or differences all zero (no test
/// to make); differences all equal and not zero give 0.
///
/// ```
/// use diffclip_eval::stats::paired_t_p_value;
/// let p = paired_t_p_value(&[1.2, 2.5, 3.1, 4.8, 5.0], &[0.2, 0.5, 0.1, 0.8, 0.0]).unwrap();
/// assert!((p - 0.013_235_599_563_682_69).abs() < 1e-12); // SciPy 1.17
/// ```
pub fn paired_t_p_value(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.len() < 2 || a.iter().chain(b).any(|x| !x.is_finite()) {
        return None;
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let (m, sd) = (mean(&d), sample_sd(&d));
    if sd == 0.0 {
        return (m != 0.0).then_some(0.0);
    }
    let (t, dof) = (m / (sd / (d.len() as f64).sqrt()), (d.len() - 1) as f64);
    // Both tails at once, I_{ν/(ν+t²)}(ν/2, 1/2): no cancellation for a tiny p.
    Some(incomplete_beta(dof / (dof + t * t), dof / 2.0, 0.5).clamp(0.0, 1.0))
}

/// Holm–Bonferroni adjusted p-values (`statsmodels` `multipletests(p, method="holm")`), in the
/// order given: an adjusted p below `α` rejects with a family-wise error of at most `α` over
/// all of `p`, however the tests depend on each other. `NaN` entries (no test) stay `NaN` and
/// do not count in the family.
///
/// ```
/// use diffclip_eval::stats::holm;
/// let adjusted = holm(&[0.01, 0.04, 0.03, 0.005]);
/// let statsmodels = [0.03, 0.06, 0.06, 0.02]; // multipletests, statsmodels 0.15
/// assert!(adjusted.iter().zip(statsmodels).all(|(a, b)| (a - b).abs() < 1e-15));
/// assert!(holm(&[0.2, f64::NAN])[1].is_nan());
/// ```
pub fn holm(p: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..p.len()).filter(|&i| !p[i].is_nan()).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let m = order.len();
    let mut adjusted = vec![f64::NAN; p.len()];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7, 9 terms; relative error below 1e-14).
///
/// ```
/// use diffclip_eval::stats::ln_gamma;
/// assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-13);
/// assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-13);
/// ```
pub fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1-x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Regularised incomplete beta function `I_x(a, b)` (continued fraction, modified Lentz).
///
/// ```
/// use diffclip_eval::stats::incomplete_beta;
/// // For whole a, b it is a binomial tail: I_0.3(2, 3) = P(at least 2 of 4 at p = 0.3).
/// assert!((incomplete_beta(0.3, 2.0, 3.0) - 0.3483).abs() < 1e-12);
/// assert!((incomplete_beta(0.5, 2.0, 2.0) - 0.5).abs() < 1e-12);
/// ```
pub fn incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    // The continued fraction converges quickly for x < (a+1)/(a+b+2); use symmetry otherwise.
    if x > (a + 1.0) / (a + b + 2.0) {
        return 1.0 - incomplete_beta(1.0 - x, b, a);
    }
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=300 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < TINY { TINY } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < TINY { TINY } else { c };
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < TINY { TINY } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < TINY { TINY } else { c };
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-15 {
            break;
        }
    }
    ln_front.exp() * h / a
}

/// CDF of Student's t distribution with `dof` degrees of freedom.
pub fn student_t_cdf(t: f64, dof: f64) -> f64 {
    let tail = 0.5 * incomplete_beta(dof / (dof + t * t), dof / 2.0, 0.5);
    if t >= 0.0 { 1.0 - tail } else { tail }
}

/// Quantile of Student's t (`scipy.stats.t.ppf(p, dof)`), by bisection on the CDF to 1e-12.
/// `NaN` outside `0 < p < 1` or for `dof <= 0`.
///
/// ```
/// use diffclip_eval::stats::{student_t_cdf, student_t_quantile};
/// assert!((student_t_quantile(0.975, 4.0) - 2.776_445_105_197_799).abs() < 1e-9); // scipy
/// assert!((student_t_cdf(2.776_445_105_197_799, 4.0) - 0.975).abs() < 1e-12);
/// assert!((student_t_cdf(0.0, 7.0) - 0.5).abs() < 1e-15);
/// assert!(student_t_quantile(1.0, 4.0).is_nan());
/// ```
pub fn student_t_quantile(p: f64, dof: f64) -> f64 {
    if !(p > 0.0 && p < 1.0 && dof > 0.0) {
        return f64::NAN;
    }
    if p < 0.5 {
        return -student_t_quantile(1.0 - p, dof);
    }
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    while student_t_cdf(hi, dof) < p {
        hi *= 2.0;
        if hi > 1e12 {
            return f64::INFINITY;
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if student_t_cdf(mid, dof) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-12 * hi.max(1.0) {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// Quantile of the standard normal distribution (`scipy.stats.norm.ppf`; Acklam's rational
/// approximation, relative error below 1.2e-9). `NaN` outside `0 < p < 1`.
///
/// ```
/// use diffclip_eval::stats::normal_quantile;
/// assert!((normal_quantile(0.975) - 1.959_963_984_540_054).abs() < 1e-8);
/// assert!((normal_quantile(0.01) + 2.326_347_874_040_841).abs() < 1e-8);
/// assert_eq!(normal_quantile(0.5), 0.0);
/// assert!(normal_quantile(1.0).is_nan());
/// ```
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
    const B: [f64; 5] = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
    const C: [f64; 6] = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
    const D: [f64; 4] = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
    if !(p > 0.0 && p < 1.0) {
        return f64::NAN;
    }
    let tail = |q: f64| {
        let r = (-2.0 * q.ln()).sqrt();
        (((((C[0] * r + C[1]) * r + C[2]) * r + C[3]) * r + C[4]) * r + C[5]) / ((((D[0] * r + D[1]) * r + D[2]) * r + D[3]) * r + 1.0)
    };
    match p {
        p if p < 0.02425 => tail(p),
        p if p > 1.0 - 0.02425 => -tail(1.0 - p),
        p => {
            let q = p - 0.5;
            let r = q * q;
            (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
        }
    }
}

/// Wilson score interval of the proportion `successes / n` at `level` (e.g. 0.95): the test
/// items a sample of their distribution, each right or wrong independently. Unlike `p ± z·se`
/// it stays inside `[0, 1]` and is not empty at 0 or `n` successes. `None` for `n == 0`,
/// `successes > n` or a level outside `(0, 1)`.
///
/// ```
/// use diffclip_eval::stats::wilson_interval;
/// let [lo, hi] = wilson_interval(5, 10, 0.95).unwrap();
/// assert!((lo - 0.236_593).abs() < 1e-6 && (hi - 0.763_407).abs() < 1e-6);
/// let [lo, hi] = wilson_interval(0, 10, 0.95).unwrap();
/// assert!(lo == 0.0 && (hi - 0.277_533).abs() < 1e-6);
/// assert_eq!(wilson_interval(1, 1, 0.95).unwrap()[1], 1.0);
/// assert!(wilson_interval(3, 0, 0.95).is_none());
/// ```
pub fn wilson_interval(successes: usize, n: usize, level: f64) -> Option<[f64; 2]> {
    if n == 0 || successes > n || !(level > 0.0 && level < 1.0) {
        return None;
    }
    let (k, n) = (successes as f64, n as f64);
    let z = normal_quantile(0.5 + level / 2.0);
    let (p, z2) = (k / n, z * z);
    let denom = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denom;
    let half = z / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // At 0 or n successes the bound is 0 or 1 exactly, not its rounding (1e-17, 0.9999999999999999).
    let lo = if successes == 0 { 0.0 } else { (center - half).max(0.0) };
    let hi = if successes as f64 == n { 1.0 } else { (center + half).min(1.0) };
    Some([lo, hi])
}

/// The 95 % Wilson interval of `k` of `n`; `NaN`s where it is undefined (no items).
pub(crate) fn ci95(k: usize, n: usize) -> [f64; 2] {
    wilson_interval(k, n, 0.95).unwrap_or([f64::NAN; 2])
}

/// Quantile of sorted values with linear interpolation (numpy's default, "type 7").
///
/// ```
/// use diffclip_eval::stats::quantile_sorted;
/// let v = [1.0, 2.0, 3.0, 4.0];
/// assert_eq!((quantile_sorted(&v, 0.25), quantile_sorted(&v, 0.5), quantile_sorted(&v, 1.0)), (1.75, 2.5, 4.0));
/// ```
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos - pos.floor());
    let j = (i + 1).min(sorted.len() - 1);
    sorted[i] + (sorted[j] - sorted[i]) * frac
}

/// SplitMix64: a small seeded generator, so bootstrap intervals are reproducible without a
/// dependency.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform integer in `0..n`, by multiply-shift (the bootstrap's draws).
    ///
    /// # Panics
    /// When `n` is 0: the range holds no value to return.
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "below(0): an empty range");
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Uniform in `0..n` by rejection, without modulo bias (the probes' sampling).
    ///
    /// # Panics
    /// When `n` is 0: the range holds no value to return.
    pub fn below_unbiased(&mut self, n: usize) -> usize {
        assert!(n > 0, "below_unbiased(0): an empty range");
        let n = n as u64;
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let v = self.next_u64();
            if v < zone {
                return (v % n) as usize;
            }
        }
    }

    /// Fisher–Yates shuffle (draws with [`below_unbiased`](Self::below_unbiased)).
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below_unbiased(i + 1);
            v.swap(i, j);
        }
    }
}

/// A bootstrap interval of a paired difference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootstrapDiff {
    /// The observed statistic (mean over runs of the per-run mean difference).
    pub diff_mean: f64,
    /// Percentile interval `[q_{(1-level)/2}, q_{(1+level)/2}]` of the resampled statistic.
    pub ci: [f64; 2],
    /// Two-sided bootstrap p-value of a zero difference: `2 · (k + 1) / (B + 1)`, capped at 1,
    /// where `k` is the smaller of the counts of resampled statistics `≤ 0` and `≥ 0` out of
    /// `B` resamples (so it is never 0: `B` resamples cannot show less).
    pub p_value: f64,
    /// Number of resamples.
    pub resamples: usize,
    /// Test samples per run.
    pub samples: usize,
}

/// Percentile bootstrap over test samples of the difference between two models' metric.
///
/// `a[r][i]` and `b[r][i]` are the per-sample outcomes of test sample `i` (e.g. 1.0 for a correct
/// prediction, 0.0 otherwise) in run `r` (one run per seed); a metric is the mean over samples.
/// The statistic is the mean over runs of `mean_i (a[r][i] - b[r][i])`. Each resample draws `n`
/// sample indices with replacement (from a [`SplitMix64`] seeded with `seed`) and applies the
/// same indices to every run, since all runs share the test set. `None` without runs, with runs
/// of different lengths, with zero resamples or with `level` outside (0, 1).
///
/// ```
/// use diffclip_eval::stats::{bootstrap_paired_diff, excludes_zero};
/// // Two seeds; model a gets 70 and 80 of 100 test images right, model b 50 and 50.
/// let hits = |k: usize| (0..100).map(|i| if i < k { 1.0 } else { 0.0 }).collect::<Vec<f64>>();
/// let d = bootstrap_paired_diff(&[hits(70), hits(80)], &[hits(50), hits(50)], 2000, 0.95, 0).unwrap();
/// assert!((d.diff_mean - 0.25).abs() < 1e-12);
/// assert!(d.ci[0] <= 0.25 && 0.25 <= d.ci[1] && excludes_zero(d.ci));
/// assert!(d.p_value < 0.05);
/// // The same resamples for the same seed: the interval is reproducible.
/// assert_eq!(d, bootstrap_paired_diff(&[hits(70), hits(80)], &[hits(50), hits(50)], 2000, 0.95, 0).unwrap());
/// ```
pub fn bootstrap_paired_diff(
    a: &[Vec<f64>],
    b: &[Vec<f64>],
    resamples: usize,
    level: f64,
    seed: u64,
) -> Option<BootstrapDiff> {
    let n = a.first()?.len();
    let bad_level = !(level > 0.0 && level < 1.0);
    if a.len() != b.len() || n == 0 || resamples == 0 || bad_level || a.iter().chain(b).any(|r| r.len() != n) {
        return None;
    }
    // The per-sample difference averaged over runs: the statistic is linear in it.
    let runs = a.len() as f64;
    let d: Vec<f64> = (0..n)
        .map(|i| a.iter().zip(b).map(|(x, y)| x[i] - y[i]).sum::<f64>() / runs)
        .collect();
    let observed = mean(&d);
    let mut rng = SplitMix64::new(seed);
    let mut stats: Vec<f64> = (0..resamples)
        .map(|_| (0..n).map(|_| d[rng.below(n)]).sum::<f64>() / n as f64)
        .collect();
    stats.sort_by(f64::total_cmp);
    let alpha = (1.0 - level) / 2.0;
    let far_side = stats.iter().filter(|&&x| x <= 0.0).count().min(stats.iter().filter(|&&x| x >= 0.0).count());
    Some(BootstrapDiff {
        diff_mean: observed,
        ci: [
            quantile_sorted(&stats, alpha),
            quantile_sorted(&stats, 1.0 - alpha),
        ],
        p_value: (2.0 * (far_side + 1) as f64 / (resamples + 1) as f64).min(1.0),
        resamples,
        samples: n,
    })
}

/// `true` when the interval `[lo, hi]` lies strictly on one side of zero.
pub fn excludes_zero(ci: [f64; 2]) -> bool {
    ci[0] > 0.0 || ci[1] < 0.0
}
