//! Attention inference with bf16 products on a block kernel (AMX's tiles, `vdpbf16ps`): the
//! scores `Q·Kᵀ` and `A·V` run on it; softmax, the differential combination and the RMSNorm
//! stay f32.
//!
//! A work item is one (batch, output group): its keys (`Kᵀ`, per map) and values are rounded
//! and packed once in the tiles' layout, then each block of 32 query rows goes through scores,
//! softmax, `A1 − λ·A2`, bf16 rounding and the product with V in per-thread scratch, without
//! the generic GEMM's per-call packing, allocations and tile configuration.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::SendPtr;
use super::aligned::Aligned;
use super::blocked::{BLOCK, Kernel, convert_row, pack_rhs};
use crate::cpu::attention::{Combine, Dims, Inputs, group_shape};
use crate::cpu::simd;

/// `out` as one row of a bf16 operand: the `valid` values at `src` rounded, then zeros.
///
/// SAFETY: `src` addresses `valid` values, contiguous; the CPU has AVX-512 (F, BW).
unsafe fn bf16_row(src: *const f32, valid: usize, out: &mut [u16]) {
    // SAFETY: u16 and MaybeUninit<u16> share a layout; every element is written below.
    let view = unsafe { &mut *(out as *mut [u16] as *mut [MaybeUninit<u16>]) };
    // SAFETY: the caller's contract.
    unsafe { convert_row(src, 1, &mut view[..valid]) };
    out[valid..].fill(0);
}

/// Kᵀ of one head (`hd × n`: keys as columns) in [`pack_rhs`]'s layout, into `out` (`np / BLOCK`
/// panels of `kd / 2` pairs × BLOCK keys): each key's row rounded to bf16 pairs as a whole
/// (vectorised), then BLOCK × BLOCK squares of pairs transposed; zeros past `n` and `hd`.
/// `rows` is scratch of BLOCK × `kd` values.
///
/// SAFETY: `k` addresses `n` rows of `hd` values, `row_stride` apart; the CPU has AVX-512.
unsafe fn pack_keys(k: *const f32, row_stride: usize, [n, hd]: [usize; 2], rows: &mut Aligned<u16>, out: &mut [u32]) {
    let kd = rows.len() / BLOCK;
    let pairs = kd / 2;
    assert!(hd <= kd && out.len().is_multiple_of(pairs * BLOCK) && out.len() / (pairs * BLOCK) >= n.div_ceil(BLOCK));
    for (panel, packed) in out.chunks_exact_mut(pairs * BLOCK).enumerate() {
        for (c, row) in rows.chunks_exact_mut(kd).enumerate() {
            let key = panel * BLOCK + c;
            if key < n {
                // SAFETY: key < n (the caller's contract); AVX-512 likewise.
                unsafe { bf16_row(k.add(key * row_stride), hd, row) };
            } else {
                row.fill(0);
            }
        }
        // SAFETY: the rows are 64-byte aligned (Aligned) and hold BLOCK × kd u16, so as many u32
        // pairs; u16 pairs read as u32 little-endian are (first, second << 16), `tdpbf16ps`'s order.
        let keyed = unsafe { std::slice::from_raw_parts(rows.as_ptr().cast::<u32>(), BLOCK * pairs) };
        for (p, dst) in packed.chunks_exact_mut(BLOCK).enumerate() {
            for (c, d) in dst.iter_mut().enumerate() {
                *d = keyed[c * pairs + p];
            }
        }
    }
}

/// Attention output `[batch, n, width]` (before the output projection) of row-major q, k, v,
/// as [`crate::cpu::attention::attention`] computes it, with bf16 operands in both products.
///
/// SAFETY: kernel `K` is available (its CPU has AVX-512 F and BW).
pub(crate) unsafe fn attention<K: Kernel>(x: Inputs) -> Vec<f32> {
    let Inputs { q, k, v, dims, scale, causal, combine, gamma } = x;
    let Dims { batch, n, width, .. } = dims;
    let (groups, maps, hd, vd) = group_shape(dims, matches!(combine, Combine::Diff { .. }));
    assert!(q.len() == batch * n * width && k.len() == q.len() && v.len() == q.len());
    assert!(groups * vd == width && (groups * maps) * hd == width);
    if let Combine::Diff { norm: Some(_), .. } = combine {
        assert_eq!(gamma.len(), vd, "RMSNorm gain has {} values, expected {vd}", gamma.len());
    }
    let mut out = vec![0.0f32; batch * n * width];
    if out.is_empty() {
        return out;
    }
    // Keys padded to whole blocks (the scores' columns, `A·V`'s k), head and value widths too.
    let (np, kd, vp) = (n.div_ceil(BLOCK) * BLOCK, hd.div_ceil(BLOCK) * BLOCK, vd.div_ceil(BLOCK) * BLOCK);
    let out_ptr = SendPtr(out.as_mut_ptr());
    // Items are (batch, group, run of query-row blocks): runs split the rows only where there
    // are fewer (batch, group) pairs than tasks for every thread, each run packing K and V anew.
    let pairs = batch * groups;
    let blocks = np / BLOCK;
    let run_blocks = blocks.div_ceil((4 * rayon::current_num_threads()).div_ceil(pairs).clamp(1, blocks));
    let (runs, run_rows) = (blocks.div_ceil(run_blocks), run_blocks * BLOCK);
    let scratch = || {
        let keys: Vec<Aligned<u32>> = (0..maps).map(|_| Aligned::zeroed(np * kd / 2)).collect();
        let (q_rows, a_rows) = (Aligned::<u16>::zeroed(BLOCK * kd), Aligned::<u16>::zeroed(BLOCK * np));
        (keys, q_rows, a_rows, vec![0.0f32; maps * BLOCK * np], vec![0.0f32; BLOCK * vp])
    };
    (0..pairs * runs).into_par_iter().for_each_init(scratch, |(keys, q_rows, a_rows, scores, o), item| {
        let (b, g, run) = (item / runs / groups, item / runs % groups, item % runs);
        let base = b * n * width;
        // SAFETY: K is available and its CPU has AVX-512 (the caller's contract); every pointer
        // below addresses rows of this batch's q, k, v (asserted sizes) or this item's scratch.
        unsafe {
            // Kᵀ of each map's head and the group's values (n × vd), packed once per item and
            // on this thread, before the tiles are configured: nothing waits on rayon while they are.
            for (m, keys) in keys.iter_mut().enumerate() {
                pack_keys(k.as_ptr().add(base + (g * maps + m) * hd), width, [n, hd], q_rows, keys);
            }
            let values = pack_rhs(v.as_ptr().add(base + g * vd), [width, 1], n, vd, true);
            let kernel = K::begin();
            for r0 in (run * run_rows..((run + 1) * run_rows).min(n)).step_by(BLOCK) {
                let r = BLOCK.min(n - r0);
                for (m, keys) in keys.iter().enumerate() {
                    let head = g * maps + m;
                    for (i, row) in q_rows.chunks_exact_mut(kd).enumerate() {
                        if i < r {
                            bf16_row(q.as_ptr().add(base + (r0 + i) * width + head * hd), hd, row);
                        } else {
                            row.fill(0);
                        }
                    }
                    let s = &mut scores[m * BLOCK * np..][..BLOCK * np];
                    for p in 0..np / BLOCK {
                        let panel = &keys[p * (kd / 2) * BLOCK..][..(kd / 2) * BLOCK];
                        kernel.product(q_rows, panel, kd, r, s.as_mut_ptr().add(p * BLOCK), np, None);
                    }
                    for (i, row) in s.chunks_exact_mut(np).take(r).enumerate() {
                        let valid = if causal { r0 + i + 1 } else { n };
                        simd::softmax_row(&mut row[..n], valid, scale);
                    }
                }
                let (a1, a2) = scores.split_at_mut(BLOCK * np);
                let norm = match combine {
                    Combine::Single => None,
                    Combine::Diff { lambda, norm } => {
                        for (x, y) in a1.chunks_exact_mut(np).zip(a2.chunks_exact(np)).take(r) {
                            simd::sub_scaled(&mut x[..n], &y[..n], *lambda);
                        }
                        *norm
                    }
                };
                for (i, row) in a_rows.chunks_exact_mut(np).enumerate() {
                    if i < r {
                        bf16_row(a1.as_ptr().add(i * np), n, row);
                    } else {
                        row.fill(0);
                    }
                }
                for p in 0..vp / BLOCK {
                    let panel = &values[p * (np / 2) * BLOCK..][..(np / 2) * BLOCK];
                    kernel.product(a_rows, panel, np, r, o.as_mut_ptr().add(p * BLOCK), vp, None);
                }
                for (i, row) in o.chunks_exact(vp).take(r).enumerate() {
                    // This item alone writes rows r0.., columns g·vd.. (g+1)·vd of `out`.
                    let dst = std::slice::from_raw_parts_mut(out_ptr.get().add(base + (r0 + i) * width + g * vd), vd);
                    match norm {
                        Some((eps, out_scale)) => simd::rms_norm_row(&row[..vd], dst, gamma, eps, out_scale),
                        None => dst.copy_from_slice(&row[..vd]),
                    }
                }
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::super::blocked::tests::{Scalar, avx512};
    use super::super::round_bf16;
    use super::super::tests::values;
    use super::*;

    /// Against the f32 kernel fed the operands rounded to bf16, and the rounded engine against the
    /// tiles (the same products summed in another order). The first two differ by the rounding of
    /// the attention weights before `A·V` (< 2⁻⁸ of each), so a wrong head, key, panel, mask,
    /// scale, λ or norm shows as an error of the outputs' own size. Standard and differential
    /// heads (with and without the norm), causal or not, head widths off the 32-wide blocks, on
    /// the scalar block kernel (any AVX-512 CPU) and on AMX and AVX512-BF16 where the CPU has them.
    #[test]
    fn matches_the_f32_kernel_on_rounded_operands() {
        if !avx512() {
            return;
        }
        type Run = unsafe fn(Inputs) -> Vec<f32>;
        let mut kernels: Vec<(&str, Run)> = vec![("scalar", attention::<Scalar> as Run)];
        if super::super::amx::available() {
            kernels.push(("amx", attention::<super::super::amx::Tiles> as Run));
        }
        if super::super::dot_pairs::available() {
            kernels.push(("avx512-bf16", attention::<super::super::dot_pairs::DotPairs> as Run));
        }
        // The last: n·vd past the size where V would be packed on several threads, and one
        // (batch, group) pair, so the rows are split into runs.
        for (batch, n, width, heads) in [(2usize, 37usize, 64usize, 4usize), (1, 70, 128, 2), (3, 5, 96, 2), (1, 300, 512, 2)] {
            let len = batch * n * width;
            let (q, k, v) = (values(len, 31), values(len, 32), values(len, 33));
            let round = |x: &[f32]| x.iter().map(|&v| round_bf16(v)).collect::<Vec<f32>>();
            let (qr, kr, vr) = (round(&q), round(&k), round(&v));
            let dims = Dims { batch, n, width, heads };
            let gamma: Vec<f32> = (0..2 * width / heads).map(|i| 0.5 + i as f32 / 64.0).collect();
            let combines = [
                ("single", Combine::Single),
                ("diff", Combine::Diff { lambda: 0.3, norm: None }),
                ("diff+norm", Combine::Diff { lambda: 0.3, norm: Some((1e-5, 0.8)) }),
            ];
            for (what, combine) in &combines {
                for causal in [false, true] {
                    let scale = (width as f32 / heads as f32).powf(-0.5);
                    let inputs = Inputs { q: &q, k: &k, v: &v, dims, scale, causal, combine, gamma: &gamma };
                    let (want, _) = crate::cpu::attention::attention(Inputs { q: &qr, k: &kr, v: &vr, ..inputs }, false, None);
                    let largest = want.iter().fold(0f32, |m, v| m.max(v.abs()));
                    // The rounded engine (CPUs without a pairs kernel): the same products, f32 sums.
                    let rounded = super::super::attention(super::super::Engine::RoundedBf16, inputs);
                    // SAFETY: AVX-512 checked.
                    let tiles = unsafe { attention::<Scalar>(inputs) };
                    let err = rounded.iter().zip(&tiles).fold(0f32, |m, (g, w)| m.max((g - w).abs())) / largest;
                    println!("rounded engine {what} causal={causal} [{batch}, {n}, {width}]: {err:e}");
                    // Measured ≤ 1.3e-4: an attention weight whose f32 value sits at a bf16
                    // rounding boundary may round the other way; unrounded weights give ~3e-3.
                    assert!(err < 1e-3, "rounded engine {what} causal={causal}: {err:e}");
                    for (name, run) in &kernels {
                        // SAFETY: AVX-512 checked; AMX and AVX512-BF16 only when available.
                        let got = unsafe { run(inputs) };
                        let err = got.iter().zip(&want).fold(0f32, |m, (g, w)| m.max((g - w).abs())) / largest;
                        let at = format!("{name} {what} causal={causal} [{batch}, {n}, {width}] heads {heads}");
                        println!("{at}: {err:e}");
                        assert!(err < 8e-3, "{at}: error {err:e} of the largest output {largest}");
                    }
                }
            }
        }
    }
}
