//! The training step timed by `benches/train_step.rs` (criterion) and `examples/bench --train`
//! (against PyTorch in `benches/compare_pytorch.sh`): the small model, batch 32,
//! random data, as `diffclip_train::Trainer` does a step: forward on both towers, symmetric
//! InfoNCE on normalised features (`clip_loss_normalized`), backward, gradient collection,
//! global-norm clipping to 1, AdamW update. Autodiff device; f32, or mixed precision as the
//! trainer does it (bf16 / f16 products of the f32 weights on the CPU, else a cast of them;
//! f16 scales the loss).

// Shared by benches/train_step.rs and examples/bench.rs, each of which uses part of it.
#![allow(dead_code)]

use diffclip::attention::AttentionKind;
use diffclip::burn::tensor::{DType, Device, Distribution, Int, Tensor, TensorData};
use diffclip::clip::loss::clip_loss_normalized;
use diffclip::clip::{Clip, ClipConfig, Precision};
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

/// ViT-B/16's two models (224² images), for the GPU comparison's batch-64 step.
pub fn vit_b16_models() -> [(&'static str, ClipConfig); 2] {
    [("diffclip_vit_b16", ClipConfig::diffclip_vit_b16()), ("clip_vit_b16", ClipConfig::clip_vit_b16())]
}

/// A batch of [`BATCH`] random 64² images and in-vocabulary token ids, on `device`.
pub fn inputs(device: &Device) -> (Tensor<4>, Tensor<2, Int>) {
    inputs_of(BATCH, 64, device)
}

/// `batch` random `size`² images and in-vocabulary token ids (end-of-text last), on `device`.
pub fn inputs_of(batch: usize, size: usize, device: &Device) -> (Tensor<4>, Tensor<2, Int>) {
    let images = Tensor::<4>::random([batch, 3, size, size], Distribution::Default, device);
    let mut ids: Vec<i64> = (0..batch * 77).map(|i| (i as i64 * 7919) % 49000 + 1).collect();
    for row in ids.chunks_mut(77) {
        row[76] = 49407;
    }
    (images, Tensor::from_data(TensorData::new(ids, [batch, 77]), device))
}

/// f16's loss scale here: fixed (the trainer's is dynamic), large enough to keep small
/// gradients, small enough not to overflow this step.
const F16_LOSS_SCALE: f64 = 1024.0;

/// One optimisation step in f32; returns the updated model and the loss. The loss and one
/// updated weight are read back and the device synced, so the step has surely run (the
/// optimizer is lazy on some backends).
pub fn step(model: Clip, optim: &mut AdamW, images: &Tensor<4>, text: &Tensor<2, Int>) -> (Clip, f32) {
    step_in(model, optim, images, text, Precision::F32)
}

/// [`step`] computing in `precision` from the f32 weights as the trainer does
/// ([`Clip::with_precision`] of the master weights: gradients and AdamW's state stay f32).
pub fn step_in(model: Clip, optim: &mut AdamW, images: &Tensor<4>, text: &Tensor<2, Int>, precision: Precision) -> (Clip, f32) {
    let compute = model.clone().with_precision(precision).expect("a precision the device has");
    let loss_scale = if precision == Precision::F16 { F16_LOSS_SCALE } else { 1.0 };
    // `compute` is dropped here, before the update: it shares no buffer with the weights AdamW
    // then writes in place (as in the trainer).
    let (value, backward) = {
        let out = compute.forward(images.clone(), text.clone());
        let scale = out.logit_scale_exp.cast(DType::F32).clamp_max(100.0);
        let loss = clip_loss_normalized(out.image_embed, out.text_embed, scale);
        (loss.clone().into_scalar::<f32>(), (loss * loss_scale).backward())
    };
    drop(compute);
    let mut grads = GradBuffer::default();
    grads.accumulate(&model, &backward);
    let clip = GradBuffer::clip_factor(grads.norm() / loss_scale, Some(1.0));
    let model = optim.step_scaled(model, 1e-4, &grads, clip / loss_scale);
    let w = model.logit_scale.val().into_scalar::<f32>();
    images.device().sync().expect("device sync");
    std::hint::black_box(w);
    (model, value)
}
