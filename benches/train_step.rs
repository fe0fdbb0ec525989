//! One training step of a small DiffCLIP and CLIP model, as `diffclip_train::Trainer` does it:
//! forward on both towers, symmetric InfoNCE on normalised features (`clip_loss_normalized`),
//! backward, gradient collection, global-norm clipping, AdamW update. Autodiff device, f32.
//!
//! The model and the step are in `common/train_step.rs` (shared with `examples/bench --train`).
//! `DIFFCLIP_BENCH_QUICK=1` changes nothing here (one step is already well under a second).
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

criterion_group!(benches, train_step);
criterion_main!(benches);
