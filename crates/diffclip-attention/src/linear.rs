//! Linear layers, with a one-GEMM kernel on `flex`.

use burn::nn::Linear;
use burn::tensor::Tensor;

/// `layer.forward(x)`, that is `x·W + b`. On flex (plain or autodiff) it runs as one GEMM
/// over all rows of `x` that starts from the bias and writes its output once, with its own
/// backward; elsewhere, or with the CPU kernels off, it is Burn's `Linear::forward`.
///
/// ```
/// # use burn::nn::LinearConfig;
/// # use burn::tensor::{Device, Tensor};
/// # fn f(device: Device) {
/// let layer = LinearConfig::new(4, 3).init(&device);
/// let y = diffclip_attention::linear(&layer, Tensor::<3>::ones([2, 5, 4], &device));
/// assert_eq!(y.dims(), [2, 5, 3]);
/// # }
/// ```
pub fn linear<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if let Some(y) = crate::cpu::linear(&x, &layer.weight.val(), layer.bias.as_ref().map(|b| b.val()).as_ref()) {
        return y;
    }
    layer.forward(x)
}
