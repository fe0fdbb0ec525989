//! Differential attention (DiffCLIP / Differential Transformer) and standard multi-head attention
//! for Burn, on any [`Device`](burn::tensor::Device), plus the activations the encoders use
//! ([`gelu`], [`quick_gelu`]). Both live here because they share the CPU kernel module: with
//! the `flex` feature, the attention layers and the activations run diffclip's own vectorised
//! kernels on Burn's flex backend (see below).
//!
//! ```no_run
//! use burn::tensor::{Device, Tensor, Distribution};
//! use diffclip_attention::AttentionConfig;
//!
//! # fn run(device: Device) -> Result<(), diffclip_attention::AttentionError> {
//! let attn = AttentionConfig::new(64, 4).init_differential(&device)?;
//! let x = Tensor::<3>::random([2, 17, 64], Distribution::Default, &device);
//! let y = attn.forward(x, None); // [2, 17, 64]
//! println!("lambda = {}", attn.lambda_full().into_scalar::<f32>());
//! # Ok(()) }
//! ```
//!
//! With the `flex` feature (off by default; the application's choice of backend), plain f32
//! tensors on Burn's flex backend go through hand-written CPU kernels: one attention kernel for
//! standard and differential heads that reads the `[B, N, D]` projections in place and keeps
//! memory linear in N, vectorised multi-threaded GELU/QuickGELU, and linear layers as one GEMM
//! ([`linear`]; [`linears`] for layers sharing an input, [`mlp`] for the transformer MLP, which
//! with bf16 products on AMX or AVX512-BF16 pack that input once and keep the hidden layer in cache), each
//! with its own backward under autodiff, and LayerNorm ([`layer_norm`]) and
//! the embedding lookup ([`embedding`]) as one op each under autodiff. Other
//! backends use Burn's ops; [`set_cpu_kernels`] switches the kernels off.

#![warn(missing_docs)]

mod activation;
#[cfg(feature = "flex")]
mod cpu;
mod error;
#[cfg(feature = "cube")]
mod gpu;
mod kind;
mod lambda;
mod linear;
mod mlp;
mod norm;
mod precision;
mod mask;
mod maps;
mod queries;
mod diff;
mod embedding;
mod standard;

pub use activation::{Activation, gelu, quick_gelu};
pub use diff::DiffAttention;
pub use embedding::embedding;
pub use error::AttentionError;
pub use kind::{Attention, AttentionConfig, AttentionKind};
pub use lambda::LambdaInit;
pub use linear::{linear, linears};
pub use mlp::mlp;
pub use norm::layer_norm;
pub use precision::{MatmulPrecision, bf16_matmul_engine, is_host_device, matmul_precision, matmul_precision_applies, set_matmul_precision, with_matmul_precision};
pub use maps::AttentionMaps;
pub use mask::{AttnMask, causal_mask};
pub use queries::gather_rows;
pub use standard::StandardAttention;

/// How many times this thread has called the attention kernel for CubeCL devices (feature
/// `cube`; differential and standard attention); always 0 without the feature. Training on a
/// wgpu or CUDA device goes through it (inference too with [`set_gpu_inference_kernel`]);
/// tests use this to tell it from a fallback.
pub fn gpu_kernel_calls() -> usize {
    #[cfg(feature = "cube")]
    return gpu::kernel_calls();
    #[cfg(not(feature = "cube"))]
    0
}

/// Whether inference (tensors on a plain, non-autodiff device) on CubeCL devices (wgpu, CUDA)
/// runs diffclip's attention kernel, as training does, instead of Burn's own attention; off
/// by default, for the whole process. The kernel computes `(A1 − λ·A2)·V` as one product per
/// head pair with the RMSNorm folded in; Burn's flash kernel needs two attention calls per
/// differential layer but uses the GPU's matrix units. Which is faster depends on the GPU:
/// `bench --gpu-kernel` measures it. Without the `cube` feature this does nothing.
///
/// ```
/// diffclip_attention::set_gpu_inference_kernel(true);
/// assert_eq!(diffclip_attention::gpu_inference_kernel_enabled(), cfg!(feature = "cube"));
/// diffclip_attention::set_gpu_inference_kernel(false);
/// ```
pub fn set_gpu_inference_kernel(enabled: bool) {
    #[cfg(feature = "cube")]
    gpu::set_inference(enabled);
    #[cfg(not(feature = "cube"))]
    let _ = enabled;
}

/// Whether [`set_gpu_inference_kernel`] turned the kernel on for inference (always `false`
/// without the `cube` feature).
pub fn gpu_inference_kernel_enabled() -> bool {
    #[cfg(feature = "cube")]
    return gpu::inference();
    #[cfg(not(feature = "cube"))]
    false
}

/// Which computation an attention layer uses; both give the same result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AttentionPath {
    /// `burn::tensor::module::attention` (fused/flash kernels where the backend has them).
    #[default]
    Fused,
    /// Materialises the softmax maps; needed for attention dropout and visualisation.
    Reference,
}

/// Turn diffclip's CPU kernels for `flex` tensors (attention, GELU, QuickGELU, linear) on or off for the
/// whole process; on by default. Off, the same layers run Burn's generic ops: useful to compare
/// speed or to bisect a numerical difference. Without the `flex` feature there are no kernels
/// and this does nothing.
///
/// ```
/// diffclip_attention::set_cpu_kernels(false);
/// assert!(!diffclip_attention::cpu_kernels_enabled());
/// diffclip_attention::set_cpu_kernels(true);
/// ```
pub fn set_cpu_kernels(enabled: bool) {
    #[cfg(feature = "flex")]
    cpu::set_enabled(enabled);
    #[cfg(not(feature = "flex"))]
    let _ = enabled;
}

/// Whether [`set_cpu_kernels`] left the kernels on (always `false` without the `flex` feature).
pub fn cpu_kernels_enabled() -> bool {
    #[cfg(feature = "flex")]
    return cpu::enabled();
    #[cfg(not(feature = "flex"))]
    false
}

/// Whether `width` columns split into `heads` heads (in pairs for differential attention) the
/// way the kernels index them. Configs are checked at init, but the layers' fields are public:
/// a layer edited out of shape takes Burn's path (and its error) instead of a kernel.
#[cfg(any(feature = "flex", feature = "cube"))]
pub(crate) fn heads_fit(width: usize, heads: usize, pairs: bool) -> bool {
    heads > 0 && width.is_multiple_of(heads) && (!pairs || heads.is_multiple_of(2))
}
