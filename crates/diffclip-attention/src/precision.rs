//! The precision of the matrix products (linear layers, attention) on the CPU.

use std::cell::Cell;
use std::sync::atomic::{AtomicU8, Ordering};

/// How [`linear`](crate::linear) and the attention layers multiply f32 tensors on the CPU (flex,
/// with the CPU kernels on), for every model in the process ([`set_matmul_precision`], like
/// PyTorch's `torch.set_float32_matmul_precision`) or of the work one thread does
/// ([`with_matmul_precision`], like `torch.autocast`).
///
/// - `F32` (the default): f32 products and sums, the precision the fixtures are matched to.
/// - `Bf16`: the operands are rounded to bf16 (8 significant bits) and the products summed in
///   f32; the tensors, the weights, LayerNorm, softmax and GELU stay f32. In inference the
///   attention products (the scores `Q·Kᵀ` and `A·V`) take bf16 operands too, as PyTorch's
///   autocast does; in training they stay f32. On Intel Xeons with AMX (Sapphire Rapids and
///   later) this runs on the tile unit, several times faster than f32; on AMD CPUs with
///   AVX512-BF16 (Zen 4 and later) on `vdpbf16ps`, which multiplies twice as fast as f32 FMAs;
///   on other CPUs it gives the same products at f32 speed (rounding first): results do not
///   depend on which CPU ran them beyond f32 rounding (the order of sums, fused multiply-adds;
///   an attention weight at a bf16 rounding boundary may round the other way) and denormals,
///   which AMX and `vdpbf16ps` flush to zero ([`bf16_matmul_engine`]). Training (autodiff)
///   takes it too, forward and backward. Embeddings move by about 1 % of their largest value:
///   fine for search and zero-shot, not for matching fixtures.
/// - `F16`: the same with the operands rounded to IEEE half (11 significant bits; from
///   ±65 520, half way past the largest half, they become infinite, which is what an f16 loss
///   scale watches for). No CPU here multiplies f16 with f32 sums faster than f32, so it runs
///   by the f32 GEMM on rounded operands, at about 70–90 % of f32's speed for ViT-B/16 inference,
///   where a model cast to f16 runs 3–4× slower than f32 on flex.
///
/// A model takes its own with `Clip::with_precision`, which scopes its forward passes here on
/// the CPU and casts the weights on GPU backends (which ignore this setting); these functions are
/// the layer-level knob beneath it.
///
/// ```
/// use diffclip_attention::{MatmulPrecision, matmul_precision, set_matmul_precision};
/// let p: MatmulPrecision = "bf16".parse().unwrap();
/// set_matmul_precision(p);
/// assert_eq!(matmul_precision(), MatmulPrecision::Bf16);
/// set_matmul_precision(MatmulPrecision::F32);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatmulPrecision {
    /// f32 operands and sums.
    #[default]
    F32,
    /// bf16 operands, f32 sums.
    Bf16,
    /// f16 operands, f32 sums.
    F16,
}

static PRECISION: AtomicU8 = AtomicU8::new(0);

/// Sets the precision of the CPU's matrix products (linear layers; attention in inference) from
/// now on (all threads, except inside [`with_matmul_precision`]).
/// Inference keeps each weight packed for the reduced precision while it lives; going back to
/// `F32` drops them.
pub fn set_matmul_precision(precision: MatmulPrecision) {
    PRECISION.store(precision as u8, Ordering::Relaxed);
    #[cfg(feature = "flex")]
    if precision == MatmulPrecision::F32 {
        crate::cpu::clear_packed_weights();
    }
}

thread_local! {
    /// [`with_matmul_precision`]'s setting for this thread, over the process-wide one.
    static SCOPED: Cell<Option<MatmulPrecision>> = const { Cell::new(None) };
}

/// The precision linear layers called from this thread use: [`with_matmul_precision`]'s
/// inside one, else [`set_matmul_precision`]'s (`F32` unless changed).
pub fn matmul_precision() -> MatmulPrecision {
    if let Some(p) = SCOPED.with(Cell::get) {
        return p;
    }
    match PRECISION.load(Ordering::Relaxed) {
        0 => MatmulPrecision::F32,
        1 => MatmulPrecision::Bf16,
        _ => MatmulPrecision::F16,
    }
}

/// Runs `f` with `precision` for the linear layers it calls on this thread, then restores the
/// previous setting (also when `f` panics); other threads and the process-wide setting are
/// untouched, as with PyTorch's `torch.autocast`. A layer reads the setting on the thread that
/// calls it, before its own worker threads start, and a linear layer's backward (training)
/// multiplies as its forward did, wherever `backward()` is called: a scope around the forward
/// covers both. Packed weights kept by inference inside the scope live as long as their weights
/// (the model, and every model sharing its buffers, such as the f32 one it was made from) or
/// until [`set_matmul_precision`]`(F32)`.
///
/// ```
/// use diffclip_attention::{MatmulPrecision, matmul_precision, with_matmul_precision};
/// let inside = with_matmul_precision(MatmulPrecision::Bf16, matmul_precision);
/// assert_eq!((inside, matmul_precision()), (MatmulPrecision::Bf16, MatmulPrecision::F32));
/// ```
pub fn with_matmul_precision<R>(precision: MatmulPrecision, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<MatmulPrecision>);
    impl Drop for Restore {
        fn drop(&mut self) {
            SCOPED.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SCOPED.with(|s| s.replace(Some(precision))));
    f()
}

/// What runs `Bf16` products on this CPU: `"amx"` (Intel Xeon, Sapphire Rapids on),
/// `"avx512-bf16"` (AMD, Zen 4 on) or `"rounded-f32"` (the operands rounded, then the f32 GEMM:
/// the same precision at f32 speed). The environment variable `DIFFCLIP_BF16_ENGINE`, set to
/// one of those names, picks another engine the CPU offers (a warning names those it does).
///
/// ```
/// let engine = diffclip_attention::bf16_matmul_engine();
/// assert!(["amx", "avx512-bf16", "rounded-f32"].contains(&engine));
/// ```
pub fn bf16_matmul_engine() -> &'static str {
    #[cfg(feature = "flex")]
    return crate::cpu::bf16_engine();
    #[cfg(not(feature = "flex"))]
    "rounded-f32"
}

/// Whether linear layers of f32 tensors on `device` follow [`set_matmul_precision`]: the CPU
/// (flex, plain or autodiff) with the CPU kernels on. Elsewhere products are in the tensors'
/// own type.
pub fn matmul_precision_applies(device: &burn::tensor::Device) -> bool {
    crate::cpu_kernels_enabled() && is_host_device(device)
}

/// Whether `device` computes in the host's own memory: flex, plain or autodiff (with the
/// feature `flex`). There the memory the OS reports as available is what a batch takes; a
/// GPU's is its own.
pub fn is_host_device(device: &burn::tensor::Device) -> bool {
    #[cfg(feature = "flex")]
    let applies = {
        let probe = burn::tensor::Tensor::<1>::zeros([1], device);
        crate::cpu::is_plain_flex(&probe) || crate::cpu::is_autodiff_flex(&probe)
    };
    #[cfg(not(feature = "flex"))]
    let applies = {
        let _ = device;
        false
    };
    applies
}

impl std::fmt::Display for MatmulPrecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MatmulPrecision::F32 => "f32",
            MatmulPrecision::Bf16 => "bf16",
            MatmulPrecision::F16 => "f16",
        })
    }
}

impl std::str::FromStr for MatmulPrecision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f32" => Ok(MatmulPrecision::F32),
            "bf16" => Ok(MatmulPrecision::Bf16),
            "f16" => Ok(MatmulPrecision::F16),
            other => Err(format!("unknown matmul precision {other:?}: expected f32, bf16 or f16")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scopes nest, end with their closure (also by panic) and stay on their thread.
    #[test]
    fn a_scope_covers_its_thread_until_it_ends() {
        let global = matmul_precision();
        let (outer, inner, other_thread) = with_matmul_precision(MatmulPrecision::Bf16, || {
            let inner = with_matmul_precision(MatmulPrecision::F32, matmul_precision);
            let other = std::thread::spawn(matmul_precision).join().unwrap();
            (matmul_precision(), inner, other)
        });
        assert_eq!((outer, inner, other_thread), (MatmulPrecision::Bf16, MatmulPrecision::F32, global));
        assert_eq!(matmul_precision(), global);
        let panicked = std::panic::catch_unwind(|| with_matmul_precision(MatmulPrecision::Bf16, || panic!("inside")));
        assert!(panicked.is_err());
        assert_eq!(matmul_precision(), global, "restored after a panic");
    }

    #[test]
    fn names_read_back() {
        for p in [MatmulPrecision::F32, MatmulPrecision::Bf16, MatmulPrecision::F16] {
            assert_eq!(p.to_string().parse::<MatmulPrecision>(), Ok(p));
        }
        assert!("fp8".parse::<MatmulPrecision>().unwrap_err().contains("f16"));
    }
}
