//! Decoded images in their native (Pillow-like) mode, and conversion to RGB.
//!
//! open_clip resizes an image in the mode it was decoded in and converts to RGB
//! afterwards, so the mode matters for exactness: a palette image is resized with
//! nearest-neighbour, an RGBA one premultiplied, a 16-bit grey one in 16 bits.
//! The RGB conversions follow Pillow's `Image.convert("RGB")`:
//! alpha is dropped without compositing, a palette's transparency is ignored,
//! 16-bit grey is clipped (not scaled) to 0..=255 and CMYK uses Pillow's
//! integer `cmyk2rgb`.

use super::error::PreprocessError;

/// Pixel samples, row-major and interleaved, in one of Pillow's modes.
///
/// ```
/// use diffclip_data::preprocess::Pixels;
/// assert_eq!(Pixels::L(vec![0; 6]).mode_name(), "L");
/// assert_eq!(Pixels::Rgba(vec![0; 8]).channels(), 4);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pixels {
    /// 8-bit grey (`L`).
    L(Vec<u8>),
    /// 8-bit grey + alpha (`LA`), 2 samples per pixel.
    La(Vec<u8>),
    /// 8-bit RGB (`RGB`), 3 samples per pixel.
    Rgb(Vec<u8>),
    /// 8-bit RGB + alpha (`RGBA`), 4 samples per pixel, not premultiplied.
    Rgba(Vec<u8>),
    /// 8-bit CMYK (`CMYK`) in Pillow's convention (0 = no ink), 4 samples per pixel.
    Cmyk(Vec<u8>),
    /// Palette indices (`P`); indices past the palette's end read as black.
    Palette {
        /// One index per pixel.
        indices: Vec<u8>,
        /// The RGB palette.
        palette: Vec<[u8; 3]>,
    },
    /// 16-bit grey (`I;16`).
    I16(Vec<u16>),
}

impl Pixels {
    /// Pillow's name for the mode.
    pub fn mode_name(&self) -> &'static str {
        match self {
            Self::L(_) => "L",
            Self::La(_) => "LA",
            Self::Rgb(_) => "RGB",
            Self::Rgba(_) => "RGBA",
            Self::Cmyk(_) => "CMYK",
            Self::Palette { .. } => "P",
            Self::I16(_) => "I;16",
        }
    }

    /// Samples per pixel in the buffer.
    pub fn channels(&self) -> usize {
        match self {
            Self::L(_) | Self::Palette { .. } | Self::I16(_) => 1,
            Self::La(_) => 2,
            Self::Rgb(_) => 3,
            Self::Rgba(_) | Self::Cmyk(_) => 4,
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::L(v) | Self::La(v) | Self::Rgb(v) | Self::Rgba(v) | Self::Cmyk(v) => v.len(),
            Self::Palette { indices, .. } => indices.len(),
            Self::I16(v) => v.len(),
        }
    }
}

/// A decoded image: its size and its pixels in the decoded mode.
///
/// ```
/// use diffclip_data::preprocess::{DecodedImage, Pixels};
/// let img = DecodedImage::new(2, 1, Pixels::I16(vec![100, 300])).unwrap();
/// // Pillow's I;16 -> RGB clips instead of scaling.
/// assert_eq!(img.to_rgb_bytes(), vec![100, 100, 100, 255, 255, 255]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedImage {
    width: u32,
    height: u32,
    pixels: Pixels,
}

impl DecodedImage {
    /// Wraps pixels, checking that the buffer matches `width * height * channels`.
    pub fn new(width: u32, height: u32, pixels: Pixels) -> Result<Self, PreprocessError> {
        let channels = pixels.channels();
        let want = (width as usize).checked_mul(height as usize).and_then(|n| n.checked_mul(channels));
        if want != Some(pixels.len()) || width == 0 || height == 0 {
            return Err(PreprocessError::BadBuffer {
                width,
                height,
                channels,
                got: pixels.len(),
            });
        }
        Ok(Self {
            width,
            height,
            pixels,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The pixels in the decoded mode.
    pub fn pixels(&self) -> &Pixels {
        &self.pixels
    }

    /// Pillow's name for the mode (`"RGB"`, `"P"`, `"I;16"`, ...).
    pub fn mode_name(&self) -> &'static str {
        self.pixels.mode_name()
    }

    pub(crate) fn from_parts(width: u32, height: u32, pixels: Pixels) -> Self {
        debug_assert_eq!(
            pixels.len(),
            width as usize * height as usize * pixels.channels()
        );
        Self {
            width,
            height,
            pixels,
        }
    }

    /// Row-major interleaved RGB bytes, converted like Pillow's `convert("RGB")`.
    pub fn to_rgb_bytes(&self) -> Vec<u8> {
        match &self.pixels {
            Pixels::Rgb(v) => v.clone(),
            Pixels::L(v) => v.iter().flat_map(|&g| [g, g, g]).collect(),
            Pixels::La(v) => v.chunks_exact(2).flat_map(|p| [p[0], p[0], p[0]]).collect(),
            Pixels::Rgba(v) => v.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect(),
            Pixels::Cmyk(v) => v
                .chunks_exact(4)
                .flat_map(|p| {
                    [
                        cmyk2rgb(p[0], p[3]),
                        cmyk2rgb(p[1], p[3]),
                        cmyk2rgb(p[2], p[3]),
                    ]
                })
                .collect(),
            Pixels::Palette { indices, palette } => indices
                .iter()
                .flat_map(|&i| palette.get(i as usize).copied().unwrap_or([0, 0, 0]))
                .collect(),
            Pixels::I16(v) => v
                .iter()
                .flat_map(|&x| {
                    let g = x.min(255) as u8;
                    [g, g, g]
                })
                .collect(),
        }
    }

    /// This image converted to mode RGB (see [`Self::to_rgb_bytes`]).
    pub fn to_rgb(&self) -> DecodedImage {
        match &self.pixels {
            Pixels::Rgb(_) => self.clone(),
            _ => Self::from_parts(self.width, self.height, Pixels::Rgb(self.to_rgb_bytes())),
        }
    }

    /// Crops the box `[left, left+width) x [top, top+height)`, which must lie inside.
    ///
    /// # Panics
    /// When the box does not lie inside the image (like slice indexing: the pipelines compute
    /// their boxes from the image's own size).
    ///
    /// ```
    /// use diffclip_data::preprocess::{DecodedImage, Pixels};
    /// let img = DecodedImage::new(3, 2, Pixels::L(vec![1, 2, 3, 4, 5, 6])).unwrap();
    /// let c = img.crop(1, 1, 2, 1);
    /// assert_eq!(c.pixels(), &Pixels::L(vec![5, 6]));
    /// ```
    pub fn crop(&self, left: u32, top: u32, width: u32, height: u32) -> DecodedImage {
        let inside = |start: u32, len: u32, size: u32| start.checked_add(len).is_some_and(|end| end <= size);
        assert!(
            inside(left, width, self.width) && inside(top, height, self.height),
            "crop {width}x{height} at ({left}, {top}) outside the {}x{} image",
            self.width,
            self.height
        );
        if (left, top, width, height) == (0, 0, self.width, self.height) {
            return self.clone();
        }
        let (l, t, w, h, sw) = (
            left as usize,
            top as usize,
            width as usize,
            height as usize,
            self.width as usize,
        );
        let pixels = map_pixels(&self.pixels, |data, ch| crop_buf(data, ch, sw, l, t, w, h));
        Self::from_parts(width, height, pixels)
    }
}

/// Applies `f(buffer, channels)` to the sample buffer, keeping mode and palette.
pub(crate) fn map_pixels(p: &Pixels, f8: impl Fn(&[u8], usize) -> Vec<u8>) -> Pixels {
    match p {
        Pixels::L(v) => Pixels::L(f8(v, 1)),
        Pixels::La(v) => Pixels::La(f8(v, 2)),
        Pixels::Rgb(v) => Pixels::Rgb(f8(v, 3)),
        Pixels::Rgba(v) => Pixels::Rgba(f8(v, 4)),
        Pixels::Cmyk(v) => Pixels::Cmyk(f8(v, 4)),
        Pixels::Palette { indices, palette } => Pixels::Palette {
            indices: f8(indices, 1),
            palette: palette.clone(),
        },
        Pixels::I16(v) => {
            // Carry 16-bit samples through the byte-level function as little-endian pairs.
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            let out = f8(&bytes, 2);
            Pixels::I16(
                out.chunks_exact(2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]))
                    .collect(),
            )
        }
    }
}

fn crop_buf(
    data: &[u8],
    ch: usize,
    src_w: usize,
    left: usize,
    top: usize,
    w: usize,
    h: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(w * h * ch);
    for y in top..top + h {
        let start = (y * src_w + left) * ch;
        out.extend_from_slice(&data[start..start + w * ch]);
    }
    out
}

/// Pillow's `cmyk2rgb` for one channel: `x` is C, M or Y and `k` is K (0 = no ink).
///
/// Integer math, equal to `round((255 - x) * (255 - k) / 255)`.
///
/// ```
/// use diffclip_data::preprocess::cmyk2rgb;
/// assert_eq!(cmyk2rgb(0, 0), 255);
/// assert_eq!(cmyk2rgb(255, 0), 0);
/// assert_eq!(cmyk2rgb(100, 50), ((155.0f64 * 205.0 / 255.0).round()) as u8);
/// ```
pub fn cmyk2rgb(x: u8, k: u8) -> u8 {
    let nk = 255 - i32::from(k);
    let t = i32::from(x) * nk + 128;
    (nk - (((t >> 8) + t) >> 8)).clamp(0, 255) as u8
}

/// Pillow's `MULDIV255(a, b)`: `round(a * b / 255)` in integers.
pub(crate) fn muldiv255(a: u8, b: u8) -> u8 {
    let t = u32::from(a) * u32::from(b) + 128;
    (((t >> 8) + t) >> 8) as u8
}
