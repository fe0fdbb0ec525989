//! Parity with open_clip (`openclip_tiny`) and HuggingFace transformers (`hf_tiny`).

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
        let image: Tensor<4> = inputs.float("image", &device);
        let text = inputs.int::<2>("text", &device);
        let out = model.forward(image.clone(), text.clone());
        assert_close(&what("image_embed"), out.image_embed, expected.get("image_embed"), TOL);
        assert_close(&what("text_embed"), out.text_embed, expected.get("text_embed"), TOL);
        assert_close(&what("logit_scale"), out.logit_scale_exp, &(vec![1], expected.get("logit_scale").1.clone()), TOL);

        let x = model.visual.embed(image.clone());
        assert_close(&what("vision_block0_in"), x.clone(), expected.get("vision_block0_in"), TOL);
        let (y, trace) = model.visual.blocks[0].forward_traced(x, None);
        assert_close(&what("vision_block0_attn_in"), trace.attn_in, expected.get("vision_block0_attn_in"), TOL);
        assert_close(&what("vision_block0_attn_out"), trace.attn_out, expected.get("vision_block0_attn_out"), TOL);
        assert_close(&what("vision_block0_out"), y, expected.get("vision_block0_out"), TOL);
        assert_close(&what("vision_tokens"), model.visual.forward(image, true).tokens.unwrap(), expected.get("vision_tokens"), TOL);

        let x = model.text.embed(text.clone());
        assert_close(&what("text_block0_in"), x.clone(), expected.get("text_block0_in"), TOL);
        let (y, trace) = model.text.blocks[0].forward_traced(x, None);
        assert_close(&what("text_block0_attn_in"), trace.attn_in, expected.get("text_block0_attn_in"), TOL);
        assert_close(&what("text_block0_attn_out"), trace.attn_out, expected.get("text_block0_attn_out"), TOL);
        assert_close(&what("text_block0_out"), y, expected.get("text_block0_out"), TOL);
        assert_close(&what("text_tokens"), model.text.forward(text, true).tokens.unwrap(), expected.get("text_tokens"), TOL);
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
