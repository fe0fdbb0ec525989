//! Parity with open_clip (`openclip_tiny`) and HuggingFace transformers (`hf_tiny`).

mod common;

use burn::tensor::Tensor;
use diffclip_clip::{ClipConfig, CheckpointFormat, load_checkpoint, logits_from_embeddings, normalize};
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
