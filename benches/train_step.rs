//! One training step of a small DiffCLIP and CLIP model, as `diffclip_train::Trainer` does it:
//! forward on both towers, symmetric InfoNCE on normalised features (`clip_loss_normalized`),
//! backward, gradient collection, global-norm clipping, AdamW update. Autodiff device, f32.
//!
//! The model is the issue's small one: vision 64 px / patch 16 / width 192 / 4 layers / 6 heads,
//! text width 128 / 3 layers / 4 heads / 77 tokens, embedding 128, batch 32, random data.
//! `DIFFCLIP_BENCH_QUICK=1` changes nothing here (one step is already well under a second).
//!
//! ```sh
//! cargo bench --bench train_step
//! ```

mod common;

use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use diffclip::attention::AttentionKind;
use diffclip::burn::tensor::{Distribution, Int, Tensor, TensorData};
use diffclip::clip::loss::clip_loss_normalized;
use diffclip::clip::{Clip, ClipConfig};
use diffclip::encoders::{TextConfig, VisionConfig};
use diffclip::train::{AdamW, AdamWConfig, GradBuffer};
use std::hint::black_box;
use std::time::Duration;

const BATCH: usize = 32;

/// The issue's small DiffCLIP (differential attention in both towers).
fn small_diffclip() -> ClipConfig {
    ClipConfig {
        embed_dim: 128,
        vision: VisionConfig::timm(64, 16, 192, 4, 6),
        text: TextConfig::new(128, 3, 4),
        ..ClipConfig::diffclip_tiny()
    }
}

/// One optimisation step; returns the updated model and the loss.
fn step(model: Clip, optim: &mut AdamW, images: &Tensor<4>, text: &Tensor<2, Int>) -> (Clip, f32) {
    let out = model.forward(images.clone(), text.clone());
    let loss = clip_loss_normalized(
        out.image_embed,
        out.text_embed,
        out.logit_scale_exp.clamp_max(100.0),
    );
    let value = loss.clone().into_scalar::<f32>();
    let mut grads = GradBuffer::default();
    grads.accumulate(&model, &loss.backward());
    let norm = grads.norm();
    if norm > 1.0 {
        grads.scale(1.0 / (norm + 1e-6));
    }
    (optim.step(model, 1e-4, &grads), value)
}

fn train_step(c: &mut Criterion) {
    let device = common::device().autodiff();
    let images = Tensor::<4>::random([BATCH, 3, 64, 64], Distribution::Default, &device);
    let mut ids: Vec<i64> = (0..BATCH * 77)
        .map(|i| (i as i64 * 7919) % 49000 + 1)
        .collect();
    for row in ids.chunks_mut(77) {
        row[76] = 49407;
    }
    let text: Tensor<2, Int> = Tensor::from_data(TensorData::new(ids, [BATCH, 77]), &device);
    let mut group = c.benchmark_group("train_step");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    let variants = [
        ("diffclip_small", small_diffclip()),
        (
            "clip_small",
            small_diffclip().with_attention(AttentionKind::Standard, AttentionKind::Standard),
        ),
    ];
    for (name, config) in variants {
        let mut model = Some(config.init(&device).expect("model"));
        let mut optim = AdamW::new(AdamWConfig::default());
        group.bench_with_input(BenchmarkId::new(name, BATCH), &BATCH, |b, _| {
            b.iter(|| {
                let (next, loss) = step(model.take().expect("model"), &mut optim, &images, &text);
                model = Some(next);
                // The optimizer is lazy on some backends: read an updated weight too.
                let w = model
                    .as_ref()
                    .expect("model")
                    .logit_scale
                    .val()
                    .into_scalar::<f32>();
                device.sync().expect("device sync");
                black_box((loss, w))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, train_step);
criterion_main!(benches);
