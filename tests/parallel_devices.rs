//! Data parallelism across two *different* CPU devices of the dispatch backend (flex and
//! ndarray): the replica on ndarray gets its shard's gradient back through the differentiable
//! cross-backend transfer, and the step equals the single-device step on the whole batch.
//! (flex and ndarray each have exactly one device, so two backends are the only way to get two
//! distinct CPU devices; the same-device case is tested in `diffclip-train/tests/parallel.rs`.)

#![cfg(feature = "ndarray")]

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use diffclip::clip::{Clip, ClipConfig};
use diffclip::data::synthetic::Split;
use diffclip::data::{
    ClipBatcher, ClipTokenizer, SyntheticConfig, SyntheticDataset, TokenizerConfig,
};
use diffclip::train::parallel::contrastive_loss;
use diffclip::train::{AdamW, AdamWConfig, DataParallel, GradBuffer, LossKind};

fn flat(model: &Clip) -> Vec<(String, Vec<f32>)> {
    struct W(Vec<String>, Vec<(String, Vec<f32>)>);
    impl ModuleVisitor for W {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.push(name.into());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.1.push((
                self.0.join("."),
                p.val()
                    .inner()
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .unwrap(),
            ));
        }
    }
    let mut w = W(vec![], vec![]);
    model.visit(&mut w);
    w.1
}

#[test]
fn flex_and_ndarray_replicas_match_one_device() {
    let flex = Device::flex().autodiff();
    #[allow(deprecated)]
    let ndarray = Device::ndarray().autodiff();
    flex.seed(3);
    let mut config = ClipConfig::diffclip_tiny();
    config.text.context_length = 32;
    let model = config.init(&flex).unwrap();
    let _ = flat(&model); // materialise the lazily initialised parameters
    let synth = SyntheticConfig {
        image_size: 32,
        train_size: 16,
        test_size: 4,
        ..SyntheticConfig::default()
    };
    let data = SyntheticDataset::new(synth, Split::Train)
        .unwrap()
        .contrastive();
    let tok = ClipTokenizer::with_config(TokenizerConfig {
        context_length: 32,
        ..Default::default()
    })
    .unwrap();
    let batch = ClipBatcher::new(tok)
        .batch_indices(&data, &(0..10).collect::<Vec<_>>(), &flex)
        .unwrap();

    let out = model.forward(batch.images.clone(), batch.texts.clone());
    let loss = contrastive_loss(&model, LossKind::Clip, out.image_embed, out.text_embed);
    let loss_single = loss.clone().into_scalar::<f32>();
    let mut single = GradBuffer::default();
    single.accumulate(&model, &loss.backward());

    let dp = DataParallel::new(vec![flex.clone(), ndarray.clone()]).unwrap();
    let replicas = dp.replicate(&model);
    assert_eq!(
        replicas[1].devices(),
        vec![ndarray.clone()],
        "the second replica lives on ndarray"
    );
    let pg = dp.loss_and_grads(
        &model,
        batch.images.clone(),
        batch.texts.clone(),
        LossKind::Clip,
        1.0,
    );
    assert!(
        (loss_single - pg.loss).abs() < 1e-5,
        "{loss_single} vs {}",
        pg.loss
    );
    assert_eq!(single.grads.len(), pg.grads.grads.len());
    // The round-off floor: the same full batch on ndarray alone.
    let on_ndarray = model.clone().fork(&ndarray);
    let out = on_ndarray.forward(
        batch.images.clone().to_device(&ndarray),
        batch.texts.clone().to_device(&ndarray),
    );
    let loss = contrastive_loss(&on_ndarray, LossKind::Clip, out.image_embed, out.text_embed);
    let mut floor = GradBuffer::default();
    floor.accumulate(&on_ndarray, &loss.backward());
    let vec = |t: &Tensor<1>| {
        t.clone()
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap()
    };
    let diff = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    };
    for (k, g) in &single.grads {
        let a = vec(g);
        let scale = a.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = diff(&a, &vec(&pg.grads.grads[k]));
        let backends = diff(&a, &vec(&floor.grads[k]));
        // flex and ndarray round differently (matmul blocking, exp): the split step may differ
        // from the flex step by about as much as a whole-batch ndarray step does.
        assert!(
            d <= 2.0 * backends + 1e-4 * scale + 1e-6,
            "gradient of {k} differs by {d} (flex vs ndarray alone: {backends}, scale {scale})"
        );
    }
    // One AdamW step each way.
    let cfg = AdamWConfig {
        eps: 1e-3,
        ..AdamWConfig::default()
    };
    let a = AdamW::new(cfg.clone()).step(model.clone(), 1e-3, &single);
    let (b, _, _) = dp.step(
        model,
        &mut AdamW::new(cfg),
        1e-3,
        batch.images,
        batch.texts,
        LossKind::Clip,
        None,
    );
    for ((k, x), (_, y)) in flat(&a).iter().zip(flat(&b).iter()) {
        let d = x
            .iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max);
        // A tenth of the step size: AdamW's first step is ±lr·g/(|g|+eps), which turns the
        // backends' round-off in near-zero gradients into visible (but small) differences.
        assert!(d < 1e-4, "{k} differs by {d} after one step of lr 1e-3");
    }
}
