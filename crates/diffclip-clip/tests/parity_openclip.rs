//! Parity with open_clip (`openclip_tiny`) and HuggingFace transformers (`hf_tiny`).

mod common;

use burn::tensor::Tensor;
use diffclip_clip::checkpoint::read_state_dict;
use diffclip_clip::{ClipConfig, CheckpointFormat, load_checkpoint, logits_from_embeddings, normalize, save_safetensors};
use diffclip_testkit::{assert_close, devices, fixture, read_arrays};

const TOL: f32 = 1e-4;

fn check_openclip(checkpoint: &str) {
    let inputs = read_arrays("openclip_tiny/inputs.safetensors");
    let expected = read_arrays("openclip_tiny/expected.safetensors");
    for (backend, device) in devices() {
        let what = |t: &str| format!("{backend} {checkpoint} {t}");
        let mut model = ClipConfig::openai_tiny().init(&device).unwrap();
        let format = load_checkpoint(&mut model, fixture(checkpoint)).unwrap();
        assert_eq!(format, CheckpointFormat::OpenClip);
        common::check_model(&model, &inputs, &expected, &device, &what, TOL);
    }
}

#[test]
fn openclip_tiny_from_safetensors() {
    check_openclip("openclip_tiny/model.safetensors");
}

#[test]
fn openclip_tiny_from_pt_checkpoint() {
    check_openclip("openclip_tiny/checkpoint.pt");
}

/// An OpenAI-layout model exports as open_clip's own `state_dict()`: the same 62 keys, shapes
/// (`class_embedding [W]`, fused `in_proj_weight`) and values, so `load_state_dict` takes it;
/// and the export loads back to the fixture's outputs.
#[test]
fn openai_layout_exports_as_the_open_clip_state_dict() {
    let inputs = read_arrays("openclip_tiny/inputs.safetensors");
    let expected = read_arrays("openclip_tiny/expected.safetensors");
    let source = read_state_dict(fixture("openclip_tiny/model.safetensors")).unwrap();
    for (backend, device) in devices() {
        let config = ClipConfig::openai_tiny();
        let mut model = config.init(&device).unwrap();
        load_checkpoint(&mut model, fixture("openclip_tiny/model.safetensors")).unwrap();
        let file = diffclip_testkit::temp_path("openclip_export.safetensors");
        save_safetensors(&model, Some(&config), &file).unwrap();
        let exported = read_state_dict(&file).unwrap();
        let keys = |sd: &diffclip_clip::checkpoint::StateDict| {
            let mut k: Vec<String> = sd.keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(keys(&exported), keys(&source), "{backend}");
        for (key, t) in &source {
            assert_eq!(exported[key].shape, t.shape, "{backend} {key}");
            assert_eq!(exported[key].data, t.data, "{backend} {key}");
        }
        let mut back = config.init(&device).unwrap();
        let format = load_checkpoint(&mut back, &file).unwrap();
        assert_eq!(format, CheckpointFormat::OpenClip);
        let what = |t: &str| format!("{backend} exported openclip_tiny {t}");
        common::check_model(&back, &inputs, &expected, &device, &what, TOL);
    }
}

/// A differential model in the OpenAI layout (open_clip's CLIP converted, vision tower only)
/// exports under open_clip's names, its differential layers with their own projections and
/// λ vectors, its standard text layers fused, and loads back to identical embeddings.
#[test]
fn differential_openai_layout_round_trips() {
    use diffclip_clip::convert::{ConvertOptions, NormInit, Pairing, convert_to_diffclip};
    let (_, device) = devices().remove(0);
    let config = ClipConfig::openai_tiny();
    let mut model = config.init(&device).unwrap();
    load_checkpoint(&mut model, fixture("openclip_tiny/model.safetensors")).unwrap();
    let options = ConvertOptions {
        text: false,
        norm: NormInit::Unit,
        pairing: Pairing::Interleaved,
        ..ConvertOptions::default()
    };
    let (conv, conv_config, _) = convert_to_diffclip(&model, &config, &options, None).unwrap();
    let file = diffclip_testkit::temp_path("openai_diff.safetensors");
    save_safetensors(&conv, Some(&conv_config), &file).unwrap();
    let sd = read_state_dict(&file).unwrap();
    for key in [
        "visual.conv1.weight",
        "visual.class_embedding",
        "visual.transformer.resblocks.0.attn.lambda_q1",
        "visual.transformer.resblocks.0.attn.q_proj.weight",
        "transformer.resblocks.0.attn.in_proj_weight",
    ] {
        assert!(sd.contains_key(key), "{key} missing from the export");
    }
    assert!(!sd.keys().any(|k| k.starts_with("visual.blocks.")));
    let mut back = conv_config.init(&device).unwrap();
    assert_eq!(
        load_checkpoint(&mut back, &file).unwrap(),
        CheckpointFormat::OpenClip
    );
    let inputs = read_arrays("openclip_tiny/inputs.safetensors");
    let image: Tensor<4> = inputs.float("image", &device);
    let text = inputs.int::<2>("text", &device);
    let (a, b) = (
        conv.forward(image.clone(), text.clone()),
        back.forward(image, text),
    );
    let v = |t: Tensor<2>| t.into_data().try_into_vec::<f32>().unwrap();
    assert_eq!(v(a.image_embed), v(b.image_embed));
    assert_eq!(v(a.text_embed), v(b.text_embed));
}

#[test]
fn huggingface_clip_model() {
    let inputs = read_arrays("hf_tiny/inputs.safetensors");
    let expected = read_arrays("hf_tiny/expected.safetensors");
    for (backend, device) in devices() {
        let what = |t: &str| format!("{backend} hf_tiny {t}");
        let mut model = ClipConfig::openai_tiny().init(&device).unwrap();
        let format = load_checkpoint(&mut model, fixture("hf_tiny/model.safetensors")).unwrap();
        assert_eq!(format, CheckpointFormat::HuggingFace);
        let image: Tensor<4> = inputs.float("pixel_values", &device);
        let text = inputs.int::<2>("input_ids", &device);
        let out = model.forward(image.clone(), text.clone());
        assert_close(&what("image_features"), out.image_embed.clone(), expected.get("image_features"), TOL);
        assert_close(&what("text_features"), out.text_embed.clone(), expected.get("text_features"), TOL);
        assert_close(&what("logit_scale"), out.logit_scale_exp.clone(), &(vec![1], expected.get("logit_scale_exp").1.clone()), TOL);
        assert_close(&what("image_embeds_normalized"), normalize(out.image_embed.clone()), expected.get("image_embeds_normalized"), TOL);
        let (per_image, _) = logits_from_embeddings(out.image_embed, out.text_embed, out.logit_scale_exp);
        assert_close(&what("logits_per_image"), per_image, expected.get("logits_per_image"), TOL);
        assert_close(&what("vision_pooled"), model.visual.forward(image, false).pooled, expected.get("vision_pooled"), TOL);
        let t = model.text.forward(text, true);
        assert_close(&what("text_pooled"), t.pooled, expected.get("text_pooled"), TOL);
        assert_close(&what("text_last_hidden_state"), t.tokens.unwrap(), expected.get("text_last_hidden_state"), TOL);
    }
}
