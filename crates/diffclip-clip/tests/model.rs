//! Presets, parameter counts, key layout, configs, export round trips and checkpoint errors.

use burn::module::Module;
use burn::tensor::{Int, Tensor};
use diffclip_clip::checkpoint::{CheckpointError, config_of, read_state_dict, state_dict_of, state_dict_shapes, to_diffclip_names};
use diffclip_clip::{ClipConfig, ClipError, PRESETS, load_checkpoint, save_burnpack, save_safetensors};
use diffclip_testkit::{devices, fixture};

/// A fresh path for a temporary file ending in `name`, removed when dropped.
fn tmp(name: &str) -> tempfile::TempPath {
    diffclip_testkit::temp_path(name)
}

#[test]
fn diffclip_vit_b16_has_the_reference_parameter_count_and_keys() {
    let (_, device) = devices().remove(0);
    let model = ClipConfig::diffclip_vit_b16().init_lazy(&device).unwrap();
    assert_eq!(model.num_params(), 149_629_185);
    // Every key of the authors' ViT-B/16 state dict, with its shape.
    let ours = to_diffclip_names(
        state_dict_shapes(&model)
            .into_iter()
            .map(|(k, s)| (k, diffclip_clip::checkpoint::StateTensor { shape: s, data: vec![] }))
            .collect(),
        "<model>",
    )
    .unwrap();
    let text = std::fs::read_to_string(fixture("diffclip_vitb16/keys.txt")).unwrap();
    let mut n = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut it = line.split('\t');
        let (key, shape) = (it.next().unwrap(), it.next().unwrap());
        let shape: Vec<usize> = serde_json::from_str(shape).unwrap();
        let got = ours.get(key).unwrap_or_else(|| panic!("model lacks {key}"));
        let got_shape: Vec<usize> = if key == "logit_scale" { vec![] } else { got.shape.clone() };
        assert_eq!(got_shape, shape, "{key}");
        n += 1;
    }
    assert_eq!(n, 517);
    assert_eq!(ours.len(), 517);
}

#[test]
fn variant_presets_differ_only_where_they_should() {
    let (_, device) = devices().remove(0);
    let count = |c: ClipConfig| c.init_lazy(&device).unwrap().num_params();
    let diff = 149_629_185;
    assert_eq!(count(ClipConfig::clip_vit_b16()), diff - 9216);
    assert_eq!(count(ClipConfig::diffclip_dagger_vit_b16()), diff - 4608);
    assert_eq!(count(ClipConfig::diffclip_star_vit_b16()), diff);
    let star = ClipConfig::diffclip_star_vit_b16().init_lazy(&device).unwrap();
    let l0 = star.visual.blocks[0].attn.lambda_full().unwrap();
    assert!(matches!(star.visual.blocks[0].attn, diffclip_attention::Attention::Differential(ref a) if (a.lambda_init - 0.2).abs() < 1e-12));
    let _ = l0;
    for (name, make) in PRESETS {
        assert_eq!(ClipConfig::preset(name).unwrap(), make());
        assert_eq!(ClipConfig::preset(&name.replace('_', "-").to_uppercase()).unwrap(), make());
    }
    assert!(matches!(ClipConfig::preset("vit-h-99"), Err(ClipError::UnknownPreset { .. })));
}

#[test]
fn openai_presets_match_open_clip_counts() {
    let (_, device) = devices().remove(0);
    // open_clip ViT-B-16: 149,620,737 parameters.
    assert_eq!(ClipConfig::openai_vit_b16().init_lazy(&device).unwrap().num_params(), 149_620_737);
}

#[test]
fn config_json_round_trip_and_unknown_fields() {
    let cfg = ClipConfig::diffclip_tiny();
    let json = serde_json::to_string_pretty(&cfg).unwrap();
    assert_eq!(ClipConfig::from_json(&json).unwrap(), cfg);
    let bad = json.replacen("\"embed_dim\"", "\"embed_dimm\"", 1);
    let err = ClipConfig::from_json(&bad).unwrap_err().to_string();
    assert!(err.contains("embed_dimm"), "{err}");
    let bad = json.replacen("\"patch_size\"", "\"patch\"", 1);
    assert!(ClipConfig::from_json(&bad).is_err());
}

#[test]
fn estimate_counts_parameters_exactly() {
    let (_, device) = devices().remove(0);
    let mut mixed = ClipConfig::diffclip_tiny();
    mixed.vision.attention.per_layer = Some(vec![diffclip_attention::AttentionKind::Standard, diffclip_attention::AttentionKind::Differential]);
    mixed.vision.qkv_bias = false;
    mixed.vision.mlp_ratio = 2.5;
    mixed.logit_bias_init = Some(-10.0);
    mixed.text.vocab_size = 1000;
    for c in [ClipConfig::diffclip_tiny(), ClipConfig::clip_tiny(), ClipConfig::openai_tiny(), mixed] {
        assert_eq!(c.estimate().params as usize, c.init(&device).unwrap().num_params(), "{c:?}");
    }
}

#[test]
fn untrusted_sizes_are_refused_before_allocation() {
    use diffclip_clip::ModelLimits;
    let limits = ModelLimits { max_params: 10_000_000, max_bytes: Some(1 << 30) };
    let too_large = |edit: &dyn Fn(&mut ClipConfig)| {
        let mut c = ClipConfig::diffclip_tiny();
        edit(&mut c);
        let err = c.check_fits(&limits).unwrap_err();
        assert!(matches!(err, ClipError::TooLarge { .. }), "{err}");
        err.to_string()
    };
    let msg = too_large(&|c| { c.vision.width = 1_000_000; c.vision.layers = 1000 });
    assert!(msg.contains("parameters"), "{msg}");
    too_large(&|c| c.vision.layers = usize::MAX);
    too_large(&|c| c.text.context_length = 1_000_000_000);
    too_large(&|c| c.text.vocab_size = 4_000_000_000);
    too_large(&|c| c.vision.image_size = 1 << 20);
    too_large(&|c| c.vision.mlp_ratio = 1e12);
    // Within the parameter limit but not the memory limit.
    let mut c = ClipConfig::diffclip_vit_b16();
    let msg = c.check_fits(&ModelLimits { max_params: u64::MAX, max_bytes: Some(100 << 20) }).unwrap_err().to_string();
    assert!(msg.contains("GiB") && msg.contains("149629185"), "{msg}");
    c.vision.patch_size = 0;
    assert!(c.check_fits(&ModelLimits { max_params: u64::MAX, max_bytes: None }).is_err());
    // Values no model can have, each named.
    for (field, edit) in [
        ("in_chans", Box::new(|c: &mut ClipConfig| c.vision.in_chans = 0) as Box<dyn Fn(&mut ClipConfig)>),
        ("mlp_ratio", Box::new(|c: &mut ClipConfig| c.vision.mlp_ratio = -4.0)),
        ("mlp_ratio", Box::new(|c: &mut ClipConfig| c.text.mlp_ratio = f64::NAN)),
        ("ln_eps", Box::new(|c: &mut ClipConfig| c.text.ln_eps = -1.0)),
        ("layers", Box::new(|c: &mut ClipConfig| c.text.layers = 0)),
        ("context_length", Box::new(|c: &mut ClipConfig| c.text.context_length = 0)),
        ("dropout", Box::new(|c: &mut ClipConfig| c.vision.dropout = 1.5)),
        ("lambda_init", Box::new(|c: &mut ClipConfig| c.vision.attention.lambda_init = diffclip_attention::LambdaInit::Constant(f64::INFINITY))),
        ("logit_scale_init", Box::new(|c: &mut ClipConfig| c.logit_scale_init = f64::NAN)),
        ("embed_dim", Box::new(|c: &mut ClipConfig| c.embed_dim = 0)),
    ] {
        let mut c = ClipConfig::diffclip_tiny();
        edit(&mut c);
        let err = c.check().unwrap_err().to_string();
        assert!(err.contains(field), "{field}: {err}");
        let json = serde_json::to_string(&c).unwrap();
        if !json.contains("null") {
            assert!(ClipConfig::from_json(&json).is_err(), "{field}: from_json accepted it");
        }
    }
}

#[test]
fn invalid_model_configs_are_errors() {
    let (_, device) = devices().remove(0);
    let mut c = ClipConfig::diffclip_tiny();
    c.vision.heads = 3;
    assert!(matches!(c.init(&device), Err(ClipError::Vision(_))));
    let mut c = ClipConfig::diffclip_tiny();
    c.vision.patch_size = 7;
    assert!(matches!(c.init(&device), Err(ClipError::Vision(_))));
    let mut c = ClipConfig::diffclip_tiny();
    c.text.attention.per_layer = Some(vec![diffclip_attention::AttentionKind::Standard]);
    assert!(matches!(c.init(&device), Err(ClipError::Text(_))));
}

fn embed(model: &diffclip_clip::Clip, device: &burn::tensor::Device) -> (Vec<f32>, Vec<f32>) {
    let ids: Tensor<2, Int> = Tensor::from_data(burn::tensor::TensorData::new(vec![49406i64, 320, 1125, 49407, 0, 0, 49406, 2368, 49407, 0, 0, 0], [2, 6]), device);
    let img = Tensor::<4>::ones([2, 3, 32, 32], device) * 0.25;
    let out = model.forward(img, ids);
    (out.image_embed.into_data().try_to_vec::<f32>().unwrap(), out.text_embed.into_data().try_to_vec::<f32>().unwrap())
}

#[test]
fn export_round_trips_through_safetensors_and_burnpack() {
    for (backend, device) in devices() {
        let mut model = ClipConfig::diffclip_tiny().init(&device).unwrap();
        load_checkpoint(&mut model, fixture("diffclip_tiny/model.safetensors")).unwrap();
        let want = embed(&model, &device);

        // Safetensors in the authors' layout: same keys and values as the fixture file.
        let st = tmp(&format!("{backend}.safetensors"));
        save_safetensors(&model, Some(&ClipConfig::diffclip_tiny()), &st).unwrap();
        let ours = read_state_dict(&st).unwrap();
        let theirs = read_state_dict(fixture("diffclip_tiny/model.safetensors")).unwrap();
        assert_eq!(ours.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>());
        for (k, t) in &theirs {
            assert_eq!(ours[k].shape, t.shape, "{k}");
            let d = ours[k].data.iter().zip(&t.data).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(d == 0.0, "{k}: {d}");
        }
        assert_eq!(config_of(&st).unwrap(), Some(ClipConfig::diffclip_tiny()));
        let mut fresh = ClipConfig::diffclip_tiny().init(&device).unwrap();
        load_checkpoint(&mut fresh, &st).unwrap();
        assert_eq!(embed(&fresh, &device), want);

        let bp = tmp(&format!("{backend}.bpk"));
        save_burnpack(&model, Some(&ClipConfig::diffclip_tiny()), &bp).unwrap();
        assert_eq!(config_of(&bp).unwrap(), Some(ClipConfig::diffclip_tiny()));
        // A damaged file says what is wrong with it, not that it carries no config.
        let bytes = std::fs::read(&st).unwrap();
        let damaged = tmp(&format!("{backend}-damaged.safetensors"));
        // One low bit of the last weight flipped on disk: refused by its checksum, naming the
        // tensor, and the model left as it was.
        let mut flipped = bytes.clone();
        let last = flipped.len() - 4;
        flipped[last] ^= 1;
        std::fs::write(&damaged, &flipped).unwrap();
        let mut kept = fresh.clone();
        let err = load_checkpoint(&mut kept, &damaged).unwrap_err();
        let last_key = ours.keys().last().unwrap();
        assert!(matches!(err, diffclip_clip::CheckpointError::Damaged { .. }) && err.to_string().contains(&format!("tensor '{last_key}': its bytes do not match the checksum")), "{err}");
        assert_eq!(embed(&kept, &device), want);
        // One digit of the stored config changed in place: damage, not another model.
        let at = bytes.windows(14).position(|w| w == b"embed_dim\\\":32").expect("the stored config") + 13;
        let mut edited = bytes.clone();
        edited[at] = b'3';
        std::fs::write(&damaged, &edited).unwrap();
        for err in [config_of(&damaged).unwrap_err(), load_checkpoint(&mut kept, &damaged).unwrap_err()] {
            assert!(matches!(err, diffclip_clip::CheckpointError::Damaged { .. }) && err.to_string().contains("its metadata"), "{err}");
        }
        std::fs::write(&damaged, [&50_000_000u64.to_le_bytes()[..], &bytes[8..]].concat()).unwrap();
        let err = config_of(&damaged).unwrap_err().to_string();
        assert!(err.contains("header length 50000000 does not fit"), "{err}");
        std::fs::write(&damaged, b"").unwrap();
        assert!(config_of(&damaged).is_err());
        // A torch.save file carries none; a damaged one is named as damaged.
        assert_eq!(config_of(fixture("diffclip_tiny/checkpoint.pt")).unwrap(), None);
        std::fs::write(&damaged, b"PK\x03\x04garbage").unwrap();
        let err = config_of(&damaged).unwrap_err().to_string();
        assert!(err.contains("zip"), "{err}");
        let mut fresh = ClipConfig::diffclip_tiny().init(&device).unwrap();
        load_checkpoint(&mut fresh, &bp).unwrap();
        assert_eq!(embed(&fresh, &device), want);
        assert_eq!(state_dict_of(&fresh).unwrap().len(), theirs.len());
        // A burnpack under a name without the extension is read as named (not as `NAME.bpk`).
        let bare = tmp(&format!("{backend}-weights"));
        std::fs::copy(&bp, &bare).unwrap();
        let mut fresh = ClipConfig::diffclip_tiny().init(&device).unwrap();
        load_checkpoint(&mut fresh, &bare).unwrap();
        assert_eq!(embed(&fresh, &device), want);
        // A burnpack of another architecture fails and leaves the model as it was, though many
        // of its tensors (patch embedding, norms, MLPs) would have fitted.
        let mut other = ClipConfig::clip_tiny().init(&device).unwrap();
        let before = embed(&other, &device);
        let err = load_checkpoint(&mut other, &bp).unwrap_err();
        assert_eq!(embed(&other, &device), before, "{backend}: a failed burnpack load changed the model");
        // Listed key by key as for the other containers, not as Burn's loading summary.
        let CheckpointError::Mismatch { mismatch, .. } = &err else { panic!("{err}") };
        assert!(!mismatch.missing.is_empty() && !mismatch.unexpected.is_empty(), "{err}");
        assert!(mismatch.missing.iter().chain(&mismatch.unexpected).all(|(_, shape)| !shape.is_empty()), "{err}");
        assert!(err.to_string().contains("checkpoint does not match the model"), "{err}");
        // The same keys with other shapes are listed as such.
        let mut narrow = ClipConfig::diffclip_tiny();
        narrow.embed_dim += 8;
        let err = load_checkpoint(&mut narrow.init_lazy(&device).unwrap(), &bp).unwrap_err();
        let CheckpointError::Mismatch { mismatch, .. } = &err else { panic!("{err}") };
        assert!(mismatch.missing.is_empty() && mismatch.unexpected.is_empty() && !mismatch.shapes.is_empty(), "{err}");
    }
}

#[test]
fn mismatched_checkpoint_lists_every_problem() {
    let (_, device) = devices().remove(0);
    // A DiffCLIP checkpoint into a standard-attention model of another width.
    let mut cfg = ClipConfig::clip_tiny();
    cfg.embed_dim = 16;
    let mut model = cfg.init(&device).unwrap();
    let before = embed(&model, &device);
    let err = load_checkpoint(&mut model, fixture("diffclip_tiny/model.safetensors")).unwrap_err();
    let CheckpointError::Mismatch { path, mismatch } = &err else { panic!("{err}") };
    assert!(path.ends_with("model.safetensors"));
    assert!(mismatch.missing.is_empty());
    assert!(mismatch.unexpected.iter().any(|(k, s)| k == "visual.blocks.0.attn.lambda_q1" && s == &vec![16]));
    assert!(mismatch.unexpected.iter().any(|(k, _)| k == "text.blocks.1.attn.diff_norm.weight"));
    assert!(mismatch.shapes.iter().any(|(k, e, f)| k == "image_projection" && e == &vec![64, 16] && f == &vec![64, 32]));
    let msg = err.to_string();
    assert!(msg.contains("expected [64, 16], found [64, 32]"), "{msg}");
    // The model is untouched.
    assert_eq!(embed(&model, &device), before);

    // And the other way: a standard checkpoint into a DiffCLIP model reports missing keys.
    let mut model = ClipConfig::diffclip_tiny().init(&device).unwrap();
    let err = load_checkpoint(&mut model, fixture("openclip_tiny/model.safetensors")).unwrap_err();
    let CheckpointError::Mismatch { mismatch, .. } = err else { panic!() };
    assert!(mismatch.missing.iter().any(|(k, s)| k == "visual.blocks.0.attn.lambda_k2" && s == &vec![16]));
    assert!(mismatch.unexpected.iter().any(|(k, _)| k == "visual.ln_pre.weight"));
}

#[test]
fn unreadable_files_are_named_errors() {
    let (_, device) = devices().remove(0);
    let mut model = ClipConfig::diffclip_tiny().init(&device).unwrap();
    let missing = load_checkpoint(&mut model, "/nonexistent/weights.pt").unwrap_err();
    assert!(matches!(missing, CheckpointError::Io { .. }) && missing.to_string().contains("/nonexistent/weights.pt"));
    let junk = tmp("junk.bin");
    std::fs::write(&junk, b"this is not a checkpoint at all").unwrap();
    assert!(matches!(load_checkpoint(&mut model, &junk).unwrap_err(), CheckpointError::UnknownContainer { .. }));
    // A truncated safetensors file.
    let bytes = std::fs::read(fixture("diffclip_tiny/model.safetensors")).unwrap();
    let cut = tmp("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_checkpoint(&mut model, &cut).unwrap_err();
    assert!(err.to_string().contains("cut.safetensors"), "{err}");
    // A truncated .pt file.
    let bytes = std::fs::read(fixture("diffclip_tiny/checkpoint.pt")).unwrap();
    let cut = tmp("cut.pt");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let err = load_checkpoint(&mut model, &cut).unwrap_err();
    assert!(err.to_string().contains("cut.pt"), "{err}");
}

/// A `.pt` archive re-zipped with deflated entries (torch.save stores them) reads as the
/// original: its tensors may claim what the entries hold decompressed, not only the file's size.
#[test]
fn a_deflated_pytorch_archive_reads_as_the_stored_one() {
    use std::io::{Read, Write};
    let original = fixture("diffclip_tiny/checkpoint.pt");
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&original).unwrap()).unwrap();
    let deflated = tmp("deflated.pt");
    let mut writer = zip::ZipWriter::new(std::fs::File::create(&deflated).unwrap());
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        writer.start_file(entry.name().unwrap().to_string(), options).unwrap();
        writer.write_all(&bytes).unwrap();
    }
    writer.finish().unwrap();
    let (want, got) = (read_state_dict(&original).unwrap(), read_state_dict(&deflated).unwrap());
    assert!(std::fs::metadata(&deflated).unwrap().len() < std::fs::metadata(&original).unwrap().len(), "the entries were not compressed");
    assert_eq!(want.len(), got.len());
    for (key, t) in &want {
        assert_eq!((&got[key].shape, &got[key].data), (&t.shape, &t.data), "{key}");
    }
}

#[test]
fn key_shapes_come_from_declared_shapes_exactly_as_the_collector_names_them() {
    use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot};
    for (name, preset) in PRESETS.iter().filter(|(n, _)| n.contains("tiny")) {
        let model = preset().init(&burn::tensor::Device::flex()).unwrap();
        let declared = state_dict_shapes(&model);
        let collected: std::collections::BTreeMap<String, Vec<usize>> =
            model.collect(None, Some(Box::new(BurnToPyTorchAdapter)), true).into_iter().map(|t| (t.name.clone(), t.shape.to_vec())).collect();
        assert!(!declared.is_empty());
        assert_eq!(declared, collected, "{name}");
    }
}

/// A standard-attention model exports as SLIP's CLIP baseline stores it (timm `attn.qkv` and
/// `attn.proj` in the vision tower, `in_proj_*` in the text tower) and loads back; a fused
/// q/k/v beside a separate projection of the same layer is refused, not mixed.
#[test]
fn standard_attention_exports_fused_and_round_trips() {
    let (_, device) = devices().remove(0);
    let config = ClipConfig::clip_tiny();
    let model = config.init(&device).unwrap();
    let want = embed(&model, &device);
    let st = tmp("standard.safetensors");
    save_safetensors(&model, Some(&config), &st).unwrap();
    let sd = read_state_dict(&st).unwrap();
    let w = config.vision.width;
    assert_eq!(sd["visual.blocks.0.attn.qkv.weight"].shape, [3 * w, w]);
    assert_eq!(sd["visual.blocks.0.attn.qkv.bias"].shape, [3 * w]);
    assert!(sd.contains_key("visual.blocks.0.attn.proj.weight"));
    assert_eq!(sd["transformer.resblocks.0.attn.in_proj_weight"].shape, [3 * config.text.width, config.text.width]);
    assert!(sd.contains_key("transformer.resblocks.0.attn.out_proj.weight"));
    assert!(!sd.keys().any(|k| k.contains("q_proj")), "unfused q/k/v left in the export");
    let mut fresh = config.init(&device).unwrap();
    load_checkpoint(&mut fresh, &st).unwrap();
    assert_eq!(embed(&fresh, &device), want);

    let mut mixed = sd.clone();
    mixed.insert("transformer.resblocks.0.attn.q_proj.weight".into(), sd["transformer.resblocks.0.attn.in_proj_weight"].clone());
    let bad = tmp("mixed.safetensors");
    let views: Vec<_> = mixed.iter().map(|(k, t)| diffclip_clip::files::F32Tensor { name: k.clone(), shape: t.shape.clone(), data: &t.data }).collect();
    diffclip_clip::files::write_safetensors(&bad, &views, Default::default()).unwrap();
    let e = load_checkpoint(&mut fresh, &bad).unwrap_err().to_string();
    assert!(e.contains("q_proj.weight") && e.contains("already took"), "{e}");
}
