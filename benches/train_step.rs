//! One training step of a small DiffCLIP and CLIP model, as `diffclip_train::Trainer` does it:
//! forward on both towers, symmetric InfoNCE on normalised features (`clip_loss_normalized`),
//! backward, gradient collection, global-norm clipping, AdamW update. Autodiff device, f32.
//!
//! The model and the step are in `common/train_step.rs` (shared with `examples/bench --train`).
//! `DIFFCLIP_BENCH_QUICK=1` changes nothing here (one step is already well under a second).
//! `checkpoint_64MiB` measures what a checkpoint's checksums cost against writing and reading it.
//!
//! ```sh
//! cargo bench --bench train_step
//! ```

mod common;
#[path = "common/train_step.rs"]
mod small;

use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use diffclip::train::{AdamW, AdamWConfig};
use small::BATCH;
use std::hint::black_box;
use std::time::Duration;

fn train_step(c: &mut Criterion) {
    let device = common::device().autodiff();
    let (images, text) = small::inputs(&device);
    let mut group = c.benchmark_group("train_step");
    group.sampling_mode(SamplingMode::Flat).sample_size(10).measurement_time(Duration::from_secs(10));
    for (name, config) in small::small_models() {
        let mut model = Some(config.init(&device).expect("model"));
        let mut optim = AdamW::new(AdamWConfig::default());
        group.bench_with_input(BenchmarkId::new(name, BATCH), &BATCH, |b, _| {
            b.iter(|| {
                let (next, loss) = small::step(model.take().expect("model"), &mut optim, &images, &text);
                model = Some(next);
                black_box(loss)
            })
        });
    }
    group.finish();
}

/// What a checkpoint's checksums cost: summing 64 MiB of weights against writing them (the sums
/// included) and reading them back (checked), on the disk holding the temporary folder.
fn checkpoint_io(c: &mut Criterion) {
    use diffclip::clip::checksum::Checksums;
    use diffclip::clip::files::{F32Tensor, write_safetensors};
    let values: Vec<f32> = (0..16 << 20).map(|i| (i as f32 * 0.37).sin()).collect();
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("w.safetensors");
    let tensor = || F32Tensor { name: "w".into(), shape: vec![values.len()], data: &values };
    write_safetensors(&path, &[tensor()], Default::default()).expect("written"); // for a filtered `read_checked`
    let mut group = c.benchmark_group("checkpoint_64MiB");
    group.sampling_mode(SamplingMode::Flat).sample_size(10).measurement_time(Duration::from_secs(5));
    group.bench_function("crc32", |b| b.iter(|| black_box(Checksums::of([("w", &values[..])]))));
    group.bench_function("write", |b| b.iter(|| write_safetensors(&path, &[tensor()], Default::default()).expect("written")));
    group.bench_function("read_checked", |b| b.iter(|| black_box(diffclip::clip::checkpoint::read_state_dict(&path).expect("read").len())));
    group.finish();
}

criterion_group!(benches, train_step, checkpoint_io);
criterion_main!(benches);
