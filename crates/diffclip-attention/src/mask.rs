use burn::tensor::{Bool, Device, Tensor};

/// An attention mask: `true` marks a key position a query may **not** attend to.
/// Shape `[B or 1, H or 1, N, N]`; it is broadcast over batch and heads. `H` counts the
/// layer's attention heads: `num_heads` for standard attention, `num_heads / 2` (one per
/// differential head) for differential attention.
pub type AttnMask = Tensor<4, Bool>;

/// The causal mask `[1, 1, n, n]` (`true` strictly above the diagonal).
///
/// ```
/// use burn::tensor::Device;
/// let mask = diffclip_attention::causal_mask(3, &Device::flex());
/// assert_eq!(mask.dims(), [1, 1, 3, 3]);
/// let masked = mask.into_data().try_into_vec::<bool>().unwrap();
/// assert_eq!(masked, [false, true, true, false, false, true, false, false, false]);
/// ```
pub fn causal_mask(n: usize, device: &Device) -> AttnMask {
    Tensor::<2, Bool>::tril_mask([n, n], 0, device).reshape([1, 1, n, n])
}

/// Combine the layer's causal flag with an optional user mask into one mask for the
/// reference path (`None` when nothing is masked).
pub(crate) fn full_mask(
    causal: bool,
    mask: Option<AttnMask>,
    n: usize,
    device: &Device,
) -> Option<AttnMask> {
    match (causal, mask) {
        (false, m) => m,
        (true, None) => Some(causal_mask(n, device)),
        (true, Some(m)) => Some(m.bool_or(causal_mask(n, device))),
    }
}

/// Split the layer's mask into what `burn::tensor::module::attention` takes: an explicit mask
/// (expanded to the full 4-D shape) and the `is_causal` flag.
pub(crate) fn fused_mask(
    causal: bool,
    mask: Option<AttnMask>,
    shape: [usize; 4],
) -> (Option<AttnMask>, bool) {
    match mask {
        None => (None, causal),
        Some(m) => (Some(m.expand(shape)), causal),
    }
}
