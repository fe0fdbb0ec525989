//! `Trainer::lr_scale`: per-parameter learning-rate factors and freezing.

use burn::module::Module;
use burn::tensor::Device;
use diffclip_clip::{Clip, ClipConfig};
use diffclip_data::synthetic::Split;
use diffclip_data::{ClipBatcher, ClipTokenizer, SyntheticConfig, SyntheticDataset};
use diffclip_train::{TrainConfig, Trainer};

fn tiny() -> ClipConfig {
    let mut c = ClipConfig::diffclip_tiny();
    c.text.context_length = 32;
    c
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Train 3 steps from the same seed with `scale`, returning (initial, trained) weights.
#[allow(clippy::type_complexity)]
fn run(scale: Option<diffclip_train::LrScale>) -> (Vec<(String, Vec<f32>)>, Vec<(String, Vec<f32>)>) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = SyntheticDataset::new(SyntheticConfig { image_size: 32, train_size: 64, test_size: 8, ..Default::default() }, Split::Train).unwrap().contrastive();
    let tok = ClipTokenizer::with_config(diffclip_data::TokenizerConfig { context_length: 32, ..Default::default() }).unwrap();
    let device = Device::flex().autodiff();
    device.seed(3);
    let model = tiny().init(&device).unwrap();
    let before = weights(&model.valid());
    let config = TrainConfig { steps: 3, batch_size: 16, lr: 1e-3, warmup_steps: 0, progress: false, ..TrainConfig::default() };
    let mut t = Trainer::new(model, tiny(), config, diffclip_train::RunOptions { lr_scale: scale, ..Default::default() });
    t.fit(&data, &ClipBatcher::new(tok), None).unwrap();
    (before, weights(&t.model.valid()))
}

fn weights(model: &Clip) -> Vec<(String, Vec<f32>)> {
    struct V(Vec<String>, Vec<(String, Vec<f32>)>);
    impl burn::module::ModuleVisitor for V {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<burn::tensor::Tensor<D>>) {
            self.1.push((self.0.join("."), p.val().into_data().try_to_vec::<f32>().unwrap()));
        }
    }
    let mut v = V(Vec::new(), Vec::new());
    model.visit(&mut v);
    v.1
}

#[test]
fn unit_factors_equal_no_scale_and_zero_freezes() {
    let (_, plain) = run(None);
    let (_, ones) = run(Some(Box::new(|_, _| 1.0)));
    assert_eq!(plain, ones, "factor 1 everywhere must give the unscaled update bit for bit");

    // Freeze the vision tower for the whole run: its weights stay as initialised, the rest moves.
    let (before, frozen) = run(Some(Box::new(|k: &str, _| if k.starts_with("visual.") { 0.0 } else { 1.0 })));
    for ((k, a), (_, b)) in before.iter().zip(&frozen) {
        if k.starts_with("visual.") {
            assert_eq!(a, b, "{k} changed while frozen");
        }
    }
    assert!(before.iter().zip(&frozen).any(|((k, a), (_, b))| k.starts_with("text.") && a != b));

    // Frozen for the first 2 of 3 steps only: it moves, but less than with no freezing.
    let (_, late) = run(Some(Box::new(|k: &str, step| if k.starts_with("visual.") && step < 2 { 0.0 } else { 1.0 })));
    let moved = |w: &[(String, Vec<f32>)]| -> f64 {
        before.iter().zip(w).filter(|((k, _), _)| k.starts_with("visual.")).map(|((_, a), (_, b))| a.iter().zip(b).map(|(x, y)| ((x - y) as f64).abs()).sum::<f64>()).sum()
    };
    assert!(moved(&late) > 0.0 && moved(&late) < moved(&plain), "{} vs {}", moved(&late), moved(&plain));

    // The keys are the optimizer's parameter paths (as `examples/convert.rs` matches them).
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let record = seen.clone();
    run(Some(Box::new(move |k: &str, _| {
        record.lock().unwrap().push(k.to_string());
        1.0
    })));
    let seen = seen.lock().unwrap();
    for key in ["visual.blocks.0.attn.Differential.lambda_q1", "text.blocks.1.attn.Differential.diff_norm.gamma", "visual.blocks.0.attn.Differential.q_proj.weight", "logit_scale"] {
        assert!(seen.iter().any(|k| k == key), "{key} not among {:?}", &seen[..8.min(seen.len())]);
    }

    // A lower factor moves the parameters less.
    let (_, slow) = run(Some(Box::new(|k: &str, _| if k.starts_with("visual.") { 0.1 } else { 1.0 })));
    assert!(moved(&slow) < 0.5 * moved(&plain), "{} vs {}", moved(&slow), moved(&plain));
}
