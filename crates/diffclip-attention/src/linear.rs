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

/// Several linear layers of one input: `layers[i].forward(x)` for each (a layer's q, k and v
/// projections). With bf16 products on AMX or AVX512-BF16 (plain f32 tensors on flex) `x` is
/// rounded and packed once for all of them; the results are the same bits as [`linear`] of each.
///
/// ```
/// # use burn::nn::LinearConfig;
/// # use burn::tensor::{Device, Tensor};
/// # fn f(device: Device) {
/// let (q, v) = (LinearConfig::new(4, 3).init(&device), LinearConfig::new(4, 6).init(&device));
/// let [yq, yv] = diffclip_attention::linears([&q, &v], Tensor::<3>::ones([2, 5, 4], &device));
/// assert_eq!((yq.dims(), yv.dims()), ([2, 5, 3], [2, 5, 6]));
/// # }
/// ```
pub fn linears<const D: usize, const L: usize>(layers: [&Linear; L], x: Tensor<D>) -> [Tensor<D>; L] {
    #[cfg(feature = "flex")]
    {
        let weights: Vec<_> = layers.iter().map(|l| (l.weight.val(), l.bias.as_ref().map(|b| b.val()))).collect();
        if let Some(ys) = crate::cpu::linears(&x, &weights).and_then(|ys| ys.try_into().ok()) {
            return ys;
        }
    }
    layers.map(|layer| linear(layer, x.clone()))
}
