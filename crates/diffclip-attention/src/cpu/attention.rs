//! Standard and differential attention for row-major `[B, N, D]` q/k/v, as one CPU kernel.
//!
//! Work items are (batch, output group, block of query rows). Scores for a block are
//! `[rows, N]` per map, so memory grows linearly with N; rows are independent under softmax, so
//! no online rescaling is needed. A differential group softmaxes both maps, forms
//! `A1 − λ·A2` once and multiplies it by the group's `2·hd`-wide values in one GEMM (the
//! two-call formulation multiplies each map by V separately), then optionally applies the shared
//! RMSNorm, and writes its columns of the `[B, N, D]` output: no head transposes anywhere.

use rayon::prelude::*;

use super::simd;

/// How each output group is formed from its attention maps.
pub(crate) enum Combine {
    /// One map per group (standard attention): group `g` uses q/k/v head `g`.
    Single,
    /// Two maps per group: q/k heads `2g`, `2g+1`; values are the group's `2·hd` columns.
    /// With `norm`, the result is RMS-normalised with gain `gamma` (`2·hd` values), `eps`, and
    /// scaled by `out_scale`; without, it is `(A1 − λ·A2)·V` (what the backward differentiates).
    Diff { lambda: f32, norm: Option<(f32, f32)> },
}

/// Sizes of one call: `q`, `k`, `v` and the output are `[batch, n, width]`, row-major.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dims {
    pub batch: usize,
    pub n: usize,
    pub width: usize,
    pub heads: usize,
}

/// Scratch per work item stays around 256 KiB per map (L2-sized).
const SCORE_BUDGET: usize = 64 * 1024;

/// Query rows per block for sequence length `n`.
pub(crate) fn row_block(n: usize) -> usize {
    (SCORE_BUDGET / n.max(1)).max(16).min(n.max(1))
}

/// `(groups, maps per group, q/k head size, value columns per group)`.
pub(crate) fn group_shape(dims: Dims, diff: bool) -> (usize, usize, usize, usize) {
    let hd = dims.width / dims.heads;
    if diff { (dims.heads / 2, 2, hd, 2 * hd) } else { (dims.heads, 1, hd, hd) }
}

pub(crate) struct SendPtr(pub(crate) *mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    // A method (not field access) so closures capture the Sync wrapper, not the raw pointer.
    pub(crate) fn get(&self) -> *mut f32 {
        self.0
    }
}

/// `dst[m×n] (row stride dst_rs) = [dst +] beta · lhs[m×k] · rhs[k×n]`, single-threaded.
///
/// SAFETY: the pointers and strides must address valid, non-aliasing memory of those shapes.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm(
    [m, n, k]: [usize; 3],
    dst: *mut f32,
    dst_rs: isize,
    lhs: *const f32,
    [lhs_rs, lhs_cs]: [isize; 2],
    rhs: *const f32,
    [rhs_rs, rhs_cs]: [isize; 2],
    beta: f32,
    accumulate: bool,
) {
    let alpha = if accumulate { 1.0 } else { 0.0 };
    unsafe {
        gemm::gemm(
            m, n, k, dst, 1, dst_rs, accumulate, lhs, lhs_cs, lhs_rs, rhs, rhs_cs, rhs_rs, alpha,
            beta, false, false, false, gemm::Parallelism::None,
        )
    }
}

/// Softmax maps of query rows `r0..r0+r` of group `g` in batch `b`: map `m` goes to
/// `scores[m·rows·n ..]` (`rows = scores.len() / maps / n`), one row of `n` per query.
#[allow(clippy::too_many_arguments)]
pub(crate) fn scores_softmax(
    q: &[f32],
    k: &[f32],
    scores: &mut [f32],
    [b, g, r0, r]: [usize; 4],
    dims: Dims,
    maps: usize,
    scale: f32,
    causal: bool,
) {
    let Dims { n, width, .. } = dims;
    let hd = width / dims.heads;
    let rows = scores.len() / maps / n;
    assert!(r <= rows && r0 + r <= n && (g + 1) * maps * hd <= width);
    assert!((b + 1) * n * width <= q.len().min(k.len()));
    let base = b * n * width;
    let w = width as isize;
    for map in 0..maps {
        let head = g * maps + map;
        let s = &mut scores[map * rows * n..map * rows * n + r * n];
        // SAFETY: q rows r0..r0+r and k rows 0..n of this head lie in `q`/`k` (asserted above).
        unsafe {
            gemm(
                [r, n, hd],
                s.as_mut_ptr(),
                n as isize,
                q.as_ptr().add(base + r0 * width + head * hd),
                [w, 1],
                k.as_ptr().add(base + head * hd),
                [1, w],
                scale,
                false,
            );
        }
        for i in 0..r {
            let valid = if causal { r0 + i + 1 } else { n };
            simd::softmax_row(&mut s[i * n..(i + 1) * n], valid, 1.0);
        }
    }
}

/// One attention call: row-major `[batch, n, width]` q, k and v, their sizes, the scores'
/// scale, whether keys after each query are masked, how heads combine, and the RMSNorm gain
/// (for [`Combine::Diff`] with a norm).
#[derive(Clone, Copy)]
pub(crate) struct Inputs<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub dims: Dims,
    pub scale: f32,
    pub causal: bool,
    pub combine: &'a Combine,
    pub gamma: &'a [f32],
}

/// Attention output `[batch, n, width]` (before the output projection), and with `keep_prenorm`
/// also `(A1 − λ·A2)·V` before the RMSNorm (what the backward needs; empty otherwise). With
/// `round`, the attention weights (`A`, or `A1 − λ·A2`) are rounded in place before their
/// product with V: reduced-precision products of operands rounded beforehand.
pub(crate) fn attention(x: Inputs, keep_prenorm: bool, round: Option<fn(&mut [f32])>) -> (Vec<f32>, Vec<f32>) {
    let Inputs { q, k, v, dims, scale, causal, combine, gamma } = x;
    let Dims { batch, n, width, .. } = dims;
    let (groups, maps, _, vd) = group_shape(dims, matches!(combine, Combine::Diff { .. }));
    assert!(q.len() == batch * n * width && k.len() == q.len() && v.len() == q.len());
    if let Combine::Diff { norm: Some(_), .. } = combine {
        assert_eq!(gamma.len(), vd, "RMSNorm gain has {} values, expected {vd}", gamma.len());
    }
    let mut out = vec![0.0f32; batch * n * width];
    let keep = keep_prenorm && matches!(combine, Combine::Diff { norm: Some(_), .. });
    let mut prenorm = if keep { vec![0.0f32; out.len()] } else { Vec::new() };
    if out.is_empty() {
        return (out, prenorm);
    }
    let pre_ptr = SendPtr(prenorm.as_mut_ptr());
    let rows = row_block(n);
    let blocks = n.div_ceil(rows);
    let out_ptr = SendPtr(out.as_mut_ptr());
    let w = width as isize;
    (0..batch * groups * blocks).into_par_iter().for_each_init(
        || (vec![0.0f32; maps * rows * n], vec![0.0f32; rows * vd]),
        |(scores, o), item| {
            let (bg, blk) = (item / blocks, item % blocks);
            let (b, g) = (bg / groups, bg % groups);
            let r0 = blk * rows;
            let r = rows.min(n - r0);
            let base = b * n * width;
            scores_softmax(q, k, scores, [b, g, r0, r], dims, maps, scale, causal);
            let (a1, a2) = scores.split_at_mut(rows * n);
            let v_ptr = v.as_ptr().wrapping_add(base + g * vd);
            // This item alone writes rows r0..r0+r, columns g·vd..(g+1)·vd of `out`.
            let out_rows = out_ptr.get().wrapping_add(base + r0 * width + g * vd);
            let norm = match combine {
                Combine::Single => None,
                Combine::Diff { lambda, norm } => {
                    simd::sub_scaled(&mut a1[..r * n], &a2[..r * n], *lambda);
                    *norm
                }
            };
            if let Some(round) = round {
                round(&mut a1[..r * n]);
            }
            // SAFETY: v rows 0..n of this group lie in `v`; `o` holds r·vd values; the output
            // block is this item's own (see above).
            unsafe {
                match norm {
                    None => gemm([r, vd, n], out_rows, w, a1.as_ptr(), [n as isize, 1], v_ptr, [w, 1], 1.0, false),
                    Some(_) => gemm([r, vd, n], o.as_mut_ptr(), vd as isize, a1.as_ptr(), [n as isize, 1], v_ptr, [w, 1], 1.0, false),
                }
            }
            if let Some((eps, out_scale)) = norm {
                for i in 0..r {
                    let at = base + (r0 + i) * width + g * vd;
                    // SAFETY: as above, row i of this item's output block (and of `prenorm`).
                    let dst = unsafe { std::slice::from_raw_parts_mut(out_ptr.get().add(at), vd) };
                    simd::rms_norm_row(&o[i * vd..(i + 1) * vd], dst, gamma, eps, out_scale);
                    if keep {
                        let pre = unsafe { std::slice::from_raw_parts_mut(pre_ptr.get().add(at), vd) };
                        pre.copy_from_slice(&o[i * vd..(i + 1) * vd]);
                    }
                }
            }
        },
    );
    (out, prenorm)
}
