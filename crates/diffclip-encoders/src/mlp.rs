use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::Tensor;
use diffclip_attention::{gelu, quick_gelu};
use serde::{Deserialize, Serialize};

/// The MLP's nonlinearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Exact (erf) GELU: timm and DiffCLIP's vision tower.
    Gelu,
    /// `x * sigmoid(1.702 x)`: OpenAI CLIP weights and DiffCLIP's text tower.
    QuickGelu,
}

/// Two-layer MLP `fc2(act(fc1(x)))`.
#[derive(Module, Debug)]
pub struct Mlp {
    /// `width → hidden`.
    pub fc1: Linear,
    /// `hidden → width`.
    pub fc2: Linear,
    /// Dropout after `fc2` (training).
    pub drop: Dropout,
    /// The nonlinearity between them.
    #[module(skip)]
    pub activation: Activation,
}

impl Mlp {
    pub(crate) fn new(width: usize, hidden: usize, act: Activation, dropout: f64, device: &burn::tensor::Device) -> Self {
        Self {
            fc1: LinearConfig::new(width, hidden).init(device),
            fc2: LinearConfig::new(hidden, width).init(device),
            drop: DropoutConfig::new(dropout).init(),
            activation: act,
        }
    }

    /// `drop(fc2(act(fc1(x))))` of `x [B, N, width]`, giving `[B, N, width]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = diffclip_attention::linear(&self.fc1, x);
        let h = match self.activation {
            Activation::Gelu => gelu(h),
            Activation::QuickGelu => quick_gelu(h),
        };
        self.drop.forward(diffclip_attention::linear(&self.fc2, h))
    }
}
