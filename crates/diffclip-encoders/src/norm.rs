use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{Device, Tensor};

/// LayerNorm over the last dimension with a learned gain and shift, run through
/// [`diffclip_attention::layer_norm`] (one op with its own backward when training on flex).
/// Its parameters are named as in Burn's `nn::LayerNorm` (`gamma`, `beta`), so checkpoints
/// and the PyTorch name mapping (`weight`, `bias`) are the same.
///
/// ```
/// # use burn::tensor::{Device, Tensor};
/// # fn f(device: Device) {
/// let norm = diffclip_encoders::LayerNorm::new(4, 1e-5, &device);
/// let y = norm.forward(Tensor::<3>::ones([2, 3, 4], &device));
/// # }
/// ```
#[derive(Module, Debug)]
pub struct LayerNorm {
    /// The gain, initialised to ones.
    pub gamma: Param<Tensor<1>>,
    /// The shift, initialised to zeros.
    pub beta: Option<Param<Tensor<1>>>,
    /// Added to the variance.
    pub epsilon: f64,
}

impl LayerNorm {
    /// A LayerNorm of `width` features: gain 1, shift 0.
    pub fn new(width: usize, epsilon: f64, device: &Device) -> Self {
        Self { gamma: Initializer::Ones.init([width], device), beta: Some(Initializer::Zeros.init([width], device)), epsilon }
    }

    /// Normalise `x` over its last dimension.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        diffclip_attention::layer_norm(x, self.gamma.val(), self.beta.as_ref().map(|b| b.val()), self.epsilon)
    }
}
