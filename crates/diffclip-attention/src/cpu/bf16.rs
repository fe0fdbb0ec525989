//! GEMM with bf16 operands and f32 sums, for [`MatmulPrecision::Bf16`](crate::MatmulPrecision)
//! (and f16 operands, for `F16`, by the f32 GEMM on rounded operands).
//!
//! On x86-64 CPUs with AMX (Intel Xeon from Sapphire Rapids on) the tile unit multiplies bf16
//! at several times the f32 FMA rate of the same core; on AMD's with AVX512-BF16 (Zen 4 on)
//! `vdpbf16ps` does twice the f32 FMA's multiplies; elsewhere the operands are rounded to
//! bf16 and multiplied by the f32 GEMM. All give the same products (a product of two bf16
//! values is exact in f32; AMX and `vdpbf16ps` flush denormals to zero) summed in other orders,
//! so the precision does not depend on the CPU.
//! The operands are rounded to nearest even, packed in 32 × 32 blocks padded with zeros, and
//! every output element's sum runs over `k` in one order (by pairs with `vdpbf16ps`) whatever
//! the thread split: deterministic.

use rayon::prelude::*;

pub(crate) use super::linear::Start;
pub(crate) use engine::Engine;

/// `f32` to bf16 bits, rounded to nearest even; NaN stays NaN. Branch-free, so loops of it
/// vectorise.
#[inline(always)]
pub(crate) fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let rounded = (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16;
    if b & 0x7fff_ffff > 0x7f80_0000 { 0x7fc0 } else { rounded }
}

/// `x` rounded to the nearest bf16 value, as f32.
pub(crate) fn round_bf16(x: f32) -> f32 {
    f32::from_bits((bf16_bits(x) as u32) << 16)
}

/// `x` rounded to the nearest IEEE half value (ties to even), as f32: infinite from 65 520 on
/// (half way past the largest half, 65 504), half's subnormals kept, NaN stays NaN.
/// Branch-free, so loops of it vectorise.
#[inline(always)]
pub(crate) fn round_f16(x: f32) -> f32 {
    let a = x.abs();
    // Normal halves keep 10 of f32's 23 fraction bits, ties to even (a carry moves into the
    // exponent).
    let b = x.to_bits();
    let normal = f32::from_bits(b.wrapping_add(0xfff + ((b >> 13) & 1)) & !0x1fff);
    // Below half's smallest normal (2^-14) its values are multiples of 2^-24: x·2^24 (under
    // 1024 in size) rounded to an integer, ties to even, by adding and taking off 1.5·2^23.
    const MAGIC: f32 = 12_582_912.0;
    let subnormal = (((x * 16_777_216.0 + MAGIC) - MAGIC) * (1.0 / 16_777_216.0)).copysign(x);
    let rounded = if a < 6.103_515_6e-5 { subnormal } else { normal };
    let rounded = if a >= 65520.0 { f32::INFINITY.copysign(x) } else { rounded };
    if a.is_nan() { x } else { rounded }
}

/// `dst (m × n, row stride dst_rs) = start + lhs · rhs` with reduced operands on `engine`,
/// addressed by (row, column) strides like [`super::linear`]'s f32 GEMM; every element of
/// `dst` is written.
///
/// SAFETY: as for the f32 GEMM: the pointers and strides address valid memory of those shapes,
/// `dst` does not overlap the operands, a bias holds `n` values; the CPU offers `engine`
/// ([`Engine::best`] or a rounded one).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm(
    engine: Engine,
    [m, n, k]: [usize; 3],
    dst: *mut f32,
    dst_rs: usize,
    start: Start,
    lhs: *const f32,
    lhs_strides: [usize; 2],
    rhs: *const f32,
    rhs_strides: [usize; 2],
) {
    // SAFETY: the caller's contract.
    unsafe {
        let rhs = PackedRhs::new(engine, rhs, rhs_strides, k, n);
        gemm_packed(m, dst, dst_rs, start, lhs, lhs_strides, &rhs)
    }
}

/// The right operand of [`gemm_packed`], `k × n`, rounded in the layout its engine's product
/// reads: column panels of pairs (AMX, AVX512-BF16), else a row-major f32 copy. A linear
/// layer's weight packed once serves every later call ([`super::packed_weights`]).
pub(crate) struct PackedRhs {
    k: usize,
    n: usize,
    engine: Engine,
    layout: Layout,
}

enum Layout {
    /// Column panels of pairs (`blocked::pack_rhs`), for AMX's tiles or `vdpbf16ps`.
    #[cfg(target_arch = "x86_64")]
    Pairs(PairKernel, aligned::Aligned<u32>),
    Rounded(Vec<f32>),
}

/// A block kernel on packed pairs ([`blocked::Kernel`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PairKernel {
    #[cfg(target_arch = "x86_64")]
    Amx,
    #[cfg(target_arch = "x86_64")]
    DotPairs,
}

/// `$body` with `$K` the [`blocked::Kernel`] type of the [`PairKernel`] `$kernel`: the one
/// place that maps a kernel to its code.
#[cfg(target_arch = "x86_64")]
macro_rules! with_pair_kernel {
    ($kernel:expr, $K:ident => $body:expr) => {
        match $kernel {
            PairKernel::Amx => {
                type $K = amx::Tiles;
                $body
            }
            PairKernel::DotPairs => {
                type $K = dot_pairs::DotPairs;
                $body
            }
        }
    };
}

impl PackedRhs {
    /// SAFETY: `src` addresses a valid `k × n` matrix with strides `[row, column]`; the CPU
    /// offers `engine` ([`Engine::best`] or a rounded one).
    pub(crate) unsafe fn new(engine: Engine, src: *const f32, strides: [usize; 2], k: usize, n: usize) -> PackedRhs {
        let layout = match engine.pair_kernel() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the caller's contract; AMX's and AVX512-BF16's CPUs have AVX-512 F and BW.
            Some(kernel) => Layout::Pairs(kernel, unsafe { blocked::pack_rhs(src, strides, k, n, false) }),
            // SAFETY: the caller's contract.
            _ => Layout::Rounded(unsafe { rounded(src, strides, k, n, engine) }),
        };
        PackedRhs { k, n, engine, layout }
    }

    /// `(k, n)`.
    pub(crate) fn dims(&self) -> (usize, usize) {
        (self.k, self.n)
    }

    /// The engine it was packed for.
    pub(crate) fn engine(&self) -> Engine {
        self.engine
    }

    /// `x·W + b` for a few rows of `x` (`rows × k`, row-major) when this weight is a rounded
    /// copy: [`super::few_rows`] on the rounded operands, the bits of [`gemm_packed`] (a lone
    /// caption in f16, or in bf16 without a pairs engine, reads its weights as fast as in
    /// f32). `None` where that path does not apply.
    pub(crate) fn few_rows(&self, x: &[f32], b: Option<&[f32]>, d: super::linear::LinearDims) -> Option<Vec<f32>> {
        let Layout::Rounded(w) = &self.layout else { return None };
        if (d.k, d.n) != (self.k, self.n) || !super::few_rows::applies(d) {
            return None;
        }
        assert!(x.len() >= d.rows * d.k);
        // SAFETY: `x` holds rows × k values (asserted).
        let x = unsafe { rounded(x.as_ptr(), [d.k, 1], d.rows, d.k, self.engine) };
        super::few_rows::forward(&x, w, b, d)
    }

    /// Bytes held.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        match &self.layout {
            #[cfg(target_arch = "x86_64")]
            Layout::Pairs(_, v) => v.len() * 4,
            Layout::Rounded(v) => v.len() * 4,
        }
    }
}

/// [`gemm`] with the right operand packed: `dst (m × n) = start + lhs · rhs`.
///
/// SAFETY: `lhs` addresses a valid `m × k` matrix with those strides, `dst` an `m × n` one with
/// row stride `dst_rs`, not overlapping `lhs`; a bias holds `n` values.
pub(crate) unsafe fn gemm_packed(
    m: usize,
    dst: *mut f32,
    dst_rs: usize,
    start: Start,
    lhs: *const f32,
    lhs_strides: [usize; 2],
    rhs: &PackedRhs,
) {
    let (k, n) = (rhs.k, rhs.n);
    match &rhs.layout {
        // SAFETY: the caller's contract; a packed layout names an engine the CPU offers.
        #[cfg(target_arch = "x86_64")]
        Layout::Pairs(kernel, packed) => unsafe { with_pair_kernel!(*kernel, K => blocked::gemm::<K>([m, n, k], dst, dst_rs, start, lhs, lhs_strides, packed)) },
        Layout::Rounded(b) => {
            // SAFETY: the caller's contract.
            let (a, accumulate) = unsafe { (rounded(lhs, lhs_strides, m, k, rhs.engine), start.prepare(dst, [m, n], dst_rs)) };
            // SAFETY: `a` and `b` are the operands rounded, contiguous row-major; `dst` as given.
            unsafe { super::linear::gemm_f32([m, n, k], dst, dst_rs, accumulate, a.as_ptr(), [k, 1], b.as_ptr(), [n, 1]) }
        }
    }
}

/// Attention inference (before the output projection) with reduced-precision products on
/// `engine`: on its block kernel when it packs pairs (`bf16/attention.rs`); elsewhere the f32
/// kernel on q, k, v and the attention weights rounded as `engine` rounds, the same products
/// summed in another order.
pub(crate) fn attention(engine: Engine, x: super::attention::Inputs) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    if let Some(kernel) = engine.pair_kernel() {
        // SAFETY: the engine was offered, so the CPU has its kernel.
        return unsafe { with_pair_kernel!(kernel, K => attention::attention::<K>(x)) };
    }
    let (rows, width) = (x.dims.batch * x.dims.n, x.dims.width);
    assert!([x.q, x.k, x.v].iter().all(|t| t.len() == rows * width));
    // SAFETY: q, k and v hold rows × width values each (asserted).
    let [q, k, v] = [x.q, x.k, x.v].map(|t| unsafe { rounded(t.as_ptr(), [width, 1], rows, width, engine) });
    let round: fn(&mut [f32]) = match engine {
        Engine::RoundedF16 => |xs| xs.iter_mut().for_each(|x| *x = round_f16(*x)),
        Engine::Amx | Engine::DotPairs | Engine::RoundedBf16 => |xs| xs.iter_mut().for_each(|x| *x = round_bf16(*x)),
    };
    super::attention::attention(super::attention::Inputs { q: &q, k: &k, v: &v, ..x }, false, Some(round)).0
}

/// `x·W + b` for each `(W, b)` of `layers` (packed in pairs, for one kernel), `x` (`rows × k`,
/// row-major) rounded and packed once: the same bits as [`gemm_packed`] of each. `None` unless
/// every weight is packed in pairs for the same kernel.
pub(crate) fn products_of_one_input(x: &[f32], rows: usize, layers: &[(&PackedRhs, Option<&[f32]>)]) -> Option<Vec<Vec<f32>>> {
    let k = layers.first()?.0.k;
    assert!(x.len() >= rows * k && layers.iter().all(|(w, b)| w.k == k && b.is_none_or(|b| b.len() >= w.n)));
    #[cfg(target_arch = "x86_64")]
    {
        let pairs: Vec<_> = layers.iter().map_while(|(w, b)| match &w.layout {
            Layout::Pairs(kernel, p) => Some((*kernel, &**p, w.n, b.map_or(Start::Zero, Start::Bias))),
            Layout::Rounded(_) => None,
        }).collect();
        let kernel = pairs.first()?.0;
        if pairs.len() < layers.len() || pairs.iter().any(|p| p.0 != kernel) || k == 0 {
            return None;
        }
        let macs = rows.saturating_mul(k).saturating_mul(pairs.iter().map(|p| p.2).sum());
        // SAFETY: `x` holds rows × k values (asserted); the pair kernels' CPUs have AVX-512 F
        // and BW.
        let lhs = unsafe { blocked::pack_lhs(x.as_ptr(), [k, 1], rows, k, macs >= super::linear::PARALLEL_MACS) };
        Some(pairs.into_iter().map(|(_, p, n, start)| {
            super::written(rows * n, |out| {
                // SAFETY: `lhs` is the packed rows × k input; `out` holds rows × n values; the
                // bias holds n (asserted); the CPU has the kernel (it packed the weights for it).
                unsafe { with_pair_kernel!(kernel, K => blocked::gemm_packed_lhs::<K>([rows, n, k], out.as_mut_ptr().cast(), n, start, &lhs, p)) }
            })
        }).collect())
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// `act(x·W1 + b1)·W2 + b2` for `x` (`rows × k`, row-major) with both weights packed in pairs:
/// each block of the hidden layer is activated in cache and rounded into the packed left
/// operand of the second product, so the f32 hidden layer is never stored. The same bits as
/// [`gemm_packed`], `act` and [`gemm_packed`]. `None` unless both weights are packed in pairs.
pub(crate) fn mlp(x: &[f32], rows: usize, w1: &PackedRhs, b1: Option<&[f32]>, act: fn(&mut [f32]), w2: &PackedRhs, b2: Option<&[f32]>) -> Option<Vec<f32>> {
    let ((k, hidden), n) = (w1.dims(), w2.n);
    assert!(w2.k == hidden && x.len() >= rows * k && b1.is_none_or(|b| b.len() >= hidden) && b2.is_none_or(|b| b.len() >= n));
    match (&w1.layout, &w2.layout) {
        #[cfg(target_arch = "x86_64")]
        (Layout::Pairs(kernel, p1), Layout::Pairs(kernel2, p2)) if kernel == kernel2 => {
            let (start1, start2) = (b1.map_or(Start::Zero, Start::Bias), b2.map_or(Start::Zero, Start::Bias));
            // SAFETY: `x` holds rows × k values (asserted); the CPU has the pairs' kernel (it
            // packed them); the biases hold hidden and n values (asserted).
            let h = unsafe { with_pair_kernel!(*kernel, K => blocked::gemm_to_panels::<K>([rows, hidden, k], start1, x.as_ptr(), [k, 1], p1, act)) };
            Some(super::written(rows * n, |out| {
                // SAFETY: `h` is the packed rows × hidden operand; `out` holds rows × n values.
                unsafe { with_pair_kernel!(*kernel, K => blocked::gemm_packed_lhs::<K>([rows, n, hidden], out.as_mut_ptr().cast(), n, start2, &h, p2)) }
            }))
        }
        _ => {
            let _ = act; // only the pairs' panels take it
            None
        }
    }
}

/// The `rows × cols` matrix at `src` (strides `[rs, cs]`) rounded as `engine` rounds, row-major.
///
/// SAFETY: `src` addresses a valid `rows × cols` matrix with those strides.
unsafe fn rounded(src: *const f32, strides: [usize; 2], rows: usize, cols: usize, engine: Engine) -> Vec<f32> {
    // SAFETY: the caller's contract; each rounding is its own loop, inlined and vectorised.
    unsafe {
        match engine {
            Engine::RoundedF16 => rounded_by(src, strides, rows, cols, round_f16),
            Engine::Amx | Engine::DotPairs | Engine::RoundedBf16 => rounded_by(src, strides, rows, cols, round_bf16),
        }
    }
}

/// [`rounded`] by `round`.
///
/// SAFETY: as there.
unsafe fn rounded_by(src: *const f32, [rs, cs]: [usize; 2], rows: usize, cols: usize, round: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    let src = SendPtr(src as *mut f32);
    let mut out = vec![0.0f32; rows * cols];
    out.par_chunks_mut(cols.max(1)).enumerate().with_min_len(64).for_each(|(i, row)| {
        if cs == 1 {
            // SAFETY: row i lies in the matrix.
            let values = unsafe { std::slice::from_raw_parts(src.get().add(i * rs), row.len()) };
            row.iter_mut().zip(values).for_each(|(o, &x)| *o = round(x));
        } else {
            for (j, o) in row.iter_mut().enumerate() {
                // SAFETY: (i, j) lies in the matrix.
                *o = round(unsafe { *src.get().add(i * rs + j * cs) });
            }
        }
    });
    out
}

/// A raw pointer handed to rayon tasks that touch disjoint parts of what it addresses.
struct SendPtr<T = f32>(*mut T);
// SAFETY: each task reads shared operands or writes its own rows only (see the callers).
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SendPtr<T> {}

impl<T> SendPtr<T> {
    fn get(self) -> *mut T {
        self.0
    }
}

#[cfg(target_arch = "x86_64")]
mod aligned;
#[cfg(target_arch = "x86_64")]
mod attention;
#[cfg(target_arch = "x86_64")]
mod amx;
#[cfg(target_arch = "x86_64")]
mod blocked;
#[cfg(target_arch = "x86_64")]
mod dot_pairs;
mod engine;

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len).map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 377.0 - 1.3).collect()
    }

    #[test]
    fn rounding_is_to_nearest_even_and_keeps_nan_and_infinity() {
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even neighbour, 1.
        assert_eq!(round_bf16(1.0 + 1.0 / 256.0), 1.0);
        assert_eq!(round_bf16(1.0 + 3.0 / 256.0), 1.0 + 4.0 / 256.0);
        assert_eq!(round_bf16(1.0 + 1.0 / 256.0 + 1.0 / 4096.0), 1.0 + 2.0 / 256.0);
        assert_eq!(round_bf16(-2.5), -2.5);
        assert_eq!(round_bf16(f32::INFINITY), f32::INFINITY);
        assert_eq!(round_bf16(f32::MAX), f32::INFINITY, "past the largest bf16: infinity");
        assert!(round_bf16(f32::NAN).is_nan());
        assert!(round_bf16(f32::from_bits(0x7f80_0001)).is_nan(), "a NaN with low payload bits stays NaN");
        assert!(round_bf16(f32::from_bits(0xffff_ffff)).is_nan());
    }

    #[test]
    fn f16_rounding_matches_ieee_half_conversion() {
        // Every 4099th f32 bit pattern (both signs, all exponents) and the edges of half's range.
        let edges = [65504.0f32, 65519.99, 65520.0, 6.1035156e-5, 6.1035152e-5, 5.9604645e-8, 2.9802322e-8, 2.9802326e-8, 1.0 + 1.0 / 2048.0];
        let patterns = (0..=u32::MAX).step_by(4099).map(f32::from_bits);
        for x in patterns.chain(edges.iter().flat_map(|&e| [e, -e])) {
            let want = f32::from(half::f16::from_f32(x));
            let got = round_f16(x);
            assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()), "{x:e} ({:#x}): {got:e} vs {want:e}", x.to_bits());
        }
    }

    /// `dst = start + a·b` over the operands rounded by `round`, summed in f64.
    #[allow(clippy::too_many_arguments)]
    fn reference(round: fn(f32) -> f32, m: usize, n: usize, k: usize, a: impl Fn(usize, usize) -> f32, b: impl Fn(usize, usize) -> f32, start: &[f32]) -> Vec<f32> {
        let mut out = start.to_vec();
        for i in 0..m {
            for j in 0..n {
                let s: f64 = (0..k).map(|l| round(a(i, l)) as f64 * round(b(l, j)) as f64).sum();
                out[i * n + j] = (out[i * n + j] as f64 + s) as f32;
            }
        }
        out
    }

    fn close(got: &[f32], want: &[f32], k: usize, what: &str) {
        // f32 sums of k exact products: a few units of f32 rounding per term at most.
        let tol = 4.0 * f32::EPSILON * k as f32;
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{what} [{i}]: {g} vs {w}");
        }
    }

    /// Every engine this CPU offers (the rounded ones everywhere).
    fn engines() -> Vec<Engine> {
        let mut engines = Engine::offered();
        engines.push(Engine::RoundedF16);
        println!("engines: {engines:?}; best: {:?}", Engine::best());
        engines
    }

    /// `dst = start + lhs · rhs` on slices: `[m, n, k]`, dst, start, lhs and its strides, rhs
    /// and its strides.
    pub(super) type SliceGemm = dyn Fn([usize; 3], &mut [f32], Start, &[f32], [usize; 2], &[f32], [usize; 2]);

    /// `gemm` against the rounded operands summed in f64: sizes off the 32-blocks, one row,
    /// k = 1, k = 0, one whole block, and big enough for the threaded paths; row-major (a
    /// linear layer's forward) from zero and from a bias, and both operands transposed (the
    /// backward's layouts) from a bias.
    pub(super) fn check_products(what: &str, round: fn(f32) -> f32, gemm: &SliceGemm) {
        for [m, n, k] in [[1, 1, 1], [3, 4, 0], [1, 45, 70], [37, 45, 70], [33, 31, 65], [64, 64, 64], [40, 300, 260], [200, 197, 300]] {
            let (a, b) = (values(m * k, 1), values(k * n, 2));
            let want = reference(round, m, n, k, |i, l| a[i * k + l], |l, j| b[l * n + j], &vec![0.0; m * n]);
            let mut got = vec![f32::NAN; m * n];
            gemm([m, n, k], &mut got, Start::Zero, &a, [k, 1], &b, [n, 1]);
            close(&got, &want, k, &format!("{what} {m}x{n}x{k}"));
            let bias = values(n, 4);
            let rows: Vec<f32> = (0..m * n).map(|i| bias[i % n]).collect();
            let want = reference(round, m, n, k, |i, l| a[i * k + l], |l, j| b[l * n + j], &rows);
            let mut got = vec![f32::NAN; m * n];
            gemm([m, n, k], &mut got, Start::Bias(&bias), &a, [k, 1], &b, [n, 1]);
            close(&got, &want, k, &format!("{what} {m}x{n}x{k} from a bias"));
            let want = reference(round, m, n, k, |i, l| a[l * m + i], |l, j| b[j * k + l], &rows);
            let mut got = vec![f32::NAN; m * n];
            gemm([m, n, k], &mut got, Start::Bias(&bias), &a, [1, m], &b, [1, k]);
            close(&got, &want, k, &format!("{what} {m}x{n}x{k} transposed, from a bias"));
        }
    }

    /// Each of the first `rows` rows gives the same bits as in a batch of 70, from zero or
    /// from a bias: with n = 100, whole blocks and blocks past the edge in rows and columns sum
    /// alike.
    pub(super) fn check_rows_alike(what: &str, rows: &[usize], gemm: &SliceGemm) {
        let (k, n) = (200, 100);
        let (a, b) = (values(70 * k, 4), values(k * n, 5));
        let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.37 - 5.0).collect();
        for start in [Start::Zero, Start::Bias(&bias)] {
            let run = |rows: usize| {
                let mut out = vec![f32::NAN; rows * n];
                gemm([rows, n, k], &mut out, start, &a, [k, 1], &b, [n, 1]);
                out
            };
            let all = run(70);
            for &rows in rows {
                assert!(run(rows) == all[..rows * n], "{what}, {start:?}: {rows} rows");
            }
        }
    }

    /// [`gemm`] on `engine`, on slices.
    fn on(engine: Engine) -> Box<SliceGemm> {
        Box::new(move |[m, n, k], dst, start, lhs, ls, rhs, rs| {
            assert!(dst.len() == m * n && lhs.len() >= m * k && rhs.len() >= k * n);
            // SAFETY: the buffers hold those shapes (asserted; the strides are the tests').
            unsafe { gemm(engine, [m, n, k], dst.as_mut_ptr(), n, start, lhs.as_ptr(), ls, rhs.as_ptr(), rs) }
        })
    }

    #[test]
    fn products_match_the_rounded_operands_at_every_edge_and_layout() {
        for engine in engines() {
            check_products(&format!("{engine:?}"), engine.round(), &*on(engine));
        }
    }

    #[test]
    fn a_row_is_the_same_bits_whatever_rows_come_with_it() {
        // From two rows: one row takes the f32 GEMM's matrix-vector path on the rounded engines, which
        // `linear::forward` avoids by doubling the row.
        for engine in engines() {
            check_rows_alike(&format!("{engine:?}"), &[2, 3, 33], &*on(engine));
        }
    }

    #[test]
    fn nan_and_infinity_reach_the_output() {
        let (m, n, k) = (2, 3, 4);
        let mut a = vec![1.0f32; m * k];
        a[0] = f32::NAN;
        a[k] = f32::INFINITY;
        let b = vec![1.0f32; k * n];
        for engine in engines() {
            let mut out = vec![0.0f32; m * n];
            // SAFETY: the buffers hold those shapes.
            unsafe { gemm(engine, [m, n, k], out.as_mut_ptr(), n, Start::Zero, a.as_ptr(), [k, 1], b.as_ptr(), [n, 1]) };
            assert!(out[..n].iter().all(|v| v.is_nan()), "{engine:?}: {out:?}");
            assert!(out[n..].iter().all(|&v| v == f32::INFINITY), "{engine:?}: {out:?}");
        }
    }
}
