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

use super::kernels::{at, dot_values, empty, group_width, locate, plan, scores, zeros};

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
    let pos = ABSOLUTE_POS;
    if pos >= rows {
        terminate!();
    }
    let vd = comptime!(group_width(hd, pair));
    let (base, qo, i, width) = locate(pos, n, groups, vd);
    let mut lam = f32::new(0.0);
    if pair {
        lam = at(params, 0);
    }
    let (l1, l2) = (stats[pos * 4], stats[pos * 4 + 1]);
    let (r1, r2) = (stats[pos * 4 + 2], stats[pos * 4 + 3]);
    let end = if causal { i + 1 } else { n };
    let mut acc = zeros(vd);
    for j in 0..end {
        let ko = base + j * width;
        let (s1, s2) = scores(q, k, qo, ko, scale, hd, pair);
        let dp = dot_values(dout, v, qo, ko, vd);
        let ds1 = (s1 - l1).exp() * (dp - r1);
        for t in 0..hd {
            acc[t] += ds1 * at(k, ko + t);
        }
        if pair {
            let ds2 = -lam * (s2 - l2).exp() * (dp - r2);
            for t in 0..hd {
                acc[hd + t] += ds2 * at(k, ko + hd + t);
            }
        }
    }
    for c in 0..vd {
        dq[qo + c] = E::cast_from(acc[c] * scale);
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
    let pos = ABSOLUTE_POS;
    if pos >= rows {
        terminate!();
    }
    let vd = comptime!(group_width(hd, pair));
    let (base, ko, j, width) = locate(pos, n, groups, vd);
    let mut lam = f32::new(0.0);
    if pair {
        lam = at(params, 0);
    }
    let mut start = 0;
    if causal {
        start = j;
    }
    let first_row = pos - j;
    let mut dk = zeros(vd);
    let mut dv = zeros(vd);
    for i in start..n {
        let qo = base + i * width;
        let r = (first_row + i) * 4;
        let (s1, s2) = scores(q, k, qo, ko, scale, hd, pair);
        let a1 = (s1 - stats[r]).exp();
        let dp = dot_values(dout, v, qo, ko, vd);
        let mut p = a1;
        let ds1 = a1 * (dp - stats[r + 2]);
        for t in 0..hd {
            dk[t] += ds1 * at(q, qo + t);
        }
        if pair {
            let a2 = (s2 - stats[r + 1]).exp();
            p -= lam * a2;
            let ds2 = -lam * a2 * (dp - stats[r + 3]);
            for t in 0..hd {
                dk[hd + t] += ds2 * at(q, qo + hd + t);
            }
        }
        for c in 0..vd {
            dv[c] += p * at(dout, qo + c);
        }
    }
    let dv_at = dkv.len() / 2;
    for c in 0..vd {
        dkv[ko + c] = E::cast_from(dk[c] * scale);
        dkv[dv_at + ko + c] = E::cast_from(dv[c]);
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
    let p = plan(&q, heads, pair, &[&q, &k, &v, &dout]);
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
    let p = plan(&q, heads, pair, &[&q, &k, &v, &dout, &dkv]);
    dkv_kernel::launch(
        &q.client.clone(), p.count, p.dim, p.address, q.into_tensor_arg(), k.into_tensor_arg(), v.into_tensor_arg(),
        params.into_tensor_arg(), dout.into_tensor_arg(), stats.into_tensor_arg(), dkv.clone().into_tensor_arg(), p.rows, p.n,
        p.groups, scale, p.hd, causal, p.pair, p.elem,
    );
    dkv
}
