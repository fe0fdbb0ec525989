use serde::{Deserialize, Serialize};

/// How `lambda_init` is chosen for the layer at 0-based depth `l`.
///
/// ```
/// use diffclip_attention::LambdaInit;
/// assert_eq!(LambdaInit::default().value(3), 0.8);
/// let d = LambdaInit::DepthSchedule.value(0);
/// assert!((d - 0.2).abs() < 1e-12); // 0.8 - 0.6 * exp(0)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LambdaInit {
    /// The same value in every layer (0.8 in the released DiffCLIP code and checkpoints).
    Constant(f64),
    /// The Differential Transformer schedule `0.8 - 0.6 * exp(-0.3 * l)` (DiffCLIP*).
    DepthSchedule,
}

impl Default for LambdaInit {
    fn default() -> Self {
        Self::Constant(0.8)
    }
}

impl LambdaInit {
    /// `lambda_init` of the layer at 0-based depth `layer`.
    pub fn value(&self, layer: usize) -> f64 {
        match self {
            Self::Constant(v) => *v,
            Self::DepthSchedule => 0.8 - 0.6 * (-0.3 * layer as f64).exp(),
        }
    }
}
