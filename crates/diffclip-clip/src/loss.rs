//! Contrastive losses: open_clip's symmetric InfoNCE (`ClipLoss`) and SigLIP's sigmoid loss.

use burn::tensor::activation::{log_sigmoid, log_softmax};
use burn::tensor::{Int, Tensor};

use crate::normalize;

/// The largest similarity multiplier training allows (open_clip clamps `exp(logit_scale)`).
pub const MAX_LOGIT_SCALE: f64 = 100.0;

/// Symmetric InfoNCE over a batch of matching pairs, exactly open_clip's `ClipLoss`:
/// `(CE(s·I·Tᵀ, arange) + CE(s·T·Iᵀ, arange)) / 2`. Features are used as given (normalise them
/// first, or use [`clip_loss_normalized`]); `scale` is the multiplier `exp(logit_scale)`, `[1]`.
///
/// ```no_run
/// # use burn::tensor::{Device, Tensor, Distribution};
/// # fn f(device: Device) {
/// use diffclip_clip::loss::clip_loss;
/// let img = Tensor::<2>::random([8, 32], Distribution::Default, &device);
/// let txt = Tensor::<2>::random([8, 32], Distribution::Default, &device);
/// let loss = clip_loss(img, txt, Tensor::from_floats([14.3], &device)); // [1]
/// # }
/// ```
pub fn clip_loss(image: Tensor<2>, text: Tensor<2>, scale: Tensor<1>) -> Tensor<1> {
    let [n, _] = image.dims();
    let per_image = image.matmul(text.transpose()) * per_row(scale, n);
    let per_text = per_image.clone().transpose();
    let labels = Tensor::<1, Int>::arange(0..n as i64, &per_image.device()).reshape([n, 1]);
    (cross_entropy(per_image, labels.clone()) + cross_entropy(per_text, labels)) / 2.0
}

/// [`clip_loss`] on L2-normalised features, normalising inside the graph (SLIP's `CLIPLoss`).
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use diffclip_clip::loss::clip_loss_normalized;
/// let device = Device::flex();
/// let pairs = Tensor::<2>::from_floats([[1.0, 0.0], [0.0, 2.0]], &device);
/// let scale = || Tensor::<1>::from_floats([10.0], &device);
/// let matched = clip_loss_normalized(pairs.clone(), pairs.clone(), scale()).into_scalar::<f32>();
/// let swapped = clip_loss_normalized(pairs.clone(), pairs.flip([0]), scale()).into_scalar::<f32>();
/// assert!(matched < 1e-3 && swapped > 9.0, "{matched} {swapped}");
/// ```
pub fn clip_loss_normalized(image: Tensor<2>, text: Tensor<2>, scale: Tensor<1>) -> Tensor<1> {
    clip_loss(normalize(image), normalize(text), scale)
}

/// SigLIP's pairwise sigmoid loss on L2-normalised features:
/// `-Σ log σ(z_ij (s·I_i·T_j + b)) / N` with `z_ij = 1` on the diagonal and `-1` elsewhere.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use diffclip_clip::loss::siglip_loss;
/// let device = Device::flex();
/// let pairs = Tensor::<2>::from_floats([[1.0, 0.0], [0.0, 1.0]], &device);
/// let (scale, bias) = (Tensor::from_floats([10.0], &device), Tensor::from_floats([-5.0], &device));
/// // Each of the 4 logits is ±5 on the right side: 4 · ln(1 + e⁻⁵) / 2.
/// let loss = siglip_loss(pairs.clone(), pairs, scale, bias).into_scalar::<f32>();
/// assert!((loss - 2.0 * (1.0 + (-5.0f32).exp()).ln()).abs() < 1e-5, "{loss}");
/// ```
pub fn siglip_loss(image: Tensor<2>, text: Tensor<2>, scale: Tensor<1>, bias: Tensor<1>) -> Tensor<1> {
    let [n, _] = image.dims();
    let device = image.device();
    let logits = normalize(image).matmul(normalize(text).transpose()) * per_row(scale.clone(), n) + per_row(bias, n);
    let signs = Tensor::<2>::eye(n, &device) * 2.0 - 1.0;
    -log_sigmoid(logits * signs).sum().reshape([1]) / n as f64
}

/// A `[1]` scalar as `[n, 1]`, to multiply `[n, ·]` logits with.
///
/// Broadcasting `[1, 1]` would make its gradient one reduction over all n² logits, and Burn
/// 0.22.1's wgpu backend (lavapipe) returns wrong sums when one reduction spans 2^18 elements or
/// more (batch 512); this way each reduction spans n.
fn per_row(scalar: Tensor<1>, n: usize) -> Tensor<2> {
    scalar.reshape([1, 1]).expand([n, 1])
}

/// Mean cross-entropy of `logits [N, C]` against class indices `labels [N, 1]`.
fn cross_entropy(logits: Tensor<2>, labels: Tensor<2, Int>) -> Tensor<1> {
    -log_softmax(logits, 1).gather(1, labels).mean()
}
