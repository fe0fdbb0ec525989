//! Mixed precision: what a forward and backward in bf16 or f16 compute from f32 master weights.

use burn::tensor::Device;
use diffclip_clip::attention::with_matmul_precision;
use diffclip_clip::{Clip, Precision};

use crate::TrainError;

/// `model` as it computes in `precision` on `device`, to run inside [`in_products`]: the model
/// itself where the precision runs as products of its f32 weights (bf16 and f16 on the CPU,
/// [`Precision::products_on`]), else a cast whose casts are recorded, so the gradients reach
/// the f32 master weights (an f32 model stays as it is). A device without the arithmetic is a
/// [`TrainError::Config`].
///
/// ```
/// use diffclip_clip::{ClipConfig, Precision};
/// // The CPU: with wgpu compiled in, the default device would train f16 on it, where Burn
/// // 0.22.1's fusion can fault under concurrent use (burn#4347, docs/performance.md).
/// let device = burn::tensor::Device::flex().autodiff();
/// let model = ClipConfig::diffclip_tiny().init(&device).unwrap();
/// let f16 = diffclip_train::compute_model(&model, Precision::F16, &device).unwrap();
/// // f32 weights with f16 products on the CPU (flex), f16 weights elsewhere.
/// let products = Precision::F16.products_on(&device);
/// assert_eq!(f16.precision(), Some(if products { Precision::F32 } else { Precision::F16 }));
/// let (value, grads) = diffclip_train::in_products(Precision::F16, || {
///     let images = burn::tensor::Tensor::zeros([1, 3, 32, 32], &device);
///     let loss = f16.encode_image(images).sum();
///     (loss.clone().into_scalar::<f32>(), loss.backward())
/// });
/// assert!(value.is_finite() && model.image_projection.grad(&grads).is_some());
/// ```
pub fn compute_model(model: &Clip, precision: Precision, device: &Device) -> Result<Clip, TrainError> {
    if precision.products_on(device) {
        return Ok(model.clone());
    }
    Ok(model.clone().with_precision(precision)?)
}

/// Runs `f`, a forward and backward from this thread, with products in `precision`
/// ([`Precision::products`]): they apply to the f32 tensors on the CPU that [`compute_model`]
/// leaves uncast, and nowhere else. For f32 the caller's setting stays.
pub fn in_products<R>(precision: Precision, f: impl FnOnce() -> R) -> R {
    match precision {
        Precision::F32 => f(),
        p => with_matmul_precision(p.products(), f),
    }
}
