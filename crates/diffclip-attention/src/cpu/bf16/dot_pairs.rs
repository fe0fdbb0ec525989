//! AVX512-BF16 without AMX (AMD Zen 4 and Zen 5): `vdpbf16ps` multiplies 16 pairs of bf16 by
//! 16 pairs and adds both products of each pair to one of 16 f32 sums, twice the multiplies of
//! an f32 FMA per instruction. It reads the operands AMX's tiles read ([`super::blocked`]'s
//! packing), so it shares their driver: a 32 × 32 output block is four passes of 8 rows (fewer
//! when the caller reads back fewer rows), each 16 sums (8 rows × 2 × 16 columns) in registers
//! while `k` runs by pairs.

use std::arch::x86_64::{__m512, __m512bh, _mm512_dpbf16_ps, _mm512_loadu_ps, _mm512_loadu_si512, _mm512_set1_epi32, _mm512_setzero_ps, _mm512_storeu_ps};
use std::sync::OnceLock;

use super::blocked::{BLOCK, Kernel};

/// Output rows per pass: 16 sums, two `rhs` vectors and a broadcast fit the 32 registers.
const ROWS: usize = 8;

/// Whether the CPU has AVX512-BF16 (and AVX-512 F and BW, which the packing uses).
pub(super) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx512bf16"))
}

/// Whether it beats the rounded f32 GEMM here: on AMD's cores `vdpbf16ps` issues as often as an
/// f32 FMA, so it multiplies twice as fast; on Intel's (Cooper Lake, or a Sapphire Rapids whose
/// AMX the system withholds) it issues half as often and measured at half the f32 GEMM's rate.
pub(super) fn preferred() -> bool {
    available() && amd()
}

/// Whether the CPU's vendor string is AMD's.
fn amd() -> bool {
    let id = std::arch::x86_64::__cpuid(0);
    let vendor: Vec<u8> = [id.ebx, id.edx, id.ecx].iter().flat_map(|r| r.to_le_bytes()).collect();
    vendor == b"AuthenticAMD"
}

/// The `vdpbf16ps` block kernel.
pub(super) struct DotPairs;

impl Kernel for DotPairs {
    /// SAFETY: [`available`] must hold.
    unsafe fn begin() -> DotPairs {
        DotPairs
    }

    unsafe fn product(&self, lhs: &[u16], rhs: &[u32], kp: usize, rows: usize, out: *mut f32, out_stride: usize, start: Option<(*const f32, usize)>) {
        assert!(lhs.len() == BLOCK * kp && rhs.len() == BLOCK * kp / 2 && kp.is_multiple_of(2) && (1..=BLOCK).contains(&rows));
        for r0 in (0..rows).step_by(ROWS) {
            // SAFETY: rows r0.. r0 + ROWS lie in the block (ROWS divides BLOCK); the operands'
            // sizes are asserted; `out` and `start` as the caller guarantees; the CPU has the
            // instructions (`begin`'s contract).
            unsafe { rows_product(lhs.as_ptr().add(r0 * kp), rhs.as_ptr(), kp, out.add(r0 * out_stride), out_stride, start.map(|(at, stride)| (at.add(r0 * stride), stride))) }
        }
    }
}

/// ROWS rows of a block: `out = start + lhs · rhs` for `lhs` ROWS rows of `kp` bf16 and `rhs`
/// `kp / 2` pairs × BLOCK columns.
///
/// SAFETY: the pointers address those operands, ROWS rows of BLOCK f32 `out_stride` apart and,
/// for `start`, ROWS rows of BLOCK initialised f32 `stride` apart (0: one row, read ROWS
/// times); the CPU has AVX-512 F and AVX512-BF16.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn rows_product(lhs: *const u16, rhs: *const u32, kp: usize, out: *mut f32, out_stride: usize, start: Option<(*const f32, usize)>) {
    // The sums start at zero or at `start`, as AMX's do: a row sums in the same order whatever
    // block it lands in.
    let mut sums: [[__m512; 2]; ROWS] = [[_mm512_setzero_ps(); 2]; ROWS];
    if let Some((from, stride)) = start {
        for (r, sum) in sums.iter_mut().enumerate() {
            // SAFETY: row r of `start` (the caller's contract).
            *sum = unsafe { [_mm512_loadu_ps(from.add(r * stride)), _mm512_loadu_ps(from.add(r * stride + 16))] };
        }
    }
    for p in 0..kp / 2 {
        // SAFETY: pair p of both operands lies in them (the caller's contract); a u16 pair
        // read as a little-endian u32 is (first, second << 16), the order `rhs` is packed in.
        unsafe {
            let left: __m512bh = std::mem::transmute(_mm512_loadu_si512(rhs.add(p * BLOCK).cast()));
            let right: __m512bh = std::mem::transmute(_mm512_loadu_si512(rhs.add(p * BLOCK + 16).cast()));
            for (r, sum) in sums.iter_mut().enumerate() {
                let pair = lhs.add(r * kp + 2 * p).cast::<i32>().read_unaligned();
                let pair: __m512bh = std::mem::transmute(_mm512_set1_epi32(pair));
                *sum = [_mm512_dpbf16_ps(sum[0], pair, left), _mm512_dpbf16_ps(sum[1], pair, right)];
            }
        }
    }
    for (r, sum) in sums.iter().enumerate() {
        // SAFETY: row r of `out` (the caller's contract).
        unsafe {
            _mm512_storeu_ps(out.add(r * out_stride), sum[0]);
            _mm512_storeu_ps(out.add(r * out_stride + 16), sum[1]);
        }
    }
}
