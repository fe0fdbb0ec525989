//! Reduced precision: a model computing in bf16 or f16 ([`Clip::with_precision`]), by products
//! of its f32 weights on the CPU or by weights cast after loading elsewhere (checkpoints stay
//! f32); images go in and embeddings come back as f32.

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
    /// AMX or AVX512-BF16) or about as fast. [`Clip::with_precision`] makes this choice.
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
    /// This model computing in `precision`, the one way to run a model in bf16 or f16, for
    /// inference and for training:
    /// - on the CPU (flex, [`Precision::products_on`]) the weights and activations stay f32 and
    ///   both towers multiply in `precision` ([`products`](Precision::products): rounded operands,
    ///   f32 sums; bf16 on AMX or AVX512-BF16 where the CPU has them), in their forward passes and in the
    ///   backward of those, whatever the calling thread's setting;
    /// - elsewhere every float parameter is cast to `precision` (under autodiff the casts are
    ///   recorded, so gradients reach the f32 weights this was called on).
    ///
    /// [`encode_image`](Clip::encode_image) takes f32 images and both encoders return f32
    /// embeddings either way. `F32` undoes both (the model then multiplies as the calling thread
    /// says: f32 unless [`with_matmul_precision`](crate::attention::with_matmul_precision) or
    /// [`set_matmul_precision`](crate::attention::set_matmul_precision) said otherwise). Call it
    /// after moving the model to its device: a model moved afterwards keeps what was chosen for
    /// the first one, and [`precision`](Self::precision) then tells.
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
        let projection = self.image_projection.val();
        let device = projection.device();
        let (weights, products) = match precision.products_on(&device) {
            true => (Precision::F32, precision.products()),
            false => (precision, MatmulPrecision::F32),
        };
        if weights != Precision::F32 {
            precision.check(&device)?;
        }
        let mut model = match Precision::of(projection.dtype()) == Some(weights) {
            true => self,
            false => self.map(&mut CastParams(weights.dtype())),
        };
        model.visual = model.visual.with_products(products);
        model.text = model.text.with_products(products);
        Ok(model)
    }

    /// The float type the model computes in (`None` for weights of a type this crate does not
    /// compute in): its towers' products where [`with_precision`](Self::with_precision) chose
    /// them and the device applies them (the CPU), else the weights' type.
    pub fn precision(&self) -> Option<Precision> {
        let weights = self.image_projection.val();
        let products = match self.visual.products() {
            MatmulPrecision::F32 => None,
            MatmulPrecision::Bf16 => Some(Precision::Bf16),
            MatmulPrecision::F16 => Some(Precision::F16),
        };
        match products {
            Some(p) if crate::attention::matmul_precision_applies(&weights.device()) => Some(p),
            _ => Precision::of(weights.dtype()),
        }
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
