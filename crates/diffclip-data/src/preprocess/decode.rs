//! Reading image files: format detection, size guard, EXIF orientation.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::codecs::{self, Fail};
use super::error::PreprocessError;
use super::orient::{apply_orientation, exif_orientation};
use super::pixels::DecodedImage;

/// Pillow's `DecompressionBombError` threshold (2 x `Image.MAX_IMAGE_PIXELS`).
pub const DEFAULT_MAX_PIXELS: u64 = 2 * 89_478_485;

/// Largest image file read by default (256 MiB): far above any real photo, small enough that a
/// device or a runaway file cannot exhaust memory.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;

/// Environment variable that sets [`DecodeOptions::max_pixels`]'s default in every program
/// (`DIFFCLIP_MAX_PIXELS=400000000`, `4e8` or `400_000_000`): a larger scan is not a bomb.
pub const MAX_PIXELS_ENV: &str = "DIFFCLIP_MAX_PIXELS";

/// Environment variable that sets [`DecodeOptions::max_bytes`]'s default in every program.
pub const MAX_BYTES_ENV: &str = "DIFFCLIP_MAX_IMAGE_BYTES";

/// How to decode. The limits default to [`DEFAULT_MAX_PIXELS`] and [`DEFAULT_MAX_BYTES`], or to
/// [`MAX_PIXELS_ENV`] and [`MAX_BYTES_ENV`] where those hold a positive count.
///
/// ```
/// use diffclip_data::preprocess::{DecodeOptions, DEFAULT_MAX_BYTES};
/// let o = DecodeOptions { max_pixels: 4096 * 4096, ..Default::default() };
/// assert!(!o.exif_orientation);
/// # if std::env::var_os(diffclip_data::preprocess::MAX_BYTES_ENV).is_none() {
/// assert_eq!(o.max_bytes, DEFAULT_MAX_BYTES);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[serde(deny_unknown_fields)] // a misspelt key is an error, not a default
pub struct DecodeOptions {
    /// Reject images with more pixels than this before allocating them.
    pub max_pixels: u64,
    /// Reject image files (and in-memory images) longer than this many bytes; at most this
    /// many bytes plus one are ever read from a file, whatever size it claims.
    pub max_bytes: u64,
    /// Rotate/flip according to the EXIF orientation tag (`ImageOps.exif_transpose`).
    /// Off by default: neither open_clip nor the SLIP code does it.
    pub exif_orientation: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            max_pixels: limit_from_env(MAX_PIXELS_ENV).unwrap_or(DEFAULT_MAX_PIXELS),
            max_bytes: limit_from_env(MAX_BYTES_ENV).unwrap_or(DEFAULT_MAX_BYTES),
            exif_orientation: false,
        }
    }
}

/// The problem with [`MAX_PIXELS_ENV`] or [`MAX_BYTES_ENV`] when one is set but holds no
/// positive count (its default then applies): for programs to refuse a limit that was meant to be
/// changed and silently is not.
///
/// ```
/// # if std::env::var_os(diffclip_data::preprocess::MAX_PIXELS_ENV).is_none() && std::env::var_os(diffclip_data::preprocess::MAX_BYTES_ENV).is_none() {
/// assert_eq!(diffclip_data::preprocess::limits_env_problem(), None);
/// # }
/// ```
pub fn limits_env_problem() -> Option<String> {
    [MAX_PIXELS_ENV, MAX_BYTES_ENV].into_iter().find_map(|name| {
        let value = std::env::var_os(name)?;
        limit_from_env(name).is_none().then(|| format!("{name}={}: not a positive count (such as 4e8 or 400_000_000)", value.to_string_lossy()))
    })
}

/// A positive count from environment variable `name` (`4e8`, `400_000_000`); `None` when unset
/// or not one, so that a typo leaves the guard at its default instead of lifting it.
fn limit_from_env(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?.trim().replace('_', "");
    let n = text.parse::<u64>().ok().or_else(|| text.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 1.0 && *v < 1.8e19).map(|v| v as u64))?;
    (n > 0).then_some(n)
}

/// The file extensions (lower case) of every format the decoder reads
/// ([`ImageFormat::extensions`] of [`ImageFormat::ALL`], in that order): what image folders
/// take as images.
///
/// ```
/// use diffclip_data::preprocess::{IMAGE_EXTENSIONS, ImageFormat};
/// assert_eq!(IMAGE_EXTENSIONS, ["jpg", "jpeg", "png", "gif", "webp", "bmp"]);
/// let derived: Vec<&str> = ImageFormat::ALL.iter().flat_map(|f| f.extensions().iter().copied()).collect();
/// assert_eq!(derived, IMAGE_EXTENSIONS);
/// ```
pub const IMAGE_EXTENSIONS: [&str; 6] = {
    // Derived at compile time; a format added to `ImageFormat::ALL` makes this fail to compile
    // until the length above is updated.
    let mut out = [""; 6];
    let (mut n, mut i) = (0, 0);
    while i < ImageFormat::ALL.len() {
        let exts = ImageFormat::ALL[i].extensions();
        let mut j = 0;
        while j < exts.len() {
            out[n] = exts[j];
            n += 1;
            j += 1;
        }
        i += 1;
    }
    assert!(n == out.len(), "IMAGE_EXTENSIONS: update the length");
    out
};

/// A supported container format.
///
/// ```
/// use diffclip_data::preprocess::ImageFormat;
/// assert_eq!(ImageFormat::sniff(b"\x89PNG\r\n\x1a\n...."), Some(ImageFormat::Png));
/// assert_eq!(ImageFormat::sniff(b"hello"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// JPEG / JFIF.
    Jpeg,
    /// PNG.
    Png,
    /// GIF (first frame).
    Gif,
    /// WebP (lossy or lossless, first frame).
    WebP,
    /// Windows bitmap.
    Bmp,
}

impl ImageFormat {
    /// Detects the format from the first bytes.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            Some(Self::Gif)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(Self::WebP)
        } else if bytes.starts_with(b"BM") {
            Some(Self::Bmp)
        } else {
            None
        }
    }

    /// Every format the decoder reads.
    pub const ALL: [Self; 5] = [Self::Jpeg, Self::Png, Self::Gif, Self::WebP, Self::Bmp];

    /// The file extensions (lower case) of the format; [`IMAGE_EXTENSIONS`] lists them all.
    pub const fn extensions(self) -> &'static [&'static str] {
        match self {
            Self::Jpeg => &["jpg", "jpeg"],
            Self::Png => &["png"],
            Self::Gif => &["gif"],
            Self::WebP => &["webp"],
            Self::Bmp => &["bmp"],
        }
    }

    /// The format whose extension `path` has (case-insensitive), if the decoder reads it. This
    /// is how image folders pick their images; decoding itself goes by the bytes
    /// ([`sniff`](Self::sniff)), whatever the extension.
    ///
    /// ```
    /// use diffclip_data::preprocess::ImageFormat;
    /// assert_eq!(ImageFormat::from_path("a/b.JPEG".as_ref()), Some(ImageFormat::Jpeg));
    /// assert_eq!(ImageFormat::from_path("scan.tiff".as_ref()), None); // not decodable
    /// assert_eq!(ImageFormat::from_path("README".as_ref()), None);
    /// ```
    pub fn from_path(path: &std::path::Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?;
        Self::ALL
            .into_iter()
            .find(|f| f.extensions().iter().any(|e| e.eq_ignore_ascii_case(ext)))
    }

    /// Short name used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Jpeg => "JPEG",
            Self::Png => "PNG",
            Self::Gif => "GIF",
            Self::WebP => "WebP",
            Self::Bmp => "BMP",
        }
    }
}

/// Reads and decodes an image file into its native mode.
///
/// Missing, empty, corrupt, truncated or oversized files give a
/// [`PreprocessError`] naming the file; it never panics on bad input. Only regular files are
/// read (a FIFO, a device such as `/dev/zero` or a directory is refused at once, see
/// [`crate::files::open_regular`]), and at most [`DecodeOptions::max_bytes`] of them.
///
/// ```no_run
/// use diffclip_data::preprocess::{decode_file, DecodeOptions};
/// let img = decode_file("photo.jpg", &DecodeOptions::default())?;
/// println!("{}x{} {}", img.width(), img.height(), img.mode_name());
/// # Ok::<(), diffclip_data::preprocess::PreprocessError>(())
/// ```
pub fn decode_file(
    path: impl AsRef<Path>,
    opts: &DecodeOptions,
) -> Result<DecodedImage, PreprocessError> {
    let path = path.as_ref();
    let bytes = crate::files::read_capped(path, opts.max_bytes)
        .map_err(|source| PreprocessError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .ok_or_else(|| PreprocessError::FileTooLarge {
            path: path.to_path_buf(),
            limit: opts.max_bytes,
        })?;
    decode_bytes(&bytes, path, opts)
}

/// Decodes an in-memory image; `name` labels errors (a path or any description).
///
/// ```
/// use diffclip_data::preprocess::{decode_bytes, DecodeOptions, PreprocessError};
/// let err = decode_bytes(b"", "empty.png", &DecodeOptions::default()).unwrap_err();
/// assert!(matches!(err, PreprocessError::Empty { .. }));
/// ```
pub fn decode_bytes(
    bytes: &[u8],
    name: impl AsRef<Path>,
    opts: &DecodeOptions,
) -> Result<DecodedImage, PreprocessError> {
    let path: PathBuf = name.as_ref().to_path_buf();
    if bytes.is_empty() {
        return Err(PreprocessError::Empty { path });
    }
    if bytes.len() as u64 > opts.max_bytes {
        return Err(PreprocessError::FileTooLarge {
            path,
            limit: opts.max_bytes,
        });
    }
    let format =
        ImageFormat::sniff(bytes).ok_or(PreprocessError::UnknownFormat { path: path.clone() })?;
    let max = opts.max_pixels;
    let result = match format {
        ImageFormat::Png => codecs::png(bytes, max),
        ImageFormat::Gif => codecs::gif(bytes, max),
        ImageFormat::Jpeg => codecs::jpeg(bytes, max),
        ImageFormat::WebP => codecs::via_image_crate(bytes, ::image::ImageFormat::WebP, max),
        ImageFormat::Bmp => codecs::via_image_crate(bytes, ::image::ImageFormat::Bmp, max),
    };
    let fmt = format.name();
    let (img, exif) = result.map_err(|f| match f {
        Fail::Decode(message) => PreprocessError::Decode {
            path: path.clone(),
            format: fmt,
            message,
        },
        Fail::Unsupported(message) => PreprocessError::Unsupported {
            path: path.clone(),
            format: fmt,
            message,
        },
        Fail::TooLarge(width, height) => PreprocessError::TooLarge {
            path: path.clone(),
            width,
            height,
            limit: max,
        },
    })?;
    if opts.exif_orientation
        && let Some(o) = exif.as_deref().and_then(exif_orientation)
    {
        return Ok(apply_orientation(&img, o));
    }
    Ok(img)
}
