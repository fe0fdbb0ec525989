//! Data parallelism: a step split over several replicas (with the features gathered before the
//! loss) must equal the single-device step on the full batch.

mod common;

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Int, Tensor};
use diffclip_clip::{Clip, Precision};
use common::{batcher, serial, synthetic, tiny_model};
use diffclip_train::parallel::{GradSync, contrastive_loss, gather_features};
use diffclip_train::{
    AdamW, AdamWConfig, DataParallel, GradBuffer, LossKind, TrainConfig, Trainer, RunOptions};

fn data() -> diffclip_data::synthetic::ContrastiveView {
    synthetic(64)
}

/// Every float parameter, flattened, by path.
fn weights(model: &Clip) -> BTreeMap<String, Vec<f32>> {
    struct W(Vec<String>, BTreeMap<String, Vec<f32>>);
    impl ModuleVisitor for W {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.push(name.into());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.1.insert(
                self.0.join("."),
                p.val()
                    .inner()
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .unwrap(),
            );
        }
    }
    let mut w = W(vec![], BTreeMap::new());
    model.visit(&mut w);
    w.1
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn grads_of(buf: &GradBuffer) -> BTreeMap<String, Vec<f32>> {
    buf.grads
        .iter()
        .map(|(k, g)| {
            (
                k.clone(),
                g.clone()
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .unwrap(),
            )
        })
        .collect()
}

/// Two or three replicas against one device, for the gradients and for three AdamW steps.
fn check_replicas(devices: Vec<Device>) {
    let main = devices[0].clone();
    main.seed(11);
    let model = tiny_model().init(&main).unwrap();
    let data = data();
    // AdamW divides by sqrt(v) + eps: with the default eps = 1e-6 a parameter whose true
    // gradient is ~0 (key biases: softmax ignores them) moves by ±lr on pure round-off, in both
    // runs alike but not identically. A larger eps keeps the comparison about the gradients.
    let adamw = AdamWConfig {
        eps: 1e-3,
        ..AdamWConfig::default()
    };
    let dp = DataParallel::new(devices).unwrap();
    let (mut single, mut parallel) = (model.clone(), model.clone());
    let (mut opt_s, mut opt_p) = (AdamW::new(adamw.clone()), AdamW::new(adamw));
    for step in 0..3 {
        let idx: Vec<usize> = (step * 10..step * 10 + 10).collect();
        let batch = batcher().batch_indices(&data, &idx, &main).unwrap();
        // Single device, whole batch.
        let out = single.forward(batch.images.clone(), batch.texts.clone());
        let loss = contrastive_loss(&single, LossKind::Clip, out.image_embed, out.text_embed);
        let loss_s = loss.clone().into_scalar::<f32>();
        let mut g_s = GradBuffer::default();
        g_s.accumulate(&single, &loss.backward());
        // Split over the replicas.
        let pg = dp.loss_and_grads(
            &parallel,
            batch.images.clone(),
            batch.texts.clone(),
            LossKind::Clip,
            1.0,
            Precision::F32,
        )
        .unwrap();
        assert!(
            (loss_s - pg.loss).abs() < 1e-5,
            "step {step}: loss {loss_s} vs {}",
            pg.loss
        );
        let (a, b) = (grads_of(&g_s), grads_of(&pg.grads));
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>(),
            "same parameters get gradients"
        );
        for (k, ga) in &a {
            let scale = ga.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let d = max_diff(ga, &b[k]);
            // From the same weights the gradients agree to 1e-4; later steps start from weights
            // that already differ by round-off, which the attention softmax amplifies a little.
            let rel = if step == 0 { 1e-4 } else { 1e-3 };
            assert!(
                d <= rel * scale + 1e-6,
                "step {step}: gradient of {k} differs by {d} (scale {scale})"
            );
        }
        single = opt_s.step(single, 1e-3, &g_s);
        let (p, loss_p, _) = dp.step(
            parallel,
            &mut opt_p,
            1e-3,
            batch.images,
            batch.texts,
            LossKind::Clip,
            None,
        )
        .unwrap();
        parallel = p;
        assert!((loss_p - loss_s).abs() < 1e-5);
    }
    let (ws, wp) = (weights(&single), weights(&parallel));
    for (k, a) in &ws {
        let d = max_diff(a, &wp[k]);
        assert!(d < 1e-5, "after 3 steps {k} differs by {d}");
    }
}

#[test]
fn two_replicas_match_one_device() {
    let _s = serial();
    let d = Device::flex().autodiff();
    check_replicas(vec![d.clone(), d]);
}

#[test]
fn three_uneven_replicas_match_one_device() {
    let _s = serial();
    // 10 samples over 3 replicas: shards of 4, 3 and 3.
    let d = Device::flex().autodiff();
    check_replicas(vec![d.clone(), d.clone(), d]);
}

#[test]
fn gathered_features_send_gradients_to_each_replica() {
    let _s = serial();
    let d = Device::flex().autodiff();
    let a = Tensor::<2>::ones([2, 3], &d).require_grad();
    let b = (Tensor::<2>::ones([1, 3], &d) * 2.0).require_grad();
    let all = gather_features(vec![a.clone(), b.clone()], &d);
    let weights = Tensor::<2>::from_floats([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0], [3.0, 3.0, 3.0]], &d);
    let grads = (all * weights).sum().backward();
    assert_eq!(
        a.grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap(),
        vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
    );
    assert_eq!(
        b.grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap(),
        vec![3.0, 3.0, 3.0]
    );
}

#[test]
fn trainer_with_replicas_matches_plain_trainer() {
    let _s = serial();
    let data = data();
    let run = |replicas: usize| {
        let device = Device::flex().autodiff();
        device.seed(5);
        // Lazy on purpose: the replicas must not change the order in which weights are drawn
        // on first read, so the same seed gives the same weights with and without them.
        let model = tiny_model().init_lazy(&device).unwrap();
        let config = TrainConfig {
            steps: 4,
            batch_size: 8,
            accum_steps: 2,
            lr: 1e-3,
            warmup_steps: 1,
            progress: false,
            grad_clip: Some(1.0),
            ..TrainConfig::default()
        };
        let parallel = (replicas > 1).then(|| DataParallel::new(vec![device.clone(); replicas]).unwrap());
        let mut t = Trainer::new(model, tiny_model(), config, RunOptions { parallel, ..RunOptions::default() });
        t.fit(&data, &batcher(), None).unwrap().losses
    };
    let (one, two) = (run(1), run(2));
    for (a, b) in one.iter().zip(&two) {
        assert!((a - b).abs() < 1e-4, "{one:?} vs {two:?}");
    }
}

#[test]
fn bad_device_lists_are_errors() {
    assert!(DataParallel::new(vec![]).is_err());
    assert!(
        DataParallel::new(vec![Device::flex()])
            .unwrap_err()
            .to_string()
            .contains("autodiff")
    );
}

/// A batch the model cannot take is an error before anything runs, not a panic in a replica.
#[test]
fn unfit_batches_are_errors() {
    let flex = Device::flex().autodiff();
    let model = tiny_model().init(&flex).unwrap();
    let batch = batcher().batch_indices(&synthetic(16), &(0..4).collect::<Vec<_>>(), &flex).unwrap();
    let dp = DataParallel::new(vec![flex.clone(), flex.clone()]).unwrap();
    let run = |images: Tensor<4>, texts: Tensor<2, Int>| dp.loss_and_grads(&model, images, texts, LossKind::Clip, 1.0, Precision::F32).map(|_| ()).unwrap_err().to_string();
    let msg = run(batch.images.clone(), batch.texts.clone().narrow(0, 0, 3));
    assert!(msg.contains("4 images, 3 texts"), "{msg}");
    let [_, c, h, w] = batch.images.dims();
    let msg = run(Tensor::zeros([0, c, h, w], &flex), Tensor::zeros([0, batch.texts.dims()[1]], &flex));
    assert!(msg.contains("empty"), "{msg}");
    let msg = run(Tensor::zeros([4, 3, 8, 8], &flex), batch.texts.clone());
    assert!(msg.contains("images must be"), "{msg}");
    let long = Tensor::cat(vec![batch.texts.clone(), batch.texts.clone()], 1);
    let msg = run(batch.images.clone(), long);
    assert!(msg.contains("token ids must be"), "{msg}");
    let err = dp.step(model.clone(), &mut AdamW::new(AdamWConfig::default()), 1e-3, batch.images, batch.texts.narrow(0, 0, 2), LossKind::Clip, None).map(|_| ()).unwrap_err();
    assert!(matches!(err, diffclip_train::TrainError::Input(_)), "{err}");
}

/// Two *different* devices on two backends (flex has exactly one device, so a second backend is
/// the only way to get two here; wgpu on lavapipe in CI): the replica on the second device gets
/// its shard's gradient back through the differentiable cross-backend transfer, and the step
/// equals the one-device step.
#[test]
fn replicas_on_two_backends_match_one_device() {
    let _serial = serial();
    let flex = Device::flex().autodiff();
    let (name, other) = diffclip_testkit::other_device();
    let other = other.autodiff();
    flex.seed(3);
    let model = tiny_model().init(&flex).unwrap();
    let batch = batcher().batch_indices(&synthetic(16), &(0..10).collect::<Vec<_>>(), &flex).unwrap();
    let grads = |model: &Clip, images: Tensor<4>, texts| {
        let out = model.forward(images, texts);
        let loss = contrastive_loss(model, LossKind::Clip, out.image_embed, out.text_embed);
        let value = loss.clone().into_scalar::<f32>();
        let mut g = GradBuffer::default();
        g.accumulate(model, &loss.backward());
        (value, grads_of(&g))
    };
    let (loss_single, single) = grads(&model, batch.images.clone(), batch.texts.clone());

    let dp = DataParallel::new(vec![flex.clone(), other.clone()]).unwrap();
    assert_eq!(dp.replicate(&model)[1].devices(), vec![other.clone()], "the second replica lives on {name}");
    let pg = dp.loss_and_grads(&model, batch.images.clone(), batch.texts.clone(), LossKind::Clip, 1.0, Precision::F32).unwrap();
    assert!((loss_single - pg.loss).abs() < 1e-5, "{loss_single} vs {}", pg.loss);
    let split = grads_of(&pg.grads);
    assert_eq!(single.keys().collect::<Vec<_>>(), split.keys().collect::<Vec<_>>());
    // The round-off floor: the same full batch on the second backend alone.
    let on_other = model.clone().fork(&other);
    let (_, floor) = grads(&on_other, batch.images.clone().to_device(&other), batch.texts.clone().to_device(&other));
    for (k, a) in &single {
        let scale = a.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let (d, backends) = (max_diff(a, &split[k]), max_diff(a, &floor[k]));
        // The backends round differently (matmul blocking, exp): the split step may differ
        // from the flex step by about as much as a whole-batch step on the other backend does.
        assert!(d <= 2.0 * backends + 1e-4 * scale + 1e-6, "gradient of {k} differs by {d} (flex vs {name} alone: {backends}, scale {scale})");
    }
    // One AdamW step each way.
    let cfg = AdamWConfig { eps: 1e-3, ..AdamWConfig::default() };
    let mut buf = GradBuffer::default();
    let out = model.forward(batch.images.clone(), batch.texts.clone());
    buf.accumulate(&model, &contrastive_loss(&model, LossKind::Clip, out.image_embed, out.text_embed).backward());
    let a = AdamW::new(cfg.clone()).step(model.clone(), 1e-3, &buf);
    let (b, _, _) = dp.step(model, &mut AdamW::new(cfg), 1e-3, batch.images, batch.texts, LossKind::Clip, None).unwrap();
    let (wa, wb) = (weights(&a), weights(&b));
    for (k, x) in &wa {
        let d = max_diff(x, &wb[k]);
        // A tenth of the step size: AdamW's first step is ±lr·g/(|g|+eps), which turns the
        // backends' round-off in near-zero gradients into visible (but small) differences.
        assert!(d < 1e-4, "{k} differs by {d} after one step of lr 1e-3");
    }
}

/// No runtime compiled here moves data between devices itself (only CUDA with NCCL does), so
/// every device list sums through the main device, and asking for `all_reduce` is refused; on
/// wgpu this asks the runtime (lavapipe: no transport).
#[test]
fn devices_without_a_transport_sum_through_the_main_device() {
    let flex = Device::flex().autodiff();
    for (name, device) in diffclip_testkit::devices() {
        let device = device.autodiff();
        let list = if device == flex { vec![flex.clone(), flex.clone()] } else { vec![device.clone(), flex.clone()] };
        assert_eq!(GradSync::available(&list), GradSync::Merge, "{name}");
        let dp = DataParallel::new(list).unwrap();
        assert_eq!(dp.grad_sync(), GradSync::Merge, "{name}");
        let err = dp.clone().with_grad_sync(GradSync::AllReduce).unwrap_err();
        assert!(err.to_string().contains("transport"), "{name}: {err}");
        assert_eq!(dp.with_grad_sync(GradSync::Merge).unwrap().grad_sync(), GradSync::Merge, "{name}");
    }
}
