//! The training loop on the built-in synthetic data: learning, determinism, resume after a
//! kill, NaN stops, weight-decay exclusion.

mod common;

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};
use diffclip_data::synthetic::Split;
use diffclip_data::{SyntheticConfig, SyntheticDataset};
use common::{batcher, serial, tiny_model};
use diffclip_train::{AdamW, AdamWConfig, GradBuffer, RunOptions, TrainConfig, TrainError, Trainer};

fn data() -> diffclip_data::synthetic::ContrastiveView {
    let cfg = SyntheticConfig { image_size: 32, train_size: 256, test_size: 32, ..SyntheticConfig::default() };
    SyntheticDataset::new(cfg, Split::Train).unwrap().contrastive()
}

fn config(steps: u64) -> TrainConfig {
    TrainConfig { steps, batch_size: 32, lr: 1e-3, warmup_steps: 2, progress: false, grad_clip: Some(1.0), ..TrainConfig::default() }
}

fn trainer(steps: u64, out: Option<std::path::PathBuf>) -> Trainer {
    trainer_with(steps, RunOptions { output: out, ..RunOptions::default() })
}

fn trainer_with(steps: u64, options: RunOptions) -> Trainer {
    let device = Device::flex().autodiff();
    device.seed(7);
    let model = tiny_model().init(&device).unwrap();
    Trainer::new(model, tiny_model(), config(steps), options)
}

fn tmpdir(name: &str) -> diffclip_testkit::TestDir {
    diffclip_testkit::TestDir::new(&format!("train-{name}"))
}

#[test]
fn loss_falls_and_runs_are_deterministic() {
    let _serial = serial();
    let data = data();
    let a = trainer(12, None).fit(&data, &batcher(), None).unwrap();
    let b = trainer(12, None).fit(&data, &batcher(), None).unwrap();
    assert_eq!(a.losses, b.losses, "same seed, same losses");
    let first = a.losses[..3].iter().sum::<f32>() / 3.0;
    let last = a.losses[9..].iter().sum::<f32>() / 3.0;
    assert!(last < first, "loss did not fall: {:?}", a.losses);
    assert!(a.losses.iter().all(|l| l.is_finite()));
}

/// The trainer runs on the model's device; one without autodiff is refused before anything is
/// written (it has no gradients to give), and so is a model already in reduced precision.
#[test]
fn a_model_off_an_autodiff_device_is_refused_before_writing() {
    let _serial = serial();
    let dir = tmpdir("plain-device");
    let model = tiny_model().init(&Device::flex()).unwrap();
    let mut t = Trainer::new(model, tiny_model(), config(2), RunOptions { output: Some(dir.join("out")), ..RunOptions::default() });
    let err = t.fit(&data(), &batcher(), None).unwrap_err();
    assert!(matches!(&err, TrainError::Config(m) if m.contains("not an autodiff device")), "{err}");
    assert!(!dir.join("out").exists(), "nothing written");
    assert_eq!(t.state.step, 0);
    // Master weights in bf16 (or bf16 products) are refused too: the precision is the run's.
    let model = tiny_model().init(&Device::flex().autodiff()).unwrap().with_precision(diffclip_clip::Precision::Bf16).unwrap();
    let mut t = Trainer::new(model, tiny_model(), config(2), RunOptions { output: Some(dir.join("out")), ..RunOptions::default() });
    let err = t.fit(&data(), &batcher(), None).unwrap_err();
    assert!(matches!(&err, TrainError::Config(m) if m.contains("computes in bf16")), "{err}");
    assert!(!dir.join("out").exists(), "nothing written");
}

#[test]
fn resuming_into_another_runs_folder_is_refused() {
    let _serial = serial();
    let data = data();
    let (from, into) = (tmpdir("resume-from"), tmpdir("resume-into"));
    for dir in [&from, &into] {
        trainer(2, Some(dir.to_path_buf())).fit(&data, &batcher(), None).unwrap();
    }
    let kept = std::fs::read(into.join("checkpoint-latest.safetensors")).unwrap();
    let log = std::fs::read(into.join("metrics.jsonl")).unwrap();
    let options = RunOptions { output: Some(into.to_path_buf()), ..RunOptions::default() };
    let mut t = Trainer::resume(from.join("checkpoint-latest.safetensors"), Device::flex().autodiff(), options).unwrap();
    t.config.steps = 4;
    let err = t.fit(&data, &batcher(), None).unwrap_err();
    assert!(matches!(err, TrainError::OutputHoldsAnotherRun { .. }), "{err}");
    assert_eq!(std::fs::read(into.join("checkpoint-latest.safetensors")).unwrap(), kept);
    assert_eq!(std::fs::read(into.join("metrics.jsonl")).unwrap(), log);
}

/// `fit` holds its output folder: a folder another job holds is refused before anything is
/// written, and a caller holding it (as the `train` program does) trains there.
#[test]
fn fit_holds_its_output_folder() {
    let _serial = serial();
    let dir = tmpdir("held");
    let out = dir.join("out");
    std::fs::create_dir(&out).unwrap();
    let other = std::fs::File::open(&out).unwrap();
    other.try_lock().unwrap();
    let err = trainer(2, Some(out.clone())).fit(&data(), &batcher(), None).unwrap_err();
    assert!(matches!(&err, TrainError::OutputBusy { path } if path == &out.display().to_string()), "{err}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "nothing written");
    drop(other);
    let _held = diffclip_train::hold_output(&out).unwrap().expect("folders are held here");
    trainer(2, Some(out.clone())).fit(&data(), &batcher(), None).unwrap();
    assert!(out.join("checkpoint-latest.safetensors").is_file());
}

#[test]
fn resume_after_a_kill_matches_an_uninterrupted_run() {
    let _serial = serial();
    let data = data();
    let full = trainer(10, None).fit(&data, &batcher(), None).unwrap();

    let dir = tmpdir("resume");
    // Dies after step 6: the last checkpoint is step 4.
    let mut killed = trainer_with(10, RunOptions { output: Some(dir.to_path_buf()), stop_after: Some(6), ..RunOptions::default() });
    killed.config.checkpoint_every = 4;
    killed.fit(&data, &batcher(), None).unwrap();
    // A torn temporary file from the crash must not matter, and is removed on resume.
    let torn_tmp = dir.join("checkpoint-latest.safetensors.tmp999999999");
    std::fs::write(&torn_tmp, b"partial").unwrap();
    // The kill tore the last metrics record mid-write.
    let metrics = dir.join("metrics.jsonl");
    let mut log = std::fs::read_to_string(&metrics).unwrap();
    log.push_str("{\"step\":7,\"epo");
    std::fs::write(&metrics, log).unwrap();

    let options = RunOptions { output: Some(dir.to_path_buf()), ..RunOptions::default() };
    let mut resumed = Trainer::resume(dir.join("checkpoint-latest.safetensors"), Device::flex().autodiff(), options).unwrap();
    assert_eq!(resumed.state.step, 4);
    let rest = resumed.fit(&data, &batcher(), None).unwrap();
    assert_eq!(rest.losses.len(), 6);
    for (i, (a, b)) in full.losses[4..].iter().zip(&rest.losses).enumerate() {
        assert!((a - b).abs() <= 1e-4 * a.abs().max(1.0), "step {}: {a} vs {b}", i + 5);
    }
    assert!(!torn_tmp.exists(), "stale temporary checkpoint left behind");
    // metrics.jsonl holds steps 1-4 of the killed run and 5-10 of the resumed one, each once,
    // every line a whole record (the torn one and the killed run's steps 5-6 are cut).
    let log = std::fs::read_to_string(&metrics).unwrap();
    let steps: Vec<u64> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("torn line {l:?}: {e}")))
        .filter(|v| v.get("loss").is_some())
        .map(|v| v["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, (1..=10).collect::<Vec<_>>());
}

#[test]
fn a_checkpoint_saved_before_the_first_step_resumes_in_place() {
    let _serial = serial();
    let data = data();
    let dir = tmpdir("step-zero");
    // The initial weights, saved by hand (e.g. to start several runs from them).
    trainer(2, Some(dir.to_path_buf())).save_checkpoint().unwrap();
    let ckpt = dir.join("checkpoint-latest.safetensors");
    let options = RunOptions { output: Some(dir.to_path_buf()), ..RunOptions::default() };
    let mut resumed = Trainer::resume(&ckpt, Device::flex().autodiff(), options).unwrap();
    assert_eq!(resumed.state.step, 0);
    // Its own step-0 checkpoint in its own folder: continued, not refused as an earlier run's.
    let report = resumed.fit(&data, &batcher(), None).unwrap();
    assert_eq!((report.losses.len(), resumed.state.step), (2, 2));
}

#[test]
fn a_fresh_run_refuses_an_earlier_runs_folder() {
    let _serial = serial();
    let data = data();
    let dir = tmpdir("refuse");
    let mut first = trainer(3, Some(dir.to_path_buf()));
    first.config.checkpoint_every = 3;
    first.fit(&data, &batcher(), None).unwrap();
    let ckpt = dir.join("checkpoint-latest.safetensors");
    let before = std::fs::read(&ckpt).unwrap();
    let log_before = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();

    let err = trainer(2, Some(dir.to_path_buf())).fit(&data, &batcher(), None).unwrap_err();
    assert!(matches!(err, TrainError::OutputExists { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&dir.display().to_string()) && msg.contains("--resume") && msg.contains("--overwrite"), "{msg}");
    assert_eq!(std::fs::read(&ckpt).unwrap(), before, "the earlier checkpoint changed");
    assert_eq!(std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap(), log_before);

    // With overwrite the earlier run is replaced at once: stopped before its first checkpoint,
    // the new run leaves none of the old run's for a resume to continue.
    let mut cut = trainer_with(2, RunOptions { output: Some(dir.to_path_buf()), overwrite: true, stop_after: Some(1), ..RunOptions::default() });
    cut.config.checkpoint_every = 2;
    cut.fit(&data, &batcher(), None).unwrap();
    assert!(!ckpt.exists(), "the earlier run's checkpoint survived --overwrite");
    // And the log holds only the new run.
    let mut second = trainer_with(2, RunOptions { output: Some(dir.to_path_buf()), overwrite: true, ..RunOptions::default() });
    second.fit(&data, &batcher(), None).unwrap();
    let log = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert_eq!(log.lines().filter(|l| l.contains("\"loss\"")).count(), 2, "{log}");

    // A run that wrote metrics but no checkpoint has nothing to resume: the refusal says so;
    // one that failed before its first step (an empty log) is no run at all.
    std::fs::remove_file(&ckpt).unwrap();
    let msg = trainer(2, Some(dir.to_path_buf())).fit(&data, &batcher(), None).unwrap_err().to_string();
    assert!(msg.contains("no checkpoint") && msg.contains("--overwrite") && !msg.contains("--resume"), "{msg}");
    std::fs::write(dir.join("metrics.jsonl"), b"").unwrap();
    trainer(2, Some(dir.to_path_buf())).fit(&data, &batcher(), None).unwrap();
}

#[test]
fn non_finite_loss_stops_and_keeps_the_last_checkpoint() {
    let _serial = serial();
    let data = data();
    let dir = tmpdir("nan");
    let mut t = trainer_with(6, RunOptions { output: Some(dir.to_path_buf()), stop_after: Some(2), ..RunOptions::default() });
    t.config.checkpoint_every = 2;
    t.fit(&data, &batcher(), None).unwrap();
    let ckpt = dir.join("checkpoint-latest.safetensors");
    let before = std::fs::read(&ckpt).unwrap();
    // Poison the weights: the next loss is NaN.
    let (id, w, m) = t.model.image_projection.consume();
    t.model.image_projection = Param::from_mapped_value(id, (w * f32::NAN).detach().require_grad(), m);
    let mut t = t.with_options(RunOptions { output: Some(dir.to_path_buf()), ..RunOptions::default() });
    let err = t.fit(&data, &batcher(), None).unwrap_err();
    assert!(matches!(err, TrainError::NonFinite { step: 3, .. }), "{err}");
    assert!(err.to_string().contains("not finite") && err.to_string().contains("checkpoint-latest.safetensors is left intact"), "{err}");
    assert_eq!(std::fs::read(&ckpt).unwrap(), before, "checkpoint changed");
    // A run that stops before writing any says so.
    let fresh = tmpdir("nan-fresh");
    let mut t = trainer_with(6, RunOptions { output: Some(fresh.to_path_buf()), ..RunOptions::default() });
    let (id, w, m) = t.model.image_projection.consume();
    t.model.image_projection = Param::from_mapped_value(id, (w * f32::NAN).detach().require_grad(), m);
    let err = t.fit(&data, &batcher(), None).unwrap_err();
    assert!(matches!(err, TrainError::NonFinite { step: 1, checkpoint: None, .. }) && err.to_string().contains("No checkpoint was written"), "{err}");
}

#[test]
fn a_non_finite_gradient_under_a_finite_loss_stops_before_the_update() {
    let _serial = serial();
    let data = data();
    let dir = tmpdir("nan-grad");
    let mut t = trainer_with(6, RunOptions { output: Some(dir.to_path_buf()), stop_after: Some(2), ..RunOptions::default() });
    t.config.checkpoint_every = 1;
    t.fit(&data, &batcher(), None).unwrap();
    let ckpt = dir.join("checkpoint-latest.safetensors");
    let before = std::fs::read(&ckpt).unwrap();
    // A zero projection gives zero image embeddings: the loss is a finite ln(B), and their
    // gradient is g / eps (1e12 g, as PyTorch's). With pooled features of 1e30 (the final norm's
    // gain) the projection's gradient, pooled^T · 1e12 g, overflows f32.
    let (id, w, m) = t.model.image_projection.consume();
    t.model.image_projection = Param::from_mapped_value(id, (w * 0.0).detach().require_grad(), m);
    let (id, g, m) = t.model.visual.norm.gamma.consume();
    t.model.visual.norm.gamma = Param::from_mapped_value(id, (g * 1e30).detach().require_grad(), m);
    let mut t = t.with_options(RunOptions { output: Some(dir.to_path_buf()), ..RunOptions::default() });
    let err = t.fit(&data, &batcher(), None).unwrap_err();
    assert!(matches!(err, TrainError::NonFiniteGradient { step: 3, .. }), "{err}");
    assert_eq!(std::fs::read(&ckpt).unwrap(), before, "a checkpoint was written after the bad step");
}

#[test]
fn weight_decay_skips_vectors_and_logit_scale() {
    let _serial = serial();
    // With zero gradients AdamW only decays: matrices shrink, 1-D parameters do not move.
    let device = Device::flex().autodiff();
    let model = tiny_model().init(&device).unwrap();
    let out = model.forward(
        Tensor::zeros([2, 3, 32, 32], &device),
        Tensor::from_data(burn::tensor::TensorData::new(vec![49406i64, 49407, 49406, 49407], [2, 2]), &device),
    );
    let grads = (out.image_embed.sum() * 0.0 + out.text_embed.sum() * 0.0).backward();
    let mut buf = GradBuffer::default();
    buf.accumulate(&model, &grads);
    assert!(buf.grads.contains_key("logit_scale") || !buf.grads.is_empty());
    let mut opt = AdamW::new(AdamWConfig { weight_decay: 0.5, ..Default::default() });
    let before_w = model.image_projection.val().inner();
    let before_l = model.visual.blocks[0].norm1.gamma.val().inner();
    let before_s = model.logit_scale.val().inner();
    let after = opt.step(model, 0.1, &buf);
    let off = (after.image_projection.val().inner() - before_w.clone() * 0.95).abs().max().into_scalar::<f32>();
    assert!(off < 1e-6, "matrix not decayed by lr*wd: off by {off}");
    let moved = (after.visual.blocks[0].norm1.gamma.val().inner() - before_l).abs().max().into_scalar::<f32>();
    assert_eq!(moved, 0.0, "layer-norm gain was decayed");
    let moved = (after.logit_scale.val().inner() - before_s).abs().max().into_scalar::<f32>();
    assert_eq!(moved, 0.0, "logit_scale was decayed");
    assert!(after.image_projection.val().is_require_grad());
}

/// `step_scaled(s)` (clipping inside the update) equals scaling the gradients and then
/// stepping, bit for bit, on every backend (flex's one-pass AdamW and the generic ops), over
/// a first and a later step.
#[test]
fn scaled_step_equals_scaling_then_stepping() {
    let _serial = serial();
    for (backend, device) in diffclip_testkit::devices() {
        let device = device.autodiff();
        let model = tiny_model().init(&device).unwrap();
        let images = Tensor::<4>::random([2, 3, 32, 32], burn::tensor::Distribution::Default, &device);
        let texts = Tensor::from_data(burn::tensor::TensorData::new(vec![49406i64, 320, 49407, 49406, 1125, 49407], [2, 3]), &device);
        let out = model.forward(images, texts);
        let loss = diffclip_clip::loss::clip_loss_normalized(out.image_embed, out.text_embed, out.logit_scale_exp);
        let mut buf = GradBuffer::default();
        buf.accumulate(&model, &loss.backward());
        let (mut a, mut b) = (AdamW::new(AdamWConfig::default()), AdamW::new(AdamWConfig::default()));
        let (mut ma, mut mb) = (model.clone(), model);
        for _ in 0..2 {
            let mut scaled = buf.clone();
            scaled.scale(0.37);
            ma = a.step(ma, 1e-3, &scaled);
            mb = b.step_scaled(mb, 1e-3, &buf, 0.37);
        }
        let params = |m: &diffclip_clip::Clip| [m.image_projection.val().inner().into_data(), m.visual.blocks[0].norm1.gamma.val().inner().into_data()];
        assert_eq!(params(&ma), params(&mb), "{backend}: parameters");
        for (key, m) in &a.moments {
            assert_eq!(m.v.clone().into_data(), b.moments[key].v.clone().into_data(), "{backend}: second moment of {key}");
        }
    }
}

/// Counts the samples loaded, so a test can wait until a given number have been.
struct Counting {
    inner: diffclip_data::synthetic::ContrastiveView,
    loaded: std::sync::Mutex<usize>,
    more: std::sync::Condvar,
}

impl diffclip_data::datasets::ClipDataset for Counting {
    fn num_items(&self) -> usize {
        self.inner.num_items()
    }
    fn image_size(&self) -> usize {
        self.inner.image_size()
    }
    fn try_get(&self, index: usize) -> Result<diffclip_data::ClipItem, diffclip_data::DataError> {
        let item = self.inner.try_get(index);
        *self.loaded.lock().unwrap() += 1;
        self.more.notify_all();
        item
    }
}

/// The next step's batch is read while the current step computes: during step 1's update
/// (the learning-rate hook runs inside it) step 2's samples get loaded. A loop that read
/// synchronously would only load them after the update, and the wait would time out.
#[test]
fn the_next_batch_loads_while_the_step_computes() {
    use diffclip_data::datasets::ClipDataset;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let _serial = serial();
    let data = Arc::new(Counting { inner: data(), loaded: Default::default(), more: Default::default() });
    let overlapped = Arc::new(AtomicBool::new(false));
    let waited = Arc::new(AtomicBool::new(false));
    let (d, o, w) = (data.clone(), overlapped.clone(), waited.clone());
    let lr_scale: diffclip_train::LrScale = Box::new(move |_, step| {
        if step == 0 && !w.swap(true, Ordering::SeqCst) {
            let loaded = d.loaded.lock().unwrap();
            let (loaded, _) = d.more.wait_timeout_while(loaded, std::time::Duration::from_secs(20), |n| *n < 64).unwrap();
            o.store(*loaded >= 64, Ordering::SeqCst);
        }
        1.0
    });
    let mut t = trainer_with(2, RunOptions { lr_scale: Some(lr_scale), ..RunOptions::default() });
    assert_eq!(data.num_items(), 256);
    t.fit(data.as_ref(), &batcher(), None).unwrap();
    assert!(waited.load(Ordering::SeqCst), "the update never asked for a learning-rate factor");
    assert!(overlapped.load(Ordering::SeqCst), "step 2's batch was not loaded during step 1");
}

/// The global gradient norm of a parameter with millions of elements (a CLIP token embedding
/// is 49 408 × width) is right on every backend: on wgpu (lavapipe) one reduction over that
/// many elements returns a wrong sum, so the norm sums blocks first.
#[test]
fn gradient_norm_of_a_huge_parameter_is_right_on_every_backend() {
    for (backend, device) in diffclip_testkit::devices() {
        for n in [(1usize << 20) + 77, 3 * 4096, 1000] {
            let values: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
            let want = values.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>().sqrt();
            let mut buf = GradBuffer::default();
            buf.grads.insert("token_embedding.weight".into(), Tensor::from_data(burn::tensor::TensorData::new(values, [n]), &device));
            let got = buf.norm();
            assert!((got - want).abs() <= 1e-4 * want, "{backend}, {n} elements: norm {got} vs {want}");
        }
    }
}

#[test]
fn bad_configs_are_errors() {
    let _serial = serial();
    let data = data();
    let mut t = trainer(2, None);
    t.config.batch_size = 1;
    assert!(matches!(t.fit(&data, &batcher(), None), Err(TrainError::Config(_))));
    let mut t = trainer(2, None);
    t.config.batch_size = 10_000;
    assert!(matches!(t.fit(&data, &batcher(), None), Err(TrainError::Config(_))));
    // Optimizer settings that would train silently wrong are refused, naming the setting.
    type Edit = (&'static str, fn(&mut TrainConfig));
    let edits: [Edit; 8] = [
        ("grad_clip", |c| c.grad_clip = Some(-1.0)),
        ("grad_clip", |c| c.grad_clip = Some(0.0)),
        ("beta2", |c| c.adamw.beta2 = 1.0),
        ("beta1", |c| c.adamw.beta1 = -0.1),
        ("eps", |c| c.adamw.eps = 0.0),
        ("weight_decay", |c| c.adamw.weight_decay = -0.5),
        ("min_lr", |c| c.min_lr = f64::NAN),
        ("min_lr", |c| c.min_lr = 2.0 * c.lr),
    ];
    for (name, edit) in edits {
        let mut t = trainer(2, None);
        edit(&mut t.config);
        match t.fit(&data, &batcher(), None) {
            Err(TrainError::Config(m)) => assert!(m.contains(name), "{name}: {m}"),
            other => panic!("{name}: {:?}", other.map(|r| r.steps)),
        }
        assert_eq!(t.state.step, 0, "{name}: no step taken");
    }
    let _ = Module::num_params(&t.model);
    // A text vocabulary the tokenizer's ids overflow is refused before the first step.
    let device = Device::flex().autodiff();
    let mut small = tiny_model();
    small.text.vocab_size = 10;
    let mut t = Trainer::new(small.init(&device).unwrap(), small, config(2), RunOptions::default());
    match t.fit(&data, &batcher(), None) {
        Err(TrainError::Config(m)) => assert!(m.contains("vocab_size") && m.contains("49408"), "{m}"),
        other => panic!("{:?}", other.map(|r| r.steps)),
    }
}

#[test]
fn a_resumed_checkpoints_model_config_is_untrusted() {
    let _serial = serial();
    let data = data();
    let dir = tmpdir("evil-resume");
    let mut t = trainer(2, Some(dir.to_path_buf()));
    t.config.checkpoint_every = 2;
    t.fit(&data, &batcher(), None).unwrap();
    // Rewrite the checkpoint's metadata so its model is a 10^12-parameter tower.
    let path = dir.join("checkpoint-latest.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = header.metadata().clone().unwrap();
    // Forged, not damaged: a forger leaves out the checksums, with which the file loads unchecked.
    meta.remove(diffclip_clip::checksum::CHECKSUM_KEY).expect("train writes checksums");
    let mut training: serde_json::Value = serde_json::from_str(&meta["diffclip_training"]).unwrap();
    training["model"]["vision"]["width"] = 1_000_000.into();
    training["model"]["vision"]["layers"] = 1000.into();
    meta.insert("diffclip_training".into(), training.to_string());
    meta.insert("diffclip_config".into(), training["model"].to_string());
    let tensors: Vec<_> = st.tensors();
    let evil = dir.join("evil.safetensors");
    std::fs::write(&evil, safetensors::serialize(tensors, Some(meta.clone())).unwrap()).unwrap();
    let err = Trainer::resume(&evil, Device::flex().autodiff(), RunOptions::default()).err().expect("a 10^12-parameter model must be refused");
    let msg = err.to_string();
    assert!(msg.contains("evil.safetensors") && msg.contains("too large"), "{msg}");

    // The model config written as a list of its fields in order, which serde alone would read.
    let mut training: serde_json::Value = serde_json::from_str(&header.metadata().as_ref().unwrap()["diffclip_training"]).unwrap();
    let m = training["model"].clone();
    training["model"] = serde_json::json!([m["embed_dim"], m["vision"], m["text"], m["logit_scale_init"]]);
    meta.insert("diffclip_training".into(), training.to_string());
    let listed = dir.join("listed.safetensors");
    std::fs::write(&listed, safetensors::serialize(st.tensors(), Some(meta)).unwrap()).unwrap();
    let err = Trainer::resume(&listed, Device::flex().autodiff(), RunOptions::default()).err().expect("a list for the model config must be refused");
    let msg = err.to_string();
    assert!(msg.contains("listed.safetensors") && msg.contains("`model` must be a JSON object"), "{msg}");
}

/// The first five synthetic items, one of them unreadable.
struct OneBad {
    inner: diffclip_data::synthetic::ContrastiveView,
    bad: usize,
}

impl diffclip_data::datasets::ClipDataset for OneBad {
    fn num_items(&self) -> usize {
        5
    }
    fn image_size(&self) -> usize {
        self.inner.image_size()
    }
    fn try_get(&self, index: usize) -> Result<diffclip_data::ClipItem, diffclip_data::DataError> {
        match index {
            i if i == self.bad => Err(diffclip_data::DataError::Config(format!("broken sample {i}"))),
            i => self.inner.try_get(i),
        }
    }
}

/// A bad sample at the end of an epoch is skipped and the batch filled from the next epoch;
/// only a whole epoch of bad samples is an empty batch.
#[test]
fn a_bad_sample_ending_an_epoch_is_skipped_not_an_empty_batch() {
    let _serial = serial();
    // Batches of 2 over 5 items: step 3 reads the epoch's last item, broken, then epoch 1.
    let bad = diffclip_train::epoch_order(5, 0, 0)[4];
    let data = OneBad { inner: data(), bad };
    let mut t = trainer(4, None);
    t.config.batch_size = 2;
    let report = t.fit(&data, &batcher(), None).unwrap();
    assert_eq!(report.losses.len(), 4);
    // Steps 3 and 4 take their 4 samples from epoch 1, skipping the bad one if it comes first.
    let next = diffclip_train::epoch_order(5, 0, 1);
    let read = next.iter().scan(0, |good, &i| (*good < 4).then(|| *good += usize::from(i != bad))).count();
    assert_eq!(report.skipped_samples, 1 + read - 4);
    assert_eq!((t.state.epoch, t.state.position), (1, read));
}

#[test]
fn a_training_checkpoint_loads_as_a_model() {
    let _serial = serial();
    let dir = tmpdir("as-model");
    let mut t = trainer(1, Some(dir.to_path_buf()));
    t.fit(&data(), &batcher(), None).unwrap();
    let ckpt = dir.join("checkpoint-latest.safetensors");
    // Its config travels with it; its weights sit under `model.` beside the AdamW moments.
    let config = diffclip_clip::checkpoint::config_of(&ckpt).unwrap().unwrap();
    let device = Device::flex();
    let mut model = config.init(&device).unwrap();
    diffclip_clip::load_checkpoint(&mut model, &ckpt).unwrap();
    let trained = t.model.clone().valid();
    let (a, b) = (model.image_projection.val(), trained.image_projection.val());
    assert_eq!(a.into_data().try_to_vec::<f32>().unwrap(), b.into_data().try_to_vec::<f32>().unwrap());
}

/// A run asked to stop writes its last step's checkpoint and ends with `Interrupted`; resumed,
/// it goes on from that step.
#[test]
fn a_stopped_run_keeps_its_steps() {
    let _serial = serial();
    let dir = tmpdir("stopped");
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = asked.clone();
    // Asked before each step: "stop" on the fourth question, after three steps.
    let stop = std::sync::Arc::new(move || counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 3);
    let mut t = trainer_with(10, RunOptions { output: Some(dir.to_path_buf()), stop: Some(stop), ..RunOptions::default() });
    t.config.checkpoint_every = 100;
    let err = t.fit(&data(), &batcher(), None).unwrap_err();
    assert!(matches!(err, TrainError::Interrupted { step: 3, checkpoint: Some(_) }), "{err}");
    assert!(err.to_string().contains("continue with --resume"), "{err}");
    let resumed = Trainer::resume(dir.join("checkpoint-latest.safetensors"), Device::flex().autodiff(), RunOptions::default()).unwrap();
    assert_eq!(resumed.state.step, 3);
    // Stopped before the first step: no checkpoint is claimed.
    let fresh = tmpdir("stopped-at-once");
    let mut t = trainer_with(10, RunOptions { output: Some(fresh.to_path_buf()), stop: Some(std::sync::Arc::new(|| true)), ..RunOptions::default() });
    let err = t.fit(&data(), &batcher(), None).unwrap_err();
    assert!(matches!(err, TrainError::Interrupted { step: 0, checkpoint: None }) && err.to_string().contains("nothing was trained"), "{err}");
    assert!(!fresh.join("checkpoint-latest.safetensors").exists());
}
