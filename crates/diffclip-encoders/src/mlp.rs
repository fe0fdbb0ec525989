use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::Tensor;
pub use diffclip_attention::Activation;

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
        // One pass on AMX or AVX512-BF16 (the hidden layer never leaves the cache in f32), else three steps.
        self.drop.forward(diffclip_attention::mlp(&self.fc1, self.activation, &self.fc2, x))
    }
}
