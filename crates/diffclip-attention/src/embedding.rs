//! Embedding lookup, with its own backward under autodiff on `flex`.

use burn::tensor::{Int, Tensor};

/// Rows `ids` (`[B, L]`) of `weight` (`[vocab, width]`): `[B, L, width]`, as
/// `burn::nn::Embedding::forward`. Under autodiff on flex the table's gradient is written
/// once (Burn's flex backward zero-fills it and then copies it whole); elsewhere it is
/// Burn's `embedding`.
///
/// ```
/// # use burn::tensor::{Device, Int, Tensor};
/// # fn f(device: Device) {
/// let table = Tensor::<2>::from_floats([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]], &device);
/// let ids = Tensor::<2, Int>::from_ints([[2, 0]], &device);
/// let rows = diffclip_attention::embedding(table, ids); // [[[4, 5], [0, 1]]]
/// assert_eq!(rows.dims(), [1, 2, 2]);
/// # }
/// ```
pub fn embedding(weight: Tensor<2>, ids: Tensor<2, Int>) -> Tensor<3> {
    #[cfg(feature = "flex")]
    if let Some(y) = crate::cpu::embedding_tracked(&weight, &ids) {
        return y;
    }
    burn::tensor::module::embedding(weight, ids)
}
