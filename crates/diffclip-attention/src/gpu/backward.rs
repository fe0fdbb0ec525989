//! The attention's backward kernels: per-row statistics, dQ per query row, dK and dV per key
//! row, each recomputing the scores from rows staged in shared memory (`tiles.rs`; layouts,
//! groups and row numbering: `kernels.rs`).

use burn::backend::TensorMetadata;
use burn::tensor::DType;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::kernels::{empty, group_width, plan, zeros};
use super::tiles::{load_row, stage, staged_dot, staged_scores, tile_row, tiles};

/// One query row's pass over the keys (staged in tiles) for the backward; `stat` holds the
/// row's two log-sum-exps, its two sums `Σ_j A_m·dP` (read only with `grad`) and λ. With
/// `grad`, adds `dS_m·K_m` to `acc` (dQ before the scale); without, returns the two sums.
/// `i` may lie past the last row (the unit then only helps stage).
#[cube]
#[allow(clippy::too_many_arguments)]
fn query_pass<E: Float>(
    q: &Tensor<E>,
    k: &Tensor<E>,
    v: &Tensor<E>,
    dout: &Tensor<E>,
    acc: &mut Array<f32>,
    base: usize,
    i: usize,
    n: usize,
    width: usize,
    stat: &Array<f32>,
    scale: f32,
    #[comptime] hd: usize,
    #[comptime] tile: usize,
    #[comptime] causal: bool,
    #[comptime] pair: bool,
    #[comptime] grad: bool,
) -> (f32, f32) {
    let gw = comptime!(group_width(hd, pair));
    let unit = UNIT_POS_X as usize;
    let live = i < n;
    let (l1, l2, r1, r2, lam) = (stat[0], stat[1], stat[2], stat[3], stat[4]);
    let qrow = load_row(q, base, i, n, width, scale, gw);
    let orow = load_row(dout, base, i, n, width, 1.0_f32, gw);
    let mut end = n;
    let mut cube_end = n;
    if causal {
        end = i + 1;
        cube_end = i - unit + tile;
        if cube_end > n {
            cube_end = n;
        }
    }
    let tiles_k = (cube_end + tile - 1) / tile;
    let mut ks = Shared::<[f32]>::new_slice(comptime!(tile * gw));
    let mut vs = Shared::<[f32]>::new_slice(comptime!(tile * gw));
    let mut d1_sum = f32::new(0.0);
    let mut d2_sum = f32::new(0.0);
    for kt in 0..tiles_k {
        let j0 = kt * tile;
        stage(k, &mut ks, base, j0 + unit, n, width, unit * gw, gw);
        stage(v, &mut vs, base, j0 + unit, n, width, unit * gw, gw);
        sync_cube();
        for jt in 0..tile {
            if live && j0 + jt < end {
                let (s1, s2) = staged_scores(&qrow, &ks, jt * gw, hd, pair);
                let dp = staged_dot(&orow, &vs, jt * gw, gw);
                let a1 = (s1 - l1).exp();
                let mut a2 = f32::new(0.0);
                if pair {
                    a2 = (s2 - l2).exp();
                }
                if grad {
                    let ds1 = a1 * (dp - r1);
                    for t in 0..hd {
                        acc[t] += ds1 * ks[jt * gw + t];
                    }
                    if pair {
                        let ds2 = -lam * a2 * (dp - r2);
                        for t in 0..hd {
                            acc[hd + t] += ds2 * ks[jt * gw + hd + t];
                        }
                    }
                } else {
                    d1_sum += a1 * dp;
                    d2_sum += a2 * dp;
                }
            }
        }
        sync_cube();
    }
    (d1_sum, d2_sum)
}

/// Per query row: both log-sum-exps, then `Σ_j A_m·dP` for each map (`[rows, 4]`; the second
/// map's columns 0 without `pair`).
#[cube(launch, address_type = "dynamic")]
fn stats_kernel<E: Float>(
    q: &Tensor<E>,
    k: &Tensor<E>,
    v: &Tensor<E>,
    dout: &Tensor<E>,
    lse: &Tensor<f32>,
    stats: &mut Tensor<f32>,
    cubes: usize,
    n: usize,
    groups: usize,
    scale: f32,
    #[comptime] hd: usize,
    #[comptime] tile: usize,
    #[comptime] causal: bool,
    #[comptime] pair: bool,
    #[define(E)] _dtype: ElemType,
) {
    if CUBE_POS >= cubes {
        terminate!();
    }
    let gw = comptime!(group_width(hd, pair));
    let (bg, i) = tile_row(n, tile);
    let width = groups * gw;
    let base = (bg / groups) * n * width + (bg % groups) * gw;
    let pos = bg * n + i;
    let mut stat = zeros(5usize);
    if i < n {
        stat[0] = lse[pos * 3];
        stat[1] = lse[pos * 3 + 1];
    }
    let mut unused = zeros(1usize);
    let (d1_sum, d2_sum) = query_pass(q, k, v, dout, &mut unused, base, i, n, width, &stat, scale, hd, tile, causal, pair, false);
    if i < n {
        stats[pos * 4] = stat[0];
        stats[pos * 4 + 1] = stat[1];
        stats[pos * 4 + 2] = d1_sum;
        stats[pos * 4 + 3] = d2_sum;
    }
}

/// dQ per query row.
#[cube(launch, address_type = "dynamic")]
fn dq_kernel<E: Float>(
    q: &Tensor<E>,
    k: &Tensor<E>,
    v: &Tensor<E>,
    params: &Tensor<E>,
    dout: &Tensor<E>,
    stats: &Tensor<f32>,
    dq: &mut Tensor<E>,
    cubes: usize,
    n: usize,
    groups: usize,
    scale: f32,
    #[comptime] hd: usize,
    #[comptime] tile: usize,
    #[comptime] causal: bool,
    #[comptime] pair: bool,
    #[define(E)] _dtype: ElemType,
) {
    if CUBE_POS >= cubes {
        terminate!();
    }
    let gw = comptime!(group_width(hd, pair));
    let (bg, i) = tile_row(n, tile);
    let width = groups * gw;
    let base = (bg / groups) * n * width + (bg % groups) * gw;
    let r = (bg * n + i) * 4;
    let mut stat = zeros(5usize);
    if i < n {
        for c in 0..4 {
            stat[c] = stats[r + c];
        }
    }
    if pair {
        stat[4] = f32::cast_from(params[0]);
    }
    let mut acc = zeros(gw);
    query_pass(q, k, v, dout, &mut acc, base, i, n, width, &stat, scale, hd, tile, causal, pair, true);
    if i < n {
        let qo = base + i * width;
        for c in 0..gw {
            dq[qo + c] = E::cast_from(acc[c] * scale);
        }
    }
}

/// dK then dV, both `[B, N, W]`, stacked as `[2B, N, W]` (one output keeps the kernel within
/// wgpu's storage-buffer limit): one unit per key row, the query rows, their output gradients
/// and statistics staged.
#[cube(launch, address_type = "dynamic")]
fn dkv_kernel<E: Float>(
    q: &Tensor<E>,
    k: &Tensor<E>,
    v: &Tensor<E>,
    params: &Tensor<E>,
    dout: &Tensor<E>,
    stats: &Tensor<f32>,
    dkv: &mut Tensor<E>,
    cubes: usize,
    n: usize,
    groups: usize,
    scale: f32,
    #[comptime] hd: usize,
    #[comptime] tile: usize,
    #[comptime] causal: bool,
    #[comptime] pair: bool,
    #[define(E)] _dtype: ElemType,
) {
    if CUBE_POS >= cubes {
        terminate!();
    }
    let gw = comptime!(group_width(hd, pair));
    let (bg, j) = tile_row(n, tile);
    let unit = UNIT_POS_X as usize;
    let live = j < n;
    let width = groups * gw;
    let base = (bg / groups) * n * width + (bg % groups) * gw;
    let krow = load_row(k, base, j, n, width, scale, gw);
    let vrow = load_row(v, base, j, n, width, 1.0_f32, gw);
    let mut lam = f32::new(0.0);
    if pair {
        lam = f32::cast_from(params[0]);
    }
    // Causal: query rows before the cube's first key see none of its keys.
    let mut first_tile = 0;
    if causal {
        first_tile = (j - unit) / tile;
    }
    let tiles_q = (n + tile - 1) / tile;
    let mut qs = Shared::<[f32]>::new_slice(comptime!(tile * gw));
    let mut os = Shared::<[f32]>::new_slice(comptime!(tile * gw));
    let mut st = Shared::<[f32]>::new_slice(comptime!(tile * 4));
    let mut dk = zeros(gw);
    let mut dv = zeros(gw);
    for it in first_tile..tiles_q {
        let i0 = it * tile;
        stage(q, &mut qs, base, i0 + unit, n, width, unit * gw, gw);
        stage(dout, &mut os, base, i0 + unit, n, width, unit * gw, gw);
        stage(stats, &mut st, bg * n * 4, i0 + unit, n, 4, unit * 4, 4usize);
        sync_cube();
        for t_ in 0..tile {
            let i = i0 + t_;
            let mut sees = live && i < n;
            if causal {
                sees = sees && i >= j;
            }
            if sees {
                let (s1, s2) = staged_scores(&krow, &qs, t_ * gw, hd, pair);
                let a1 = (s1 - st[t_ * 4]).exp();
                let dp = staged_dot(&vrow, &os, t_ * gw, gw);
                let mut p = a1;
                let ds1 = a1 * (dp - st[t_ * 4 + 2]);
                for t in 0..hd {
                    dk[t] += ds1 * qs[t_ * gw + t];
                }
                if pair {
                    let a2 = (s2 - st[t_ * 4 + 1]).exp();
                    p -= lam * a2;
                    let ds2 = -lam * a2 * (dp - st[t_ * 4 + 3]);
                    for t in 0..hd {
                        dk[hd + t] += ds2 * qs[t_ * gw + hd + t];
                    }
                }
                for c in 0..gw {
                    dv[c] += p * os[t_ * gw + c];
                }
            }
        }
        sync_cube();
    }
    if live {
        let ko = base + j * width;
        let dv_at = dkv.len() / 2;
        for c in 0..gw {
            dkv[ko + c] = E::cast_from(dk[c] * scale);
            dkv[dv_at + ko + c] = E::cast_from(dv[c]);
        }
    }
}

/// The per-row statistics `[rows, 4]` of the backward.
#[allow(clippy::too_many_arguments)]
pub(super) fn stats(q: CubeTensor, k: CubeTensor, v: CubeTensor, dout: CubeTensor, lse: CubeTensor, heads: usize, scale: f32, causal: bool, pair: bool) -> CubeTensor {
    let [q, k, v, dout, lse] = [q, k, v, dout, lse].map(into_contiguous);
    let p = plan(&q, heads, pair, &[&q, &k, &v, &dout]);
    let t = tiles(&q, q.shape()[0] * p.groups, p.n, 2 * group_width(p.hd, pair));
    let stats = empty(&q, [p.rows, 4].into(), DType::F32);
    stats_kernel::launch(
        &q.client.clone(), t.count, t.dim, p.address, q.into_tensor_arg(), k.into_tensor_arg(), v.into_tensor_arg(),
        dout.into_tensor_arg(), lse.into_tensor_arg(), stats.clone().into_tensor_arg(), t.cubes, p.n, p.groups, scale, p.hd,
        t.tile, causal, p.pair, p.elem,
    );
    stats
}

/// dQ `[B, N, W]`.
#[allow(clippy::too_many_arguments)]
pub(super) fn dq(q: CubeTensor, k: CubeTensor, v: CubeTensor, params: CubeTensor, dout: CubeTensor, stats: CubeTensor, heads: usize, scale: f32, causal: bool, pair: bool) -> CubeTensor {
    let [q, k, v, params, dout, stats] = [q, k, v, params, dout, stats].map(into_contiguous);
    let p = plan(&q, heads, pair, &[&q, &k, &v, &dout]);
    let t = tiles(&q, q.shape()[0] * p.groups, p.n, 2 * group_width(p.hd, pair));
    let dq = empty(&q, q.shape(), q.dtype);
    dq_kernel::launch(
        &q.client.clone(), t.count, t.dim, p.address, q.into_tensor_arg(), k.into_tensor_arg(), v.into_tensor_arg(),
        params.into_tensor_arg(), dout.into_tensor_arg(), stats.into_tensor_arg(), dq.clone().into_tensor_arg(), t.cubes, p.n,
        p.groups, scale, p.hd, t.tile, causal, p.pair, p.elem,
    );
    dq
}

/// dK and dV stacked, `[2B, N, W]`.
#[allow(clippy::too_many_arguments)]
pub(super) fn dkv(q: CubeTensor, k: CubeTensor, v: CubeTensor, params: CubeTensor, dout: CubeTensor, stats: CubeTensor, heads: usize, scale: f32, causal: bool, pair: bool) -> CubeTensor {
    let [q, k, v, params, dout, stats] = [q, k, v, params, dout, stats].map(into_contiguous);
    let shape = q.shape();
    let dkv = empty(&q, [2 * shape[0], shape[1], shape[2]].into(), q.dtype);
    let p = plan(&q, heads, pair, &[&q, &k, &v, &dout, &dkv]);
    let t = tiles(&q, shape[0] * p.groups, p.n, 2 * group_width(p.hd, pair) + 4);
    dkv_kernel::launch(
        &q.client.clone(), t.count, t.dim, p.address, q.into_tensor_arg(), k.into_tensor_arg(), v.into_tensor_arg(),
        params.into_tensor_arg(), dout.into_tensor_arg(), stats.into_tensor_arg(), dkv.clone().into_tensor_arg(), t.cubes, p.n,
        p.groups, scale, p.hd, t.tile, causal, p.pair, p.elem,
    );
    dkv
}
