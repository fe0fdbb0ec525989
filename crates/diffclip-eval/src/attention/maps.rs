//! Class-token attention heat maps of a vision layer, and a text-query relevance map.

use burn::tensor::{Tensor, TensorData};
use diffclip_clip::attention::AttentionMaps;
use serde::{Deserialize, Serialize};

use crate::{Encoder, EvalError, Matrix};

/// Heat maps over the `grid × grid` patches (row-major) of one image.
///
/// `first`, `second` and `effective` are the class token's attention to each patch in `layer`,
/// averaged over heads: for a differential layer `first` is the first softmax map `A1`, `second`
/// the subtracted map `A2` and `effective` `A1 − λ A2` (what the layer uses); for a standard
/// layer `first = effective` and `second` is `None`.
///
/// With a text query, `similarity` is the cosine similarity of the image and text embeddings and
/// `text_relevance` the cosine similarity of each final patch token, projected into the joint
/// space, with the text embedding (a query-dependent map; attention itself does not depend on
/// the text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttentionHeatmaps {
    /// The layer (0-based).
    pub layer: usize,
    /// Patches per side.
    pub grid: usize,
    /// `A1` (or `A`), `[grid * grid]`.
    pub first: Vec<f32>,
    /// `A2` (differential layers).
    pub second: Option<Vec<f32>>,
    /// `A1 − λ A2` (or `A`).
    pub effective: Vec<f32>,
    /// `λ` of the layer (differential layers).
    pub lambda: Option<f32>,
    /// Patch–text relevance (with a query).
    pub text_relevance: Option<Vec<f32>>,
    /// Image–text cosine similarity (with a query).
    pub similarity: Option<f32>,
}

/// Heat maps of one preprocessed image (`[3, S, S]` CHW) at `layer` (default: the last), with an
/// optional text query.
///
/// ```
/// use burn::tensor::Device;
/// use diffclip_clip::ClipConfig;
/// use diffclip_eval::{Encoder, attention::attention_heatmaps};
/// let model = ClipConfig::diffclip_tiny().init(&Device::flex()).unwrap();
/// let encoder = Encoder::new(&model).unwrap();
/// let s = encoder.image_size();
/// let maps = attention_heatmaps(&encoder, vec![0.5; 3 * s * s], Some("a red circle"), None).unwrap();
/// assert_eq!(maps.layer, model.visual.blocks.len() - 1);
/// assert_eq!(maps.effective.len(), maps.grid * maps.grid); // the class token's view of each patch
/// assert!(maps.lambda.is_some() && maps.second.is_some()); // a differential layer
/// assert!(maps.similarity.is_some()); // asked with a query
/// ```
pub fn attention_heatmaps(
    encoder: &Encoder<'_>,
    image_chw: Vec<f32>,
    query: Option<&str>,
    layer: Option<usize>,
) -> Result<AttentionHeatmaps, EvalError> {
    let model = encoder.model();
    let s = encoder.image_size();
    if image_chw.len() != 3 * s * s {
        return Err(EvalError::Shape(format!(
            "image of {} values, expected 3 x {s} x {s}",
            image_chw.len()
        )));
    }
    let layers = model.visual.blocks.len();
    let layer = layer.unwrap_or(layers.saturating_sub(1));
    if layer >= layers {
        return Err(EvalError::Invalid(format!(
            "layer {layer} asked for, but the vision tower has {layers} layers (0 to {})",
            layers.saturating_sub(1)
        )));
    }
    // In the model's precision, as `Clip::encode_image` casts it (a bf16 conv on f32 pixels fails).
    let image = Tensor::<4>::from_data(TensorData::new(image_chw, [1, 3, s, s]), encoder.device())
        .cast(model.image_projection.val().dtype());
    let (out, maps) = model.visual.forward_with_maps(image);
    let m: &AttentionMaps = &maps[layer];
    let n = m.first.dims()[3] - 1;
    let grid = (n as f64).sqrt().round() as usize;
    let cls_row = |t: Tensor<4>| -> Result<Vec<f32>, EvalError> {
        let heads = t.dims()[1];
        let row = t
            .narrow(2, 0, 1)
            .narrow(3, 1, n)
            .reshape([heads, n])
            .mean_dim(0)
            .reshape([1, n]);
        Ok(Matrix::from_tensor(row)?.into_data())
    };
    let first = cls_row(m.first.clone())?;
    let second = m.second.clone().map(cls_row).transpose()?;
    let effective = cls_row(m.effective())?;
    let lambda = match &m.lambda {
        Some(l) => Some(Matrix::from_tensor(l.clone().reshape([1, 1]))?.data()[0]),
        None => None,
    };
    let (mut text_relevance, mut similarity) = (None, None);
    if let Some(q) = query {
        let text = encoder.encode_texts(&[q])?.l2_normalized();
        let proj = model.image_projection.val();
        let image_emb =
            Matrix::from_tensor(out.pooled.clone().matmul(proj.clone()))?.l2_normalized();
        similarity = Some(crate::matrix::dot(image_emb.row(0), text.row(0)));
        if let Some(tokens) = out.tokens {
            let w = tokens.dims()[2];
            let patches = tokens.narrow(1, 1, n).reshape([n, w]).matmul(proj);
            let patches = Matrix::from_tensor(patches)?.l2_normalized();
            text_relevance = Some(patches.matmul_t(&text)?.into_data());
        }
    }
    Ok(AttentionHeatmaps {
        layer,
        grid,
        first,
        second,
        effective,
        lambda,
        text_relevance,
        similarity,
    })
}
