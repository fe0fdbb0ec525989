//! Differential vs standard attention, fused vs reference path, forward and forward+backward.
//!
//! Width 768, 12 heads (6 differential heads of 2 × 64), no mask, random weights, f32.
//! Full run: batch 8, N ∈ {50, 77, 197, 577, 1025, 4097}. The reference path is skipped where
//! one attention map would pass 2 GiB (batch 8, N = 4097: each `[8, 12, N, N]` map is 6.4 GB and
//! the path holds several); set `DIFFCLIP_BENCH_ALL=1` to run it anyway.
//! `DIFFCLIP_BENCH_QUICK=1`: batch 8, N ≤ 577 (what fits a 2-core machine in a few minutes).
//!
//! ```sh
//! DIFFCLIP_BENCH_QUICK=1 cargo bench --bench attention
//! cargo bench --bench attention -- 'forward/.*/197'   # one size
//! ```
//!
//! Ids are `{forward|fwd_bwd}/{diff|standard}_{fused|reference}/N`.

mod common;

use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use diffclip::attention::{AttentionConfig, AttentionPath, DiffAttention, StandardAttention};
use diffclip::burn::tensor::{Device, Distribution, Tensor};
use std::hint::black_box;

const WIDTH: usize = 768;
const HEADS: usize = 12;

/// One layer under test (built a few times per run; its size does not matter).
#[allow(clippy::large_enum_variant)]
enum Layer {
    Diff(DiffAttention),
    Standard(StandardAttention),
}

impl Layer {
    fn new(diff: bool, path: AttentionPath, device: &Device) -> Self {
        if diff {
            Layer::Diff(
                AttentionConfig { path, ..AttentionConfig::new(WIDTH, HEADS) }.init_differential(device)
                    .expect("config"),
            )
        } else {
            Layer::Standard(
                AttentionConfig { path, ..AttentionConfig::new(WIDTH, HEADS) }.init_standard(device)
                    .expect("config"),
            )
        }
    }

    /// The path is explicit so a layer's config cannot silently pick the other one.
    fn forward(&self, x: Tensor<3>, path: AttentionPath) -> Tensor<3> {
        match (self, path) {
            (Layer::Diff(l), AttentionPath::Fused) => l.forward_fused(x, None),
            (Layer::Diff(l), AttentionPath::Reference) => l.forward_with_maps(x, None).0,
            (Layer::Standard(l), AttentionPath::Fused) => l.forward(x, None),
            (Layer::Standard(l), AttentionPath::Reference) => l.forward_with_maps(x, None).0,
        }
    }
}

fn sizes() -> (usize, Vec<usize>) {
    if common::quick() {
        (8, vec![50, 77, 197, 577])
    } else {
        (8, vec![50, 77, 197, 577, 1025, 4097])
    }
}

fn reference_fits(batch: usize, n: usize) -> bool {
    let all = std::env::var("DIFFCLIP_BENCH_ALL").is_ok_and(|v| v == "1");
    all || batch * HEADS * n * n * 4 <= 2 << 30
}

const VARIANTS: [(bool, AttentionPath, &str); 4] = [
    (true, AttentionPath::Fused, "diff_fused"),
    (false, AttentionPath::Fused, "standard_fused"),
    (true, AttentionPath::Reference, "diff_reference"),
    (false, AttentionPath::Reference, "standard_reference"),
];

fn configure(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    n: usize,
) {
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    let secs = if n >= 1025 { 20 } else { 4 };
    group.measurement_time(std::time::Duration::from_secs(secs));
    group.warm_up_time(std::time::Duration::from_secs(1));
}

fn forward(c: &mut Criterion) {
    let device = common::device();
    let (batch, ns) = sizes();
    let mut group = c.benchmark_group("forward");
    for &n in &ns {
        configure(&mut group, n);
        for (diff, path, name) in VARIANTS {
            if path == AttentionPath::Reference && !reference_fits(batch, n) {
                eprintln!(
                    "skipping forward/{name}/{n}: the maps need more than 2 GiB (DIFFCLIP_BENCH_ALL=1 runs it)"
                );
                continue;
            }
            let layer = Layer::new(diff, path, &device);
            let x = Tensor::<3>::random([batch, n, WIDTH], Distribution::Default, &device);
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| black_box(common::finish(&device, layer.forward(x.clone(), path))))
            });
        }
    }
    group.finish();
}

fn forward_backward(c: &mut Criterion) {
    let device = common::device().autodiff();
    let (batch, ns) = sizes();
    let mut group = c.benchmark_group("fwd_bwd");
    for &n in &ns {
        configure(&mut group, n);
        for (diff, path, name) in VARIANTS {
            // Backward keeps the maps of both paths (autodiff builds `attention` from ordinary ops).
            if !reference_fits(batch, n) {
                eprintln!(
                    "skipping fwd_bwd/{name}/{n}: the maps need more than 2 GiB (DIFFCLIP_BENCH_ALL=1 runs it)"
                );
                continue;
            }
            let layer = Layer::new(diff, path, &device);
            let x = Tensor::<3>::random([batch, n, WIDTH], Distribution::Default, &device);
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| {
                    let x = x.clone().require_grad();
                    let grads = layer.forward(x.clone(), path).sum().backward();
                    let gx = x.grad(&grads).expect("input gradient");
                    black_box(common::finish(&device, gx))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, forward, forward_backward);
criterion_main!(benches);
