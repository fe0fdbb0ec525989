//! The training step timed by `benches/train_step.rs` (criterion) and `examples/bench --train`
//! (against PyTorch in `benches/compare_pytorch.sh`): the small model, batch 32,
//! random data, as `diffclip_train::Trainer` does a step: forward on both towers, symmetric
//! InfoNCE on normalised features (`clip_loss_normalized`), backward, gradient collection,
//! global-norm clipping to 1, AdamW update. Autodiff device, f32.

use diffclip::attention::AttentionKind;
use diffclip::burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use diffclip::clip::loss::clip_loss_normalized;
use diffclip::clip::{Clip, ClipConfig};
use diffclip::encoders::{TextConfig, VisionConfig};
use diffclip::train::{AdamW, GradBuffer};

/// Images and texts per step.
pub const BATCH: usize = 32;

/// The small DiffCLIP (differential attention in both towers): vision 64 px / patch 16 /
/// width 192 / 4 layers / 6 heads, text width 128 / 3 layers / 4 heads / 77 tokens, embedding 128.
pub fn small_diffclip() -> ClipConfig {
    ClipConfig { embed_dim: 128, vision: VisionConfig::timm(64, 16, 192, 4, 6), text: TextConfig::new(128, 3, 4), ..ClipConfig::diffclip_tiny() }
}

/// The two timed models: the small DiffCLIP and the same with standard attention.
pub fn small_models() -> [(&'static str, ClipConfig); 2] {
    [("diffclip_small", small_diffclip()), ("clip_small", small_diffclip().with_attention(AttentionKind::Standard, AttentionKind::Standard))]
}

/// A batch of random images and in-vocabulary token ids (end-of-text last), on `device`.
pub fn inputs(device: &Device) -> (Tensor<4>, Tensor<2, Int>) {
    let images = Tensor::<4>::random([BATCH, 3, 64, 64], Distribution::Default, device);
    let mut ids: Vec<i64> = (0..BATCH * 77).map(|i| (i as i64 * 7919) % 49000 + 1).collect();
    for row in ids.chunks_mut(77) {
        row[76] = 49407;
    }
    (images, Tensor::from_data(TensorData::new(ids, [BATCH, 77]), device))
}

/// One optimisation step; returns the updated model and the loss. The loss and one updated
/// weight are read back and the device synced, so the step has surely run (the optimizer is
/// lazy on some backends).
pub fn step(model: Clip, optim: &mut AdamW, images: &Tensor<4>, text: &Tensor<2, Int>) -> (Clip, f32) {
    let out = model.forward(images.clone(), text.clone());
    let loss = clip_loss_normalized(out.image_embed, out.text_embed, out.logit_scale_exp.clamp_max(100.0));
    let value = loss.clone().into_scalar::<f32>();
    let mut grads = GradBuffer::default();
    grads.accumulate(&model, &loss.backward());
    let clip = GradBuffer::clip_factor(grads.norm(), Some(1.0));
    let model = optim.step_scaled(model, 1e-4, &grads, clip);
    let w = model.logit_scale.val().into_scalar::<f32>();
    images.device().sync().expect("device sync");
    std::hint::black_box(w);
    (model, value)
}
