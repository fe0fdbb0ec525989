//! The attention's backward kernels: per-row statistics, dQ per query row, dK and dV per key
//! row, each recomputing the scores (layouts, groups and row numbering: `kernels.rs`).
//! Standard attention's statistics come from its output instead (FlashAttention-2's
//! `Σ_j A·dP = dO·O`); differential attention's cannot, since O mixes both maps.

use burn::backend::TensorMetadata;
use burn::tensor::DType;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::kernels::{at, dot_values, empty, group_width, locate, plan, scores, zeros};

/// Differential attention's statistics per row: both log-sum-exps, then `Σ_j A_m·dP` for
/// each map (`[rows, 4]`).
#[cube(launch, address_type = "dynamic")]
fn stats_kernel<E: Float>(
    q: &Tensor<E>,
    k: &Tensor<E>,
    v: &Tensor<E>,
    dout: &Tensor<E>,
    lse: &Tensor<f32>,
    stats: &mut Tensor<f32>,
    rows: usize,
    n: usize,
    groups: usize,
    scale: f32,
    #[comptime] hd: usize,
    #[comptime] causal: bool,
    #[define(E)] _dtype: ElemType,
) {
    let pos = ABSOLUTE_POS;
    if pos >= rows {
        terminate!();
    }
    let vd = comptime!(2 * hd);
    let (base, qo, i, width) = locate(pos, n, groups, vd);
    let l1 = lse[pos * 3];
    let l2 = lse[pos * 3 + 1];
    let end = if causal { i + 1 } else { n };
    let mut d1_sum = f32::new(0.0);
    let mut d2_sum = f32::new(0.0);
    for j in 0..end {
        let (s1, s2) = scores(q, k, qo, base + j * width, scale, hd, true);
        let dp = dot_values(dout, v, qo, base + j * width, vd);
        d1_sum += (s1 - l1).exp() * dp;
        d2_sum += (s2 - l2).exp() * dp;
    }
    stats[pos * 4] = l1;
    stats[pos * 4 + 1] = l2;
    stats[pos * 4 + 2] = d1_sum;
    stats[pos * 4 + 3] = d2_sum;
}

/// Standard attention's statistics from its output `o`: `Σ_j A[i,j]·dP[i,j] = dO_i·O_i`, one
/// pass over the row's `hd` columns instead of over every key.
#[cube(launch, address_type = "dynamic")]
fn output_stats_kernel<E: Float>(
    dout: &Tensor<E>,
    o: &Tensor<E>,
    lse: &Tensor<f32>,
    stats: &mut Tensor<f32>,
    rows: usize,
    n: usize,
    groups: usize,
    #[comptime] hd: usize,
    #[define(E)] _dtype: ElemType,
) {
    let pos = ABSOLUTE_POS;
    if pos >= rows {
        terminate!();
    }
    let (_base, qo, _i, _width) = locate(pos, n, groups, hd);
    stats[pos * 4] = lse[pos * 3];
    stats[pos * 4 + 1] = 0.0_f32;
    stats[pos * 4 + 2] = dot_values(dout, o, qo, qo, hd);
    stats[pos * 4 + 3] = 0.0_f32;
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

/// The per-row statistics `[rows, 4]` of the backward; `o` is standard attention's output
/// (unread with `pair`).
#[allow(clippy::too_many_arguments)]
pub(super) fn stats(q: CubeTensor, k: CubeTensor, v: CubeTensor, o: CubeTensor, dout: CubeTensor, lse: CubeTensor, heads: usize, scale: f32, causal: bool, pair: bool) -> CubeTensor {
    let [dout, lse] = [dout, lse].map(into_contiguous);
    let p = plan(&q, heads, pair, &[&q, &k, &v, &o, &dout]);
    let stats = empty(&q, [p.rows, 4].into(), DType::F32);
    let client = q.client.clone();
    // Each kernel's inputs only: the other's may be copies for nothing.
    if pair {
        let [q, k, v] = [q, k, v].map(into_contiguous);
        stats_kernel::launch(
            &client, p.count, p.dim, p.address, q.into_tensor_arg(), k.into_tensor_arg(), v.into_tensor_arg(), dout.into_tensor_arg(),
            lse.into_tensor_arg(), stats.clone().into_tensor_arg(), p.rows, p.n, p.groups, scale, p.hd, causal, p.elem,
        );
    } else {
        let o = into_contiguous(o);
        output_stats_kernel::launch(
            &client, p.count, p.dim, p.address, dout.into_tensor_arg(), o.into_tensor_arg(), lse.into_tensor_arg(),
            stats.clone().into_tensor_arg(), p.rows, p.n, p.groups, p.hd, p.elem,
        );
    }
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
