//! `x·W + b` for a few rows of `x` (a lone caption, a pooled token, a small batch of short
//! texts), where the weights' memory traffic, not arithmetic, sets the time.
//!
//! The `gemm` crate multiplies few rows by reading each 16-column panel of `W` down all its `k`
//! rows, one cache line per row, a row apart: every line is on another page, out of the
//! prefetchers' reach, and the weights stream at a fraction of the memory's rate (5 GB/s of
//! ~34 on a 2-core AMD EPYC); the lines of a panel, a power of two apart, also share a few
//! L1 sets and evict each other. Here the columns are cut into bands (two per thread) and each copies `W` 128
//! rows at a time along its rows (consecutive lines, the next rows asked for ahead) into one
//! contiguous panel after another, which 6-row × 16-column register tiles then read from
//! cache, holding the band's sums in a buffer between blocks. A lone 16-token caption through
//! DiffCLIP ViT-B/16's text tower: 37.5 → 18.7 ms (2-core AMD EPYC, Zen 3).
//!
//! The sums are the `gemm` crate's to the bit, so a row's output does not depend on how many
//! rows come with it: each output element is one chain of fused multiply-adds over `k` in
//! order, restarted every `kc` values and added to the output (its first block onto the bias).
//! `kc` is the crate's own blocking, found once per `k` by comparing with it
//! ([`kc_matching_gemm`]); where no candidate matches, or the CPU lacks AVX2 and FMA, the
//! `gemm` crate does the product, as it does with `DIFFCLIP_NO_FEW_ROWS=1` (for comparisons).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use rayon::prelude::*;

use super::attention::SendPtr;
use super::linear::LinearDims;

/// Most rows this path takes (a lone caption of 77 tokens, 1.5× the `gemm` crate's speed on
/// a 2-core AMD EPYC); at ~200 rows the two are level, and more rows reuse each weight enough
/// for the crate's kernel.
pub(super) const MAX_ROWS: usize = 128;

/// Rows of `W` a band copies and multiplies before the next ones.
const K_BLOCK: usize = 128;

/// Weights from which a product is split among threads.
const PARALLEL_WEIGHTS: usize = 1 << 16;

/// Columns of one register tile (two AVX vectors).
const PANEL: usize = 16;

/// `x·W + b` for `rows ≤ MAX_ROWS` (`x` is `rows × k`, `W` is `k × n` row-major), or `None`
/// where this path does not apply (see the module's documentation).
pub(super) fn forward(x: &[f32], w: &[f32], b: Option<&[f32]>, d: LinearDims) -> Option<Vec<f32>> {
    let LinearDims { rows, k, n } = d;
    if !applies(d) {
        return None;
    }
    let kc = kc_matching_gemm(k)?;
    assert!(x.len() >= rows * k && w.len() >= k * n && b.is_none_or(|b| b.len() >= n));
    // SAFETY: the shapes are asserted and the CPU has AVX2 and FMA (`available`).
    Some(super::written(rows * n, |out| unsafe { product(d, kc, out.as_mut_ptr().cast(), x.as_ptr(), w.as_ptr(), b) }))
}

/// Whether a product of these dimensions can take this path (if the `gemm` crate's blocking
/// for its `k` is found).
pub(super) fn applies(LinearDims { rows, k, n }: LinearDims) -> bool {
    // One output column or k ≤ 2 take the crate's other paths (a reduction across lanes, an
    // unfused product), whose sums are not one chain in order.
    (1..=MAX_ROWS).contains(&rows) && k > 2 && n > 1 && available()
}

fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            std::env::var_os("DIFFCLIP_NO_FEW_ROWS").is_none_or(|v| v != "1") && is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The `gemm` crate's `kc` for products over `k` (it depends on `k`, the caches and the
/// crate's kernel for this CPU, not on the rows or columns), or
/// `None` if none of the candidates gives its bits. Checked once per `k` on 72 rows (past the
/// crate's special case for at most 64 rows and columns, so its blocking for any number of
/// rows over [`MAX_ROWS`]) against this path's product.
fn kc_matching_gemm(k: usize) -> Option<usize> {
    static FOUND: OnceLock<Mutex<HashMap<usize, Option<usize>>>> = OnceLock::new();
    let found = FOUND.get_or_init(Default::default);
    if let Some(&kc) = found.lock().unwrap_or_else(|e| e.into_inner()).get(&k) {
        return kc;
    }
    let (rows, n) = (72, 2 * PANEL + 3);
    // Magnitudes spread over many octaves, so sums split elsewhere round differently.
    let value = |i: usize, seed: u32| {
        let h = (i as u32 ^ seed).wrapping_mul(2_654_435_761).rotate_left(13).wrapping_mul(0x9e37_79b9);
        (h % 2001) as f32 / 1000.0 - 1.0 + ((h >> 20) % 7) as f32 * (h % 3) as f32 * 0.37
    };
    let x: Vec<f32> = (0..rows * k).map(|i| value(i, 1)).collect();
    let w: Vec<f32> = (0..k * n).map(|i| value(i, 2) * if i % 5 == 0 { 64.0 } else { 0.03 }).collect();
    let b: Vec<f32> = (0..n).map(|i| value(i, 3)).collect();
    let d = LinearDims { rows, k, n };
    // In f32 whatever this thread's precision: the crate's blocking is what is probed.
    let want = super::linear::forward_gemm(true, &x, &w, Some(&b), d);
    let candidates = [k, 512, 256, 1024, k.div_ceil(k.div_ceil(512)), k.div_ceil(k.div_ceil(256)), k.div_ceil(k.div_ceil(1024)), k.div_ceil(k.div_ceil(2048))];
    let kc = candidates.into_iter().filter(|&kc| kc <= k).find(|&kc| {
        // SAFETY: the shapes hold by construction; AVX2 and FMA are checked by the caller.
        let got = super::written(rows * n, |out| unsafe { product(d, kc, out.as_mut_ptr().cast(), x.as_ptr(), w.as_ptr(), Some(&b)) });
        got.iter().zip(&want).all(|(g, w)| g.to_bits() == w.to_bits())
    });
    found.lock().unwrap_or_else(|e| e.into_inner()).insert(k, kc);
    kc
}

/// `out = b + x·W`, each element summed over `k` in blocks of `kc`, every element written.
///
/// SAFETY: `x` holds `rows × k` values, `w` `k × n`, `out` `rows × n`, a bias `n`; the CPU has
/// AVX2 and FMA.
unsafe fn product(d: LinearDims, kc: usize, out: *mut f32, x: *const f32, w: *const f32, b: Option<&[f32]>) {
    let LinearDims { k, n, .. } = d;
    let threads = rayon::current_num_threads();
    let band = n.div_ceil(2 * threads).next_multiple_of(PANEL).clamp(PANEL, 256);
    let bands = n.div_ceil(band);
    let (out, x, w) = (SendPtr(out), SendPtr(x.cast_mut()), SendPtr(w.cast_mut()));
    let run = |(sums, block): &mut (Vec<f32>, Vec<f32>), i: usize| {
        let (j0, width) = (i * band, band.min(n - i * band));
        // SAFETY: band i's columns of `out` are written by this task alone; the rest is the
        // caller's contract.
        unsafe { band_product(d, kc, [j0, width], out.get(), x.get(), w.get(), b, sums, block) }
    };
    // Threads pay once the weights take longer to read than to hand out (256 KiB and more).
    if k * n >= PARALLEL_WEIGHTS {
        (0..bands).into_par_iter().for_each_init(Default::default, run);
    } else {
        let mut buffers = Default::default();
        (0..bands).for_each(|i| run(&mut buffers, i));
    }
}

/// Columns `j0 .. j0 + width` of [`product`], with `sums` and `block` as the band's buffers.
///
/// SAFETY: as for [`product`], and no other thread touches these columns of `out`.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
unsafe fn band_product(
    LinearDims { rows, k, n }: LinearDims,
    kc: usize,
    [j0, width]: [usize; 2],
    out: *mut f32,
    x: *const f32,
    w: *const f32,
    b: Option<&[f32]>,
    sums: &mut Vec<f32>,
    block: &mut Vec<f32>,
) {
    sums.clear();
    sums.resize(rows * width, 0.0);
    let panels = width / PANEL * PANEL;
    block.resize(panels * K_BLOCK, 0.0);
    for k0 in (0..k).step_by(kc) {
        let k1 = (k0 + kc).min(k);
        sums.fill(0.0);
        let s = sums.as_mut_ptr();
        for kb in (k0..k1).step_by(K_BLOCK) {
            let depth = K_BLOCK.min(k1 - kb);
            // The block's rows of the band, read along W's rows (consecutive lines, which the
            // prefetchers follow) into one contiguous panel after another (which the tiles
            // read without the cache conflicts of W's power-of-two row stride).
            for l in 0..depth {
                // A row a few ahead is asked for now: each row starts on another page, where
                // the prefetchers do not follow.
                if kb + l + AHEAD < k {
                    // SAFETY: that row's band is in bounds of `w`.
                    unsafe { prefetch(w.add((kb + l + AHEAD) * n + j0), width) };
                }
                for p in (0..panels).step_by(PANEL) {
                    // SAFETY: row kb + l, columns j0 + p .. + PANEL of `w`; the buffer holds
                    // `panels × depth` values.
                    unsafe { std::ptr::copy_nonoverlapping(w.add((kb + l) * n + j0 + p), block.as_mut_ptr().add(p * depth + l * PANEL), PANEL) };
                }
            }
            for p in (0..panels).step_by(PANEL) {
                // SAFETY: panel p's `depth` rows in the buffer.
                let wp = unsafe { block.as_ptr().add(p * depth) };
                let mut i = 0;
                while i < rows {
                    let r = (rows - i).min(6);
                    // SAFETY: rows i .. i + r of the sums and of x, columns of the panel.
                    unsafe {
                        let (sp, xp) = (s.add(i * width + p), x.add(i * k + kb));
                        match r {
                            6 => tile::<6>(sp, width, xp, k, wp, PANEL, depth),
                            5 => tile::<5>(sp, width, xp, k, wp, PANEL, depth),
                            4 => tile::<4>(sp, width, xp, k, wp, PANEL, depth),
                            3 => tile::<3>(sp, width, xp, k, wp, PANEL, depth),
                            2 => tile::<2>(sp, width, xp, k, wp, PANEL, depth),
                            _ => tile::<1>(sp, width, xp, k, wp, PANEL, depth),
                        }
                    }
                    i += r;
                }
            }
            // The band's last columns, fewer than a panel.
            for i in 0..rows {
                for c in panels..width {
                    // SAFETY: in bounds as above.
                    unsafe {
                        let mut acc = *s.add(i * width + c);
                        for l in kb..kb + depth {
                            acc = (*x.add(i * k + l)).mul_add(*w.add(l * n + j0 + c), acc);
                        }
                        *s.add(i * width + c) = acc;
                    }
                }
            }
        }
        for i in 0..rows {
            for c in 0..width {
                // SAFETY: row i, column j0 + c of `out`: this band's; written once per block.
                unsafe {
                    let dst = out.add(i * n + j0 + c);
                    let sum = *s.add(i * width + c);
                    *dst = match (k0, b) {
                        (0, None) => sum,
                        (0, Some(b)) => b[j0 + c] + sum,
                        _ => *dst + sum,
                    };
                }
            }
        }
    }
}

/// `sums[r][0..16] += Σ_l x[r][l]·w[l][0..16]` for `l < depth`, `R` rows: one fused
/// multiply-add chain per element, in order of `l`.
///
/// SAFETY: `sums` (row stride `sums_rs`), `x` (`x_rs`) and `w` (`w_rs`) address those rows
/// and columns; the CPU has AVX2 and FMA.
#[inline(always)]
#[cfg(target_arch = "x86_64")]
unsafe fn tile<const R: usize>(sums: *mut f32, sums_rs: usize, x: *const f32, x_rs: usize, w: *const f32, w_rs: usize, depth: usize) {
    use std::arch::x86_64::*;
    // SAFETY: the caller's contract.
    unsafe {
        let mut lo = [_mm256_setzero_ps(); R];
        let mut hi = [_mm256_setzero_ps(); R];
        for r in 0..R {
            lo[r] = _mm256_loadu_ps(sums.add(r * sums_rs));
            hi[r] = _mm256_loadu_ps(sums.add(r * sums_rs + 8));
        }
        for l in 0..depth {
            let (w_lo, w_hi) = (_mm256_loadu_ps(w.add(l * w_rs)), _mm256_loadu_ps(w.add(l * w_rs + 8)));
            for r in 0..R {
                let xv = _mm256_broadcast_ss(&*x.add(r * x_rs + l));
                lo[r] = _mm256_fmadd_ps(xv, w_lo, lo[r]);
                hi[r] = _mm256_fmadd_ps(xv, w_hi, hi[r]);
            }
        }
        for r in 0..R {
            _mm256_storeu_ps(sums.add(r * sums_rs), lo[r]);
            _mm256_storeu_ps(sums.add(r * sums_rs + 8), hi[r]);
        }
    }
}

/// Rows of `W` asked for ahead of their copy.
const AHEAD: usize = 4;

/// Asks for the cache lines of `len` values from `from`.
///
/// SAFETY: none needed (a prefetch does not fault); `from` is in bounds here anyway.
#[inline(always)]
unsafe fn prefetch(from: *const f32, len: usize) {
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (from, len);
    #[cfg(target_arch = "x86_64")]
    for i in (0..len).step_by(16) {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: see above.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(from.wrapping_add(i).cast()) };
    }
}

/// Never called: [`available`] is false off x86-64.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn tile<const R: usize>(_: *mut f32, _: usize, _: *const f32, _: usize, _: *const f32, _: usize, _: usize) {
    unreachable!("the few-rows product needs AVX2 and FMA")
}

#[cfg(test)]
mod tests {
    use super::super::linear::tests::values;
    use super::*;

    #[test]
    fn rows_are_the_bits_of_the_gemm_crate_on_many_rows() {
        if !available() {
            return assert!(forward(&[0.0; 4], &[0.0; 4], None, LinearDims { rows: 2, k: 2, n: 2 }).is_none());
        }
        // k across the crate's blocking (one block, two uneven ones, several); n with a
        // partial panel and a partial band; with and without the bias.
        for (k, n) in [(5, 7), (512, 384), (768, 40), (1100, 17), (2048, 96), (3072, 48)] {
            let all = 150;
            let (x, w, b) = (values(all * k, 5), values(k * n, 6), values(n, 7));
            for bias in [None, Some(&b[..])] {
                let batched = super::super::linear::forward_gemm(true, &x, &w, bias, LinearDims { rows: all, k, n });
                for rows in [1, 2, 5, 6, 7, 13, MAX_ROWS] {
                    let few = forward(&x[..rows * k], &w, bias, LinearDims { rows, k, n }).expect("the few-rows path applies");
                    let same = few.iter().zip(&batched[..rows * n]).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "k {k}, n {n}, {rows} rows, bias {}", bias.is_some());
                }
            }
        }
    }

    #[test]
    fn too_many_rows_or_an_empty_product_take_the_gemm_crate() {
        let d = |rows, k, n| LinearDims { rows, k, n };
        assert!(forward(&values((MAX_ROWS + 1) * 8, 1), &values(64, 2), None, d(MAX_ROWS + 1, 8, 8)).is_none());
        assert!(forward(&[], &[], None, d(3, 0, 4)).is_none());
        assert!(forward(&values(3 * 2, 1), &values(2 * 4, 2), None, d(3, 2, 4)).is_none());
        assert!(forward(&values(3 * 8, 1), &values(8, 2), None, d(3, 8, 1)).is_none());
        assert!(forward(&[], &[], None, d(0, 4, 4)).is_none());
    }
}
