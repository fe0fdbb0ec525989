//! The transformer MLP, `fc2(act(fc1(x)))`.

use burn::nn::Linear;
use burn::tensor::Tensor;

use crate::{Activation, linear};

/// `fc2(activation(fc1(x)))`, `x` being `[.., fc1's inputs]`.
///
/// With bf16 products on AMX or AVX512-BF16 (plain f32 tensors on flex, see [`crate::MatmulPrecision`]) it is
/// one pass: each of `fc1`'s output blocks is activated while in cache and rounded straight into
/// the bf16 operand `fc2` reads, so the f32 hidden layer (4× the width) is never written or
/// read back; the result is the same bits as the three steps. Elsewhere it is [`linear`],
/// [`Activation::apply`] and [`linear`].
///
/// ```
/// # use burn::nn::LinearConfig;
/// # use burn::tensor::{Device, Tensor};
/// # fn f(device: Device) {
/// use diffclip_attention::{Activation, mlp};
/// let (fc1, fc2) = (LinearConfig::new(4, 16).init(&device), LinearConfig::new(16, 4).init(&device));
/// let y = mlp(&fc1, Activation::Gelu, &fc2, Tensor::<3>::ones([2, 5, 4], &device));
/// assert_eq!(y.dims(), [2, 5, 4]);
/// # }
/// ```
pub fn mlp<const D: usize>(fc1: &Linear, activation: Activation, fc2: &Linear, x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    {
        let bias = |l: &Linear| l.bias.as_ref().map(|b| b.val());
        let (b1, b2) = (bias(fc1), bias(fc2));
        if let Some(y) = crate::cpu::mlp(&x, &fc1.weight.val(), b1.as_ref(), activation, &fc2.weight.val(), b2.as_ref()) {
            return y;
        }
    }
    linear(fc2, activation.apply(linear(fc1, x)))
}

