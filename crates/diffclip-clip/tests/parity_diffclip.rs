//! Parity with the DiffCLIP authors' PyTorch model (`../shared/fixtures/diffclip_tiny`), on every
//! compiled backend, from both the safetensors state dict and the `.pt` training checkpoints.

use burn::tensor::Tensor;
use diffclip_clip::{ClipConfig, load_checkpoint};
use diffclip_testkit::{assert_close, devices, fixture, read_arrays};

const TOL: f32 = 1e-4;

fn check(checkpoint: &str) {
    let inputs = read_arrays("diffclip_tiny/inputs.safetensors");
    let expected = read_arrays("diffclip_tiny/expected.safetensors");
    for (backend, device) in devices() {
        let what = |t: &str| format!("{backend} {checkpoint} {t}");
        let mut model = ClipConfig::diffclip_tiny().init(&device).unwrap();
        load_checkpoint(&mut model, fixture(checkpoint)).unwrap();
        let image: Tensor<4> = inputs.float("image", &device);
        let text = inputs.int::<2>("text", &device);

        let out = model.forward(image.clone(), text.clone());
        assert_close(&what("image_embed"), out.image_embed, expected.get("image_embed"), TOL);
        assert_close(&what("text_embed"), out.text_embed, expected.get("text_embed"), TOL);
        let (shape, v) = expected.get("logit_scale");
        assert!(shape.is_empty());
        assert_close(&what("logit_scale"), out.logit_scale_exp, &(vec![1], v.clone()), TOL);

        // Vision internals.
        let x = model.visual.embed(image.clone());
        assert_close(&what("vision_block0_in"), x.clone(), expected.get("vision_block0_in"), TOL);
        let (y, trace) = model.visual.blocks[0].forward_traced(x, None);
        assert_close(&what("vision_block0_attn_in"), trace.attn_in, expected.get("vision_block0_attn_in"), TOL);
        assert_close(&what("vision_block0_attn_out"), trace.attn_out, expected.get("vision_block0_attn_out"), TOL);
        assert_close(&what("vision_block0_out"), y, expected.get("vision_block0_out"), TOL);
        let v = model.visual.forward(image, true);
        assert_close(&what("vision_tokens"), v.tokens.unwrap(), expected.get("vision_tokens"), TOL);
        assert_close(&what("vision_pooled"), v.pooled, expected.get("vision_pooled"), TOL);

        // Text internals.
        let x = model.text.embed(text.clone());
        assert_close(&what("text_block0_in"), x.clone(), expected.get("text_block0_in"), TOL);
        let (y, trace) = model.text.blocks[0].forward_traced(x, None);
        assert_close(&what("text_block0_attn_in"), trace.attn_in, expected.get("text_block0_attn_in"), TOL);
        assert_close(&what("text_block0_attn_out"), trace.attn_out, expected.get("text_block0_attn_out"), TOL);
        assert_close(&what("text_block0_out"), y, expected.get("text_block0_out"), TOL);
        let t = model.text.forward(text, true);
        assert_close(&what("text_tokens"), t.tokens.unwrap(), expected.get("text_tokens"), TOL);

        // Per-layer lambda.
        let lambdas = |ls: Vec<Option<Tensor<1>>>| Tensor::cat(ls.into_iter().map(|l| l.expect("differential layer")).collect(), 0);
        assert_close(&what("vision_lambda_full"), lambdas(model.visual.lambdas()), expected.get("vision_lambda_full"), TOL);
        assert_close(&what("text_lambda_full"), lambdas(model.text.lambdas()), expected.get("text_lambda_full"), TOL);
    }
}

#[test]
fn diffclip_tiny_from_safetensors() {
    check("diffclip_tiny/model.safetensors");
}

#[test]
fn diffclip_tiny_from_pt_checkpoint() {
    check("diffclip_tiny/checkpoint.pt");
}

#[test]
fn diffclip_tiny_from_full_training_checkpoint() {
    check("diffclip_tiny/checkpoint_full.pt");
}

#[test]
fn reference_path_matches_fixture_too() {
    // The same weights through the map-materialising path (used for attention maps).
    let inputs = read_arrays("diffclip_tiny/inputs.safetensors");
    let expected = read_arrays("diffclip_tiny/expected.safetensors");
    for (backend, device) in devices() {
        let mut model = ClipConfig::diffclip_tiny().init(&device).unwrap();
        load_checkpoint(&mut model, fixture("diffclip_tiny/model.safetensors")).unwrap();
        let (v, maps) = model.visual.forward_with_maps(inputs.float("image", &device));
        assert_eq!(maps.len(), 2);
        assert_close(&format!("{backend} vision_tokens (reference path)"), v.tokens.unwrap(), expected.get("vision_tokens"), TOL);
        let (t, _) = model.text.forward_with_maps(inputs.int("text", &device));
        assert_close(&format!("{backend} text_tokens (reference path)"), t.tokens.unwrap(), expected.get("text_tokens"), TOL);
    }
}
