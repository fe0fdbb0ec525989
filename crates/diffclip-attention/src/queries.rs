//! Attention for one query position per item: an encoder's last block needs the output at its
//! pooled position (the class token, or a caption's end-of-text token), yet every position's
//! keys and values.

use burn::tensor::{Int, Tensor};

use crate::AttnMask;

/// Each item's position `at[b]` of `x [B, N, D]`, `[B, 1, D]` (`at` is `[B, 1]`).
///
/// ```
/// # use burn::tensor::{Device, Int, Tensor};
/// # fn f(device: Device) {
/// let x = Tensor::<3>::from_floats([[[0.0], [1.0]], [[2.0], [3.0]]], &device);
/// let at = Tensor::<2, Int>::from_ints([[1], [0]], &device);
/// let rows = diffclip_attention::gather_rows(x, at); // [[[1.0]], [[2.0]]]
/// # }
/// ```
pub fn gather_rows(x: Tensor<3>, at: Tensor<2, Int>) -> Tensor<3> {
    let [b, _, d] = x.dims();
    x.gather(1, at.reshape([b, 1, 1]).expand([b, 1, d]))
}

/// The keys that query position `at[b]` may not see among `n`, `[B, 1, 1, N]` (`true` = masked):
/// those after it in a causal layer; `None` (every key) otherwise.
pub(crate) fn keys_after(causal: bool, at: &Tensor<2, Int>, n: usize) -> Option<AttnMask> {
    if !causal {
        return None;
    }
    let b = at.dims()[0];
    // In `at`'s int type: an argmax's may differ from the device's default.
    let keys = Tensor::<1, Int>::arange(0..n as i64, (&at.device(), at.dtype())).reshape([1, n]).expand([b, n]);
    Some(keys.greater(at.clone().expand([b, n])).reshape([b, 1, 1, n]))
}
