//! Intel AMX: eight tile registers of 16 rows × 64 bytes. Each 32 × 32 output block is
//! four f32 accumulator tiles fed by two 16-row tiles of `lhs` (32 bf16 of `k` per row)
//! and two of `rhs` (16 columns, `k` in interleaved pairs), `tdpbf16ps` four times per 32
//! of `k`. The instructions are written as inline assembly (stable Rust has no AMX intrinsics).

use std::arch::asm;
use std::sync::OnceLock;

use super::blocked::{BLOCK, Kernel};

/// Whether the CPU has AMX-BF16 (and AVX-512 F and BW, which the packing uses) and Linux
/// granted this process the tile state (`arch_prctl(ARCH_REQ_XCOMP_PERM)`, asked once).
/// Other systems are not tested, so there the rounded f32 engine runs.
pub(super) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if !cfg!(target_os = "linux") {
            return false;
        }
        if std::arch::x86_64::__cpuid(0).eax < 7 || !is_x86_feature_detected!("avx512f") || !is_x86_feature_detected!("avx512bw") {
            return false;
        }
        // CPUID leaf 7: EDX bit 22 is AMX-BF16, bit 24 AMX-TILE.
        let edx = std::arch::x86_64::__cpuid_count(7, 0).edx;
        edx & (1 << 22) != 0 && edx & (1 << 24) != 0 && permitted()
    })
}

/// Whether the kernel grants the tile state: it refuses where the CPU, the hypervisor or the
/// kernel lacks it.
#[cfg(target_os = "linux")]
fn permitted() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a plain system call with integer arguments.
    unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn permitted() -> bool {
    false
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

/// The tile registers configured on this thread, released when dropped. Loading the
/// configuration costs as much as a block's products, so a task does it once.
pub(super) struct Tiles(std::marker::PhantomData<*const ()>); // not Send: the state is this thread's

impl Kernel for Tiles {
    /// SAFETY: AMX must be [`available`]; no other `Tiles` lives on this thread.
    unsafe fn begin() -> Tiles {
        // SAFETY: CONFIG is a valid 64-byte palette-1 configuration.
        unsafe { asm!("ldtilecfg [{0}]", in(reg) &CONFIG, options(nostack, readonly)) };
        Tiles(std::marker::PhantomData)
    }

    unsafe fn product(&self, lhs: &[u16], rhs: &[u32], kp: usize, _rows: usize, out: *mut f32, out_stride: usize, start: Option<(*const f32, usize)>) {
        // The tiles compute all BLOCK rows whatever `rows` says: skipping 16 would save little.
        assert!(lhs.len() == BLOCK * kp && rhs.len() == BLOCK * kp / 2 && kp.is_multiple_of(BLOCK) && kp > 0);
        let (from, from_stride) = start.map_or((std::ptr::null(), 0), |(at, stride)| (at, stride * 4));
        // SAFETY: the tiles are configured (self); `out` and `start` as the caller guarantees;
        // see `block_product`.
        unsafe { block_product(lhs.as_ptr(), rhs.as_ptr().cast::<u16>(), kp, out, out_stride * 4, from, from_stride) }
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: the tiles were configured on this thread (Tiles is not Send).
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}

/// SAFETY: the tiles are configured; `a` holds BLOCK rows of `kp` bf16, `b` `kp / 2` rows
/// of 2·BLOCK bf16, `c` BLOCK rows of BLOCK f32 `c_stride` bytes apart; `from` is null or
/// BLOCK rows of BLOCK f32 `from_stride` bytes apart (0: one row, read BLOCK times); `kp` is
/// a positive multiple of BLOCK.
unsafe fn block_product(a: *const u16, b: *const u16, kp: usize, c: *mut f32, c_stride: usize, from: *const f32, from_stride: usize) {
    let (a_stride, b_stride) = (kp * 2, 2 * BLOCK * 2);
    // The accumulators start at zero or at `from`, so a bias costs no pass of its own and the
    // sums run in the same order whichever block a row lands in.
    // One block of assembly from the first product to the stores, the tile registers declared
    // as its clobbers: tile contents never live across blocks the compiler could reorder.
    // SAFETY: every tile load reads 16 rows of 64 bytes inside the operands (rows of `a`
    // kp·2 bytes apart, the second half 16 rows down; 16 pairs of `b` 128 bytes apart, the
    // second tile 64 bytes on; each step moves 64 bytes along `a` and 32 pairs along `b`);
    // the stores of `c` touch its 32 rows of 32 f32 (the right half 64 bytes on, the lower
    // half 16 rows down), the loads of `from` its 32 rows likewise.
    unsafe {
        asm!(
            "test {from}, {from}",
            "jz 3f",
            "tileloadd tmm0, [{from} + {fs}*1]",
            "tileloadd tmm1, [{from} + {fs}*1 + 64]",
            "tileloadd tmm2, [{from_low} + {fs}*1]",
            "tileloadd tmm3, [{from_low} + {fs}*1 + 64]",
            "jmp 2f",
            "3:",
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            "2:",
            "tileloadd tmm4, [{a0} + {as_}*1]",
            "tileloadd tmm5, [{a1} + {as_}*1]",
            "tileloadd tmm6, [{b} + {bs}*1]",
            "tileloadd tmm7, [{b} + {bs}*1 + 64]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "add {a0}, 64",
            "add {a1}, 64",
            "add {b}, 2048",
            "dec {steps}",
            "jnz 2b",
            "tilestored [{c} + {cs}*1], tmm0",
            "tilestored [{c} + {cs}*1 + 64], tmm1",
            "tilestored [{c_low} + {cs}*1], tmm2",
            "tilestored [{c_low} + {cs}*1 + 64], tmm3",
            a0 = inout(reg) a => _,
            a1 = inout(reg) a.add(16 * kp) => _,
            b = inout(reg) b => _,
            steps = inout(reg) kp / BLOCK => _,
            c = in(reg) c,
            c_low = in(reg) c.byte_add(16 * c_stride),
            from = in(reg) from,
            from_low = in(reg) from.wrapping_byte_add(16 * from_stride),
            fs = in(reg) from_stride,
            as_ = in(reg) a_stride,
            bs = in(reg) b_stride,
            cs = in(reg) c_stride,
            out("tmm0") _, out("tmm1") _, out("tmm2") _, out("tmm3") _,
            out("tmm4") _, out("tmm5") _, out("tmm6") _, out("tmm7") _,
            options(nostack),
        );
    }
}
