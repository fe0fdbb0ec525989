//! `heldout::evaluate_synthetic_heldout`: the same numbers as the evaluator's zero-shot and
//! retrieval and the training loss, and per-sample outcomes whose means are the metrics.

use burn::tensor::Device;
use diffclip_clip::ClipConfig;
use diffclip_clip::loss::{MAX_LOGIT_SCALE, clip_loss_normalized};
use diffclip_data::synthetic::{ClassTask, Split};
use diffclip_data::{
    ClipBatcher, ClipItem, ClipTokenizer, SyntheticConfig, SyntheticDataset, TokenizerConfig,
};
use diffclip_eval::heldout::{
    HELDOUT_METRICS, MEAN_SCORE, bootstrap_heldout_diff, evaluate_synthetic_heldout,
};
use diffclip_eval::{Encoder, Evaluator};

#[test]
fn heldout_metrics_match_the_evaluator_and_the_loss() {
    // Seeded draws: no other test of this binary may draw in between.
    let _serial = diffclip_testkit::serial();
    let device = Device::flex();
    device.seed(3);
    let mut config = ClipConfig::diffclip_tiny();
    config.text.context_length = 32;
    let model = config.init(&device).unwrap();
    let test = SyntheticDataset::new(
        SyntheticConfig {
            image_size: 32,
            train_size: 8,
            test_size: 24,
            ..Default::default()
        },
        Split::Test,
    )
    .unwrap();
    let batcher = ClipBatcher::new(
        ClipTokenizer::with_config(TokenizerConfig {
            context_length: 32,
            ..Default::default()
        })
        .unwrap(),
    );
    let h = evaluate_synthetic_heldout(&model, &test, &batcher, 7).unwrap();
    assert_eq!(h.metrics.step, 7);

    let ev = Evaluator::new(Encoder::new(&model).unwrap().with_progress(false));
    let shape = ev
        .zero_shot_dataset(&test.classification(ClassTask::Shape), None)
        .unwrap();
    let color = ev
        .zero_shot_dataset(&test.classification(ClassTask::Color), None)
        .unwrap();
    let r = ev
        .retrieval_dataset(&test.retrieval(), None, &[1, 5])
        .unwrap();
    let m = &h.metrics;
    assert_eq!(
        (m.zero_shot_shape_top1, m.zero_shot_color_top1),
        (shape.top1, color.top1)
    );
    assert_eq!(
        (m.image_to_text_r1, m.image_to_text_r5),
        (r.image_to_text[0].recall, r.image_to_text[1].recall)
    );
    assert_eq!(
        (m.text_to_image_r1, m.text_to_image_r5),
        (r.text_to_image[0].recall, r.text_to_image[1].recall)
    );

    // The loss: the training loss on (image, first caption) of the test images.
    let items = (0..test.len())
        .map(|i| ClipItem {
            image: test.image_eval(i),
            size: 32,
            caption: test.captions(i).swap_remove(0),
            label: None,
        })
        .collect();
    let batch = batcher.try_batch(items, &device).unwrap();
    let out = model.forward(batch.images, batch.texts);
    let want = clip_loss_normalized(
        out.image_embed,
        out.text_embed,
        out.logit_scale_exp.clamp_max(MAX_LOGIT_SCALE),
    )
    .into_scalar::<f32>();
    assert!(
        (m.heldout_loss - want).abs() < 1e-4,
        "{} vs {want}",
        m.heldout_loss
    );

    // Per-sample outcomes average to the metrics (one per image; loss terms one per pair).
    for name in HELDOUT_METRICS.iter().copied().chain([MEAN_SCORE]) {
        let o = h.outcomes(name).unwrap();
        assert_eq!(o.len(), test.len(), "{name}");
        let mean = o.iter().sum::<f64>() / o.len() as f64;
        assert!(
            (mean - h.value(name).unwrap()).abs() < 1e-6,
            "{name}: {mean} vs {}",
            h.value(name).unwrap()
        );
    }
    let same = bootstrap_heldout_diff(&[&h], &[&h], MEAN_SCORE, 100, 0).unwrap();
    assert_eq!((same.diff_mean, same.ci), (0.0, [0.0, 0.0]));
}

#[test]
fn heldout_recalls_tokenise_captions_as_the_loss_does() {
    // A context of 6 cuts every synthetic caption, so keep-eot and drop-eot embed them apart.
    // Seeded draws: no other test of this binary may draw in between.
    let _serial = diffclip_testkit::serial();
    let device = Device::flex();
    device.seed(5);
    let mut config = ClipConfig::diffclip_tiny();
    config.text.context_length = 6;
    let model = config.init(&device).unwrap();
    let cfg = SyntheticConfig { image_size: 32, train_size: 8, test_size: 40, ..Default::default() };
    let test = SyntheticDataset::new(cfg, Split::Test).unwrap();
    let truncation = diffclip_data::Truncation::DropEot;
    let tokenizer = ClipTokenizer::with_config(TokenizerConfig { context_length: 6, truncation }).unwrap();
    let h = evaluate_synthetic_heldout(&model, &test, &ClipBatcher::new(tokenizer), 0).unwrap();
    let recalls = |t: diffclip_data::Truncation| {
        let ev = Evaluator::new(Encoder::new(&model).unwrap().with_truncation(t).unwrap().with_progress(false));
        let r = ev.retrieval_dataset(&test.retrieval(), None, &[1, 5]).unwrap();
        [r.image_to_text[0].recall, r.image_to_text[1].recall, r.text_to_image[0].recall, r.text_to_image[1].recall]
    };
    let m = &h.metrics;
    let got = [m.image_to_text_r1, m.image_to_text_r5, m.text_to_image_r1, m.text_to_image_r5];
    assert_eq!(got, recalls(truncation));
    assert_ne!(got, recalls(diffclip_data::Truncation::KeepEot), "the two truncations must be told apart here");
}
