//! The attention kernels in CubeCL: one unit per query row (forward, statistics, dQ) or per
//! key row (dK, dV); the forward and the norm's backward here, the attention's backward in
//! `backward.rs`. The forward, dQ and dK/dV read the other side's rows through a cube's shared
//! tile (`tile.rs`), each unit its own row once into local memory. Scores are recomputed from q and k in every pass and never stored, so memory
//! is linear in N. Layouts are the CPU kernel's: q, k, v and the output are `[B, N, W]`
//! row-major with head `h` in columns `h·hd..`. A group is what one unit combines: with `pair`
//! (differential attention) group `g` pairs heads `2g` and `2g+1` and owns value columns
//! `g·2hd..`; without it (standard attention) group `g` is head `g`, one map, `hd` columns, no
//! λ and no norm. Row `r = (b·G + g)·N + i` indexes the per-row statistics `[rows, 4]`: the two
//! maps' log-sum-exp, then `Σ_j A_m[i,j]·dP[i,j]` (the second map's columns are 0 without
//! `pair`). `params` is `[1 + 2hd]`: λ, then the RMSNorm gain γ (one buffer: wgpu allows a
//! kernel few); unread without `pair`. Tensors hold the model's float type `E` (f32, f16, bf16);
//! every sum, exponential and per-row value is f32, so f16 / bf16 lose precision only where
//! values are stored.

use burn::backend::TensorMetadata;
use burn::tensor::{DType, Shape};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::plan::{empty, plan, stacked, tiled_plan};
use super::tile::{head_dots, key_ends, key_tile, own_row, place, tile_rows};

/// Where unit `pos`'s row lies: `(base, row, i, width)`: the offset of its group's columns in
/// position 0 of its batch, the offset of row `i` itself, and the row stride (`gw`: the
/// group's width).
#[cube]
pub(super) fn locate(pos: usize, n: usize, groups: usize, #[comptime] gw: usize) -> (usize, usize, usize, usize) {
    let i = pos % n;
    let bg = pos / n;
    let width = groups * gw;
    let base = (bg / groups) * n * width + (bg % groups) * gw;
    (base, base + i * width, i, width)
}

/// A group's width in columns: two heads with `pair`, else one.
pub(super) fn group_width(hd: usize, pair: bool) -> usize {
    if pair { 2 * hd } else { hd }
}

/// Element `i` of `t` in f32.
#[cube]
pub(super) fn at<E: Float>(t: &Tensor<E>, i: usize) -> f32 {
    f32::cast_from(t[i])
}

/// `dO[i]·V[j]` over the group's `vd` value columns.
#[cube]
pub(super) fn dot_values<E: Float>(dout: &Tensor<E>, v: &Tensor<E>, oo: usize, vo: usize, #[comptime] vd: usize) -> f32 {
    let mut dp = f32::new(0.0);
    for c in 0..vd {
        dp += at(dout, oo + c) * at(v, vo + c);
    }
    dp
}

/// A zeroed f32 row of `len` values.
#[cube]
pub(super) fn zeros(#[comptime] len: usize) -> Array<f32> {
    let mut row = Array::<f32>::new(len);
    for c in 0..len {
        row[c] = 0.0_f32;
    }
    row
}

/// The maps' softmax in one pass over this unit's keys `0..end`, walking the cube's keys
/// `0..cube_end` in shared tiles of K and V: each map's running max, sum and `A_m·V` rescaled
/// once per tile (FlashAttention's online softmax). `qr` is the unit's query row, scaled.
/// Leaves `acc` = A1·V, or with `pair` O = A1·V − λ·A2·V and `acc2` = A2·V; gives both maps'
/// log-sum-exps (the second 0 without `pair`).
#[cube]
#[allow(clippy::too_many_arguments)]
fn one_pass<E: Float>(k: &Tensor<E>, v: &Tensor<E>, params: &Tensor<E>, qr: &Array<f32>, acc: &mut Array<f32>, acc2: &mut Array<f32>, base: usize, width: usize, n: usize, end: usize, cube_end: usize, #[comptime] hd: usize, #[comptime] pair: bool) -> (f32, f32) {
    let vd = comptime!(group_width(hd, pair));
    let kb = comptime!(tile_rows(2 * vd));
    let values = comptime!(kb * vd);
    let mut shared = Shared::<[f32]>::new_slice(comptime!(2 * kb * vd));
    let mut m1 = f32::new(-1.0e30);
    let mut m2 = f32::new(-1.0e30);
    let mut s1 = f32::new(0.0);
    let mut s2 = f32::new(0.0);
    let mut e1 = Array::<f32>::new(kb);
    let mut e2 = Array::<f32>::new(kb);
    let mut first = 0;
    while first < cube_end {
        let count = key_tile(k, v, &mut shared, base, width, first, n, end, kb, vd, true);
        let mut b1 = m1;
        let mut b2 = m2;
        for t in 0..count {
            let (d1, d2) = head_dots(qr, &shared, t * vd, hd, pair);
            e1[t] = d1;
            e2[t] = d2;
            b1 = max(b1, d1);
            b2 = max(b2, d2);
        }
        let c1 = (m1 - b1).exp();
        s1 *= c1;
        m1 = b1;
        for c in 0..vd {
            acc[c] *= c1;
        }
        if pair {
            let c2 = (m2 - b2).exp();
            s2 *= c2;
            m2 = b2;
            for c in 0..vd {
                acc2[c] *= c2;
            }
        }
        for t in 0..count {
            let vo = values + t * vd;
            let p1 = (e1[t] - m1).exp();
            s1 += p1;
            if pair {
                let p2 = (e2[t] - m2).exp();
                s2 += p2;
                for c in 0..vd {
                    let x = shared[vo + c];
                    acc[c] += p1 * x;
                    acc2[c] += p2 * x;
                }
            } else {
                for c in 0..vd {
                    acc[c] += p1 * shared[vo + c];
                }
            }
        }
        first += kb;
    }
    let inv1 = 1.0_f32 / s1;
    for c in 0..vd {
        acc[c] *= inv1;
    }
    let mut l2 = f32::new(0.0);
    if pair {
        l2 = m2 + s2.ln();
        let lam = at(params, 0);
        let inv2 = 1.0_f32 / s2;
        for c in 0..vd {
            acc2[c] *= inv2;
            acc[c] -= lam * acc2[c];
        }
    }
    (m1 + s1.ln(), l2)
}

/// Differential attention without a backward: both maps' log-sum-exps in a first pass over
/// this unit's keys `0..end` (tiles of K), then `(A1 − λ·A2)·V` into `acc` as one product in
/// a second (tiles of K and V), so a unit holds 2hd accumulators rather than one pass's 4hd.
/// Gives the log-sum-exps.
#[cube]
#[allow(clippy::too_many_arguments)]
fn two_pass<E: Float>(k: &Tensor<E>, v: &Tensor<E>, params: &Tensor<E>, qr: &Array<f32>, acc: &mut Array<f32>, base: usize, width: usize, n: usize, end: usize, cube_end: usize, #[comptime] hd: usize) -> (f32, f32) {
    let vd = comptime!(2 * hd);
    let kb = comptime!(tile_rows(2 * vd));
    let values = comptime!(kb * vd);
    let mut shared = Shared::<[f32]>::new_slice(comptime!(2 * kb * vd));
    let mut m1 = f32::new(-1.0e30);
    let mut m2 = f32::new(-1.0e30);
    let mut s1 = f32::new(0.0);
    let mut s2 = f32::new(0.0);
    let mut first = 0;
    while first < cube_end {
        let count = key_tile(k, v, &mut shared, base, width, first, n, end, kb, vd, false);
        for t in 0..count {
            let (d1, d2) = head_dots(qr, &shared, t * vd, hd, true);
            let n1 = max(m1, d1);
            s1 = s1 * (m1 - n1).exp() + (d1 - n1).exp();
            m1 = n1;
            let n2 = max(m2, d2);
            s2 = s2 * (m2 - n2).exp() + (d2 - n2).exp();
            m2 = n2;
        }
        first += kb;
    }
    let (l1, l2) = (m1 + s1.ln(), m2 + s2.ln());
    let lam = at(params, 0);
    first = 0;
    while first < cube_end {
        let count = key_tile(k, v, &mut shared, base, width, first, n, end, kb, vd, true);
        for t in 0..count {
            let (d1, d2) = head_dots(qr, &shared, t * vd, hd, true);
            let p = (d1 - l1).exp() - lam * (d2 - l2).exp();
            let vo = values + t * vd;
            for c in 0..vd {
                acc[c] += p * shared[vo + c];
            }
        }
        first += kb;
    }
    (l1, l2)
}

/// With `pair`: `y = RMSNorm(O)·γ·out_scale` with `O = (A1 − λ·A2)·V`, and (with `keep`) O
/// and `A2·V` stacked `[2B, N, W]`, the backward's inputs; without: `y = A·V` (`o` unwritten).
/// `lse` `[rows, 3]`: both maps' log-sum-exp and O's reciprocal RMS (0 where unused).
#[cube(launch, address_type = "dynamic")]
fn forward_kernel<E: Float>(
    q: &Tensor<E>,
    k: &Tensor<E>,
    v: &Tensor<E>,
    params: &Tensor<E>,
    y: &mut Tensor<E>,
    o: &mut Tensor<E>,
    lse: &mut Tensor<f32>,
    rows: usize,
    n: usize,
    groups: usize,
    scale: f32,
    eps: f32,
    out_scale: f32,
    #[comptime] hd: usize,
    #[comptime] causal: bool,
    #[comptime] pair: bool,
    #[comptime] keep: bool,
    #[define(E)] _dtype: ElemType,
) {
    let vd = comptime!(group_width(hd, pair));
    let (bg, i, live) = place(n);
    if bg * n >= rows {
        terminate!();
    }
    // Keys and values of this row's batch and group.
    let width = groups * vd;
    let column = (bg % groups) * vd;
    let base = (bg / groups) * n * width + column;
    let qo = base + i * width;
    let pos = bg * n + i;
    let (end, cube_end) = key_ends(i, n, causal);
    let qr = own_row(q, qo, scale, vd);
    // One pass over the keys, except for differential inference: there the two-pass product
    // needs half the accumulators, while a backward needs A2·V, which one pass computes anyway.
    let mut acc = zeros(vd);
    let mut acc2 = zeros(comptime!(if pair && keep { vd } else { 1 }));
    let (l1, l2) = if comptime!(pair && !keep) {
        two_pass(k, v, params, &qr, &mut acc, base, width, n, end, cube_end, hd)
    } else {
        one_pass(k, v, params, &qr, &mut acc, &mut acc2, base, width, n, end, cube_end, hd, pair)
    };
    if live {
        lse[pos * 3] = l1;
        lse[pos * 3 + 1] = l2;
        if pair {
            // The RMSNorm over the pair's 2hd values, its gain and the (1 − λ_init) scale.
            let mut squares = f32::new(0.0);
            for c in 0..vd {
                squares += acc[c] * acc[c];
            }
            let r = 1.0_f32 / (squares / f32::cast_from(vd) + eps).sqrt();
            let rs = r * out_scale;
            for c in 0..vd {
                y[qo + c] = E::cast_from(acc[c] * rs * at(params, 1 + c));
            }
            if keep {
                let o2_at = o.len() / 2;
                for c in 0..vd {
                    o[qo + c] = E::cast_from(acc[c]);
                    o[o2_at + qo + c] = E::cast_from(acc2[c]);
                }
            }
            lse[pos * 3 + 2] = r;
        } else {
            for c in 0..vd {
                y[qo + c] = E::cast_from(acc[c]);
            }
            lse[pos * 3 + 2] = 0.0_f32;
        }
    }
}

/// The RMSNorm's backward per row: `dO` `[B, N, W]`, then each row's share of dγ,
/// `out_scale·r·O⊙dy`, stacked as `[2B, N, W]` (summed over rows outside). `o` is the
/// forward's stacked `[O; A2·V]`, of which only O is read.
#[cube(launch, address_type = "dynamic")]
fn norm_backward_kernel<E: Float>(
    dy: &Tensor<E>,
    o: &Tensor<E>,
    lse: &Tensor<f32>,
    params: &Tensor<E>,
    dnorm: &mut Tensor<E>,
    rows: usize,
    n: usize,
    groups: usize,
    out_scale: f32,
    #[comptime] hd: usize,
    #[define(E)] _dtype: ElemType,
) {
    let pos = ABSOLUTE_POS;
    if pos >= rows {
        terminate!();
    }
    let vd = comptime!(2 * hd);
    let (_base, qo, _i, _width) = locate(pos, n, groups, vd);
    let r = lse[pos * 3 + 2];
    let rs = r * out_scale;
    // d/dO of s·γ·O·r with r = (mean O² + eps)^(-1/2): s·r·γ⊙dy − s·r³·O·(Σ γ⊙dy⊙O)/2hd.
    let mut dot = f32::new(0.0);
    for c in 0..vd {
        dot += at(params, 1 + c) * at(dy, qo + c) * at(o, qo + c);
    }
    let shrink = rs * r * r * dot / f32::cast_from(vd);
    let half = dnorm.len() / 2;
    for c in 0..vd {
        let (g, d, x) = (at(params, 1 + c), at(dy, qo + c), at(o, qo + c));
        dnorm[qo + c] = E::cast_from(rs * g * d - shrink * x);
        dnorm[half + qo + c] = E::cast_from(rs * x * d);
    }
}

/// `y` `[B, N, W]` (with `pair`: normalised and scaled), `O` (with `pair` and `keep` the
/// pre-norm output and `A2·V`, `[2B, N, W]`, else one unused value), and per row the
/// log-sum-exps and O's reciprocal RMS `[rows, 3]`.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward(q: CubeTensor, k: CubeTensor, v: CubeTensor, params: CubeTensor, heads: usize, scale: f32, causal: bool, pair: bool, keep: bool, eps: f32, out_scale: f32) -> (CubeTensor, CubeTensor, CubeTensor) {
    let [q, k, v, params] = [q, k, v, params].map(into_contiguous);
    let p = tiled_plan(&q, heads, pair, &[&q, &k, &v]);
    let o_shape = if pair && keep { stacked(q.shape()) } else { Shape::new([1]) };
    let (y, o, lse) = (empty(&q, q.shape(), q.dtype), empty(&q, o_shape, q.dtype), empty(&q, [p.rows, 3].into(), DType::F32));
    forward_kernel::launch(
        &q.client.clone(), p.count, p.dim, p.address, q.into_tensor_arg(), k.into_tensor_arg(), v.into_tensor_arg(),
        params.into_tensor_arg(), y.clone().into_tensor_arg(), o.clone().into_tensor_arg(), lse.clone().into_tensor_arg(), p.rows,
        p.n, p.groups, scale, eps, out_scale, p.hd, causal, p.pair, keep, p.elem,
    );
    (y, o, lse)
}

/// The RMSNorm's backward: dO and the rows' dγ terms, stacked `[2B, N, W]`; `o` is the
/// forward's stacked `[O; A2·V]`.
pub(super) fn norm_backward(dy: CubeTensor, o: CubeTensor, lse: CubeTensor, params: CubeTensor, heads: usize, out_scale: f32) -> CubeTensor {
    let [dy, o, lse, params] = [dy, o, lse, params].map(into_contiguous);
    let dnorm = empty(&dy, stacked(dy.shape()), dy.dtype);
    let p = plan(&dy, heads, true, &[&dy, &o, &dnorm]);
    norm_backward_kernel::launch(
        &o.client.clone(), p.count, p.dim, p.address, dy.into_tensor_arg(), o.into_tensor_arg(), lse.into_tensor_arg(),
        params.into_tensor_arg(), dnorm.clone().into_tensor_arg(), p.rows, p.n, p.groups, out_scale, p.hd, p.elem,
    );
    dnorm
}
