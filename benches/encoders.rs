//! ViT-B/16 image encoding (224², batch 8) and text encoding (32 × 77 tokens) for
//! `diffclip_vit_b16` and `clip_vit_b16`, random weights, f32, inference (no autodiff).
//!
//! `DIFFCLIP_BENCH_QUICK=1`: image batch 2, text batch 8 (fewer seconds per sample on 2 cores).
//!
//! ```sh
//! cargo bench --bench encoders
//! cargo bench --bench encoders -- encode_image     # one group
//! ```
//!
//! Ids are `encode_image/{preset}/{batch}` and `encode_text/{preset}/{batch}`; divide the batch by
//! the time for images/s or texts/s (or use `examples/bench.rs`, which prints throughput).
//!
//! `matmul_{amx,avx512-bf16,rounded-f32}/{encode_image,encode_text}/{f32,bf16,f16}`:
//! `diffclip_vit_b16` with the products (linear layers and attention) in f32, bf16 and f16
//! (`Clip::with_precision`), and `linear_1576x768x3072/{f32,bf16,f16}`, one linear layer (the
//! MLP's first, 8 images' tokens) in each, the bf16 engine in the group's name;
//! `DIFFCLIP_BF16_ENGINE=rounded-f32` (or another name) runs another engine the CPU offers.
//!
//! `encode_caption/{16,77}`: one caption of 16 or 77 tokens (`diffclip_vit_b16`), the work of
//! serving a text query; run it again with `DIFFCLIP_NO_FEW_ROWS=1` for the `gemm` crate's
//! few-rows products instead of diffclip's.
//!
//! `encode_texts/{by_length,in_order}/256`: `Encoder::encode_texts` on 256 captions of 4 to 24
//! words (`diffclip_vit_b16`, batches of 64), as one call (batched by length) and as one call
//! per 64 captions in their given order (each batch as long as its longest caption).

mod common;

use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use diffclip::burn::tensor::{Distribution, Int, Tensor, TensorData};
use diffclip::clip::ClipConfig;
use std::hint::black_box;
use std::time::Duration;

const PRESETS: [&str; 2] = ["diffclip_vit_b16", "clip_vit_b16"];

fn batches() -> (usize, usize) {
    if common::quick() { (2, 8) } else { (8, 32) }
}

fn encoders(c: &mut Criterion) {
    let device = common::device();
    let (image_batch, text_batch) = batches();
    let images = Tensor::<4>::random([image_batch, 3, 224, 224], Distribution::Default, &device);
    // Token ids in the vocabulary with the end-of-text id (the largest) last, as the tokenizer writes.
    let mut ids: Vec<i64> = (0..text_batch * 77)
        .map(|i| (i as i64 * 7919) % 49000 + 1)
        .collect();
    for row in ids.chunks_mut(77) {
        row[76] = 49407;
    }
    let text: Tensor<2, Int> = Tensor::from_data(TensorData::new(ids, [text_batch, 77]), &device);

    for preset in PRESETS {
        let model = ClipConfig::preset(preset)
            .expect("preset")
            .init(&device)
            .expect("model");
        let mut group = c.benchmark_group("encode_image");
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .measurement_time(Duration::from_secs(20));
        group.bench_with_input(
            BenchmarkId::new(preset, image_batch),
            &image_batch,
            |b, _| {
                b.iter(|| black_box(common::finish(&device, model.encode_image(images.clone()))))
            },
        );
        group.finish();

        let mut group = c.benchmark_group("encode_text");
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .measurement_time(Duration::from_secs(15));
        group.bench_with_input(BenchmarkId::new(preset, text_batch), &text_batch, |b, _| {
            b.iter(|| black_box(common::finish(&device, model.encode_text(text.clone()))))
        });
        group.finish();
        if preset == "diffclip_vit_b16" {
            lone_captions(c, &model);
            captions(c, &model);
            // Products apply on the CPU (flex with its kernels): elsewhere bf16 is a cast, or refused.
            if diffclip::attention::matmul_precision_applies(&common::device()) {
                reduced_products(c, &model, &images, &text);
            }
        }
    }
}

/// The same encoders with the linear layers' products in bf16 (`--dtype bf16` on the CPU:
/// AMX or AVX512-BF16 where the CPU has them, else rounded operands at f32 speed) and in f16 (`--dtype f16`:
/// rounded operands, the f32 GEMM), against f32 in one group.
fn reduced_products(c: &mut Criterion, model: &diffclip::clip::Clip, images: &Tensor<4>, text: &Tensor<2, Int>) {
    use diffclip::clip::Precision;
    let device = common::device();
    let mut group = c.benchmark_group(format!("matmul_{}", diffclip::attention::bf16_matmul_engine()));
    group.sampling_mode(SamplingMode::Flat).sample_size(10).measurement_time(Duration::from_secs(20));
    // The ViT-B/16 MLP's first layer on 8 images' tokens: one GEMM, [1576, 768] · [768, 3072].
    let fc1 = diffclip::burn::nn::LinearConfig::new(768, 3072).init(&device);
    let tokens = Tensor::<3>::random([8, 197, 768], Distribution::Default, &device);
    for precision in [Precision::F32, Precision::Bf16, Precision::F16] {
        let products = precision.products();
        group.bench_function(BenchmarkId::new("linear_1576x768x3072", precision), |b| {
            b.iter(|| black_box(common::finish(&device, diffclip::attention::with_matmul_precision(products, || diffclip::attention::linear(&fc1, tokens.clone())))))
        });
        // On flex: the f32 weights with products in that type.
        let model = model.clone().with_precision(precision).expect("flex computes in every precision");
        group.bench_function(BenchmarkId::new("encode_image", precision), |b| {
            b.iter(|| black_box(common::finish(&device, model.encode_image(images.clone()))))
        });
        group.bench_function(BenchmarkId::new("encode_text", precision), |b| {
            b.iter(|| black_box(common::finish(&device, model.encode_text(text.clone()))))
        });
    }
    group.finish();
}

/// One caption of 16 tokens and one of 77, as a text query is served.
fn lone_captions(c: &mut Criterion, model: &diffclip::clip::Clip) {
    let device = common::device();
    let mut group = c.benchmark_group("encode_caption");
    group.sampling_mode(SamplingMode::Flat).sample_size(20).measurement_time(Duration::from_secs(10));
    for tokens in [16usize, 77] {
        // Start, words, end-of-text at position tokens - 1, zeros after it, as the tokenizer writes.
        let ids: Vec<i64> = (0..77).map(|i| if i == 0 { 49406 } else if i + 1 < tokens { (i as i64 * 7919) % 49000 + 1 } else if i + 1 == tokens { 49407 } else { 0 }).collect();
        let text: Tensor<2, Int> = Tensor::from_data(TensorData::new(ids, [1, 77]), &device);
        group.bench_function(BenchmarkId::from_parameter(tokens), |b| b.iter(|| black_box(common::finish(&device, model.encode_text(text.clone())))));
    }
    group.finish();
}

/// Batching by length against batching in the given order, the same 256 captions.
fn captions(c: &mut Criterion, model: &diffclip::clip::Clip) {
    let words = ["a", "photo", "of", "small", "dog", "running", "on", "the", "beach", "with", "red", "ball"];
    // Lengths 4..=24 words from a fixed linear congruential sequence: mixed within every batch.
    let mut state = 12345u64;
    let texts: Vec<String> = (0..256)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let len = 4 + (state >> 33) as usize % 21;
            (0..len).map(|w| words[(w * 7 + len) % words.len()]).collect::<Vec<_>>().join(" ")
        })
        .collect();
    let encoder = diffclip::eval::Encoder::new(model).expect("encoder").with_progress(false).with_batch_size(64);
    let mut group = c.benchmark_group("encode_texts");
    group.sampling_mode(SamplingMode::Flat).sample_size(10).measurement_time(Duration::from_secs(30));
    group.bench_with_input(BenchmarkId::new("by_length", texts.len()), &texts, |b, texts| {
        b.iter(|| black_box(encoder.encode_texts(texts).expect("encode").rows()))
    });
    group.bench_with_input(BenchmarkId::new("in_order", texts.len()), &texts, |b, texts| {
        b.iter(|| black_box(texts.chunks(64).map(|chunk| encoder.encode_texts(chunk).expect("encode").rows()).sum::<usize>()))
    });
    group.finish();
}

fn config() -> Criterion {
    common::slow_criterion(10, 20)
}

criterion_group! { name = benches; config = config(); targets = encoders }
criterion_main!(benches);
