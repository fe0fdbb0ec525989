//! The encoders on their own: shapes of both towers, the two ViT layouts, per-layer attention
//! kinds, causality of the text tower, and configs refused before anything is built.

use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use diffclip_encoders::attention::{Attention, AttentionKind, AttentionError};
use diffclip_encoders::{EncoderError, LayerAttention, TextConfig, VisionConfig};

fn device() -> Device {
    Device::flex()
}

#[test]
fn both_layouts_give_pooled_and_token_outputs() {
    let device = device();
    let images = Tensor::<4>::random([2, 3, 32, 32], Distribution::Default, &device);
    for cfg in [VisionConfig::timm(32, 8, 64, 2, 4), VisionConfig::openai(32, 8, 64, 2, 4)] {
        let vit = cfg.init(&device).unwrap();
        // timm: biased patch conv, no ln_pre; OpenAI: the opposite.
        assert_eq!(vit.patch_embed.proj.bias.is_some(), cfg.patch_bias);
        assert_eq!(vit.ln_pre.is_some(), cfg.ln_pre);
        let out = vit.forward(images.clone(), true);
        assert_eq!(out.pooled.dims(), [2, 64]);
        assert_eq!(out.tokens.unwrap().dims(), [2, 1 + 16, 64]);
        let pooled = vit.forward(images.clone(), false);
        assert!(pooled.tokens.is_none());
        // Without tokens the last block computes the class token alone: the same values.
        let d = (pooled.pooled.clone() - out.pooled.clone()).abs().max().into_scalar::<f32>();
        assert!(d < 1e-5, "class token alone vs all tokens: {d:e}");
        let d = (pooled.pooled - vit.forward(images.clone(), false).pooled).abs().max().into_scalar::<f32>();
        assert_eq!(d, 0.0, "inference is deterministic");
    }
}

#[test]
fn per_layer_attention_kinds_are_built_as_asked() {
    let mut cfg = VisionConfig::timm(32, 8, 64, 3, 4);
    cfg.attention = LayerAttention { per_layer: Some(vec![AttentionKind::Standard, AttentionKind::Differential, AttentionKind::Standard]), ..Default::default() };
    let vit = cfg.init(&device()).unwrap();
    let kinds: Vec<bool> = vit.blocks.iter().map(|b| matches!(b.attn, Attention::Differential(_))).collect();
    assert_eq!(kinds, [false, true, false]);
}

#[test]
fn text_tower_is_causal_and_pools_the_end_token() {
    let device = device();
    let mut cfg = TextConfig::new(64, 2, 4);
    cfg.context_length = 8;
    let text = cfg.init(&device).unwrap();
    let ids = |last: i64| Tensor::<2, Int>::from_data(TensorData::new(vec![49406i64, 320, 1125, 49407, 0, 0, 0, last], [1, 8]), &device);
    let a = text.forward(ids(0), true);
    let b = text.forward(ids(500), true);
    let (ta, tb) = (a.tokens.unwrap(), b.tokens.unwrap());
    // Changing the last token cannot change any earlier position.
    let early = (ta.clone().narrow(1, 0, 7) - tb.clone().narrow(1, 0, 7)).abs().max().into_scalar::<f32>();
    assert!(early < 1e-6, "earlier tokens changed by {early}");
    let last = (ta.narrow(1, 7, 1) - tb.narrow(1, 7, 1)).abs().max().into_scalar::<f32>();
    assert!(last > 1e-4, "the changed token itself must change");
    // Pooling takes the end-of-text token (the largest id), position 3 here.
    assert_eq!(a.pooled.dims(), [1, 64]);
    let d = (a.pooled - b.pooled).abs().max().into_scalar::<f32>();
    assert!(d < 1e-6, "the end token is before the change");
}

/// Pooled outputs skip the padding after the batch's last end-of-text token: the same values
/// as the whole context computed (`return_tokens` keeps every position), for standard and
/// differential towers, in inference and under autodiff (the training path).
#[test]
fn pooling_alone_skips_the_padding_after_the_last_end_token() {
    for differential in [false, true] {
        for device in [device(), device().autodiff()] {
            let mut cfg = TextConfig::new(64, 2, 4);
            cfg.context_length = 16;
            if !differential {
                cfg.attention = LayerAttention { per_layer: Some(vec![AttentionKind::Standard; 2]), ..Default::default() };
            }
            let text = cfg.init(&device).unwrap();
            // End tokens at positions 3, 9 and 5, zeros after: positions 10..16 are never needed.
            let mut ids = vec![0i64; 3 * 16];
            for (row, end) in [3usize, 9, 5].into_iter().enumerate() {
                ids[row * 16] = 49406;
                for p in 1..end {
                    ids[row * 16 + p] = 320 + (row * 16 + p) as i64;
                }
                ids[row * 16 + end] = 49407;
            }
            let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [3, 16]), &device);
            let whole = text.forward(ids.clone(), true).pooled;
            let pooled = text.forward(ids, false).pooled;
            assert_eq!(pooled.dims(), [3, 64]);
            let d = (pooled - whole).abs().max().into_scalar::<f32>();
            assert!(d < 1e-5, "differential {differential}, autodiff {}: {d:e}", device.is_autodiff());
        }
    }
}

#[test]
fn invalid_configs_are_refused_before_building() {
    let mut c = VisionConfig::timm(32, 7, 64, 2, 4);
    assert_eq!(c.check(), Err(EncoderError::PatchSize { image_size: 32, patch_size: 7 }));
    c = VisionConfig::timm(32, 8, 64, 2, 3);
    assert!(matches!(c.check(), Err(EncoderError::Attention { layer: 0, source: AttentionError::WidthNotDivisible { .. } })));
    c = VisionConfig::timm(32, 8, 60, 2, 5);
    assert!(matches!(c.check(), Err(EncoderError::Attention { source: AttentionError::OddHeads { num_heads: 5 }, .. })));
    c = VisionConfig::timm(32, 8, 64, 2, 4);
    c.attention.per_layer = Some(vec![AttentionKind::Standard]);
    assert_eq!(c.check(), Err(EncoderError::LayerCount { got: 1, layers: 2 }));
    let mut t = TextConfig::new(64, 2, 4);
    t.mlp_ratio = 0.001;
    assert!(matches!(t.check(), Err(EncoderError::Zero { .. })), "a hidden width of 0 is refused");
    t = TextConfig::new(64, 2, 4);
    t.dropout = f64::NAN;
    assert!(matches!(t.check(), Err(EncoderError::Attention { source: AttentionError::Dropout { .. }, .. })));
    // A refused config builds nothing (same check in init).
    assert!(TextConfig { vocab_size: 0, ..TextConfig::new(64, 2, 4) }.init(&device()).is_err());
    // No room for the start and end of text.
    let short = TextConfig { context_length: 1, ..TextConfig::new(64, 2, 4) };
    assert!(matches!(short.check(), Err(EncoderError::ContextTooShort { got: 1 })));
    assert!(TextConfig { context_length: 2, ..short }.check().is_ok());
}
