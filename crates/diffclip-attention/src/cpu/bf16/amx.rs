//! Intel AMX: eight tile registers of 16 rows × 64 bytes. Each 32 × 32 output block is
//! four f32 accumulator tiles fed by two 16-row tiles of `lhs` (32 bf16 of `k` per row)
//! and two of `rhs` (16 columns, `k` in interleaved pairs), `tdpbf16ps` four times per 32
//! of `k`. The instructions are written as inline assembly (stable Rust has no AMX intrinsics).

use std::arch::asm;
use std::sync::OnceLock;

use super::blocked::{BLOCK, Kernel};

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

    fn product(&self, lhs: &[u16], rhs: &[u32], kp: usize, out: &mut [f32; BLOCK * BLOCK]) {
        assert!(lhs.len() == BLOCK * kp && rhs.len() == BLOCK * kp / 2 && kp.is_multiple_of(BLOCK));
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
