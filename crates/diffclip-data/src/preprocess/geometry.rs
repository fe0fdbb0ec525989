//! torchvision's geometry: shorter-side resize, centre crop, RandomResizedCrop.

use rand::RngExt;

/// A crop box in source pixels.
///
/// ```
/// use diffclip_data::preprocess::CropBox;
/// let b = CropBox { left: 1, top: 2, width: 3, height: 4 };
/// assert_eq!(b.width * b.height, 12);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    /// First column.
    pub left: u32,
    /// First row.
    pub top: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// torchvision `Resize(size)` with an int: the shorter side becomes `size`, the longer
/// `int(size * long / short)` (truncated). Returns `(width, height)`.
///
/// ```
/// use diffclip_data::preprocess::shorter_side_size;
/// assert_eq!(shorter_side_size(640, 427, 224), (335, 224));
/// assert_eq!(shorter_side_size(1000, 10, 224), (22400, 224));
/// ```
pub fn shorter_side_size(width: u32, height: u32, size: u32) -> (u32, u32) {
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    // Python: int(size * long / short) -- exact integer product, then a float division.
    let new_long = ((u64::from(size) * u64::from(long)) as f64 / f64::from(short)) as u32;
    if width <= height {
        (size, new_long)
    } else {
        (new_long, size)
    }
}

/// torchvision `CenterCrop` offsets `(left, top)` of a `size x size` crop:
/// `int(round((W - size) / 2.0))` with Python's round-half-to-even.
///
/// ```
/// use diffclip_data::preprocess::center_crop_offsets;
/// assert_eq!(center_crop_offsets(335, 224, 224), (56, 0)); // 55.5 -> 56
/// assert_eq!(center_crop_offsets(229, 224, 224), (2, 0)); // 2.5 -> 2
/// ```
pub fn center_crop_offsets(width: u32, height: u32, size: u32) -> (u32, u32) {
    let off = |d: u32| ((f64::from(d.saturating_sub(size))) / 2.0).round_ties_even() as u32;
    (off(width), off(height))
}

fn uniform(rng: &mut impl RngExt, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// torchvision `RandomResizedCrop.get_params`: up to 10 tries of a random area
/// fraction in `scale` and a log-uniform aspect ratio in `ratio`; then the
/// fallback centre crop clamped to the ratio range.
///
/// ```
/// use diffclip_data::preprocess::random_resized_crop_box;
/// use rand::{SeedableRng, rngs::StdRng};
/// let mut rng = StdRng::seed_from_u64(7);
/// let b = random_resized_crop_box(640, 427, [0.5, 1.0], [0.75, 4.0 / 3.0], &mut rng);
/// assert!(b.left + b.width <= 640 && b.top + b.height <= 427);
/// ```
pub fn random_resized_crop_box(
    width: u32,
    height: u32,
    scale: [f64; 2],
    ratio: [f64; 2],
    rng: &mut impl RngExt,
) -> CropBox {
    let area = f64::from(width) * f64::from(height);
    let (log_lo, log_hi) = (ratio[0].ln(), ratio[1].ln());
    for _ in 0..10 {
        let target_area = area * uniform(rng, scale[0], scale[1]);
        let aspect = uniform(rng, log_lo, log_hi).exp();
        let w = (target_area * aspect).sqrt().round_ties_even();
        let h = (target_area / aspect).sqrt().round_ties_even();
        if w > 0.0 && w <= f64::from(width) && h > 0.0 && h <= f64::from(height) {
            let (w, h) = (w as u32, h as u32);
            let top = rng.random_range(0..=height - h);
            let left = rng.random_range(0..=width - w);
            return CropBox {
                left,
                top,
                width: w,
                height: h,
            };
        }
    }
    let in_ratio = f64::from(width) / f64::from(height);
    let (w, h) = if in_ratio < ratio[0] {
        (
            width,
            ((f64::from(width) / ratio[0]).round_ties_even() as u32).clamp(1, height),
        )
    } else if in_ratio > ratio[1] {
        (
            ((f64::from(height) * ratio[1]).round_ties_even() as u32).clamp(1, width),
            height,
        )
    } else {
        (width, height)
    };
    CropBox {
        left: (width - w) / 2,
        top: (height - h) / 2,
        width: w,
        height: h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    #[test]
    fn fallback_is_centre_crop_clamped_to_ratio() {
        // 1000x10 can never fit a crop of ratio <= 4/3 with area >= half: fallback.
        let mut rng = StdRng::seed_from_u64(0);
        let b = random_resized_crop_box(1000, 10, [0.5, 1.0], [0.75, 4.0 / 3.0], &mut rng);
        assert_eq!(
            b,
            CropBox {
                left: 493,
                top: 0,
                width: 13,
                height: 10
            }
        );
    }

    #[test]
    fn crops_respect_scale_and_ratio() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..200 {
            let b = random_resized_crop_box(640, 480, [0.5, 1.0], [0.75, 4.0 / 3.0], &mut rng);
            let frac = f64::from(b.width * b.height) / (640.0 * 480.0);
            assert!(frac > 0.49 && frac <= 1.0, "{b:?}");
            let r = f64::from(b.width) / f64::from(b.height);
            assert!(r > 0.74 && r < 1.34, "{b:?}");
        }
    }
}
