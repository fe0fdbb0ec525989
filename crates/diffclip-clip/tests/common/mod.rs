//! The checks every reference fixture of a full model shares.
#![allow(dead_code)]

use burn::tensor::{Device, Tensor};
use diffclip_clip::Clip;
use diffclip_testkit::{Arrays, assert_close};

/// Embeddings, `exp(logit_scale)`, block 0's input/attention/output and all final tokens of both
/// towers against `expected`, within `tol`; `what` names the backend and file in messages.
pub fn check_model(model: &Clip, inputs: &Arrays, expected: &Arrays, device: &Device, what: &dyn Fn(&str) -> String, tol: f32) {
    let image: Tensor<4> = inputs.float("image", device);
    let text = inputs.int::<2>("text", device);
    let out = model.forward(image.clone(), text.clone());
    assert_close(&what("image_embed"), out.image_embed, expected.get("image_embed"), tol);
    assert_close(&what("text_embed"), out.text_embed, expected.get("text_embed"), tol);
    let (shape, v) = expected.get("logit_scale");
    assert!(shape.is_empty(), "logit_scale is stored 0-d");
    assert_close(&what("logit_scale"), out.logit_scale_exp, &(vec![1], v.clone()), tol);

    let x = model.visual.embed(image.clone());
    assert_close(&what("vision_block0_in"), x.clone(), expected.get("vision_block0_in"), tol);
    let (y, trace) = model.visual.blocks[0].forward_traced(x, None);
    assert_close(&what("vision_block0_attn_in"), trace.attn_in, expected.get("vision_block0_attn_in"), tol);
    assert_close(&what("vision_block0_attn_out"), trace.attn_out, expected.get("vision_block0_attn_out"), tol);
    assert_close(&what("vision_block0_out"), y, expected.get("vision_block0_out"), tol);
    assert_close(&what("vision_tokens"), model.visual.forward(image, true).tokens.unwrap(), expected.get("vision_tokens"), tol);

    let x = model.text.embed(text.clone());
    assert_close(&what("text_block0_in"), x.clone(), expected.get("text_block0_in"), tol);
    let (y, trace) = model.text.blocks[0].forward_traced(x, None);
    assert_close(&what("text_block0_attn_in"), trace.attn_in, expected.get("text_block0_attn_in"), tol);
    assert_close(&what("text_block0_attn_out"), trace.attn_out, expected.get("text_block0_attn_out"), tol);
    assert_close(&what("text_block0_out"), y, expected.get("text_block0_out"), tol);
    assert_close(&what("text_tokens"), model.text.forward(text, true).tokens.unwrap(), expected.get("text_tokens"), tol);
}
