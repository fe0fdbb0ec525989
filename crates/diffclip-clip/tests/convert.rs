//! CLIP → DiffCLIP conversion (`diffclip_clip::convert`): shapes, parameter mapping, λ and the
//! documented bound on the converted model's output.

use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use diffclip_clip::attention::{Attention, AttentionKind, LambdaInit};
use diffclip_clip::checkpoint::{CheckpointFormat, state_dict_of, to_canonical};
use diffclip_clip::convert::{Calibration, ConvertError, ConvertOptions, LambdaStart, NormInit, Pairing, convert_to_diffclip, converted_config, embedding_cosine, permute_heads};
use diffclip_clip::{Clip, ClipConfig};
use diffclip_testkit::devices;

fn calibration(config: &ClipConfig, device: &Device) -> Calibration {
    // The device RNG is global: seeding and drawing must not interleave with another test.
    let _serial = diffclip_testkit::serial();
    device.seed(11);
    let s = config.vision.image_size;
    let images = Tensor::<4>::random([4, 3, s, s], Distribution::Normal(0.0, 1.0), device);
    // Token ids below EOT, with EOT (the largest id, where the text tower pools) at position 9.
    let l = config.text.context_length;
    let mut ids: Vec<i64> = (0..4 * l).map(|i| ((i * 7919) % 49000) as i64 + 1).collect();
    for b in 0..4 {
        ids[b * l + 9] = 49407;
        for p in 10..l {
            ids[b * l + p] = 0;
        }
    }
    let texts = Tensor::<2, Int>::from_data(TensorData::new(ids, [4, l]), device);
    Calibration { images, texts }
}

fn standard(device: &Device) -> (Clip, ClipConfig) {
    let config = ClipConfig::clip_tiny();
    // The device RNG is global: seeding and drawing must not interleave with another test.
    let _serial = diffclip_testkit::serial();
    device.seed(5);
    (config.init(device).unwrap(), config)
}

fn attn<'a>(model: &'a Clip, tower: &str, layer: usize) -> &'a Attention {
    match tower {
        "vision" => &model.visual.blocks[layer].attn,
        _ => &model.text.blocks[layer].attn,
    }
}

#[test]
fn shapes_parameter_mapping_and_lambda() {
    let (_, device) = devices().remove(0);
    let (model, config) = standard(&device);
    let cal = calibration(&config, &device);
    let options = ConvertOptions { pairing: Pairing::Interleaved, ..ConvertOptions::default() };
    let (conv, new_config, report) = convert_to_diffclip(&model, &config, &options, Some(&cal)).unwrap();

    // The config is the same shape with differential attention; the model matches it.
    assert_eq!(new_config, config.clone().with_attention(AttentionKind::Differential, AttentionKind::Differential));
    let fresh = new_config.init(&device).unwrap();
    assert_eq!(conv.num_params(), fresh.num_params());
    let layers = config.vision.layers + config.text.layers;
    let d = config.vision.width / config.vision.heads;
    assert_eq!(conv.num_params(), model.num_params() + layers * 6 * d);
    assert_eq!(report.layers.len(), layers);

    // Every original tensor is copied unchanged under the same key; the new ones are the λ
    // vectors and the RMSNorm gains, with the shapes of a fresh DiffCLIP.
    // Compared on canonical keys: the export fuses the standard layers' q/k/v (`attn.qkv`).
    let canonical = |m: &Clip| to_canonical(state_dict_of(m).unwrap(), CheckpointFormat::DiffClip, "<model>").unwrap();
    let (before, after, fresh) = (canonical(&model), canonical(&conv), canonical(&fresh));
    for (k, t) in &before {
        assert_eq!(after.get(k), Some(t), "{k} not copied");
    }
    for (k, t) in &after {
        assert_eq!(t.shape, fresh[k].shape, "{k}");
        if !before.contains_key(k) {
            assert!(k.contains("lambda_") || k.contains("subln") || k.contains("norm"), "unexpected new key {k}");
        }
    }
    assert_eq!(after.len(), fresh.len());

    // λ starts at 0 in every layer with non-zero λ vectors; the calibrated gains fit better
    // than unit gains (least squares on the calibration batch).
    for r in &report.layers {
        assert!(r.lambda.abs() < 1e-5, "{r:?}");
        assert!(r.rel_error <= r.rel_error_unit_gain + 1e-6, "{r:?}");
        assert!(r.rel_error.is_finite() && r.rel_error < 1.0, "{r:?}");
        let Attention::Differential(a) = attn(&conv, r.tower, r.layer) else { panic!("{r:?} not differential") };
        let l = a.lambda_full().into_scalar::<f32>();
        assert!(l.abs() < 1e-5, "{l}");
        assert!(a.lambda_q1.val().abs().sum().into_scalar::<f32>() > 0.0);
        assert!(a.lambda_k2.val().abs().sum().into_scalar::<f32>() > 0.0);
    }

    // The converted model is a DiffCLIP that round-trips through a checkpoint of its config.
    let file = diffclip_testkit::temp_path("convert.safetensors");
    diffclip_clip::save_safetensors(&conv, Some(&new_config), &file).unwrap();
    let mut back = new_config.init(&device).unwrap();
    diffclip_clip::load_checkpoint(&mut back, &file).unwrap();
    let (ci, ct) = embedding_cosine(&conv, &back, cal.images.clone(), cal.texts.clone());
    assert!(ci > 0.99999 && ct > 0.99999, "{ci} {ct}");
    // And it is close to the original (random weights: a loose check; trained models in docs).
    let (ci, ct) = embedding_cosine(&model, &conv, cal.images, cal.texts);
    assert!(ci > 0.5 && ct > 0.5, "{ci} {ct}");
}

/// The bound of the module docs: exact when each head pair attends identically and every pair's
/// output has the same RMS at every token. Built here by giving heads 2i and 2i+1 the same
/// query/key weights and every token the same values (v = bias, one pattern for every pair).
#[test]
fn exact_when_pairs_attend_alike_and_outputs_have_equal_rms() {
    for (name, device) in devices() {
        let (mut model, config) = standard(&device);
        for block in model.visual.blocks.iter_mut().chain(model.text.blocks.iter_mut()) {
            let Attention::Standard(s) = &mut block.attn else { unreachable!() };
            let (h, d) = (s.num_heads, s.head_dim);
            for lin in [&mut s.q_proj, &mut s.k_proj] {
                let w = lin.weight.val(); // [D_in, D_out]: head j is columns j·d..(j+1)·d
                let cols: Vec<Tensor<2>> = (0..h).map(|j| w.clone().narrow(1, (j / 2) * 2 * d, d)).collect();
                lin.weight = Param::from_tensor(Tensor::cat(cols, 1));
                if let Some(b) = &lin.bias {
                    let v = b.val();
                    let parts: Vec<Tensor<1>> = (0..h).map(|j| v.clone().narrow(0, (j / 2) * 2 * d, d)).collect();
                    lin.bias = Some(Param::from_tensor(Tensor::cat(parts, 0)));
                }
            }
            let width = h * d;
            s.v_proj.weight = Param::from_tensor(Tensor::zeros([width, width], &device));
            let pattern: Vec<f32> = (0..2 * d).map(|c| ((c * 37 % 11) as f32 - 5.0) * 0.1).collect();
            let bias: Vec<f32> = (0..h / 2).flat_map(|_| pattern.clone()).collect();
            s.v_proj.bias = Some(Param::from_data(TensorData::new(bias, [width]), &device));
        }
        let cal = calibration(&config, &device);
        let (conv, _, report) = convert_to_diffclip(&model, &config, &ConvertOptions::default(), Some(&cal)).unwrap();
        for r in &report.layers {
            assert!(r.rel_error < 1e-4, "{name}: {r:?}");
        }
        let rel = |a: Tensor<2>, b: Tensor<2>| ((a - b.clone()).square().sum().into_scalar::<f32>() / b.square().sum().into_scalar::<f32>()).sqrt();
        let ri = rel(conv.encode_image(cal.images.clone()), model.encode_image(cal.images.clone()));
        let rt = rel(conv.encode_text(cal.texts.clone()), model.encode_text(cal.texts.clone()));
        assert!(ri < 1e-4 && rt < 1e-4, "{name}: image {ri}, text {rt}");
    }
}

#[test]
fn options_and_refusals() {
    let (_, device) = devices().remove(0);
    let (model, config) = standard(&device);
    let cal = calibration(&config, &device);
    // Vision tower only (DiffCLIP†): the text tower stays standard.
    let dagger = ConvertOptions { text: false, ..ConvertOptions::default() };
    let (conv, cfg, report) = convert_to_diffclip(&model, &config, &dagger, Some(&cal)).unwrap();
    assert_eq!((cfg.vision.attention.kind, cfg.text.attention.kind), (AttentionKind::Differential, AttentionKind::Standard));
    assert!(matches!(conv.text.blocks[0].attn, Attention::Standard(_)));
    assert!(report.layers.iter().all(|r| r.tower == "vision"));
    // The naive start: λ ≈ λ_init, unit gains, no calibration needed.
    let naive = ConvertOptions { lambda_start: LambdaStart::Fresh, norm: NormInit::Unit, pairing: Pairing::Interleaved, lambda_init: LambdaInit::DepthSchedule, ..ConvertOptions::default() };
    let (_, cfg, report) = convert_to_diffclip(&model, &config, &naive, None).unwrap();
    assert_eq!(cfg.vision.attention.lambda_init, LambdaInit::DepthSchedule);
    for r in &report.layers {
        assert!((r.lambda - r.lambda_init).abs() < 0.2 && r.gain_mean == 1.0 && r.rel_error.is_nan(), "{r:?}");
    }
    assert_eq!(converted_config(&config, &naive).text.attention.kind, AttentionKind::Differential);
    // Calibrated gains without a batch, or a model that is already differential, are refused.
    assert!(matches!(convert_to_diffclip(&model, &config, &ConvertOptions::default(), None), Err(ConvertError::NoCalibration)));
    let diff = ClipConfig::diffclip_tiny().init(&device).unwrap();
    let e = convert_to_diffclip(&diff, &ClipConfig::diffclip_tiny(), &ConvertOptions::default(), Some(&cal)).unwrap_err();
    assert!(matches!(e, ConvertError::NotStandard { tower: "vision", layer: 0 }), "{e}");
    // A calibration batch the model cannot take is an error, not a panic in a tower.
    let s = config.vision.image_size;
    let small = Calibration { images: Tensor::zeros([4, 3, s / 2, s / 2], &device), texts: cal.texts.clone() };
    let e = convert_to_diffclip(&model, &config, &ConvertOptions::default(), Some(&small)).unwrap_err();
    assert!(matches!(e, ConvertError::Calibration(_)) && e.to_string().contains("images must be"), "{e}");
    let long = Calibration { images: cal.images.clone(), texts: Tensor::cat(vec![cal.texts.clone(), cal.texts.clone()], 1) };
    let e = convert_to_diffclip(&model, &config, &ConvertOptions::default(), Some(&long)).unwrap_err();
    assert!(e.to_string().contains("token ids must be"), "{e}");
    // Converting is deterministic given the seed.
    let a = convert_to_diffclip(&model, &config, &ConvertOptions::default(), Some(&cal)).unwrap().0;
    let b = convert_to_diffclip(&model, &config, &ConvertOptions::default(), Some(&cal)).unwrap().0;
    assert_eq!(state_dict_of(&a).unwrap(), state_dict_of(&b).unwrap());
}

/// Reordering heads leaves a standard layer unchanged, and `Pairing::Matched` pairs the heads
/// whose maps agree: here heads 0 and 2 share their query/key weights.
#[test]
fn matched_pairing_finds_heads_that_attend_alike() {
    let (_, device) = devices().remove(0);
    let (mut model, config) = standard(&device);
    let Attention::Standard(s) = &mut model.visual.blocks[0].attn else { unreachable!() };
    let x = Tensor::<3>::random([2, 17, config.vision.width], Distribution::Normal(0.0, 1.0), &device);
    let p = permute_heads(s, &[2, 0, 3, 1]);
    let (a, b) = (s.forward(x.clone(), None), p.forward(x, None));
    let err = (a - b.clone()).abs().max().into_scalar::<f32>();
    assert!(err < 1e-5, "{err}");
    let d = s.head_dim;
    for lin in [&mut s.q_proj, &mut s.k_proj] {
        let w = lin.weight.val();
        let blocks = [0, 1, 0, 3].map(|j| w.clone().narrow(1, j * d, d));
        lin.weight = Param::from_tensor(Tensor::cat(blocks.to_vec(), 1));
        if let Some(bias) = &lin.bias {
            let v = bias.val();
            lin.bias = Some(Param::from_tensor(Tensor::cat([0, 1, 0, 3].map(|j| v.clone().narrow(0, j * d, d)).to_vec(), 0)));
        }
    }
    let cal = calibration(&config, &device);
    let (_, _, report) = convert_to_diffclip(&model, &config, &ConvertOptions::default(), Some(&cal)).unwrap();
    let mut first = report.layers[0].pairs.clone();
    for p in &mut first {
        p.sort();
    }
    first.sort();
    assert_eq!(first, vec![[0, 2], [1, 3]], "{:?}", report.layers[0]);
    let interleaved = ConvertOptions { pairing: Pairing::Interleaved, ..ConvertOptions::default() };
    let (_, _, plain) = convert_to_diffclip(&model, &config, &interleaved, Some(&cal)).unwrap();
    assert_eq!(plain.layers[0].pairs, vec![[0, 1], [2, 3]]);
    assert!(report.layers[0].rel_error < plain.layers[0].rel_error, "{} vs {}", report.layers[0].rel_error, plain.layers[0].rel_error);
}
