use burn::tensor::Tensor;

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
    pub fn effective(&self) -> Tensor<4> {
        match (&self.second, &self.lambda) {
            (Some(a2), Some(l)) => {
                self.first.clone() - a2.clone() * l.clone().reshape([1, 1, 1, 1])
            }
            _ => self.first.clone(),
        }
    }
}
