//! Mixed-precision training (`TrainConfig::precision`): bf16 / f16 compute from f32 master
//! weights, and f16's dynamic loss scaling.

mod common;

use burn::tensor::{DType, Device};
use common::{batcher, serial, tiny_model};
use diffclip_clip::Precision;
use diffclip_clip::attention::{MatmulPrecision, matmul_precision, with_matmul_precision};
use diffclip_data::synthetic::Split;
use diffclip_data::{SyntheticConfig, SyntheticDataset};
use diffclip_train::{DataParallel, RunOptions, TrainConfig, TrainError, Trainer};

fn data() -> diffclip_data::synthetic::ContrastiveView {
    let cfg = SyntheticConfig { image_size: 32, train_size: 256, test_size: 32, ..SyntheticConfig::default() };
    SyntheticDataset::new(cfg, Split::Train).unwrap().contrastive()
}

fn trainer_on(device: Device, steps: u64, precision: Precision) -> Trainer {
    trainer_with_replicas(device, steps, precision, 1)
}

/// `replicas > 1`: each batch split over that many replicas on `device`.
fn trainer_with_replicas(device: Device, steps: u64, precision: Precision, replicas: usize) -> Trainer {
    let device = device.autodiff();
    device.seed(7);
    let model = tiny_model().init(&device).unwrap();
    let config = TrainConfig { steps, batch_size: 32, lr: 1e-3, warmup_steps: 2, progress: false, grad_clip: Some(1.0), precision, ..TrainConfig::default() };
    let parallel = (replicas > 1).then(|| DataParallel::new(vec![device.clone(); replicas]).unwrap());
    Trainer::new(model, tiny_model(), config, RunOptions { parallel, ..RunOptions::default() })
}

fn trainer(steps: u64, precision: Precision) -> Trainer {
    trainer_on(Device::flex(), steps, precision)
}

/// bf16 and f16 runs learn, track the f32 run's losses, and leave the master weights in f32.
#[test]
fn reduced_precision_runs_learn_from_f32_master_weights() {
    let _serial = serial();
    learns_from_f32_master_weights(Device::flex(), &[Precision::Bf16, Precision::F16], 12);
}

/// The same on wgpu (lavapipe in CI), in f16 through the CubeCL attention kernel: Vulkan
/// drivers there have no bf16 arithmetic.
#[test]
fn f16_training_on_wgpu_learns_from_f32_master_weights() {
    let _serial = serial();
    let wgpu = diffclip_testkit::devices().into_iter().find(|(name, _)| *name == "wgpu").expect("tests build with wgpu").1;
    learns_from_f32_master_weights(wgpu, &[Precision::F16], 12);
}

/// Trains `steps` steps in f32 and in each of `precisions` from the same seeded weights and data.
fn learns_from_f32_master_weights(device: Device, precisions: &[Precision], steps: u64) {
    let data = data();
    let reference = trainer_on(device.clone(), steps, Precision::F32).fit(&data, &batcher(), None).unwrap();
    for &p in precisions {
        let mut t = trainer_on(device.clone(), steps, p);
        let report = t.fit(&data, &batcher(), None).unwrap();
        assert!(report.losses.iter().all(|l| l.is_finite()), "{p}: {:?}", report.losses);
        let first = report.losses[..3].iter().sum::<f32>() / 3.0;
        let last = report.losses[steps as usize - 3..].iter().sum::<f32>() / 3.0;
        assert!(last < first, "{p}: loss did not fall: {:?}", report.losses);
        // Same data and initial weights (drawn at init), so the first step's loss differs by
        // rounding only: within about one unit roundoff of the format (bf16 2^-8, f16 2^-11).
        // Measured: bf16 1.1e-3 with a cast model, 4.7e-5 as flex's bf16 products; f16 5e-5 to
        // 8e-5 with a cast model, 4.5e-5 as flex's f16 products, 2e-4 on wgpu; different
        // initial weights are 1-4 % apart.
        let tolerance = if p == Precision::Bf16 { 4e-3 } else { 5e-4 };
        let d = (report.losses[0] - reference.losses[0]).abs() / reference.losses[0];
        println!("{p}: first loss {d:.1e} from f32's");
        assert!(d < tolerance, "{p}: first loss {} vs f32 {} ({d:.1e} apart)", report.losses[0], reference.losses[0]);
        assert_eq!(t.model.image_projection.val().dtype(), DType::F32, "{p}: master weights stay f32");
        assert!(t.optim.moments.values().all(|m| m.v.dtype() == DType::F32), "{p}: AdamW state stays f32");
        // f16 starts at a loss scale of 2^16 and halves it on every overflow (as PyTorch's
        // GradScaler, which skips its first steps too); bf16 never scales or skips.
        let skipped = t.state.skipped_steps;
        assert_eq!(t.optim.step + skipped, steps, "{p}: every step updated or skipped");
        match p {
            Precision::F16 => {
                assert!(skipped < steps / 2, "{p}: {skipped} of {steps} steps skipped");
                assert_eq!(t.state.loss_scale, 65536.0 / 2f64.powi(skipped as i32), "{p}: halved once per skip, no growth yet");
            }
            _ => assert_eq!((skipped, t.state.loss_scale), (0, 0.0), "{p}: no loss scaling"),
        }
    }
}

/// bf16 on the CPU casts nothing: it is the f32 model with bf16 products, step for step the
/// same bits as an f32 run inside `with_matmul_precision(Bf16)`, and not the f32 run's.
#[test]
fn bf16_on_the_cpu_is_bf16_products_of_the_f32_weights() {
    let _serial = serial();
    let data = data();
    let run = |precision: Precision, scope: MatmulPrecision| {
        let mut t = trainer(4, precision);
        let report = with_matmul_precision(scope, || t.fit(&data, &batcher(), None)).unwrap();
        (report.losses, t.model.image_projection.val().into_data())
    };
    let bf16 = run(Precision::Bf16, MatmulPrecision::F32);
    let products = run(Precision::F32, MatmulPrecision::Bf16);
    let f32 = run(Precision::F32, MatmulPrecision::F32);
    assert_eq!(bf16, products, "bf16 training is the f32 model with bf16 products");
    assert_ne!(bf16.0[0], f32.0[0], "the products are rounded");
    assert_eq!(matmul_precision(), MatmulPrecision::F32, "the setting ends with the run");
}

/// f16 on the CPU casts nothing either: the compute model is the f32 model, whose linear
/// layers round their operands to f16, closer to f32 than bf16's.
#[test]
fn f16_on_the_cpu_is_f16_products_of_the_f32_weights() {
    let _serial = serial();
    let device = Device::flex().autodiff();
    device.seed(3);
    let model = tiny_model().init(&device).unwrap();
    let compute = model.clone().with_precision(Precision::F16).unwrap();
    assert_eq!(compute.precision(), Some(Precision::F16));
    assert_eq!(compute.image_projection.val().dtype(), burn::tensor::DType::F32, "no cast on the CPU");
    let images = burn::tensor::Tensor::<4>::random([2, 3, 32, 32], burn::tensor::Distribution::Default, &device);
    let run = |p: Precision| model.clone().with_precision(p).unwrap().encode_image(images.clone()).into_data().try_to_vec::<f32>().unwrap();
    let (f32, f16, bf16) = (run(Precision::F32), run(Precision::F16), run(Precision::Bf16));
    let apart = |a: &[f32], b: &[f32]| a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    let (f16_err, bf16_err) = (apart(&f16, &f32), apart(&bf16, &f32));
    println!("f16 products {f16_err:e}, bf16 products {bf16_err:e} from f32");
    assert!(f16_err > 0.0 && f16_err < bf16_err / 4.0, "f16 {f16_err:e}, bf16 {bf16_err:e}");
    assert_eq!(matmul_precision(), MatmulPrecision::F32, "the setting ends with the run");
}

/// An f16 step whose scaled gradients overflow changes nothing and halves the loss scale;
/// from a far too large scale the run halves its way down and then updates.
#[test]
fn an_f16_overflow_skips_the_step_and_halves_the_scale() {
    let _serial = serial();
    let data = data();
    let mut t = trainer(1, Precision::F16);
    t.state.loss_scale = 1e12; // f16 holds at most 65 504
    let before = t.model.image_projection.val().into_data();
    t.fit(&data, &batcher(), None).unwrap();
    assert_eq!(t.state.skipped_steps, 1);
    assert_eq!(t.state.loss_scale, 5e11);
    assert_eq!(t.optim.step, 0, "AdamW did not step");
    assert_eq!(t.model.image_projection.val().into_data(), before, "weights unchanged");

    let mut t = trainer(40, Precision::F16);
    t.state.loss_scale = 1e12;
    let report = t.fit(&data, &batcher(), None).unwrap();
    let skipped = t.state.skipped_steps;
    assert!(skipped > 1 && t.optim.step > 0, "{skipped} skipped, {} updates", t.optim.step);
    assert_eq!(t.optim.step + skipped, 40);
    assert_eq!(t.state.loss_scale, 1e12 / 2f64.powi(skipped as i32));
    assert!(report.losses.iter().all(|l| l.is_finite()));
}

/// A device without the arithmetic is refused before any step, as a configuration error.
#[test]
fn a_device_without_bf16_is_refused_up_front() {
    let _serial = serial();
    let data = data();
    // wgpu in CI (no bf16 in WGSL); ndarray has none either.
    let (name, device) = diffclip_testkit::other_device();
    let err = trainer_on(device, 1, Precision::Bf16).fit(&data, &batcher(), None).unwrap_err();
    assert!(matches!(err, TrainError::Config(_)), "{name}: {err}");
    assert!(err.to_string().contains("bf16"), "{name}: {err}");
}

/// Mixed precision with two data-parallel replicas: each replica computes from its own cast of
/// the f32 weights (bf16: its bf16 products), and the run tracks the one-device run of the same precision step by step.
#[test]
fn mixed_precision_runs_split_over_replicas_track_one_device() {
    let _serial = serial();
    let data = data();
    for p in [Precision::Bf16, Precision::F16] {
        let run = |replicas: usize| {
            let mut t = trainer_with_replicas(Device::flex(), 6, p, replicas);
            // f16: a loss scale that never overflows, so both runs update on every step (at
            // 2^16 the shards and the whole batch overflow on different steps, as PyTorch's
            // ranks would, and the runs part ways).
            t.state.loss_scale = if p == Precision::F16 { 1024.0 } else { 0.0 };
            let report = t.fit(&data, &batcher(), None).unwrap();
            (report.losses, t)
        };
        let ((one, t1), (two, t2)) = (run(1), run(2));
        assert_eq!(one.len(), two.len());
        for (a, b) in one.iter().zip(&two) {
            // Shards round differently from the whole batch in bf16 / f16; 1 % of the loss.
            assert!((a - b).abs() < 1e-2 * a.abs(), "{p}: {one:?} vs {two:?}");
        }
        assert_eq!(t2.model.image_projection.val().dtype(), DType::F32, "{p}: master weights stay f32");
        assert_eq!(t2.optim.step, 6, "{p}: every step updated");
        assert_eq!((t1.state.skipped_steps, t2.state.skipped_steps), (0, 0), "{p}: nothing skipped");
        assert_eq!(t2.state.loss_scale, t1.state.loss_scale, "{p}: the same loss scale");
    }
}

/// The loss's temperature comes from the f32 master `logit_scale`, not its bf16 cast: ln 100
/// and 4.59375 (what bf16 rounds ln 100 to) give different first-step losses in bf16, by as
/// much as in f32 (with the cast they gave the same loss).
#[test]
fn the_temperature_comes_from_the_f32_master_weight() {
    let _serial = serial();
    let data = data();
    let first_loss = |precision: Precision, logit_scale: f32| {
        let mut t = trainer(1, precision);
        let device = t.model.logit_scale.val().device();
        t.model.logit_scale = burn::module::Param::from_tensor(burn::tensor::Tensor::from_floats([logit_scale], &device));
        t.fit(&data, &batcher(), None).unwrap().losses[0]
    };
    let (ln100, rounded) = (100f32.ln(), 4.59375f32);
    let f32_gap = first_loss(Precision::F32, ln100) - first_loss(Precision::F32, rounded);
    let bf16_gap = first_loss(Precision::Bf16, ln100) - first_loss(Precision::Bf16, rounded);
    assert!(f32_gap.abs() > 1e-3, "the test needs a visible gap: {f32_gap}");
    assert!((bf16_gap - f32_gap).abs() <= 0.2 * f32_gap.abs(), "bf16 gap {bf16_gap}, f32 gap {f32_gap}");
}
