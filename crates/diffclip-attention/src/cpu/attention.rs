//! Standard and differential attention for row-major `[B, N, D]` q/k/v, as one CPU kernel.
//!
//! Work items are (batch, output group, block of query rows). Scores for a block are
//! `[rows, N]` per map, so memory grows linearly with N; rows are independent under softmax, so
//! no online rescaling is needed. A differential group softmaxes both maps, forms
//! `A1 − λ·A2` once and multiplies it by the group's `2·hd`-wide values in one GEMM (the
//! two-call formulation multiplies each map by V separately), then applies the shared RMSNorm
//! and writes its columns of the `[B, N, D]` output: no head transposes anywhere.

use rayon::prelude::*;

use super::simd;

/// How each output group is formed from its attention maps.
pub(crate) enum Combine {
    /// One map per group (standard attention): group `g` uses q/k/v head `g`.
    Single,
    /// Two maps per group: q/k heads `2g`, `2g+1`; values are the group's `2·hd` columns,
    /// RMS-normalised with gain `gamma` (`2·hd` values).
    Diff { lambda: f32, eps: f32, out_scale: f32 },
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

struct SendPtr(*mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    // A method (not field access) so closures capture the Sync wrapper, not the raw pointer.
    fn get(&self) -> *mut f32 {
        self.0
    }
}

/// `dst[m×n] (row stride dst_rs) = beta · lhs[m×k] · rhs[k×n]`, single-threaded.
///
/// SAFETY: the pointers and strides must address valid, non-aliasing memory of those shapes.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm(
    [m, n, k]: [usize; 3],
    dst: *mut f32,
    dst_rs: isize,
    lhs: *const f32,
    [lhs_rs, lhs_cs]: [isize; 2],
    rhs: *const f32,
    [rhs_rs, rhs_cs]: [isize; 2],
    beta: f32,
) {
    unsafe {
        gemm::gemm(
            m, n, k, dst, 1, dst_rs, false, lhs, lhs_cs, lhs_rs, rhs, rhs_cs, rhs_rs, 0.0, beta,
            false, false, false, gemm::Parallelism::None,
        )
    }
}

/// Attention output `[batch, n, width]` (before the output projection).
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    dims: Dims,
    scale: f32,
    causal: bool,
    combine: &Combine,
    gamma: &[f32],
) -> Vec<f32> {
    let Dims { batch, n, width, heads } = dims;
    let hd = width / heads;
    let (groups, maps, vd) = match combine {
        Combine::Single => (heads, 1, hd),
        Combine::Diff { .. } => (heads / 2, 2, 2 * hd),
    };
    assert_eq!(q.len(), batch * n * width);
    assert!(k.len() == q.len() && v.len() == q.len());
    assert!(maps == 1 || gamma.len() == vd, "RMSNorm gain has {} values, expected {vd}", gamma.len());
    let mut out = vec![0.0f32; batch * n * width];
    if out.is_empty() {
        return out;
    }
    let rows = (SCORE_BUDGET / n).max(16).min(n);
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
            for map in 0..maps {
                let head = g * maps + map;
                let s = &mut scores[map * rows * n..map * rows * n + r * n];
                // SAFETY: q rows r0..r0+r and k rows 0..n of this head lie in `q`/`k`.
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
                    );
                }
                for i in 0..r {
                    let valid = if causal { r0 + i + 1 } else { n };
                    simd::softmax_row(&mut s[i * n..(i + 1) * n], valid);
                }
            }
            let (a1, a2) = scores.split_at_mut(rows * n);
            let v_ptr = v.as_ptr().wrapping_add(base + g * vd);
            match combine {
                Combine::Single => unsafe {
                    // SAFETY: this item alone writes rows r0..r0+r, columns g·vd.. of `out`.
                    gemm(
                        [r, vd, n],
                        out_ptr.get().add(base + r0 * width + g * vd),
                        w,
                        a1.as_ptr(),
                        [n as isize, 1],
                        v_ptr,
                        [w, 1],
                        1.0,
                    );
                },
                Combine::Diff { lambda, eps, out_scale } => {
                    simd::sub_scaled(&mut a1[..r * n], &a2[..r * n], *lambda);
                    // SAFETY: `o` holds r·vd values; v rows 0..n of this group lie in `v`.
                    unsafe {
                        gemm([r, vd, n], o.as_mut_ptr(), vd as isize, a1.as_ptr(), [n as isize, 1], v_ptr, [w, 1], 1.0);
                    }
                    for i in 0..r {
                        // SAFETY: as for `Single`, this item owns these output columns.
                        let dst = unsafe {
                            std::slice::from_raw_parts_mut(out_ptr.get().add(base + (r0 + i) * width + g * vd), vd)
                        };
                        simd::rms_norm_row(&o[i * vd..(i + 1) * vd], dst, gamma, *eps, *out_scale);
                    }
                }
            }
        },
    );
    out
}
