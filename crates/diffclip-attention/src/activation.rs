//! The transformer MLP's activations, with vectorised multi-threaded kernels on `flex`.

use burn::tensor::Tensor;
use burn::tensor::activation::sigmoid;
use serde::{Deserialize, Serialize};

/// The transformer MLP's nonlinearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Exact (erf) GELU ([`gelu`]): timm and DiffCLIP's vision tower.
    Gelu,
    /// `x * sigmoid(1.702 x)` ([`quick_gelu`]): OpenAI CLIP weights and DiffCLIP's text tower.
    QuickGelu,
}

impl Activation {
    /// The activation of `x`.
    ///
    /// ```
    /// # use burn::tensor::{Device, Tensor};
    /// # fn f(device: Device) {
    /// use diffclip_attention::Activation;
    /// let y = Activation::QuickGelu.apply(Tensor::<1>::from_floats([-1.0, 0.0, 2.0], &device));
    /// # }
    /// ```
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Gelu => gelu(x),
            Activation::QuickGelu => quick_gelu(x),
        }
    }
}

/// Exact (erf) GELU, `0.5·x·(1 + erf(x/√2))`.
///
/// ```
/// # use burn::tensor::{Device, Tensor};
/// # fn f(device: Device) {
/// let y = diffclip_attention::gelu(Tensor::<1>::from_floats([-1.0, 0.0, 2.0], &device));
/// # }
/// ```
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    let x = match crate::cpu::gelu(x) {
        Ok(y) => return y,
        Err(x) => x,
    };
    if x.device().is_autodiff() {
        // Burn 0.22.1's default `gelu_backward` differentiates the tanh approximation (~1e-3
        // off); written with erf, autodiff gives the exact derivative.
        return (x.clone() * std::f64::consts::FRAC_1_SQRT_2).erf().add_scalar(1.0) * x * 0.5;
    }
    burn::tensor::activation::gelu(x)
}

/// QuickGELU, `x·σ(1.702·x)` (OpenAI CLIP).
///
/// ```
/// # use burn::tensor::{Device, Tensor};
/// # fn f(device: Device) {
/// let y = diffclip_attention::quick_gelu(Tensor::<1>::from_floats([-1.0, 0.0, 2.0], &device));
/// # }
/// ```
pub fn quick_gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    let x = match crate::cpu::quick_gelu(x) {
        Ok(y) => return y,
        Err(x) => x,
    };
    x.clone() * sigmoid(x * 1.702)
}
