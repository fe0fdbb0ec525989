//! The bf16 GEMM around a block kernel (AMX's tiles, AVX512-BF16's `vdpbf16ps`): both operands
//! rounded and packed once, 32 × 32 output blocks, `k` summed in order.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::aligned::Aligned;
use super::{SendPtr, Start, bf16_bits};

/// The block edge: output blocks are `BLOCK × BLOCK`, `k` runs in steps of `BLOCK`.
pub(super) const BLOCK: usize = 32;

/// Computes one output block from packed operands.
pub(super) trait Kernel {
    /// Ready to compute on this thread (AMX loads its tile configuration).
    ///
    /// SAFETY: the CPU has the instructions the kernel uses (its `available()`).
    unsafe fn begin() -> Self;

    /// `out = start + lhs · rhs`: `lhs` is BLOCK rows of `kp` bf16, `rhs` one packed column
    /// panel of `kp / 2` pairs × BLOCK columns, `out` BLOCK rows of BLOCK f32, `out_stride` f32
    /// apart. The sums start at zero, or at `start`'s BLOCK rows of BLOCK f32 `stride` f32
    /// apart (0 repeats one row: a bias). AMX flushes a subnormal start to zero (`vdpbf16ps`
    /// flushes subnormal operands). Only the first `rows` (1 to BLOCK) rows of `out` are read
    /// back: a kernel may skip the others (padding) or write anything there.
    ///
    /// SAFETY: `out` addresses such a block, not overlapping the operands; `start` addresses
    /// initialised values of that shape.
    #[allow(clippy::too_many_arguments)]
    unsafe fn product(&self, lhs: &[u16], rhs: &[u32], kp: usize, rows: usize, out: *mut f32, out_stride: usize, start: Option<(*const f32, usize)>);
}

/// Rows of output (a multiple of `BLOCK`) whose `lhs` block, `rows × kp` bf16, stays
/// within about 512 KiB (the L2 of one core holds it beside a `rhs` panel).
fn rows_per_task(kp: usize) -> usize {
    ((256 * 1024 / kp) / BLOCK * BLOCK).clamp(BLOCK, 16 * BLOCK)
}

/// `rhs` (`k × n`, strides `[row, column]`) in column panels of BLOCK columns, `k` in
/// pairs with each pair's two values side by side per column (the layout `tdpbf16ps`
/// reads); zeros past `n` and `k`.
///
/// Large matrices are packed on rayon's threads unless `sequential` (a caller holding the tile
/// state must not wait on other tasks, which rayon may run on its thread meanwhile).
///
/// SAFETY: `rhs` addresses a valid `k × n` matrix; the CPU has AVX-512 (F, BW).
pub(super) unsafe fn pack_rhs(rhs: *const f32, [rrs, rcs]: [usize; 2], k: usize, n: usize, sequential: bool) -> Aligned<u32> {
    let kp = k.div_ceil(BLOCK) * BLOCK;
    let panels = n.div_ceil(BLOCK);
    if kp == 0 || panels == 0 {
        return Aligned::zeroed(0);
    }
    let rhs = SendPtr(rhs as *mut f32);
    let mut packed = Aligned::<u32>::zeroed(panels * (kp / 2) * BLOCK);
    let out = SendPtr(packed.as_mut_ptr());
    // A task packs a run of BLOCK rows (BLOCK / 2 pairs) into every panel, one BLOCK × BLOCK
    // square at a time: whole cache lines of rhs are read whichever of its strides is 1.
    let pairs = k.div_ceil(2);
    let pack = |run: usize| {
        for p in 0..panels {
            let (c0, cols) = (p * BLOCK, (n - p * BLOCK).min(BLOCK));
            for pair in run * BLOCK / 2..((run + 1) * BLOCK / 2).min(pairs) {
                let l = 2 * pair;
                // SAFETY: rows l and l + 1 (when < k), columns c0.. c0 + cols of the k × n
                // matrix; the CPU has AVX-512 (the caller's contract); this pair's row of panel
                // p lies in `packed` and belongs to this run alone.
                unsafe {
                    let second = (l + 1 < k).then(|| rhs.get().add((l + 1) * rrs + c0 * rcs) as *const f32);
                    let dst = std::slice::from_raw_parts_mut(out.get().add((p * (kp / 2) + pair) * BLOCK), cols);
                    convert_pair(rhs.get().add(l * rrs + c0 * rcs), second, rcs, dst);
                }
            }
        }
    };
    if k.saturating_mul(n) >= 1 << 16 && !sequential {
        (0..kp / BLOCK).into_par_iter().for_each(pack);
    } else {
        (0..kp / BLOCK).for_each(pack);
    }
    packed
}

/// `lhs` (`m × k`, strides `[row, column]`) in row panels of BLOCK rows × `kp` bf16, zeros past
/// `m` and `k`, each panel written once (not zeroed first): row by row, or 32 × 32 squares at
/// a time when its columns are contiguous (the weight gradient's xᵀ), whose rows would read one
/// value per cache line.
///
/// SAFETY: `lhs` addresses a valid `m × k` matrix; the CPU has AVX-512 (F, BW).
pub(super) unsafe fn pack_lhs(lhs: *const f32, [lrs, lcs]: [usize; 2], m: usize, k: usize, parallel: bool) -> Aligned<u16> {
    let kp = k.div_ceil(BLOCK) * BLOCK;
    let lhs = SendPtr(lhs as *mut f32);
    let pack_panel = |panel: usize, out: &mut [MaybeUninit<u16>]| {
        let (i0, rows) = (panel * BLOCK, (m - panel * BLOCK).min(BLOCK));
        if lcs == 1 || lrs != 1 {
            for (r, row) in out.chunks_exact_mut(kp).take(rows).enumerate() {
                // SAFETY: row i0 + r of the m × k matrix; AVX-512 (the caller's contract).
                unsafe { convert_row(lhs.get().add((i0 + r) * lrs), lcs, &mut row[..k]) };
            }
        } else {
            // SAFETY: rows i0.. i0 + rows of the m × k matrix, row stride 1; AVX-512 as above.
            unsafe { convert_columns(lhs.get().add(i0), lcs, rows, k, out) };
        }
        for (r, row) in out.chunks_exact_mut(kp).enumerate() {
            row[if r < rows { k } else { 0 }..].iter_mut().for_each(|v| {
                v.write(0);
            });
        }
    };
    // SAFETY: pack_panel writes every element of its panel.
    unsafe { Aligned::<u16>::from_rows(m.div_ceil(BLOCK), BLOCK * kp, parallel, pack_panel) }
}

/// See [`super::gemm_packed`], with kernel `K`; `packed_rhs` comes from [`pack_rhs`] for this
/// `k × n`.
///
/// SAFETY: as there, and `K` must be available.
pub(super) unsafe fn gemm<K: Kernel>(
    [m, n, k]: [usize; 3],
    dst: *mut f32,
    dst_rs: usize,
    start: Start,
    lhs: *const f32,
    [lrs, lcs]: [usize; 2],
    packed_rhs: &[u32],
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // An empty sum: its start.
        // SAFETY: the caller's contract.
        if !unsafe { start.prepare(dst, [m, n], dst_rs) } {
            for i in 0..m {
                // SAFETY: row i of dst, n values (the caller's contract).
                unsafe { std::ptr::write_bytes(dst.add(i * dst_rs), 0, n) };
            }
        }
        return;
    }
    // SAFETY: the caller's contract; the kernel's CPU has AVX-512 (F, BW).
    unsafe {
        let packed_lhs = pack_lhs(lhs, [lrs, lcs], m, k, parallel([m, n, k]));
        products::<K>([m, n, k], &packed_lhs, packed_rhs, start, Sink::Rows { dst: SendPtr(dst), dst_rs })
    }
}

/// [`gemm`] whose left operand is packed already ([`gemm_to_panels`]'s output for `m × k`).
///
/// SAFETY: as for [`gemm`]; `packed_lhs` holds `m × k` so packed, `k` > 0.
pub(super) unsafe fn gemm_packed_lhs<K: Kernel>(mnk: [usize; 3], dst: *mut f32, dst_rs: usize, start: Start, packed_lhs: &[u16], packed_rhs: &[u32]) {
    let [m, n, k] = mnk;
    assert!(k > 0 && packed_lhs.len() == m.div_ceil(BLOCK) * BLOCK * k.div_ceil(BLOCK) * BLOCK);
    if m > 0 && n > 0 {
        // SAFETY: the caller's contract.
        unsafe { products::<K>(mnk, packed_lhs, packed_rhs, start, Sink::Rows { dst: SendPtr(dst), dst_rs }) }
    }
}

/// `act(start + lhs · rhs)` (`m × n`) rounded to bf16 and packed as [`pack_lhs`] packs a left
/// operand whose `k` is `n`: the hidden layer of an MLP, ready for its second product.
///
/// SAFETY: as for [`gemm`] (without `dst`), and `k` > 0.
pub(super) unsafe fn gemm_to_panels<K: Kernel>(
    [m, n, k]: [usize; 3],
    start: Start,
    lhs: *const f32,
    lhs_strides: [usize; 2],
    packed_rhs: &[u32],
    act: fn(&mut [f32]),
) -> Aligned<u16> {
    assert!(k > 0);
    let len = (m.div_ceil(BLOCK) * BLOCK).checked_mul(n.div_ceil(BLOCK) * BLOCK).expect("hidden layer size overflows usize");
    // SAFETY: the caller's contract; `products` writes every element of the panels (a block
    // for each of their rows and columns, zeros past m and n).
    unsafe {
        let packed_lhs = pack_lhs(lhs, lhs_strides, m, k, parallel([m, n, k]));
        Aligned::<u16>::written(len, |out| {
            if m > 0 && n > 0 {
                products::<K>([m, n, k], &packed_lhs, packed_rhs, start, Sink::Panels { dst: SendPtr(out.as_mut_ptr()), act })
            }
        })
    }
}

/// Whether a product is worth the threads (the f32 GEMM's threshold).
fn parallel([m, n, k]: [usize; 3]) -> bool {
    m.saturating_mul(n).saturating_mul(k) >= super::super::linear::PARALLEL_MACS
}

/// Where [`products`] puts its output blocks.
#[derive(Clone, Copy)]
enum Sink {
    /// f32 rows of `dst`, `dst_rs` apart.
    Rows { dst: SendPtr, dst_rs: usize },
    /// `act` applied, rounded to bf16, in the packed left-operand layout (row panels of BLOCK
    /// rows × `n` rounded up to BLOCK; zeros past the matrix).
    Panels { dst: SendPtr<MaybeUninit<u16>>, act: fn(&mut [f32]) },
}

/// `start + lhs · rhs` into `sink`, from packed operands (`k` > 0, `m` and `n` > 0).
///
/// SAFETY: the operands hold `m × k` and `k × n` so packed; `sink` addresses its `m × n`
/// output; `K` is available.
unsafe fn products<K: Kernel>([m, n, k]: [usize; 3], packed_lhs: &[u16], packed_rhs: &[u32], start: Start, sink: Sink) {
    let kp = k.div_ceil(BLOCK) * BLOCK;
    let (row_panels, panels) = (m.div_ceil(BLOCK), n.div_ceil(BLOCK));
    assert_eq!(packed_rhs.len(), panels * (kp / 2) * BLOCK);
    assert_eq!(packed_lhs.len(), row_panels * BLOCK * kp);
    // Whole panels of the bias, zeros past n, so edge blocks start from it too.
    let bias: Vec<f32> = match start {
        Start::Bias(b) => (0..panels * BLOCK).map(|j| if j < n { b[j] } else { 0.0 }).collect(),
        Start::Zero => Vec::new(),
    };
    let bias = SendPtr(bias.as_ptr() as *mut f32);

    // Tasks: blocks of row panels × groups of column panels, enough to keep every thread
    // busy; within one, each rhs panel meets every row panel of the block while in cache.
    let mc = rows_per_task(kp).min(row_panels * BLOCK) / BLOCK;
    let row_blocks = row_panels.div_ceil(mc);
    let groups = (4 * rayon::current_num_threads()).div_ceil(row_blocks).clamp(1, panels);
    let per_group = panels.div_ceil(groups);
    let task = |t: usize| {
        let (rb, g) = (t / groups, t % groups);
        // SAFETY: the kernel is available (the caller's contract).
        let kernel = unsafe { K::begin() };
        let mut block = [0.0f32; BLOCK * BLOCK];
        for p in (g * per_group)..((g + 1) * per_group).min(panels) {
            let cols = (n - p * BLOCK).min(BLOCK);
            let panel = &packed_rhs[p * (kp / 2) * BLOCK..][..(kp / 2) * BLOCK];
            for i in (rb * mc)..((rb + 1) * mc).min(row_panels) {
                let lhs = &packed_lhs[i * BLOCK * kp..][..BLOCK * kp];
                let rows = (m - i * BLOCK).min(BLOCK);
                // The sums start from the bias row of this panel, read BLOCK times.
                let from = match start {
                    Start::Zero => None,
                    Start::Bias(_) => Some((bias.get().wrapping_add(p * BLOCK) as *const f32, 0)),
                };
                match sink {
                    Sink::Rows { dst, dst_rs } => {
                        // SAFETY: this block of dst lies in dst and belongs to this task alone.
                        let out = unsafe { dst.get().add(i * BLOCK * dst_rs + p * BLOCK) };
                        if rows == BLOCK && cols == BLOCK {
                            // SAFETY: as above, a whole block, stored in place; the bias panel
                            // holds BLOCK values.
                            unsafe { kernel.product(lhs, panel, kp, BLOCK, out, dst_rs, from) };
                            continue;
                        }
                        // A block past dst's edge goes through `block`, from the same start:
                        // the same sums as a whole block's.
                        // SAFETY: `block` is BLOCK × BLOCK f32 of this task; what it holds past
                        // dst's part is never read back.
                        unsafe { kernel.product(lhs, panel, kp, rows, block.as_mut_ptr(), BLOCK, from) };
                        for (r, values) in block.chunks_exact(BLOCK).take(rows).enumerate() {
                            // SAFETY: row r of this task's block of dst; written, never viewed
                            // as a slice (it may be uninitialised).
                            unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), out.add(r * dst_rs), cols) };
                        }
                    }
                    Sink::Panels { dst, act } => {
                        // SAFETY: as above, into this task's block.
                        unsafe { kernel.product(lhs, panel, kp, rows, block.as_mut_ptr(), BLOCK, from) };
                        act(&mut block[..rows * BLOCK]);
                        for (r, values) in block.chunks_exact(BLOCK).enumerate() {
                            // SAFETY: row r of row panel i, columns of panel p, in the packed
                            // output (BLOCK · panels values per row); this task's alone.
                            let out = unsafe { std::slice::from_raw_parts_mut(dst.get().add((i * BLOCK + r) * panels * BLOCK + p * BLOCK), BLOCK) };
                            let real = if r < rows { cols } else { 0 };
                            // SAFETY: `values` holds BLOCK f32; the CPU has AVX-512 (F, BW).
                            unsafe { convert_row(values.as_ptr(), 1, &mut out[..real]) };
                            out[real..].iter_mut().for_each(|v| {
                                v.write(0);
                            });
                        }
                    }
                }
            }
        }
    };
    if parallel([m, n, k]) {
        (0..row_blocks * groups).into_par_iter().for_each(task);
    } else {
        (0..row_blocks * groups).for_each(task);
    }
}

/// `out[j] = bf16(src[j·stride])`, every element of `out` written.
///
/// SAFETY: `src` addresses `out.len()` values `stride` apart; the CPU has AVX-512.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn convert_row(src: *const f32, stride: usize, out: &mut [MaybeUninit<u16>]) {
    if stride == 1 {
        // SAFETY: the caller's contract.
        let src = unsafe { std::slice::from_raw_parts(src, out.len()) };
        out.iter_mut().zip(src).for_each(|(o, &x)| {
            o.write(bf16_bits(x));
        });
    } else {
        out.iter_mut().enumerate().for_each(|(j, o)| {
            // SAFETY: the caller's contract.
            o.write(bf16_bits(unsafe { *src.add(j * stride) }));
        });
    }
}

/// `out[r·kp + l] = bf16(src[r + l·stride])` for `r < rows`, `l < k`, where `kp = out.len() /
/// BLOCK`: `rows` rows of a matrix whose columns are contiguous, read a column run at a time.
///
/// SAFETY: `src` addresses `rows × k` values so laid out; the CPU has AVX-512.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn convert_columns(src: *const f32, stride: usize, rows: usize, k: usize, out: &mut [MaybeUninit<u16>]) {
    let kp = out.len() / BLOCK;
    let mut square = [[0u16; BLOCK]; BLOCK]; // [column][row]
    for l0 in (0..k).step_by(BLOCK) {
        let cols = (k - l0).min(BLOCK);
        for (dl, column) in square.iter_mut().take(cols).enumerate() {
            // SAFETY: column l0 + dl, rows 0.. rows (the caller's contract).
            let values = unsafe { std::slice::from_raw_parts(src.add((l0 + dl) * stride), rows) };
            column.iter_mut().zip(values).for_each(|(o, &x)| *o = bf16_bits(x));
        }
        for (r, row) in out.chunks_exact_mut(kp).take(rows).enumerate() {
            for (o, column) in row[l0..l0 + cols].iter_mut().zip(&square) {
                o.write(column[r]);
            }
        }
    }
}

/// `out[c] = bf16(first[c]) | bf16(second[c]) << 16` (columns `stride` apart; zeros for a
/// missing second row): one pair of `k` rows in the packed layout.
///
/// SAFETY: the rows address `out.len()` values `stride` apart; the CPU has AVX-512.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn convert_pair(first: *const f32, second: Option<*const f32>, stride: usize, out: &mut [u32]) {
    let len = out.len();
    match (stride, second) {
        (1, Some(second)) => {
            // SAFETY: the caller's contract.
            let (a, b) = unsafe { (std::slice::from_raw_parts(first, len), std::slice::from_raw_parts(second, len)) };
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                *o = bf16_bits(x) as u32 | (bf16_bits(y) as u32) << 16;
            }
        }
        _ => {
            for (c, o) in out.iter_mut().enumerate() {
                // SAFETY: the caller's contract.
                let (x, y) = unsafe { (*first.add(c * stride), second.map_or(0.0, |s| *s.add(c * stride))) };
                *o = bf16_bits(x) as u32 | (bf16_bits(y) as u32) << 16;
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::round_bf16;
    use super::super::tests::{check_products, check_rows_alike, values};
    use super::*;

    /// The block product written out in scalar f32 from the packed operands: the driver, its
    /// packing and its edges tested on every CPU with AVX-512, whatever bf16 kernel it has.
    pub(in crate::cpu::bf16) struct Scalar;

    impl Kernel for Scalar {
        unsafe fn begin() -> Scalar {
            Scalar
        }

        unsafe fn product(&self, lhs: &[u16], rhs: &[u32], kp: usize, rows: usize, out: *mut f32, out_stride: usize, start: Option<(*const f32, usize)>) {
            let f = |bits: u16| f32::from_bits((bits as u32) << 16);
            for r in 0..BLOCK {
                for c in 0..BLOCK {
                    // SAFETY: (r, c) lies in the block the caller gives.
                    let at = unsafe { out.add(r * out_stride + c) };
                    if r >= rows {
                        // Rows the caller does not read back: NaN shows if it does.
                        // SAFETY: as above.
                        unsafe { *at = f32::NAN };
                        continue;
                    }
                    // SAFETY: (r, c) of the start block, initialised (the caller's contract).
                    let mut sum = start.map_or(0.0, |(from, stride)| unsafe { *from.add(r * stride + c) });
                    for (p, &pair) in rhs.chunks_exact(BLOCK).map(|row| &row[c]).enumerate() {
                        sum += f(lhs[r * kp + 2 * p]) * f(pair as u16) + f(lhs[r * kp + 2 * p + 1]) * f((pair >> 16) as u16);
                    }
                    // SAFETY: as above.
                    unsafe { *at = sum };
                }
            }
        }
    }

    pub(in crate::cpu::bf16) fn avx512() -> bool {
        let has = is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw");
        println!("AVX-512 F and BW: {has}");
        has
    }

    /// `dst = start + lhs · rhs` through the driver with kernel `K`.
    ///
    /// SAFETY: `K` is available (the CPU has AVX-512 for the scalar kernel).
    #[allow(clippy::too_many_arguments)]
    unsafe fn kernel_gemm<K: Kernel>(mnk: [usize; 3], dst: &mut [f32], start: Start, lhs: &[f32], ls: [usize; 2], rhs: &[f32], rs: [usize; 2]) {
        let [m, n, k] = mnk;
        assert!(dst.len() == m * n && lhs.len() >= m * k && rhs.len() >= k * n);
        // SAFETY: the buffers hold those shapes; the caller's contract.
        unsafe {
            let packed = pack_rhs(rhs.as_ptr(), rs, k, n, false);
            gemm::<K>(mnk, dst.as_mut_ptr(), n, start, lhs.as_ptr(), ls, &packed);
        }
    }

    /// [`kernel_gemm`] with the scalar kernel.
    #[allow(clippy::too_many_arguments)]
    fn scalar_gemm(mnk: [usize; 3], dst: &mut [f32], start: Start, lhs: &[f32], ls: [usize; 2], rhs: &[f32], rs: [usize; 2]) {
        // SAFETY: the callers check AVX-512.
        unsafe { kernel_gemm::<Scalar>(mnk, dst, start, lhs, ls, rhs, rs) }
    }

    #[test]
    fn the_driver_packs_and_splits_every_shape_and_layout() {
        if avx512() {
            check_products("scalar kernel", round_bf16, &scalar_gemm);
        }
    }

    #[test]
    fn a_row_sums_alike_in_whole_and_edge_blocks() {
        if avx512() {
            check_rows_alike("scalar kernel", &[1, 3, 33, 64], &scalar_gemm);
        }
    }

    /// The hidden layer written as panels holds `act` of the product, rounded, where the f32
    /// output would be, and zeros past it even where the buffer held other bits before; the
    /// second product from it is the same bits as from the f32 output. On the scalar kernel
    /// and on each of AMX and AVX512-BF16 that the CPU has.
    #[test]
    fn panels_hold_the_activated_product_and_zeros_past_it() {
        if !avx512() {
            return;
        }
        // SAFETY: AVX-512 checked; the others only when available.
        unsafe { panels_check::<Scalar>("scalar") };
        if super::super::amx::available() {
            // SAFETY: as above.
            unsafe { panels_check::<super::super::amx::Tiles>("amx") };
        }
        if super::super::dot_pairs::available() {
            // SAFETY: as above.
            unsafe { panels_check::<super::super::dot_pairs::DotPairs>("avx512-bf16") };
        }
    }

    /// See [`panels_hold_the_activated_product_and_zeros_past_it`].
    ///
    /// SAFETY: `K` is available.
    unsafe fn panels_check<K: Kernel>(name: &str) {
        let act: fn(&mut [f32]) = crate::cpu::simd::gelu_in_place;
        for (m, k, hidden, n) in [(37usize, 70usize, 45usize, 33usize), (1, 32, 64, 32), (64, 40, 32, 5)] {
            let (x, w1, w2) = (values(m * k, 21), values(k * hidden, 22), values(hidden * n, 23));
            let (b1, b2) = (values(hidden, 24), values(n, 25));
            let (mp, hp) = (m.div_ceil(BLOCK) * BLOCK, hidden.div_ceil(BLOCK) * BLOCK);
            let mut h = vec![0.0f32; m * hidden];
            // SAFETY: K is available (the caller's contract).
            unsafe { kernel_gemm::<K>([m, hidden, k], &mut h, Start::Bias(&b1), &x, [k, 1], &w1, [hidden, 1]) };
            act(&mut h);
            // SAFETY: the buffers hold those shapes; K's CPU has AVX-512.
            let (p1, p2) = unsafe { (pack_rhs(w1.as_ptr(), [hidden, 1], k, hidden, false), pack_rhs(w2.as_ptr(), [n, 1], hidden, n, false)) };
            // A dropped buffer of the panels' size full of NaN bits, which the allocator may
            // hand back to them.
            // SAFETY: every element is written.
            drop(unsafe { Aligned::<u16>::written(mp * hp, |v| v.iter_mut().for_each(|v| { v.write(0x7fc1); })) });
            // SAFETY: as above.
            let panels = unsafe { gemm_to_panels::<K>([m, hidden, k], Start::Bias(&b1), x.as_ptr(), [k, 1], &p1, act) };
            assert_eq!(panels.len(), mp * hp);
            for (i, row) in panels.chunks_exact(hp).enumerate() {
                for (j, &v) in row.iter().enumerate() {
                    let want = if i < m && j < hidden { bf16_bits(h[i * hidden + j]) } else { 0 };
                    assert_eq!(v, want, "{name} {m}x{k}x{hidden}: ({i}, {j})");
                }
            }
            let mut want = vec![0.0f32; m * n];
            // SAFETY: as above.
            unsafe { kernel_gemm::<K>([m, n, hidden], &mut want, Start::Bias(&b2), &h, [hidden, 1], &w2, [n, 1]) };
            let mut got = vec![f32::NAN; m * n];
            // SAFETY: `panels` is the packed m × hidden operand; `got` holds m × n values.
            unsafe { gemm_packed_lhs::<K>([m, n, hidden], got.as_mut_ptr(), n, Start::Bias(&b2), &panels, &p2) };
            assert!(got.iter().map(|v| v.to_bits()).eq(want.iter().map(|v| v.to_bits())), "{name} {m}x{k}x{hidden}x{n}: second product");
        }
    }

    /// Padding is written as zeros even where the buffer held other bits before.
    #[test]
    fn packed_operands_are_zero_past_the_matrix() {
        if !avx512() {
            return;
        }
        for (m, k, transposed) in [(37usize, 70usize, false), (37, 70, true), (5, 33, false), (64, 64, true)] {
            let kp = k.div_ceil(BLOCK) * BLOCK;
            let panels = m.div_ceil(BLOCK);
            // A dropped buffer of the same size full of ones, which the allocator may hand back.
            // SAFETY: every element is written.
            drop(unsafe { Aligned::<u16>::from_rows(panels, BLOCK * kp, false, |_, row| row.iter_mut().for_each(|v| { v.write(u16::MAX); })) });
            let a = values(m * k, 16);
            let strides = if transposed { [1, m] } else { [k, 1] };
            // SAFETY: `a` holds m × k values with those strides; AVX-512 checked.
            let packed = unsafe { pack_lhs(a.as_ptr(), strides, m, k, false) };
            for (i, row) in packed.chunks_exact(kp).enumerate() {
                let from = if i < m { k } else { 0 };
                assert!(row[from..].iter().all(|&v| v == 0), "lhs {m}x{k} (transposed {transposed}): row {i} padding");
                if i < m {
                    let want: Vec<u16> = (0..k).map(|l| bf16_bits(a[i * strides[0] + l * strides[1]])).collect();
                    assert_eq!(row[..k], want[..], "lhs row {i}");
                }
            }
            // SAFETY: as above, k × m read as the rhs.
            let rhs = unsafe { pack_rhs(a.as_ptr(), [m, 1], k, m, false) };
            for (p, panel) in rhs.chunks_exact(kp / 2 * BLOCK).enumerate() {
                for (pair, row) in panel.chunks_exact(BLOCK).enumerate() {
                    for (c, &v) in row.iter().enumerate() {
                        let (l, j) = (2 * pair, p * BLOCK + c);
                        let value = |l: usize| if l < k && j < m { bf16_bits(a[l * m + j]) as u32 } else { 0 };
                        assert_eq!(v, value(l) | value(l + 1) << 16, "rhs {k}x{m}: panel {p} pair {pair} column {c}");
                    }
                }
            }
        }
    }
}
