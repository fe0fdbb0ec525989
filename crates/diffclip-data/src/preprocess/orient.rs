//! EXIF orientation (what `PIL.ImageOps.exif_transpose` does), on any pixel mode.

use super::pixels::{DecodedImage, map_pixels};

/// Reads the EXIF orientation tag (1..=8) from a raw EXIF chunk (`Exif\0\0` prefix optional).
///
/// ```
/// use diffclip_data::preprocess::exif_orientation;
/// assert_eq!(exif_orientation(b"not exif"), None);
/// ```
pub fn exif_orientation(exif: &[u8]) -> Option<u8> {
    let chunk = exif.strip_prefix(b"Exif\0\0").unwrap_or(exif);
    ::image::metadata::Orientation::from_exif_chunk(chunk).map(|o| o.to_exif())
}

/// Applies EXIF orientation `o` (1 = as stored, 2..=8 flips/rotations) so that the
/// result is displayed upright. Values outside 2..=8 return the image unchanged.
///
/// ```
/// use diffclip_data::preprocess::{apply_orientation, DecodedImage, Pixels};
/// let img = DecodedImage::new(2, 1, Pixels::L(vec![1, 2])).unwrap();
/// // 6 = rotate 90 degrees clockwise.
/// let r = apply_orientation(&img, 6);
/// assert_eq!((r.width(), r.height()), (1, 2));
/// assert_eq!(r.pixels(), &Pixels::L(vec![1, 2]));
/// ```
pub fn apply_orientation(img: &DecodedImage, o: u8) -> DecodedImage {
    if !(2..=8).contains(&o) {
        return img.clone();
    }
    let (w, h) = (img.width() as usize, img.height() as usize);
    let swap = o >= 5;
    let (ow, oh) = if swap { (h, w) } else { (w, h) };
    // Source pixel of output (x, y).
    let src = move |x: usize, y: usize| -> (usize, usize) {
        match o {
            2 => (w - 1 - x, y),
            3 => (w - 1 - x, h - 1 - y),
            4 => (x, h - 1 - y),
            5 => (y, x),
            6 => (y, h - 1 - x),
            7 => (w - 1 - y, h - 1 - x),
            _ => (w - 1 - y, x),
        }
    };
    let pixels = map_pixels(img.pixels(), |data, ch| {
        let mut out = Vec::with_capacity(data.len());
        for y in 0..oh {
            for x in 0..ow {
                let (sx, sy) = src(x, y);
                let at = (sy * w + sx) * ch;
                out.extend_from_slice(&data[at..at + ch]);
            }
        }
        out
    });
    DecodedImage::from_parts(ow as u32, oh as u32, pixels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::Pixels;

    #[test]
    fn matches_image_crate_for_all_orientations() {
        let (w, h) = (3u32, 2u32);
        let data: Vec<u8> = (0..w * h * 3).map(|i| i as u8).collect();
        let ours = DecodedImage::new(w, h, Pixels::Rgb(data.clone())).unwrap();
        for o in 1..=8u8 {
            let buf = ::image::RgbImage::from_raw(w, h, data.clone()).unwrap();
            let mut dynamic = ::image::DynamicImage::ImageRgb8(buf);
            dynamic.apply_orientation(::image::metadata::Orientation::from_exif(o).unwrap());
            let r = apply_orientation(&ours, o);
            assert_eq!(
                (r.width(), r.height()),
                (dynamic.width(), dynamic.height()),
                "o={o}"
            );
            assert_eq!(r.to_rgb_bytes(), dynamic.to_rgb8().into_raw(), "o={o}");
        }
    }
}
