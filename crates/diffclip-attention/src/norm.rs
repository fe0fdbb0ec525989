//! LayerNorm, with a one-op kernel and backward under autodiff on `flex`.

use burn::tensor::{DType, Tensor};

/// LayerNorm over the last dimension, `(x − μ) / √(var + eps) · γ + β`. Under autodiff on
/// flex it is one differentiable op (one pass forward, one backward; Burn records about ten);
/// elsewhere Burn's `layer_norm`, widened to f32 for f16/bf16 inputs as `nn::LayerNorm` does.
///
/// ```
/// # use burn::tensor::{Device, Tensor};
/// # fn f(device: Device) {
/// let x = Tensor::<2>::from_floats([[1.0, 2.0, 3.0]], &device);
/// let y = diffclip_attention::layer_norm(x, Tensor::ones([3], &device), None, 1e-5);
/// # }
/// ```
pub fn layer_norm<const D: usize>(x: Tensor<D>, gamma: Tensor<1>, beta: Option<Tensor<1>>, eps: f64) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if let Some(y) = crate::cpu::layer_norm_tracked(&x, &gamma, beta.as_ref(), eps) {
        return y;
    }
    let dtype = x.dtype();
    if matches!(dtype, DType::F16 | DType::BF16) {
        let wide = |t: Tensor<1>| t.cast(DType::F32);
        return burn::tensor::module::layer_norm(x.cast(DType::F32), wide(gamma), beta.map(wide), eps).cast(dtype);
    }
    burn::tensor::module::layer_norm(x, gamma, beta, eps)
}
