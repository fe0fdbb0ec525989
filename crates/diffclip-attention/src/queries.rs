//! Attention for the first few positions only: a class-token encoder's last block needs the
//! output of one position, yet every position's keys and values.

use burn::tensor::Tensor;

/// How many leading positions of `x [B, N, D]` a layer projects queries for when only the
/// first `queries` outputs are wanted: those alone, except with a mask or the causal flag (both
/// `N × N`) and on autodiff flex (the kernel's backward is written for self-attention), where
/// all N are computed and the output narrowed.
pub(crate) fn query_rows(x: &Tensor<3>, causal: bool, masked: bool, queries: usize) -> usize {
    let n = x.dims()[1];
    #[cfg(feature = "flex")]
    if crate::cpu::is_autodiff_flex(x) {
        return n;
    }
    if causal || masked { n } else { queries.min(n) }
}

/// The first `rows` positions of `[B, N, D]` (no op when that is all of them).
pub(crate) fn first_rows(t: Tensor<3>, rows: usize) -> Tensor<3> {
    if rows < t.dims()[1] { t.narrow(1, 0, rows) } else { t }
}
