//! Branch-free f32 math written so LLVM vectorises it, compiled once per x86 ISA level and
//! picked at run time (`multiversion!`): `exp`, `erf`, GELU, QuickGELU and softmax rows.

use std::mem::MaybeUninit;

/// Compile `$body` for AVX-512, AVX2+FMA and the baseline, and call the best the CPU has.
/// `$body` sees `const FMA: bool`, whether its build fuses multiply-adds, to pass on to the
/// math below (`exp::<FMA>`). Exported (hidden) for diffclip's other CPU kernels, such as the
/// training crate's AdamW.
#[doc(hidden)]
#[macro_export]
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn inner<const FMA: bool>($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                unsafe fn v4($($arg: $ty),*) $(-> $ret)? { inner::<true>($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v3($($arg: $ty),*) $(-> $ret)? { inner::<true>($($arg),*) }
                if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512vl") {
                    // SAFETY: the CPU has the features `v4` was compiled for.
                    return unsafe { v4($($arg),*) };
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: as above.
                    return unsafe { v3($($arg),*) };
                }
            }
            // Fused multiply-adds without an instruction for them are slow library calls, so
            // x86-64's generic build (no AVX2) keeps `a·b + c`.
            inner::<{ cfg!(target_arch = "aarch64") || cfg!(target_feature = "fma") }>($($arg),*)
        }
    };
}

/// `a·b + c`, rounded once when `F` (the kernels compiled for CPUs with FMA), else twice.
#[inline(always)]
fn fma<const F: bool>(a: f32, b: f32, c: f32) -> f32 {
    if F { a.mul_add(b, c) } else { a * b + c }
}

/// `e^x`, within 2 ulp of `f32::exp` on `[-87, 88]`; saturates outside (never inf), keeps NaN.
#[inline(always)]
pub(crate) fn exp<const F: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = if x < -87.0 { -87.0 } else { x };
    let x = if x > 88.0 { 88.0 } else { x };
    let t = fma::<F>(x, LOG2E, ROUND);
    let n = t - ROUND;
    let r = fma::<F>(n, -LN2_LO, fma::<F>(n, -LN2_HI, x));
    // Cephes expf polynomial for e^r on [-ln2/2, ln2/2].
    let p = 1.987_569_1e-4_f32;
    let p = fma::<F>(p, r, 1.398_199_9e-3);
    let p = fma::<F>(p, r, 8.333_452e-3);
    let p = fma::<F>(p, r, 4.166_579_6e-2);
    let p = fma::<F>(p, r, 0.166_666_65);
    let p = fma::<F>(p, r, 0.5);
    let p = fma::<F>(p * r, r, r + 1.0);
    let k = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    p * f32::from_bits(((k + 127) as u32) << 23)
}

/// `erf(x)`: rational approximation (Eigen's `generic_fast_erf_float`), |error| < 5e-7
/// (< 8 ulp of 1), exactly ±1 from |x| = 4 on (where f32 erf rounds to ±1 anyway).
#[inline(always)]
pub(crate) fn erf<const F: bool>(x: f32) -> f32 {
    let saturated = 1.0f32.copysign(x);
    let big = x.abs() >= 4.0;
    let x = if big { 0.0 } else { x };
    let x2 = x * x;
    let p = -2.726_142_3e-10_f32;
    let p = fma::<F>(p, x2, 2.770_681_4e-8);
    let p = fma::<F>(p, x2, -2.101_024e-6);
    let p = fma::<F>(p, x2, -5.692_506_4e-5);
    let p = fma::<F>(p, x2, -7.349_906_3e-4);
    let p = fma::<F>(p, x2, -2.954_600_1e-3);
    let p = fma::<F>(p, x2, -1.609_603_3e-2);
    let q = -1.456_607_2e-5_f32;
    let q = fma::<F>(q, x2, -2.133_740_6e-4);
    let q = fma::<F>(q, x2, -1.682_827e-3);
    let q = fma::<F>(q, x2, -7.373_329_4e-3);
    let q = fma::<F>(q, x2, -1.426_474e-2);
    if big { saturated } else { x * p / q }
}

#[inline(always)]
fn gelu1<const F: bool>(x: f32) -> f32 {
    let half = 0.5 * x;
    fma::<F>(half, erf::<F>(x * std::f32::consts::FRAC_1_SQRT_2), half)
}

#[inline(always)]
fn quick_gelu1<const F: bool>(x: f32) -> f32 {
    x / (1.0 + exp::<F>(-1.702 * x))
}

multiversion! {
    /// Exact (erf) GELU in place; absolute error < 2e-6 (+1e-6 relative).
    pub(crate) fn gelu_in_place(xs: &mut [f32]) {
        for x in xs.iter_mut() {
            *x = gelu1::<FMA>(*x);
        }
    }
}

multiversion! {
    /// `x · σ(1.702 x)` in place.
    pub(crate) fn quick_gelu_in_place(xs: &mut [f32]) {
        for x in xs.iter_mut() {
            *x = quick_gelu1::<FMA>(*x);
        }
    }
}

/// The in-place kernel of `activation`.
pub(crate) fn in_place(activation: crate::Activation) -> fn(&mut [f32]) {
    match activation {
        crate::Activation::Gelu => gelu_in_place,
        crate::Activation::QuickGelu => quick_gelu_in_place,
    }
}

/// Independent partial results per lane: float reductions only vectorise when written so
/// (LLVM keeps a single accumulator's additions in source order).
const LANES: usize = 16;

#[inline(always)]
fn max_of(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for j in 0..LANES {
            acc[j] = if c[j] > acc[j] { c[j] } else { acc[j] };
        }
    }
    let mut m = f32::NEG_INFINITY;
    for &v in acc.iter().chain(tail) {
        m = if v > m { v } else { m };
    }
    m
}

/// `x ← e^((x − shift)·scale)` for every element; returns the sum of the new values.
#[inline(always)]
fn exp_shifted_sum<const F: bool>(xs: &mut [f32], shift: f32, scale: f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut chunks = xs.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for j in 0..LANES {
            let e = exp::<F>((c[j] - shift) * scale);
            c[j] = e;
            acc[j] += e;
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for v in chunks.into_remainder() {
        *v = exp::<F>((*v - shift) * scale);
        sum += *v;
    }
    sum
}

#[inline(always)]
fn sum_of_squares(xs: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for j in 0..LANES {
            acc[j] += c[j] * c[j];
        }
    }
    acc.iter().sum::<f32>() + tail.iter().map(|v| v * v).sum::<f32>()
}

multiversion! {
    /// `dx = dy · gelu'(x)`, `gelu'(x) = Φ(x) + x·φ(x)`.
    pub(crate) fn gelu_backward(x: &[f32], dy: &[f32], dx: &mut [MaybeUninit<f32>]) {
        const INV_SQRT_2PI: f32 = 0.398_942_3;
        for ((d, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
            let cdf = 0.5 * (1.0 + erf::<FMA>(v * std::f32::consts::FRAC_1_SQRT_2));
            d.write(g * (cdf + v * INV_SQRT_2PI * exp::<FMA>(-0.5 * v * v)));
        }
    }
}

multiversion! {
    /// `dx = dy · (s + 1.702·x·s·(1 − s))` with `s = σ(1.702·x)` (QuickGELU's derivative).
    pub(crate) fn quick_gelu_backward(x: &[f32], dy: &[f32], dx: &mut [MaybeUninit<f32>]) {
        for ((d, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
            let s = 1.0 / (1.0 + exp::<FMA>(-1.702 * v));
            d.write(g * (s + 1.702 * v * s * (1.0 - s)));
        }
    }
}

multiversion! {
    /// Softmax of `scale · row[..valid]` in place (`scale` > 0; 1 is exact); entries from
    /// `valid` on (masked keys) become 0.
    pub(crate) fn softmax_row(row: &mut [f32], valid: usize, scale: f32) {
        let (live, masked) = row.split_at_mut(valid);
        let max = max_of(live);
        let inv = 1.0 / exp_shifted_sum::<FMA>(live, max, scale);
        for v in live.iter_mut() {
            *v *= inv;
        }
        masked.fill(0.0);
    }
}

#[inline(always)]
fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for j in 0..LANES {
            acc[j] += x[j] * y[j];
        }
    }
    acc.iter().sum::<f32>() + tail
}

multiversion! {
    /// `m = a1 − λ·a2`, returning `Σ dm·a2` (both in one pass over the maps).
    pub(crate) fn diff_map_and_dot(a1: &[f32], a2: &[f32], lambda: f32, dm: &[f32], m: &mut [f32]) -> f32 {
        let mut acc = [0.0f32; LANES];
        let n = a1.len() / LANES * LANES;
        for c in (0..n).step_by(LANES) {
            for j in 0..LANES {
                let (x, y, d) = (a1[c + j], a2[c + j], dm[c + j]);
                m[c + j] = x - lambda * y;
                acc[j] += d * y;
            }
        }
        let mut dot: f32 = acc.iter().sum();
        for i in n..a1.len() {
            m[i] = a1[i] - lambda * a2[i];
            dot += dm[i] * a2[i];
        }
        dot
    }
}

multiversion! {
    /// Softmax backward of one row, in place: `a ← c·a ⊙ (dm − Σ dm ⊙ a)` (`a` is the softmax
    /// output, `dm` the gradient of `a / c`).
    pub(crate) fn softmax_backward_row(a: &mut [f32], dm: &[f32], c: f32) {
        let dot = dot_lanes(dm, a);
        for (x, &d) in a.iter_mut().zip(dm) {
            *x = c * *x * (d - dot);
        }
    }
}

multiversion! {
    /// `a -= lambda * b`, elementwise.
    pub(crate) fn sub_scaled(a: &mut [f32], b: &[f32], lambda: f32) {
        for (x, y) in a.iter_mut().zip(b) {
            *x -= lambda * *y;
        }
    }
}

multiversion! {
    /// `dst = src / sqrt(mean(src²) + eps) * gamma * scale` (RMSNorm of one row).
    pub(crate) fn rms_norm_row(src: &[f32], dst: &mut [f32], gamma: &[f32], eps: f32, scale: f32) {
        let inv = scale / (sum_of_squares(src) / src.len() as f32 + eps).sqrt();
        for ((d, &s), &g) in dst.iter_mut().zip(src).zip(gamma) {
            *d = s * inv * g;
        }
    }
}

multiversion! {
    /// Backward of [`rms_norm_row`]: from the input `x` and the output gradient `dy`, writes the
    /// input gradient to `dx` and adds the gain's gradient to `dgamma`.
    pub(crate) fn rms_norm_row_backward(
        x: &[f32],
        dy: &[f32],
        gamma: &[f32],
        eps: f32,
        scale: f32,
        dx: &mut [f32],
        dgamma: &mut [f32],
    ) {
        let n = x.len() as f32;
        let inv = 1.0 / (sum_of_squares(x) / n + eps).sqrt();
        for j in 0..x.len() {
            dgamma[j] += dy[j] * x[j] * (inv * scale);
            dx[j] = scale * gamma[j] * dy[j]; // gradient w.r.t. the normalised row
        }
        let k = inv * inv * dot_lanes(dx, x) / n;
        for (d, &v) in dx.iter_mut().zip(x) {
            *d = inv * (*d - v * k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> impl Iterator<Item = f32> {
        (-200_000..=200_000).map(|i| i as f32 * 5e-5)
    }

    /// Both builds: fused multiply-adds (CPUs with FMA) and separate ones.
    #[test]
    fn exp_matches_std_within_two_ulp() {
        for exp in [exp::<true>, exp::<false>] {
            for x in (-870_000..=880_000).map(|i| i as f32 * 1e-4) {
                let (got, want) = (exp(x), x.exp());
                assert!((got - want).abs() <= 2.5e-7 * want, "exp({x}) = {got}, want {want}");
            }
            assert!(exp(f32::NAN).is_nan());
            assert!(exp(-1000.0) >= 0.0 && exp(-1000.0) < 1e-37);
        }
    }

    #[test]
    fn erf_matches_libm() {
        for erf in [erf::<true>, erf::<false>] {
            let mut worst = 0.0f64;
            for x in grid() {
                let want = erf_ref(x as f64);
                worst = worst.max((erf(x) as f64 - want).abs());
            }
            assert!(worst < 5e-7, "max |erf error| = {worst:e}");
        }
    }

    #[test]
    fn activations_match_definitions() {
        let mut xs: Vec<f32> = grid().collect();
        let mut q = xs.clone();
        gelu_in_place(&mut xs);
        quick_gelu_in_place(&mut q);
        // The dispatched kernels, and the generic build without fused multiply-adds.
        let unfused: (Vec<f32>, Vec<f32>) = grid().map(|x| (gelu1::<false>(x), quick_gelu1::<false>(x))).unzip();
        for (xs, q) in [(&xs, &q), (&unfused.0, &unfused.1)] {
            for (i, x) in grid().enumerate() {
                let g = 0.5 * x as f64 * (1.0 + erf_ref(x as f64 / std::f64::consts::SQRT_2));
                // erf's 5e-7 error, scaled by x/2: absolute, since `1 + erf` cancels for x < -3.
                assert!((xs[i] as f64 - g).abs() < 2e-6 + 1e-6 * g.abs(), "gelu({x}) = {} want {g}", xs[i]);
                let s = x as f64 / (1.0 + (-1.702 * x as f64).exp());
                assert!((q[i] as f64 - s).abs() < 1e-6 * (1.0 + s.abs()), "quick_gelu({x})");
            }
        }
        let mut nan = [f32::NAN, -1e30, 1e30];
        gelu_in_place(&mut nan);
        assert!(nan[0].is_nan() && nan[1] == 0.0 && nan[2] == 1e30);
    }

    #[test]
    fn softmax_row_masks_and_normalises() {
        let mut row = [1.0f32, 2.0, 3.0, 100.0];
        softmax_row(&mut row, 3, 1.0);
        let z: f32 = (1.0f32.exp() + 2.0f32.exp() + 3.0f32.exp()).recip();
        for (got, x) in row.iter().zip([1.0f32, 2.0, 3.0]) {
            assert!((got - x.exp() * z).abs() < 1e-6);
        }
        assert_eq!(row[3], 0.0);
        // Scaled scores: softmax of 0.5·x.
        let mut row = [1.0f32, 2.0, 3.0, 100.0];
        softmax_row(&mut row, 3, 0.5);
        let z: f32 = (0.5f32.exp() + 1.0f32.exp() + 1.5f32.exp()).recip();
        for (got, x) in row.iter().zip([0.5f32, 1.0, 1.5]) {
            assert!((got - x.exp() * z).abs() < 1e-6, "{got} vs {}", x.exp() * z);
        }
        let mut bad = [f32::NAN, 1.0];
        softmax_row(&mut bad, 2, 1.0);
        assert!(bad.iter().all(|v| v.is_nan()));
    }

    /// erf in f64 by its Taylor series / continued fraction (independent of the code above).
    fn erf_ref(x: f64) -> f64 {
        if x.abs() < 3.0 {
            // Σ (-1)^n x^(2n+1) / (n! (2n+1)) · 2/√π
            let (mut term, mut sum, mut n) = (x, x, 0.0);
            while term.abs() > 1e-17 * sum.abs().max(1e-300) {
                n += 1.0;
                term *= -x * x / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc continued fraction (Lentz), accurate for |x| ≥ 3.
            let a = x.abs();
            let mut f = a;
            for k in (1..60).rev() {
                f = a + (k as f64 / 2.0) / f;
            }
            let erfc = (-a * a).exp() / (f * std::f64::consts::PI.sqrt());
            (1.0 - erfc).copysign(x)
        }
    }
}
