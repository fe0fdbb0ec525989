//! Pillow's resampling filters and the order of the two passes.

use serde::{Deserialize, Serialize};

/// A resampling filter, as in `PIL.Image.Resampling`.
///
/// ```
/// use diffclip_data::preprocess::Filter;
/// let f: Filter = serde_json::from_str("\"bicubic\"").unwrap();
/// assert_eq!(f, Filter::Bicubic);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Filter {
    /// Nearest neighbour (Pillow's `NEAREST`; always used for palette images).
    Nearest,
    /// Box filter, support 0.5.
    Box,
    /// Triangle filter, support 1 (Pillow's and torchvision-on-PIL `BILINEAR`).
    Bilinear,
    /// Hamming-windowed sinc, support 1.
    Hamming,
    /// Cubic convolution with `a = -0.5`, support 2 (Pillow's `BICUBIC`).
    Bicubic,
    /// Lanczos-3 windowed sinc, support 3.
    Lanczos,
}

impl Filter {
    pub(crate) fn support(self) -> f64 {
        match self {
            Filter::Nearest | Filter::Box => 0.5,
            Filter::Bilinear | Filter::Hamming => 1.0,
            Filter::Bicubic => 2.0,
            Filter::Lanczos => 3.0,
        }
    }

    pub(crate) fn weight(self, x: f64) -> f64 {
        match self {
            Filter::Nearest | Filter::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Filter::Bilinear => {
                let x = x.abs();
                if x < 1.0 { 1.0 - x } else { 0.0 }
            }
            Filter::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let x = x * std::f64::consts::PI;
                    x.sin() / x * (0.54 + 0.46 * x.cos())
                }
            }
            Filter::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Filter::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        return 1.0;
    }
    let x = x * std::f64::consts::PI;
    x.sin() / x
}

/// Which pass runs first. Each pass rounds to 8 bits, so the order changes a
/// few pixels by one level.
///
/// ```
/// use diffclip_data::preprocess::PassOrder;
/// assert_eq!(PassOrder::default(), PassOrder::Pillow13);
/// // 123x457 -> 224x224: the height shrinks, the width grows: vertical first.
/// assert!(PassOrder::Pillow13.vertical_first(123, 457, 224, 224));
/// assert!(!PassOrder::Pillow13.vertical_first(640, 427, 224, 224));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PassOrder {
    /// Pillow >= 13 (the reference fixtures' version): vertical pass first when
    /// the height loses more than twice as many pixels as the width
    /// (`dy > 0 && dy > 2 * dx`), else horizontal first.
    #[default]
    Pillow13,
    /// Pillow <= 12: always horizontal first.
    HorizontalFirst,
}

impl PassOrder {
    /// Whether a `w x h -> out_w x out_h` resize runs the vertical pass first.
    pub fn vertical_first(self, w: usize, h: usize, out_w: usize, out_h: usize) -> bool {
        let dy = h as i64 - out_h as i64;
        let dx = w as i64 - out_w as i64;
        self == PassOrder::Pillow13 && dy > 0 && dy > 2 * dx
    }
}

/// A filter and a pass order.
///
/// ```
/// use diffclip_data::preprocess::{Filter, Resampling};
/// assert_eq!(Resampling::from(Filter::Bicubic).filter, Filter::Bicubic);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resampling {
    /// The filter.
    pub filter: Filter,
    /// The pass order.
    pub order: PassOrder,
}

impl From<Filter> for Resampling {
    fn from(filter: Filter) -> Self {
        Self {
            filter,
            order: PassOrder::default(),
        }
    }
}
