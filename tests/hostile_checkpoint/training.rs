//! Training checkpoints and optimizer moments: other dtypes resume, integer tensors and
//! moments that do not fit their parameter are refused.

use super::*;

// The device RNG is global: tests that build models for training take this lock.
pub(super) use diffclip_testkit::serial;

pub(super) fn ad_device() -> Device {
    devices().remove(0).1.autodiff()
}

/// A model after one AdamW step (so every parameter has moments) and its gradients.
fn stepped() -> (Clip, AdamW, GradBuffer, ClipConfig) {
    let device = ad_device();
    let cfg = ClipConfig::diffclip_tiny();
    let model = cfg.init(&device).unwrap();
    let inputs = read_arrays("diffclip_tiny/inputs.safetensors");
    let out = model.forward(inputs.float("image", &device), inputs.int::<2>("text", &device));
    let grads = (out.image_embed.sum() + out.text_embed.sum() * 0.5).backward();
    let mut buf = GradBuffer::default();
    buf.accumulate(&model, &grads);
    let mut opt = AdamW::new(AdamWConfig::default());
    let model = opt.step(model, 1e-3, &buf);
    (model, opt, buf, cfg)
}

/// A training checkpoint written by `save_training_checkpoint`.
fn training_checkpoint(name: &str) -> (TempPath, Clip, AdamW) {
    let path = tmp(name);
    let (model, opt) = training_checkpoint_at(&path);
    (path, model, opt)
}

pub(super) fn training_checkpoint_at(path: &Path) -> (Clip, AdamW) {
    let (model, opt, _, cfg) = stepped();
    let meta = Checkpoint { state: TrainState { step: 1, ..TrainState::default() }, model: cfg, train: TrainConfig::default() };
    save_training_checkpoint(path, &model, &opt, &meta).unwrap();
    (model, opt)
}

/// Rewrite a training checkpoint: `edit` gets each (key, shape, values) and returns the
/// dtype, shape and bytes to store, or None to drop the tensor.
fn rewrite(src: &Path, dst: &Path, edit: impl Fn(&str, &[usize], &[f32]) -> Option<(Dtype, Vec<usize>, Vec<u8>)>) {
    let (tensors, mut meta) = read_f32(src);
    // Written as another program would: no checksums (those of `src` no longer hold).
    meta.as_mut().map(|m| m.remove(diffclip::clip::checksum::CHECKSUM_KEY).expect("train writes checksums"));
    let raw: Vec<Raw> = tensors.iter().filter_map(|(k, s, v)| edit(k, s, v).map(|(d, s, b)| (k.clone(), d, s, b))).collect();
    write_safetensors(dst, &raw, meta);
}

fn moments_of(opt: &AdamW, key: &str) -> (Vec<f32>, Vec<f32>) {
    let m = &opt.moments[key];
    (m.m.clone().into_data().convert::<f32>().try_to_vec::<f32>().unwrap(), m.v.clone().into_data().convert::<f32>().try_to_vec::<f32>().unwrap())
}

#[test]
fn training_checkpoints_in_f64_and_f16_resume() {
    let _serial = serial();
    let (path, _, _) = training_checkpoint("train-f32.safetensors");
    let device = ad_device();
    let (model, opt, _) = load_training_checkpoint(&path, &device).unwrap();
    let want_weights = state_dict_of(&model).unwrap();

    // F64 everywhere: identical.
    let f64_path = tmp("train-f64.safetensors");
    rewrite(&path, &f64_path, |_, s, v| Some((Dtype::F64, s.to_vec(), f64_bytes(v))));
    let (m64, o64, _) = load_training_checkpoint(&f64_path, &device).unwrap();
    assert_eq!(state_dict_of(&m64).unwrap(), want_weights);
    assert_eq!(o64.step, opt.step);
    for key in opt.moments.keys() {
        assert_eq!(moments_of(&o64, key), moments_of(&opt, key), "{key}");
    }

    // F16 weights and moments: converted (the `[64, 32]` projection panicked before).
    let f16_path = tmp("train-f16.safetensors");
    rewrite(&path, &f16_path, |k, s, v| {
        if k == "model.image_projection" || k.starts_with("optim.") {
            Some((Dtype::F16, s.to_vec(), f16_bytes(v)))
        } else {
            Some((Dtype::F32, s.to_vec(), f32_bytes(v)))
        }
    });
    let (m16, o16, _) = load_training_checkpoint(&f16_path, &device).unwrap();
    let got = state_dict_of(&m16).unwrap();
    assert_f16_close("image_projection", &got["image_projection"].data, &want_weights["image_projection"].data);
    for key in opt.moments.keys() {
        let ((gm, gv), (wm, wv)) = (moments_of(&o16, key), moments_of(&opt, key));
        assert_f16_close(key, &gm, &wm);
        assert_f16_close(key, &gv, &wv);
    }
    // And training goes on from it.
    let (_, _, buf, _) = stepped();
    let mut o16 = o16;
    o16.try_step(m16, 1e-3, &buf).unwrap();
}

#[test]
fn training_checkpoints_with_integer_tensors_are_refused_naming_the_key() {
    let _serial = serial();
    let (path, _, _) = training_checkpoint("train-int-src.safetensors");
    let device = ad_device();
    for target in ["model.image_projection", "optim.m.image_projection"] {
        for dtype in [Dtype::I64, Dtype::BOOL] {
            let bad = tmp("train-int.safetensors");
            rewrite(&path, &bad, |k, s, v| {
                Some(if k == target {
                    let b = if dtype == Dtype::I64 { v.iter().flat_map(|&x| (x as i64).to_le_bytes()).collect() } else { vec![1u8; v.len()] };
                    (dtype, s.to_vec(), b)
                } else {
                    (Dtype::F32, s.to_vec(), f32_bytes(v))
                })
            });
            let err = load_training_checkpoint(&bad, &device).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(target) && msg.contains(&format!("{dtype:?}")) && msg.contains("train-int.safetensors"), "{msg}");
        }
    }
}

#[test]
fn moments_that_do_not_fit_their_parameter_are_refused_at_load() {
    let _serial = serial();
    let (path, _, _) = training_checkpoint("train-moments-src.safetensors");
    let device = ad_device();
    let bad = tmp("train-moments.safetensors");
    type Corrupt = fn(&[f32]) -> Vec<f32>;
    let cases: [(&str, Corrupt); 3] = [
        ("optim.m.image_projection", |v| v[..v.len() - 1].to_vec()),
        ("optim.v.visual.blocks.0.attn.Differential.lambda_q1", |v| [v, &[0.0]].concat()),
        ("optim.m.visual.cls_token", |_| Vec::new()),
    ];
    let keys: Vec<String> = read_f32(&path).0.into_iter().map(|t| t.0).collect();
    for (target, f) in cases {
        assert!(keys.iter().any(|k| k == target), "{target} not in {keys:?}");
        rewrite(&path, &bad, |k, s, v| {
            if k == target {
                let v = f(v);
                Some((Dtype::F32, vec![v.len()], f32_bytes(&v)))
            } else {
                Some((Dtype::F32, s.to_vec(), f32_bytes(v)))
            }
        });
        let err = load_training_checkpoint(&bad, &device).unwrap_err();
        assert!(matches!(err, TrainError::Resume { .. }), "{err}");
        assert!(err.to_string().contains(target), "{target}: {err}");
    }
    // A file that is not one is refused from its first bytes, never read whole (1 TiB, sparse).
    std::fs::File::create(&bad).unwrap().set_len(1 << 40).unwrap();
    let err = load_training_checkpoint(&bad, &device).unwrap_err().to_string();
    assert!(err.contains("not a diffclip training checkpoint") && err.contains("header length 0"), "{err}");
    // A moment for a parameter the model does not have (the file forged: no checksums).
    let (tensors, mut meta) = read_f32(&path);
    meta.as_mut().map(|m| m.remove(diffclip::clip::checksum::CHECKSUM_KEY).expect("train writes checksums"));
    let mut raw: Vec<Raw> = tensors.iter().map(|(k, s, v)| (k.clone(), Dtype::F32, s.clone(), f32_bytes(v))).collect();
    raw.push(("optim.m.nonexistent".into(), Dtype::F32, vec![2], f32_bytes(&[0.0, 0.0])));
    raw.push(("optim.v.nonexistent".into(), Dtype::F32, vec![2], f32_bytes(&[0.0, 0.0])));
    write_safetensors(&bad, &raw, meta);
    let err = load_training_checkpoint(&bad, &device).unwrap_err();
    assert!(err.to_string().contains("optimizer state 'optim.m.nonexistent' is for a parameter the model does not have"), "{err}");
}

#[test]
fn adamw_step_does_not_panic_on_a_mismatched_moment() {
    let _serial = serial();
    let (model, mut opt, buf, _) = stepped();
    let device = ad_device().inner();
    let short = Tensor::<1>::from_data(TensorData::new(vec![0.5f32; 3], [3]), &device);
    opt.moments.get_mut("image_projection").unwrap().m = short;
    // try_step refuses and changes nothing.
    let before = opt.step;
    let err = opt.try_step(model.clone(), 1e-3, &buf).unwrap_err();
    assert!(err.to_string().contains("image_projection"), "{err}");
    assert_eq!(opt.step, before);
    // step restarts the moment instead of panicking.
    let after = opt.step(model, 1e-3, &buf);
    let n = after.image_projection.val().shape().num_elements();
    assert_eq!(opt.moments["image_projection"].m.dims()[0], n);
    // A gradient of the wrong length: try_step refuses, step leaves the parameter alone.
    let mut bad = buf.clone();
    bad.grads.insert("image_projection".into(), Tensor::<1>::from_data(TensorData::new(vec![1.0f32; 5], [5]), &device));
    assert!(opt.try_step(after.clone(), 1e-3, &bad).is_err());
    let values = |m: &Clip| m.image_projection.val().into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    let before = values(&after);
    let again = opt.step(after, 1e-3, &bad);
    assert_eq!(values(&again), before);
}
