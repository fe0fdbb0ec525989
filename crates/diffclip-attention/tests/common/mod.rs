//! Helpers shared by the attention test binaries.
#![allow(dead_code)]

use burn::module::Param;
use burn::tensor::{Distribution, Tensor};
use diffclip_attention::{AttentionConfig, DiffAttention};

/// Largest |a − b| relative to the largest |b| (NaN counts as a failure).
pub fn rel_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    let scale = b.clone().abs().max().into_scalar::<f32>().max(1e-12);
    let d = (a - b).abs().max().into_scalar::<f32>() / scale;
    if d.is_nan() { f32::INFINITY } else { d }
}

/// Largest |a − b| (NaN counts as a failure).
pub fn max_diff(a: Tensor<3>, b: Tensor<3>) -> f32 {
    let d = (a - b).abs().max().into_scalar::<f32>();
    if d.is_nan() { f32::INFINITY } else { d }
}

/// An input, a probe to weigh the output with, and a differential layer (width 32, 4 heads)
/// whose norm gain is random rather than ones, so a kernel's use of γ is checked too.
pub fn gradient_case(ad: &burn::tensor::Device, n: usize, causal: bool) -> (Tensor<3>, Tensor<3>, DiffAttention) {
    gradient_case_sized(ad, n, 32, 4, causal)
}

/// [`gradient_case`] with `width` columns in `heads` heads (head dimension `width / heads`).
pub fn gradient_case_sized(ad: &burn::tensor::Device, n: usize, width: usize, heads: usize, causal: bool) -> (Tensor<3>, Tensor<3>, DiffAttention) {
    let x = Tensor::<3>::random([2, n, width], Distribution::Normal(0.0, 1.0), ad);
    let probe = Tensor::<3>::random([2, n, width], Distribution::Normal(0.0, 1.0), ad);
    let mut diff = AttentionConfig { causal, ..AttentionConfig::new(width, heads) }.init_differential(ad).unwrap();
    let pair_width = 2 * width / heads;
    diff.diff_norm.gamma = Param::from_tensor(Tensor::random([pair_width], Distribution::Uniform(0.5, 1.5), ad));
    (x, probe, diff)
}

/// Casts every float parameter (recorded by autodiff: gradients reach the f32 originals).
pub struct Cast(pub burn::tensor::FloatDType);

impl burn::module::ModuleMapper for Cast {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        Param::from_mapped_value(id, tensor.cast(self.0), mapper)
    }
}

// Tests run one at a time under it (f16 autodiff on wgpu fails inside Burn's fusion while
// other threads use the device: `half.rs`).
pub use diffclip_testkit::serial;

/// Turns diffclip's CubeCL kernel on for inference (`set_gpu_inference_kernel`) until dropped,
/// a failed assertion included, so no later test of the binary inherits the switch.
pub struct GpuInferenceKernel;

impl GpuInferenceKernel {
    pub fn on() -> Self {
        diffclip_attention::set_gpu_inference_kernel(true);
        GpuInferenceKernel
    }
}

impl Drop for GpuInferenceKernel {
    fn drop(&mut self) {
        diffclip_attention::set_gpu_inference_kernel(false);
    }
}
