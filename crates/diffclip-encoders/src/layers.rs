use diffclip_attention::{AttentionKind, LambdaInit};
use serde::{Deserialize, Serialize};

use crate::EncoderError;

/// Which attention each layer of an encoder uses, and its `lambda_init`.
///
/// ```
/// use diffclip_encoders::LayerAttention;
/// use diffclip_encoders::attention::{AttentionKind, LambdaInit};
/// let all_diff = LayerAttention::default();
/// assert_eq!(all_diff.kind_of(5).unwrap(), AttentionKind::Differential);
/// let mixed = LayerAttention { per_layer: Some(vec![AttentionKind::Standard, AttentionKind::Differential]), ..Default::default() };
/// assert_eq!(mixed.kind_of(0).unwrap(), AttentionKind::Standard);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LayerAttention {
    /// The kind of every layer, unless `per_layer` is given.
    pub kind: AttentionKind,
    /// One kind per layer (overrides `kind`).
    pub per_layer: Option<Vec<AttentionKind>>,
    /// `lambda_init` of differential layers.
    pub lambda_init: LambdaInit,
}

impl Default for LayerAttention {
    fn default() -> Self {
        Self { kind: AttentionKind::Differential, per_layer: None, lambda_init: LambdaInit::default() }
    }
}

impl LayerAttention {
    /// The same kind in every layer.
    pub fn all(kind: AttentionKind) -> Self {
        Self { kind, ..Default::default() }
    }

    /// The kind of layer `layer`.
    pub fn kind_of(&self, layer: usize) -> Result<AttentionKind, EncoderError> {
        match &self.per_layer {
            None => Ok(self.kind),
            Some(v) => v.get(layer).copied().ok_or(EncoderError::LayerCount { got: v.len(), layers: layer + 1 }),
        }
    }

    pub(crate) fn check(&self, layers: usize) -> Result<(), EncoderError> {
        // Released models use 0.2 to 0.8; a huge λ_init gives NaN embeddings, not an error.
        const BOUND: f64 = 100.0;
        if let LambdaInit::Constant(value) = self.lambda_init
            && (value.is_nan() || value.abs() > BOUND)
        {
            return Err(EncoderError::OutOfRange { what: "lambda_init", bound: BOUND, value });
        }
        match &self.per_layer {
            Some(v) if v.len() != layers => Err(EncoderError::LayerCount { got: v.len(), layers }),
            _ => Ok(()),
        }
    }
}
