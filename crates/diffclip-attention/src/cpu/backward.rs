//! Backward of the attention kernel (`attention.rs`) for training on flex.
//!
//! Per (batch, group) work item, row block by row block: recompute the softmax maps (nothing
//! N²-sized is kept between forward and backward), then
//! `dM = dO·Vᵀ`, `dV += Mᵀ·dO` with `M = A1 − λ·A2` (or `A`), `dλ = −Σ dM ⊙ A2`,
//! `dS = c·A ⊙ (dM − rowsum(dM ⊙ A))` with `c = 1` for A1 and `−λ` for A2, and
//! `dQ = scale·dS·K`, `dK += scale·dSᵀ·Q`. A differential pair costs the FLOPs of two standard
//! heads, as in the forward.

use rayon::prelude::*;

use super::attention::{Dims, SendPtr, gemm, group_shape, row_block, scores_softmax};
use super::simd;

/// Gradients of q, k, v (`[batch, n, width]`), of λ (0 for standard attention) and of the
/// RMSNorm gain (empty without a norm).
pub(crate) struct AttentionGrads {
    pub dq: Vec<f32>,
    pub dk: Vec<f32>,
    pub dv: Vec<f32>,
    pub dlambda: f32,
    pub dgamma: Vec<f32>,
}

/// The differential RMSNorm the forward applied: its input (`(A1 − λ·A2)·V`, `[batch, n,
/// width]`), gain, eps and output scale.
pub(crate) struct NormInput<'a> {
    pub prenorm: &'a [f32],
    pub gamma: &'a [f32],
    pub eps: f32,
    pub out_scale: f32,
}

/// Gradients of the attention output's gradient `d_out` (`[batch, n, width]`) with respect to
/// the inputs. `lambda` is `Some` for differential groups; `norm` when the output was normalised.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention_backward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    d_out: &[f32],
    dims: Dims,
    scale: f32,
    causal: bool,
    lambda: Option<f32>,
    norm: Option<NormInput<'_>>,
) -> AttentionGrads {
    let Dims { batch, n, width, .. } = dims;
    let (groups, maps, hd, vd) = group_shape(dims, lambda.is_some());
    let len = batch * n * width;
    assert!(q.len() == len && k.len() == len && v.len() == len && d_out.len() == len);
    let (mut dq, mut dk, mut dv) = (vec![0.0f32; len], vec![0.0f32; len], vec![0.0f32; len]);
    let gamma_len = if norm.is_some() { vd } else { 0 };
    if len == 0 {
        return AttentionGrads { dq, dk, dv, dlambda: 0.0, dgamma: vec![0.0; gamma_len] };
    }
    let rows = row_block(n);
    let (dq_p, dk_p, dv_p) = (SendPtr(dq.as_mut_ptr()), SendPtr(dk.as_mut_ptr()), SendPtr(dv.as_mut_ptr()));
    let w = width as isize;
    let lam = lambda.unwrap_or(0.0);
    // One partial dλ / dγ per item, summed in item order so training stays deterministic.
    let parts: Vec<(f32, Vec<f32>)> = (0..batch * groups)
        .into_par_iter()
        .map_init(
            || (vec![0.0f32; maps * rows * n], vec![0.0f32; rows * n], vec![0.0f32; rows * n], vec![0.0f32; rows * vd]),
            |(scores, dm, mbuf, dob), item| {
                let (b, g) = (item / groups, item % groups);
                let base = b * n * width;
                let mut dlambda = 0.0f32;
                let mut dgamma = vec![0.0f32; gamma_len];
                for r0 in (0..n).step_by(rows) {
                    let r = rows.min(n - r0);
                    scores_softmax(q, k, scores, [b, g, r0, r], dims, maps, scale, causal);
                    // The gradient of this block's `(A1 − λ·A2)·V` rows, and its row stride.
                    let (do_rows, do_rs) = match &norm {
                        None => (d_out.as_ptr().wrapping_add(base + r0 * width + g * vd), w),
                        Some(nm) => {
                            for i in 0..r {
                                let at = base + (r0 + i) * width + g * vd;
                                simd::rms_norm_row_backward(
                                    &nm.prenorm[at..at + vd],
                                    &d_out[at..at + vd],
                                    nm.gamma,
                                    nm.eps,
                                    nm.out_scale,
                                    &mut dob[i * vd..(i + 1) * vd],
                                    &mut dgamma,
                                );
                            }
                            (dob.as_ptr(), vd as isize)
                        }
                    };
                    let (a1, a2) = scores.split_at_mut(rows * n);
                    let (a1, a2) = (&mut a1[..r * n], &mut a2[..if maps == 2 { r * n } else { 0 }]);
                    let dm = &mut dm[..r * n];
                    // SAFETY (all GEMMs below): row/column ranges lie inside their buffers; this
                    // item alone writes dq rows r0.. and dk/dv columns of group g in batch b.
                    unsafe {
                        // dM = dO · Vᵀ
                        gemm([r, n, vd], dm.as_mut_ptr(), n as isize, do_rows, [do_rs, 1], v.as_ptr().add(base + g * vd), [1, w], 1.0, false);
                    }
                    let m: &[f32] = if maps == 2 {
                        let mb = &mut mbuf[..r * n];
                        dlambda -= simd::diff_map_and_dot(a1, a2, lam, dm, mb);
                        mb
                    } else {
                        a1
                    };
                    unsafe {
                        // dV += Mᵀ · dO
                        gemm([n, vd, r], dv_p.get().add(base + g * vd), w, m.as_ptr(), [1, n as isize], do_rows, [do_rs, 1], 1.0, true);
                    }
                    for map in 0..maps {
                        let a = if map == 0 { &mut *a1 } else { &mut *a2 };
                        let c = if map == 0 { 1.0 } else { -lam };
                        for i in 0..r {
                            simd::softmax_backward_row(&mut a[i * n..(i + 1) * n], &dm[i * n..(i + 1) * n], c);
                        }
                        let head = g * maps + map;
                        unsafe {
                            // dQ = scale · dS · K
                            gemm([r, hd, n], dq_p.get().add(base + r0 * width + head * hd), w, a.as_ptr(), [n as isize, 1], k.as_ptr().add(base + head * hd), [w, 1], scale, false);
                            // dK += scale · dSᵀ · Q
                            gemm([n, hd, r], dk_p.get().add(base + head * hd), w, a.as_ptr(), [1, n as isize], q.as_ptr().add(base + r0 * width + head * hd), [w, 1], scale, true);
                        }
                    }
                }
                (dlambda, dgamma)
            },
        )
        .collect();
    let dlambda = parts.iter().map(|p| p.0).sum();
    let mut dgamma = vec![0.0f32; gamma_len];
    for (_, part) in &parts {
        for (acc, v) in dgamma.iter_mut().zip(part) {
            *acc += v;
        }
    }
    AttentionGrads { dq, dk, dv, dlambda, dgamma }
}
