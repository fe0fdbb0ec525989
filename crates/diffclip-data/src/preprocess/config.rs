//! Preprocessing configuration: geometry x resampling filter x mean/std, and presets.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::decode::DecodeOptions;
use super::error::PreprocessError;
use super::filter::{Filter, PassOrder, Resampling};

/// OpenAI CLIP / open_clip mean.
pub const OPENAI_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// OpenAI CLIP / open_clip std.
#[allow(clippy::excessive_precision)] // OpenAI's published digits, as the spec gives them
pub const OPENAI_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];
/// ImageNet mean (SLIP, DiffCLIP).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet std (SLIP, DiffCLIP).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Where the `size x size` output comes from.
///
/// ```
/// use diffclip_data::preprocess::Geometry;
/// let g: Geometry = serde_json::from_str(r#"{"kind":"random-resized-crop","scale":[0.5,1.0],"ratio":[0.75,1.3333333333333333]}"#).unwrap();
/// assert_eq!(g, Geometry::random_resized_crop(0.5, 1.0));
/// // A misspelt or misplaced field is an error, not ignored.
/// assert!(serde_json::from_str::<Geometry>(r#"{"kind":"random-resized-crop","scale":[0.5,1.0],"ratio":[0.75,1.3],"scales":[0.1,1.0]}"#).is_err());
/// assert!(serde_json::from_str::<Geometry>(r#"{"kind":"square","scale":[0.08,1.0]}"#).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", from = "GeometryFields")]
pub enum Geometry {
    /// torchvision `Resize(size)` (shorter side -> size, longer side
    /// `int(size * long / short)`) then `CenterCrop(size)` (offsets rounded half-to-even).
    ShorterSideCrop,
    /// Resize straight to `size x size`, no aspect ratio kept, no crop.
    Square,
    /// torchvision `RandomResizedCrop(size, scale, ratio)`: random area fraction in
    /// `scale`, log-uniform aspect ratio in `ratio`, 10 tries, then a centre crop.
    RandomResizedCrop {
        /// Area fraction range.
        scale: [f64; 2],
        /// Aspect ratio (w / h) range.
        ratio: [f64; 2],
    },
}

/// [`Geometry`] as read: serde lets a unit variant of a tagged enum ignore unknown fields, so
/// every variant here has fields (none for the first two), and none may be unknown.
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
enum GeometryFields {
    ShorterSideCrop {},
    Square {},
    RandomResizedCrop { scale: [f64; 2], ratio: [f64; 2] },
}

impl From<GeometryFields> for Geometry {
    fn from(g: GeometryFields) -> Self {
        match g {
            GeometryFields::ShorterSideCrop {} => Self::ShorterSideCrop,
            GeometryFields::Square {} => Self::Square,
            GeometryFields::RandomResizedCrop { scale, ratio } => Self::RandomResizedCrop { scale, ratio },
        }
    }
}

impl Geometry {
    /// `RandomResizedCrop` with torchvision's ratio range 3/4..4/3.
    pub fn random_resized_crop(min_scale: f64, max_scale: f64) -> Self {
        Self::RandomResizedCrop {
            scale: [min_scale, max_scale],
            ratio: [3.0 / 4.0, 4.0 / 3.0],
        }
    }
}

/// Whether to convert to RGB before or after resizing.
///
/// open_clip resizes in the decoded mode and converts afterwards (so a palette
/// image is resized with nearest, RGBA premultiplied, ...); the DiffCLIP demo and
/// torchvision's `ImageFolder` loader convert first. The two agree for RGB and grey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConvertOrder {
    /// Resize in the decoded mode, then `convert("RGB")` (open_clip).
    ResizeThenConvert,
    /// `convert("RGB")`, then resize (`pil_loader`, the authors' demo).
    ConvertThenResize,
}

/// A full preprocessing recipe.
///
/// ```
/// use diffclip_data::preprocess::{Preset, PreprocessConfig};
/// let c = PreprocessConfig::preset(Preset::Slip, 224);
/// let json = serde_json::to_string(&c).unwrap();
/// let back: PreprocessConfig = serde_json::from_str(&json).unwrap();
/// assert_eq!(back, c);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)] // a misspelt key is an error, not a default
pub struct PreprocessConfig {
    /// Output side `S` (the output is `[3, S, S]`).
    pub size: u32,
    /// Geometry.
    pub geometry: Geometry,
    /// Resampling filter.
    pub filter: Filter,
    /// Per-channel mean subtracted after scaling to `[0, 1]`.
    pub mean: [f32; 3],
    /// Per-channel std divided by.
    pub std: [f32; 3],
    /// Mode conversion order.
    pub convert: ConvertOrder,
    /// Which resampling pass runs first (Pillow >= 13 rule by default).
    #[serde(default)]
    pub pass_order: PassOrder,
    /// Decoding options (pixel and byte limits, EXIF orientation).
    #[serde(default)]
    pub decode: DecodeOptions,
}

impl PreprocessConfig {
    /// The configuration of a named preset at output size `size`.
    pub fn preset(preset: Preset, size: u32) -> Self {
        let (geometry, filter, mean, std, convert) = match preset {
            Preset::OpenAi => (
                Geometry::ShorterSideCrop,
                Filter::Bicubic,
                OPENAI_MEAN,
                OPENAI_STD,
                ConvertOrder::ResizeThenConvert,
            ),
            Preset::Slip => (
                Geometry::ShorterSideCrop,
                Filter::Bilinear,
                IMAGENET_MEAN,
                IMAGENET_STD,
                ConvertOrder::ConvertThenResize,
            ),
            Preset::SquareImagenet => (
                Geometry::Square,
                Filter::Bicubic,
                IMAGENET_MEAN,
                IMAGENET_STD,
                ConvertOrder::ConvertThenResize,
            ),
            Preset::SlipTrain => (
                Geometry::random_resized_crop(0.5, 1.0),
                Filter::Bilinear,
                IMAGENET_MEAN,
                IMAGENET_STD,
                ConvertOrder::ConvertThenResize,
            ),
        };
        Self {
            size,
            geometry,
            filter,
            mean,
            std,
            convert,
            pass_order: PassOrder::default(),
            decode: DecodeOptions::default(),
        }
    }

    /// The filter and pass order.
    pub fn resampling(&self) -> Resampling {
        Resampling {
            filter: self.filter,
            order: self.pass_order,
        }
    }

    /// Checks sizes, std and random-crop ranges.
    ///
    /// ```
    /// use diffclip_data::preprocess::{Preset, PreprocessConfig};
    /// assert!(PreprocessConfig::preset(Preset::OpenAi, 0).check().is_err());
    /// ```
    pub fn check(&self) -> Result<(), PreprocessError> {
        let bad = |m: String| Err(PreprocessError::InvalidConfig(m));
        if self.size == 0 || self.size > 1 << 15 {
            return bad(format!("size must be in 1..=32768, got {}", self.size));
        }
        if self.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
            || self.mean.iter().any(|m| !m.is_finite())
        {
            return bad(format!(
                "mean {:?} / std {:?} must be finite, std > 0",
                self.mean, self.std
            ));
        }
        if let Geometry::RandomResizedCrop { scale, ratio } = self.geometry {
            if !(scale[0] > 0.0 && scale[0] <= scale[1] && scale[1].is_finite()) {
                return bad(format!(
                    "random-resized-crop scale {scale:?} must satisfy 0 < min <= max"
                ));
            }
            if !(ratio[0] > 0.0 && ratio[0] <= ratio[1] && ratio[1].is_finite()) {
                return bad(format!(
                    "random-resized-crop ratio {ratio:?} must satisfy 0 < min <= max"
                ));
            }
        }
        if self.decode.max_pixels == 0 {
            return bad("decode.max_pixels must be positive".into());
        }
        if self.decode.max_bytes == 0 {
            return bad("decode.max_bytes must be positive".into());
        }
        Ok(())
    }
}

/// Named presets.
///
/// ```
/// use diffclip_data::preprocess::Preset;
/// let p: Preset = "square-imagenet".parse().unwrap();
/// assert_eq!(p, Preset::SquareImagenet);
/// assert_eq!(p.to_string(), "square-imagenet");
/// let err = "bogus".parse::<Preset>().unwrap_err();
/// assert!(err.to_string().contains("openai, slip, square-imagenet"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// open_clip evaluation: shorter side bicubic, centre crop, OpenAI mean/std,
    /// resize in the decoded mode.
    #[serde(rename = "openai")]
    OpenAi,
    /// SLIP evaluation (what DiffCLIP was evaluated with): shorter side bilinear,
    /// centre crop, ImageNet mean/std.
    Slip,
    /// The DiffCLIP authors' demo: straight bicubic resize to `S x S`, ImageNet mean/std.
    SquareImagenet,
    /// SLIP training: `RandomResizedCrop(S, scale=(0.5, 1))`, bilinear, ImageNet mean/std.
    SlipTrain,
}

impl Preset {
    /// All presets, in the order of their names in error messages.
    pub const ALL: [Preset; 4] = [
        Preset::OpenAi,
        Preset::Slip,
        Preset::SquareImagenet,
        Preset::SlipTrain,
    ];

    /// The preset's name.
    pub fn name(self) -> &'static str {
        match self {
            Preset::OpenAi => "openai",
            Preset::Slip => "slip",
            Preset::SquareImagenet => "square-imagenet",
            Preset::SlipTrain => "slip-train",
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Preset {
    type Err = PreprocessError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key = s.trim().to_ascii_lowercase().replace('_', "-");
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == key)
            .ok_or_else(|| PreprocessError::UnknownPreset(s.to_string()))
    }
}
