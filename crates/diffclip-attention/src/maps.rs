use burn::tensor::Tensor;
use burn::tensor::activation::softmax;

use crate::AttnMask;

/// Attention maps returned by the reference path, for visualisation.
#[derive(Debug, Clone)]
pub struct AttentionMaps {
    /// Standard attention: the softmax map `[B, H, N, N]`. Differential attention: the first
    /// map of each head pair `A1`, `[B, H/2, N, N]`.
    pub first: Tensor<4>,
    /// Differential attention only: the subtracted map `A2` `[B, H/2, N, N]`.
    pub second: Option<Tensor<4>>,
    /// Differential attention only: `lambda_full` (`[1]`).
    pub lambda: Option<Tensor<1>>,
}

impl AttentionMaps {
    /// The effective map: `A1 - lambda * A2` for differential attention, `A` otherwise.
    ///
    /// ```
    /// use burn::tensor::{Device, Distribution, Tensor};
    /// use diffclip_attention::AttentionConfig;
    /// let device = Device::flex();
    /// let layer = AttentionConfig::new(32, 2).init_differential(&device).unwrap();
    /// let x = Tensor::<3>::random([1, 5, 32], Distribution::Default, &device);
    /// let (_, maps) = layer.forward_with_maps(x, None);
    /// // Each softmax row sums to 1, so each effective row sums to 1 − λ.
    /// let lambda = maps.lambda.clone().unwrap().into_scalar::<f32>();
    /// let row = maps.effective().sum_dim(3).into_data().try_into_vec::<f32>().unwrap()[0];
    /// assert!((row - (1.0 - lambda)).abs() < 1e-5);
    /// ```
    pub fn effective(&self) -> Tensor<4> {
        match (&self.second, &self.lambda) {
            (Some(a2), Some(l)) => {
                self.first.clone() - a2.clone() * l.clone().reshape([1, 1, 1, 1])
            }
            _ => self.first.clone(),
        }
    }
}

/// The softmax maps `softmax(q·kᵀ / √head_dim)` of `q [B, H, M, hd]` against `k [B, H, N, hd]`,
/// keys under `mask` (broadcast to `[B, H, M, N]`) at −∞: the reference paths' maps.
pub(crate) fn softmax_maps(q: Tensor<4>, k: Tensor<4>, head_dim: usize, mask: Option<AttnMask>) -> Tensor<4> {
    let q = q * (head_dim as f64).powf(-0.5);
    let scores = q.matmul(k.swap_dims(2, 3));
    let scores = match mask {
        Some(mask) => scores.mask_fill(mask, f32::NEG_INFINITY),
        None => scores,
    };
    softmax(scores, 3)
}
