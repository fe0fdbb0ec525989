//! Reduced-precision inference: a model's weights cast to bf16 or f16 after loading (checkpoints
//! stay f32), images cast on the way in and embeddings returned as f32.

use std::fmt;
use std::str::FromStr;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{DType, Device, FloatDType, Tensor};
use serde::{Deserialize, Serialize};

use crate::attention::MatmulPrecision;
use crate::{Clip, ClipError};

/// The float type a model computes in.
///
/// ```
/// use diffclip_clip::Precision;
/// let p: Precision = "bf16".parse().unwrap();
/// assert_eq!(p, Precision::Bf16);
/// assert_eq!(p.to_string(), "bf16");
/// assert!("f8".parse::<Precision>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats: what checkpoints hold and what the fixtures are checked in.
    #[default]
    F32,
    /// bfloat16: f32's range, 8 bits of mantissa (GPUs' tensor cores, AMX).
    Bf16,
    /// IEEE half: 11 bits of mantissa, range to 65 504.
    F16,
}

impl Precision {
    /// Burn's float type for it.
    pub fn dtype(self) -> FloatDType {
        match self {
            Precision::F32 => FloatDType::F32,
            Precision::Bf16 => FloatDType::BF16,
            Precision::F16 => FloatDType::F16,
        }
    }

    /// `Ok` when `device` has arithmetic in this type, else [`ClipError::Precision`] naming it.
    pub fn check(self, device: &Device) -> Result<(), ClipError> {
        if self == Precision::F32 || device.supports_dtype(DType::from(self.dtype())) {
            return Ok(());
        }
        Err(ClipError::Precision { precision: self, device: format!("{device:?}") })
    }

    /// The linear layers' product precision on the CPU that computes in this type from f32
    /// weights ([`MatmulPrecision`]).
    ///
    /// ```
    /// use diffclip_clip::{Precision, attention::MatmulPrecision};
    /// assert_eq!(Precision::F16.products(), MatmulPrecision::F16);
    /// ```
    pub fn products(self) -> MatmulPrecision {
        match self {
            Precision::F32 => MatmulPrecision::F32,
            Precision::Bf16 => MatmulPrecision::Bf16,
            Precision::F16 => MatmulPrecision::F16,
        }
    }

    /// Whether computing in this precision on `device` means [`products`](Self::products) of
    /// f32 weights rather than casting the weights: bf16 and f16 on the CPU (flex), where a
    /// cast model runs slower than f32 (f16 about 3×) and the products run faster (bf16 on
    /// AMX) or about as fast. Inference turns them on with
    /// [`set_matmul_precision`](crate::attention::set_matmul_precision), training with
    /// [`with_matmul_precision`](crate::attention::with_matmul_precision).
    ///
    /// ```
    /// use diffclip_clip::Precision;
    /// let cpu = burn::tensor::Device::default();
    /// assert!(!Precision::F32.products_on(&cpu));
    /// ```
    pub fn products_on(self, device: &Device) -> bool {
        self != Precision::F32 && crate::attention::matmul_precision_applies(device)
    }

    /// The precision of tensors of `dtype`, if it is one of these.
    pub fn of(dtype: DType) -> Option<Self> {
        match dtype {
            DType::F32 => Some(Precision::F32),
            DType::BF16 => Some(Precision::Bf16),
            DType::F16 => Some(Precision::F16),
            _ => None,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        })
    }
}

impl FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(Precision::F32),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            "f16" | "fp16" | "float16" | "half" => Ok(Precision::F16),
            other => Err(format!("unknown precision '{other}' (expected f32, bf16 or f16)")),
        }
    }
}

impl Clip {
    /// This model with every float parameter cast to `precision`, for inference:
    /// [`encode_image`](Clip::encode_image) casts images to it and both encoders return f32
    /// embeddings. LayerNorm and the attention softmax still accumulate in f32 where the
    /// backend allows (Burn's flex widens them).
    ///
    /// Fails with [`ClipError::Precision`] on a device that has no arithmetic in that type
    /// (wgpu has f16 where the adapter does, no bf16; ndarray has neither).
    ///
    /// ```
    /// # use burn::tensor::Device;
    /// # use diffclip_clip::{ClipConfig, Precision};
    /// # fn f(device: Device) -> Result<(), Box<dyn std::error::Error>> {
    /// let model = ClipConfig::diffclip_tiny().init(&device)?.with_precision(Precision::Bf16)?;
    /// assert_eq!(model.precision(), Some(Precision::Bf16));
    /// # Ok(()) }
    /// ```
    pub fn with_precision(self, precision: Precision) -> Result<Self, ClipError> {
        if precision == Precision::F32 && self.precision() == Some(Precision::F32) {
            return Ok(self);
        }
        precision.check(&self.image_projection.val().device())?;
        Ok(self.map(&mut CastParams(precision.dtype())))
    }

    /// The float type of the weights (`None` for one this crate does not compute in).
    pub fn precision(&self) -> Option<Precision> {
        Precision::of(self.image_projection.val().dtype())
    }
}

/// Casts every float parameter, keeping its id and whether it takes gradients.
struct CastParams(FloatDType);

impl ModuleMapper for CastParams {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        Param::from_mapped_value(id, tensor.cast(self.0), mapper)
    }
}
