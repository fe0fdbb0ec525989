//! Intel AMX: eight tile registers of 16 rows × 64 bytes. Each 32 × 32 output block is
//! four f32 accumulator tiles fed by two 16-row tiles of `lhs` (32 bf16 of `k` per row)
//! and two of `rhs` (16 columns, `k` in interleaved pairs), `tdpbf16ps` four times per 32
//! of `k`. The instructions are written as inline assembly (stable Rust has no AMX intrinsics).

use std::arch::asm;
use std::sync::OnceLock;

use rayon::prelude::*;

use super::{SendPtr, bf16_bits};

/// The block edge: output blocks are `BLOCK × BLOCK`, `k` runs in steps of `BLOCK`.
const BLOCK: usize = 32;

/// Whether the CPU has AMX-BF16 and the kernel granted this process the tile state
/// (Linux asks for it once: `arch_prctl(ARCH_REQ_XCOMP_PERM)`).
pub(super) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if std::env::var_os("DIFFCLIP_NO_AMX").is_some() {
            return false;
        }
        // CPUID leaf 7: EDX bit 22 is AMX-BF16, bit 24 AMX-TILE.
        let edx = std::arch::x86_64::__cpuid_count(7, 0).edx;
        edx & (1 << 22) != 0 && edx & (1 << 24) != 0 && permitted()
    })
}

#[cfg(target_os = "linux")]
fn permitted() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a plain system call with integer arguments.
    unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
}

/// Other systems enable the tile state for every process, or not at all (then the CPUID
/// bits above are clear in practice); Linux is the one tested.
#[cfg(not(target_os = "linux"))]
fn permitted() -> bool {
    true
}

/// The tile configuration: palette 1, eight tiles of 16 rows × 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

const CONFIG: TileConfig = {
    let mut c = [0u8; 64];
    c[0] = 1;
    let mut t = 0;
    while t < 8 {
        c[16 + 2 * t] = 64; // bytes per row (u16, little-endian)
        c[48 + t] = 16; // rows
        t += 1;
    }
    TileConfig(c)
};

/// Rows of output (a multiple of `BLOCK`) whose `lhs` block, `rows × kp` bf16, stays
/// within about 512 KiB (the L2 of one core holds it beside a `rhs` panel).
fn rows_per_task(kp: usize) -> usize {
    ((256 * 1024 / kp) / BLOCK * BLOCK).clamp(BLOCK, 16 * BLOCK)
}

/// `rhs` (`k × n`, strides `[row, column]`) in column panels of BLOCK columns, `k` in
/// pairs with each pair's two values side by side per column (the layout `tdpbf16ps`
/// reads); zeros past `n` and `k`.
///
/// SAFETY: `rhs` addresses a valid `k × n` matrix; AMX must be [`available`].
pub(super) unsafe fn pack_rhs(rhs: *const f32, [rrs, rcs]: [usize; 2], k: usize, n: usize) -> Vec<u32> {
    let kp = k.div_ceil(BLOCK) * BLOCK;
    let panels = n.div_ceil(BLOCK);
    let rhs = SendPtr(rhs as *mut f32);
    let mut packed = vec![0u32; panels * (kp / 2) * BLOCK];
    let pack = |(p, panel): (usize, &mut [u32])| {
        let (c0, cols) = (p * BLOCK, (n - p * BLOCK).min(BLOCK));
        for (pair, out) in panel.chunks_exact_mut(BLOCK).take(k.div_ceil(2)).enumerate() {
            let l = 2 * pair;
            // SAFETY: rows l and l + 1 (when < k), columns c0.. c0 + cols of the k × n
            // matrix; AMX implies AVX-512.
            unsafe {
                let second = (l + 1 < k).then(|| rhs.get().add((l + 1) * rrs + c0 * rcs) as *const f32);
                convert_pair(rhs.get().add(l * rrs + c0 * rcs), second, rcs, &mut out[..cols]);
            }
        }
    };
    if k.saturating_mul(n) >= 1 << 16 {
        packed.par_chunks_mut((kp / 2) * BLOCK).enumerate().for_each(pack);
    } else {
        packed.chunks_mut((kp / 2) * BLOCK).enumerate().for_each(pack);
    }
    packed
}

/// See [`super::gemm_packed`]; `packed_rhs` comes from [`pack_rhs`] for this `k × n`.
///
/// SAFETY: as there, and AMX must be [`available`].
pub(super) unsafe fn gemm(
    [m, n, k]: [usize; 3],
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    lhs: *const f32,
    [lrs, lcs]: [usize; 2],
    packed_rhs: &[u32],
) {
    if m == 0 || n == 0 {
        return;
    }
    let kp = k.div_ceil(BLOCK) * BLOCK;
    let (row_panels, panels) = (m.div_ceil(BLOCK), n.div_ceil(BLOCK));
    assert_eq!(packed_rhs.len(), panels * (kp / 2) * BLOCK);
    let (lhs, dst) = (SendPtr(lhs as *mut f32), SendPtr(dst));
    let parallel = m.saturating_mul(n).saturating_mul(k) >= super::super::linear::PARALLEL_MACS;

    // lhs in row panels of BLOCK rows × kp, zeros past m and k.
    let mut packed_lhs = vec![0u16; row_panels * BLOCK * kp];
    let pack_lhs = |(i, row): (usize, &mut [u16])| {
        if i < m {
            // SAFETY: row i of the m × k matrix; AMX implies AVX-512.
            unsafe { convert_row(lhs.get().add(i * lrs), lcs, &mut row[..k]) }
        }
    };
    if parallel {
        packed_lhs.par_chunks_mut(kp).enumerate().with_min_len(16).for_each(pack_lhs);
    } else {
        packed_lhs.chunks_mut(kp).enumerate().for_each(pack_lhs);
    }

    // Tasks: blocks of row panels × groups of column panels, enough to keep every thread
    // busy; within one, each rhs panel meets every row panel of the block while in cache.
    let mc = rows_per_task(kp).min(row_panels * BLOCK) / BLOCK;
    let row_blocks = row_panels.div_ceil(mc);
    let groups = (4 * rayon::current_num_threads()).div_ceil(row_blocks).clamp(1, panels);
    let per_group = panels.div_ceil(groups);
    let packed_lhs = &packed_lhs;
    let task = |t: usize| {
        let (rb, g) = (t / groups, t % groups);
        // SAFETY: AMX is available (the caller's contract).
        let tiles = unsafe { Tiles::configure() };
        let mut block = [0.0f32; BLOCK * BLOCK];
        for p in (g * per_group)..((g + 1) * per_group).min(panels) {
            let cols = (n - p * BLOCK).min(BLOCK);
            let panel = &packed_rhs[p * (kp / 2) * BLOCK..][..(kp / 2) * BLOCK];
            for i in (rb * mc)..((rb + 1) * mc).min(row_panels) {
                // SAFETY: a row panel of BLOCK × kp and a column panel of kp × BLOCK; AMX
                // is available (the caller's contract).
                tiles.product(&packed_lhs[i * BLOCK * kp..][..BLOCK * kp], panel, kp, &mut block);
                let rows = (m - i * BLOCK).min(BLOCK);
                for (r, values) in block.chunks_exact(BLOCK).take(rows).enumerate() {
                    // SAFETY: this block of dst belongs to this task alone, lies in dst,
                    // and is initialised when accumulating.
                    unsafe {
                        let out = std::slice::from_raw_parts_mut(dst.get().add((i * BLOCK + r) * dst_rs + p * BLOCK), cols);
                        if accumulate {
                            out.iter_mut().zip(values).for_each(|(o, v)| *o += v);
                        } else {
                            out.copy_from_slice(&values[..cols]);
                        }
                    }
                }
            }
        }
    };
    if parallel {
        (0..row_blocks * groups).into_par_iter().for_each(task);
    } else {
        (0..row_blocks * groups).for_each(task);
    }
}

/// `out[j] = bf16(src[j·stride])`.
///
/// SAFETY: `src` addresses `out.len()` values `stride` apart; the CPU has AVX-512.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn convert_row(src: *const f32, stride: usize, out: &mut [u16]) {
    if stride == 1 {
        // SAFETY: the caller's contract.
        let src = unsafe { std::slice::from_raw_parts(src, out.len()) };
        out.iter_mut().zip(src).for_each(|(o, &x)| *o = bf16_bits(x));
    } else {
        // SAFETY: the caller's contract.
        out.iter_mut().enumerate().for_each(|(j, o)| *o = bf16_bits(unsafe { *src.add(j * stride) }));
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

/// The tile registers configured on this thread, released when dropped. Loading the
/// configuration costs as much as a block's products, so a task does it once.
struct Tiles(std::marker::PhantomData<*const ()>); // not Send: the state is this thread's

impl Tiles {
    /// SAFETY: AMX must be [`available`]; no other `Tiles` lives on this thread.
    unsafe fn configure() -> Tiles {
        // SAFETY: CONFIG is a valid 64-byte palette-1 configuration.
        unsafe { asm!("ldtilecfg [{0}]", in(reg) &CONFIG, options(nostack, readonly)) };
        Tiles(std::marker::PhantomData)
    }

    /// `out = lhs · rhs` for one BLOCK × BLOCK block: `lhs` is BLOCK rows of `kp` bf16,
    /// `rhs` one packed column panel of `kp` rows.
    fn product(&self, lhs: &[u16], rhs: &[u32], kp: usize, out: &mut [f32; BLOCK * BLOCK]) {
        assert!(lhs.len() == BLOCK * kp && rhs.len() == BLOCK * kp / 2 && kp % BLOCK == 0);
        // SAFETY: the tiles are configured (self); see `block_product`.
        unsafe { block_product(lhs.as_ptr(), rhs.as_ptr().cast::<u16>(), kp, out.as_mut_ptr()) }
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: the tiles were configured on this thread (Tiles is not Send).
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}

/// SAFETY: the tiles are configured; `a` holds BLOCK rows of `kp` bf16, `b` `kp / 2` rows
/// of 2·BLOCK bf16, `c` BLOCK × BLOCK f32.
unsafe fn block_product(a: *const u16, b: *const u16, kp: usize, c: *mut f32) {
    let (a_stride, b_stride, c_stride) = (kp * 2, 2 * BLOCK * 2, BLOCK * 4);
    // SAFETY: every tile load reads 16 rows of 64 bytes inside the operands (rows of `a`
    // kp·2 bytes apart, 16 pairs of `b` 128 bytes apart); the stores write the 32 × 32 f32
    // of `c`.
    unsafe {
        asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
        let mut l = 0;
        while l < kp {
            asm!(
                "tileloadd tmm4, [{a0} + {as_}*1]",
                "tileloadd tmm5, [{a1} + {as_}*1]",
                "tileloadd tmm6, [{b0} + {bs}*1]",
                "tileloadd tmm7, [{b1} + {bs}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                a0 = in(reg) a.add(l),
                a1 = in(reg) a.add(16 * kp + l),
                b0 = in(reg) b.add(l * BLOCK),
                b1 = in(reg) b.add(l * BLOCK + BLOCK),
                as_ = in(reg) a_stride,
                bs = in(reg) b_stride,
                options(nostack, readonly),
            );
            l += BLOCK;
        }
        asm!(
            "tilestored [{c0} + {cs}*1], tmm0",
            "tilestored [{c1} + {cs}*1], tmm1",
            "tilestored [{c2} + {cs}*1], tmm2",
            "tilestored [{c3} + {cs}*1], tmm3",
            c0 = in(reg) c,
            c1 = in(reg) c.add(16),
            c2 = in(reg) c.add(16 * BLOCK),
            c3 = in(reg) c.add(16 * BLOCK + 16),
            cs = in(reg) c_stride,
            options(nostack),
        );
    }
}
