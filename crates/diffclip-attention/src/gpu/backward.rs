//! The attention's backward kernels: per-row statistics, dQ per query row, dK and dV per key
//! row, the last two recomputing the scores (layouts, groups and row numbering: `kernels.rs`).
//! The statistics `Σ_j A_m[i,j]·dP[i,j]` come from the forward's outputs, `dO_i·O_m,i`
//! (FlashAttention-2), one pass over each row's values instead of one over every key:
//! differential attention's forward keeps `A2·V` beside `O = (A1 − λ·A2)·V` for this, since O
//! alone mixes the two maps.

use burn::backend::TensorMetadata;
use burn::tensor::DType;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::kernels::{at, dot_values, group_width, locate, zeros};
use super::plan::{empty, plan, tiled_plan};
use super::tile::{cube_first, dot, head_dots, key_ends, key_tile, load, own_row, place, span, tile_rows};

/// The statistics per row, `[rows, 4]`: both log-sum-exps, then `dO·O_m` for each map. `o` is
/// standard attention's output, or with `pair` the forward's stacked `[O; A2·V]`: then
/// `dO·(A1·V) = dO·O + λ·dO·(A2·V)` (it keeps A2·V, not A1·V: A2·V from O and A1·V would take
/// a division by λ, which may come near 0).
#[cube(launch, address_type = "dynamic")]
fn stats_kernel<E: Float>(
    dout: &Tensor<E>,
    o: &Tensor<E>,
    params: &Tensor<E>,
    lse: &Tensor<f32>,
    stats: &mut Tensor<f32>,
    rows: usize,
    n: usize,
    groups: usize,
    #[comptime] hd: usize,
    #[comptime] pair: bool,
    #[define(E)] _dtype: ElemType,
) {
    let pos = ABSOLUTE_POS;
    if pos >= rows {
        terminate!();
    }
    let vd = comptime!(group_width(hd, pair));
    let (_base, qo, _i, _width) = locate(pos, n, groups, vd);
    stats[pos * 4] = lse[pos * 3];
    stats[pos * 4 + 1] = lse[pos * 3 + 1];
    let d = dot_values(dout, o, qo, qo, vd);
    if pair {
        let d2 = dot_values(dout, o, qo, o.len() / 2 + qo, vd);
        stats[pos * 4 + 2] = d + at(params, 0) * d2;
        stats[pos * 4 + 3] = d2;
    } else {
        stats[pos * 4 + 2] = d;
        stats[pos * 4 + 3] = 0.0_f32;
    }
}

#[cube(launch, address_type = "dynamic")]
fn dq_kernel<E: Float>(
    q: &Tensor<E>,
    k: &Tensor<E>,
    v: &Tensor<E>,
    params: &Tensor<E>,
    dout: &Tensor<E>,
    stats: &Tensor<f32>,
    dq: &mut Tensor<E>,
    rows: usize,
    n: usize,
    groups: usize,
    scale: f32,
    #[comptime] hd: usize,
    #[comptime] causal: bool,
    #[comptime] pair: bool,
    #[define(E)] _dtype: ElemType,
) {
    let vd = comptime!(group_width(hd, pair));
    let kb = comptime!(tile_rows(2 * vd));
    let values = comptime!(kb * vd);
    let (bg, i, live) = place(n);
    if bg * n >= rows {
        terminate!();
    }
    let pos = bg * n + i;
    let (base, qo, _, width) = locate(pos, n, groups, vd);
    let mut lam = f32::new(0.0);
    if pair {
        lam = at(params, 0);
    }
    let (l1, l2) = (stats[pos * 4], stats[pos * 4 + 1]);
    let (r1, r2) = (stats[pos * 4 + 2], stats[pos * 4 + 3]);
    let (end, cube_end) = key_ends(i, n, causal);
    let qr = own_row(q, qo, scale, vd);
    let dr = own_row(dout, qo, 1.0_f32, vd);
    let mut acc = zeros(vd);
    // Tiles of K, then V.
    let mut shared = Shared::<[f32]>::new_slice(comptime!(2 * kb * vd));
    let mut first = 0;
    while first < cube_end {
        let count = key_tile(k, v, &mut shared, base, width, first, n, end, kb, vd, true);
        for t in 0..count {
            let ko = t * vd;
            let (s1, s2) = head_dots(&qr, &shared, ko, hd, pair);
            let dp = dot(&dr, &shared, values + ko, vd);
            let ds1 = (s1 - l1).exp() * (dp - r1);
            for c in 0..hd {
                acc[c] += ds1 * shared[ko + c];
            }
            if pair {
                let ds2 = -lam * (s2 - l2).exp() * (dp - r2);
                for c in 0..hd {
                    acc[hd + c] += ds2 * shared[ko + hd + c];
                }
            }
        }
        first += kb;
    }
    if live {
        for c in 0..vd {
            dq[qo + c] = E::cast_from(acc[c] * scale);
        }
    }
}

/// dK then dV, both `[B, N, W]`, stacked as `[2B, N, W]` (one output keeps the kernel within
/// wgpu's storage-buffer limit).
#[cube(launch, address_type = "dynamic")]
fn dkv_kernel<E: Float>(
    q: &Tensor<E>,
    k: &Tensor<E>,
    v: &Tensor<E>,
    params: &Tensor<E>,
    dout: &Tensor<E>,
    stats: &Tensor<f32>,
    dkv: &mut Tensor<E>,
    rows: usize,
    n: usize,
    groups: usize,
    scale: f32,
    #[comptime] hd: usize,
    #[comptime] causal: bool,
    #[comptime] pair: bool,
    #[define(E)] _dtype: ElemType,
) {
    let vd = comptime!(group_width(hd, pair));
    let kb = comptime!(tile_rows(2 * vd + 4));
    let douts = comptime!(kb * vd);
    let row_stats = comptime!(2 * kb * vd);
    let (bg, j, live) = place(n);
    if bg * n >= rows {
        terminate!();
    }
    let (base, ko, _, width) = locate(bg * n + j, n, groups, vd);
    let mut lam = f32::new(0.0);
    if pair {
        lam = at(params, 0);
    }
    // Causal: key j is seen by queries j.., so the cube's by queries from its first key on.
    let mut start = 0;
    let mut first = 0;
    if causal {
        start = j;
        first = cube_first(j);
    }
    let kr = own_row(k, ko, scale, vd);
    let vr = own_row(v, ko, 1.0_f32, vd);
    let mut dk = zeros(vd);
    let mut dv = zeros(vd);
    // Tiles of Q, dO and the query rows' statistics.
    let mut shared = Shared::<[f32]>::new_slice(comptime!(kb * (2 * vd + 4)));
    while first < n {
        sync_cube();
        load(q, &mut shared, 0, base, width, first, n, kb, vd);
        load(dout, &mut shared, douts, base, width, first, n, kb, vd);
        load(stats, &mut shared, row_stats, bg * n * 4, 4_usize, first, n, kb, 4_usize);
        sync_cube();
        let (from, to) = span(first, start, n, kb);
        for t in from..to {
            let qo = t * vd;
            let so = row_stats + t * 4;
            let (s1, s2) = head_dots(&kr, &shared, qo, hd, pair);
            let a1 = (s1 - shared[so]).exp();
            let dp = dot(&vr, &shared, douts + qo, vd);
            let mut p = a1;
            let ds1 = a1 * (dp - shared[so + 2]);
            for c in 0..hd {
                dk[c] += ds1 * shared[qo + c];
            }
            if pair {
                let a2 = (s2 - shared[so + 1]).exp();
                p -= lam * a2;
                let ds2 = -lam * a2 * (dp - shared[so + 3]);
                for c in 0..hd {
                    dk[hd + c] += ds2 * shared[qo + hd + c];
                }
            }
            for c in 0..vd {
                dv[c] += p * shared[douts + qo + c];
            }
        }
        first += kb;
    }
    if live {
        let dv_at = dkv.len() / 2;
        for c in 0..vd {
            dkv[ko + c] = E::cast_from(dk[c] * scale);
            dkv[dv_at + ko + c] = E::cast_from(dv[c]);
        }
    }
}

/// The per-row statistics `[rows, 4]` of the backward from `dout` and the forward's `o`
/// (standard attention's output, or differential attention's stacked `[O; A2·V]`).
pub(super) fn stats(o: CubeTensor, dout: CubeTensor, lse: CubeTensor, params: CubeTensor, heads: usize, pair: bool) -> CubeTensor {
    let [o, dout, lse, params] = [o, dout, lse, params].map(into_contiguous);
    let p = plan(&dout, heads, pair, &[&dout, &o]);
    let stats = empty(&dout, [p.rows, 4].into(), DType::F32);
    stats_kernel::launch(
        &dout.client.clone(), p.count, p.dim, p.address, dout.into_tensor_arg(), o.into_tensor_arg(), params.into_tensor_arg(),
        lse.into_tensor_arg(), stats.clone().into_tensor_arg(), p.rows, p.n, p.groups, p.hd, p.pair, p.elem,
    );
    stats
}

/// dQ `[B, N, W]`.
#[allow(clippy::too_many_arguments)]
pub(super) fn dq(q: CubeTensor, k: CubeTensor, v: CubeTensor, params: CubeTensor, dout: CubeTensor, stats: CubeTensor, heads: usize, scale: f32, causal: bool, pair: bool) -> CubeTensor {
    let [q, k, v, params, dout, stats] = [q, k, v, params, dout, stats].map(into_contiguous);
    let p = tiled_plan(&q, heads, pair, &[&q, &k, &v, &dout]);
    let dq = empty(&q, q.shape(), q.dtype);
    dq_kernel::launch(
        &q.client.clone(), p.count, p.dim, p.address, q.into_tensor_arg(), k.into_tensor_arg(), v.into_tensor_arg(),
        params.into_tensor_arg(), dout.into_tensor_arg(), stats.into_tensor_arg(), dq.clone().into_tensor_arg(), p.rows, p.n,
        p.groups, scale, p.hd, causal, p.pair, p.elem,
    );
    dq
}

/// dK and dV stacked, `[2B, N, W]`.
#[allow(clippy::too_many_arguments)]
pub(super) fn dkv(q: CubeTensor, k: CubeTensor, v: CubeTensor, params: CubeTensor, dout: CubeTensor, stats: CubeTensor, heads: usize, scale: f32, causal: bool, pair: bool) -> CubeTensor {
    let [q, k, v, params, dout, stats] = [q, k, v, params, dout, stats].map(into_contiguous);
    let shape = q.shape();
    let dkv = empty(&q, [2 * shape[0], shape[1], shape[2]].into(), q.dtype);
    let p = tiled_plan(&q, heads, pair, &[&q, &k, &v, &dout, &dkv]);
    dkv_kernel::launch(
        &q.client.clone(), p.count, p.dim, p.address, q.into_tensor_arg(), k.into_tensor_arg(), v.into_tensor_arg(),
        params.into_tensor_arg(), dout.into_tensor_arg(), stats.into_tensor_arg(), dkv.clone().into_tensor_arg(), p.rows, p.n,
        p.groups, scale, p.hd, causal, p.pair, p.elem,
    );
    dkv
}
