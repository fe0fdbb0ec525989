//! Linear layers, `x·W + b`, on flex as one GEMM over every row of `x` (a few rows: [`super::few_rows`]).
//!
//! Burn 0.22.1's flex matmul zero-fills each output and then copies it to realign it
//! (`FlexTensor::empty` through `Bytes::from_bytes_vec`), and the bias is a separate pass;
//! here the output is written once: the bias rows are the GEMM's starting value. The backward
//! multiplies by the transposed operands through strides, without copies. Rows of one call
//! never depend on the thread count's split of another dimension, so results are deterministic.

use rayon::prelude::*;

use super::bf16::{Engine, PackedRhs};
use super::written;
use crate::matmul_precision;

/// `rows × k` times `k × n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LinearDims {
    pub rows: usize,
    pub k: usize,
    pub n: usize,
}

/// Below this many multiply-adds a GEMM runs on one thread (Burn's flex threshold, 192³).
pub(super) const PARALLEL_MACS: usize = 192 * 192 * 192;

/// Where the sums of a GEMM's output start.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Start<'a> {
    /// At zero.
    Zero,
    /// At a bias (`n` values) down every row: `x·W + b` in one pass over the output where the
    /// product can start from it (AMX), else the rows written first.
    Bias(&'a [f32]),
}

impl Start<'_> {
    /// Readies `dst` (`m × n`, row stride `dst_rs`) for a product added onto it, writing the
    /// bias rows; whether the product must add (false: it overwrites).
    ///
    /// SAFETY: `dst` addresses such a matrix; a bias holds `n` values.
    pub(super) unsafe fn prepare(self, dst: *mut f32, [m, n]: [usize; 2], dst_rs: usize) -> bool {
        let Start::Bias(b) = self else { return false };
        assert!(b.len() >= n);
        let dst = super::attention::SendPtr(dst);
        (0..m).into_par_iter().with_min_len(row_chunk(n)).for_each(|i| {
            // SAFETY: row i of dst (the caller's contract), written by this task alone.
            unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), dst.get().add(i * dst_rs), n) };
        });
        true
    }
}

fn parallelism(m: usize, n: usize, k: usize) -> gemm::Parallelism {
    if m.saturating_mul(n).saturating_mul(k) >= PARALLEL_MACS { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None }
}

/// `dst (m × n, row stride dst_rs) = start + lhs · rhs`, operands addressed by (row, column)
/// strides; every element of `dst` is written. In f32 (`engine` `None`), or with reduced
/// operands on `engine` ([`products_engine`]).
///
/// SAFETY: the pointers and strides must address valid memory of those shapes, and `dst` must
/// not overlap the operands; a bias holds `n` values; the CPU offers `engine` (as
/// [`products_engine`] gives).
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_into(
    engine: Option<Engine>,
    mnk: [usize; 3],
    dst: *mut f32,
    dst_rs: usize,
    start: Start,
    lhs: *const f32,
    lhs_strides: [usize; 2],
    rhs: *const f32,
    rhs_strides: [usize; 2],
) {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        match engine {
            None => {
                let accumulate = start.prepare(dst, [mnk[0], mnk[1]], dst_rs);
                gemm_f32(mnk, dst, dst_rs, accumulate, lhs, lhs_strides, rhs, rhs_strides)
            }
            Some(engine) => super::bf16::gemm(engine, mnk, dst, dst_rs, start, lhs, lhs_strides, rhs, rhs_strides),
        }
    }
}

/// [`gemm_into`] in f32.
///
/// SAFETY: as for [`gemm_into`].
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm_f32(
    [m, n, k]: [usize; 3],
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    lhs: *const f32,
    [lhs_rs, lhs_cs]: [usize; 2],
    rhs: *const f32,
    [rhs_rs, rhs_cs]: [usize; 2],
) {
    let s = |x: usize| x as isize;
    let alpha = if accumulate { 1.0 } else { 0.0 };
    unsafe {
        gemm::gemm(
            m, n, k, dst, 1, s(dst_rs), accumulate, lhs, s(lhs_cs), s(lhs_rs), rhs, s(rhs_cs), s(rhs_rs), alpha,
            1.0, false, false, false, parallelism(m, n, k),
        )
    }
}

/// Rows per parallel task of the element-wise passes here.
fn row_chunk(n: usize) -> usize {
    ((1 << 14) / n.max(1)).max(1)
}

/// `x·W + b`: `x` is `rows × k`, `w` is `k × n` (Burn's `Linear` layout), `b` has `n` values.
/// A few rows in f32 take [`super::few_rows`] (the same bits, read faster).
pub(crate) fn forward(x: &[f32], w: &[f32], b: Option<&[f32]>, d: LinearDims) -> Vec<f32> {
    let engine = products_engine();
    if engine.is_none()
        && let Some(out) = super::few_rows::forward(x, w, b, d)
    {
        return out;
    }
    forward_gemm(engine.is_none(), x, w, b, d)
}

/// What multiplies this thread's products now: `None` for f32 (the `gemm` crate), else the
/// reduced-precision engine of [`crate::MatmulPrecision`]'s `Bf16` and `F16`.
fn products_engine() -> Option<Engine> {
    Engine::for_products(matmul_precision())
}

/// [`forward`] by the `gemm` crate in f32 (`in_f32`, whatever this thread's precision), or with
/// this thread's products, whatever the rows.
pub(super) fn forward_gemm(in_f32: bool, x: &[f32], w: &[f32], b: Option<&[f32]>, d: LinearDims) -> Vec<f32> {
    let engine = if in_f32 { None } else { products_engine() };
    let LinearDims { k, n, .. } = d;
    assert!(w.len() >= k * n);
    // SAFETY: `w` holds k × n values (asserted); `product`'s other operands are its contract.
    forward_by(x, b, d, |rows, dst, start, x| unsafe { gemm_into(engine, [rows, n, k], dst, n, start, x, [k, 1], w.as_ptr(), [n, 1]) })
}

/// [`forward`] with reduced-precision products of a weight packed beforehand
/// ([`super::packed_weights`]); a few rows on a rounded copy take [`super::few_rows`].
pub(crate) fn forward_packed(x: &[f32], w: &PackedRhs, b: Option<&[f32]>, d: LinearDims) -> Vec<f32> {
    assert_eq!(w.dims(), (d.k, d.n));
    if let Some(out) = w.few_rows(x, b, d) {
        return out;
    }
    // SAFETY: `product`'s operands are its contract; the packed weight is k × n (asserted).
    forward_by(x, b, d, |rows, dst, start, x| unsafe { super::bf16::gemm_packed(rows, dst, d.n, start, x, [d.k, 1], w) })
}

/// `x·W + b` with `product(rows, dst, start, x)` computing `dst = start + x·W` for `rows` rows
/// of `x` into `dst` (row stride `n`; it must write every element before reading it).
fn forward_by(x: &[f32], b: Option<&[f32]>, d: LinearDims, product: impl Fn(usize, *mut f32, Start, *const f32)) -> Vec<f32> {
    let LinearDims { rows, k, n } = d;
    assert!(x.len() >= rows * k && b.is_none_or(|b| b.len() >= n));
    if rows == 1 {
        // One row would take the GEMM crate's matrix-vector path, whose sums round differently
        // from its kernel's: a pooled row's output would depend on its batch's size.
        let mut out = forward_by(&[&x[..k], &x[..k]].concat(), b, LinearDims { rows: 2, k, n }, product);
        out.truncate(n);
        return out;
    }
    let start = b.map_or(Start::Zero, Start::Bias);
    written(rows * n, |out| product(rows, out.as_mut_ptr().cast::<f32>(), start, x.as_ptr()))
}

/// `dx = dy·Wᵀ` (`rows × k`).
pub(crate) fn backward_input(dy: &[f32], w: &[f32], d: LinearDims) -> Vec<f32> {
    let LinearDims { rows, k, n } = d;
    assert!(dy.len() >= rows * n && w.len() >= k * n);
    written(rows * k, |dx| {
        // SAFETY: shapes asserted; Wᵀ[j][i] = W[i][j] is W read with swapped strides; dx is
        // written without being read.
        unsafe { gemm_into(products_engine(), [rows, k, n], dx.as_mut_ptr().cast(), k, Start::Zero, dy.as_ptr(), [n, 1], w.as_ptr(), [1, n]) }
    })
}

/// `dW = xᵀ·dy` (`k × n`).
pub(crate) fn backward_weight(x: &[f32], dy: &[f32], d: LinearDims) -> Vec<f32> {
    let LinearDims { rows, k, n } = d;
    assert!(x.len() >= rows * k && dy.len() >= rows * n);
    written(k * n, |dw| {
        // SAFETY: shapes asserted; xᵀ is x read with swapped strides; dW is written, not read.
        unsafe { gemm_into(products_engine(), [k, n, rows], dw.as_mut_ptr().cast(), n, Start::Zero, x.as_ptr(), [1, k], dy.as_ptr(), [n, 1]) }
    })
}

/// `db = Σ_rows dy` (`n`): partial sums of fixed row blocks in parallel, added in block order,
/// so the result does not depend on the thread count.
pub(crate) fn backward_bias(dy: &[f32], d: LinearDims) -> Vec<f32> {
    let LinearDims { rows, n, .. } = d;
    assert!(dy.len() >= rows * n);
    let block = n * row_chunk(n).max(64);
    let partials: Vec<Vec<f32>> = dy[..rows * n]
        .par_chunks(block)
        .map(|rows| {
            let mut acc = vec![0.0f32; n];
            for row in rows.chunks_exact(n) {
                for (a, &v) in acc.iter_mut().zip(row) {
                    *a += v;
                }
            }
            acc
        })
        .collect();
    let mut db = vec![0.0f32; n];
    for p in partials {
        for (a, v) in db.iter_mut().zip(p) {
            *a += v;
        }
    }
    db
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Deterministic values in [-1, 1), also for the few-rows tests.
    pub(in crate::cpu) fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len).map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 500.0 - 1.0).collect()
    }

    /// `out[i][j] = Σ_l a(i, l)·b(l, j)` in f64.
    fn naive(m: usize, n: usize, k: usize, a: impl Fn(usize, usize) -> f32, b: impl Fn(usize, usize) -> f32) -> Vec<f32> {
        let mut out = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|l| a(i, l) as f64 * b(l, j) as f64).sum::<f64>() as f32;
            }
        }
        out
    }

    fn close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{i}: {g} vs {w}");
        }
    }

    #[test]
    fn forward_and_backward_match_the_definitions() {
        // Large enough for the threaded GEMM, odd sizes for the edges of its tiles.
        for d in [LinearDims { rows: 3, k: 5, n: 7 }, LinearDims { rows: 301, k: 193, n: 197 }] {
            let LinearDims { rows, k, n } = d;
            let (x, w, b, dy) = (values(rows * k, 1), values(k * n, 2), values(n, 3), values(rows * n, 4));
            let xw = naive(rows, n, k, |i, l| x[i * k + l], |l, j| w[l * n + j]);
            close(&forward(&x, &w, None, d), &xw);
            let with_bias: Vec<f32> = xw.iter().enumerate().map(|(i, v)| v + b[i % n]).collect();
            close(&forward(&x, &w, Some(&b), d), &with_bias);
            close(&backward_input(&dy, &w, d), &naive(rows, k, n, |i, j| dy[i * n + j], |j, l| w[l * n + j]));
            close(&backward_weight(&x, &dy, d), &naive(k, n, rows, |l, i| x[i * k + l], |i, j| dy[i * n + j]));
            let db: Vec<f32> = (0..n).map(|j| (0..rows).map(|i| dy[i * n + j] as f64).sum::<f64>() as f32).collect();
            close(&backward_bias(&dy, d), &db);
        }
    }

    #[test]
    fn a_row_is_the_same_bits_whatever_rows_come_with_it() {
        // An encoder's pooled rows go through linears one per item: alone or batched, the same.
        let (k, n) = (512, 384);
        let (x, w, b) = (values(70 * k, 5), values(k * n, 6), values(n, 7));
        let all = forward(&x, &w, Some(&b), LinearDims { rows: 70, k, n });
        for rows in [1, 2, 5] {
            let some = forward(&x[..rows * k], &w, Some(&b), LinearDims { rows, k, n });
            assert!(some.iter().zip(&all[..rows * n]).all(|(a, b)| a.to_bits() == b.to_bits()), "{rows} rows");
        }
    }

    #[test]
    fn a_row_of_a_rounded_weight_is_the_same_bits_whatever_rows_come_with_it() {
        // A few rows on a rounded copy take the few-rows path, many rows the gemm crate.
        // k of one and several of the crate's blocks; n past and within its 64-column case.
        for ((k, n), engine) in [(768, 200), (2048, 48)].into_iter().flat_map(|d| [(d, Engine::RoundedBf16), (d, Engine::RoundedF16)]) {
            let (x, w, b) = (values(150 * k, 5), values(k * n, 6), values(n, 7));
            // SAFETY: `w` holds k × n values, row-major; rounded engines run on every CPU.
            let packed = unsafe { PackedRhs::new(engine, w.as_ptr(), [n, 1], k, n) };
            let all = forward_packed(&x, &packed, Some(&b), LinearDims { rows: 150, k, n });
            for rows in [1, 2, 7, super::super::few_rows::MAX_ROWS] {
                let d = LinearDims { rows, k, n };
                assert_eq!(packed.few_rows(&x[..rows * k], Some(&b), d).is_some(), super::super::few_rows::applies(d), "{engine:?}, {rows} rows");
                let some = forward_packed(&x[..rows * k], &packed, Some(&b), d);
                assert!(some.iter().zip(&all[..rows * n]).all(|(a, b)| a.to_bits() == b.to_bits()), "{engine:?}, {rows} rows");
            }
        }
    }

    #[test]
    fn the_few_rows_blocking_is_probed_in_f32_whatever_the_threads_precision() {
        // A k no other test uses, so its probe runs here, under bf16 products; compared with
        // a batch past the gemm crate's special case for at most 64 rows and columns.
        let (k, n, rows, all) = (1001, 40, 3, 80);
        let (x, w) = (values(all * k, 8), values(k * n, 9));
        let d = LinearDims { rows, k, n };
        let few = crate::with_matmul_precision(crate::MatmulPrecision::Bf16, || super::super::few_rows::forward(&x[..rows * k], &w, None, d));
        assert_eq!(few.is_some(), super::super::few_rows::applies(d));
        if let Some(few) = few {
            let want = forward_gemm(true, &x, &w, None, LinearDims { rows: all, k, n });
            assert!(few.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }
}
