//! Parity with the DiffCLIP authors' PyTorch model (`../shared/fixtures/diffclip_tiny`), on every
//! compiled backend, from both the safetensors state dict and the `.pt` training checkpoints.

mod common;

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
        common::check_model(&model, &inputs, &expected, &device, &what, TOL);
        let pooled = model.visual.forward(inputs.float("image", &device), false).pooled;
        assert_close(&what("vision_pooled"), pooled, expected.get("vision_pooled"), TOL);

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
