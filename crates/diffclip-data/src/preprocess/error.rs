//! Errors of image decoding and preprocessing.

use std::path::PathBuf;

/// Everything that can go wrong while decoding or preprocessing an image.
///
/// Every variant that concerns a file names it (`path`; in-memory sources
/// carry the label given to [`crate::preprocess::decode_bytes`]), so a bad file
/// in a batch of thousands can be found. Decoding never panics on bad input.
///
/// ```
/// use diffclip_data::preprocess::{decode_file, DecodeOptions, PreprocessError};
/// let err = decode_file("/no/such/file.jpg", &DecodeOptions::default()).unwrap_err();
/// assert!(matches!(err, PreprocessError::Io { .. }));
/// assert!(err.to_string().contains("/no/such/file.jpg"));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// The file could not be read (missing, unreadable, ...).
    #[error("cannot read image {path}: {source}", path = path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is empty (zero bytes).
    #[error("image {path} is empty (0 bytes)", path = path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The bytes are not a JPEG, PNG, GIF, WebP or BMP file.
    #[error("image {path}: unrecognised or unsupported image format", path = path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The file is corrupt or truncated.
    #[error("cannot decode {format} image {path}: {message}", path = path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// The detected container format.
        format: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// A feature of the file that this decoder does not handle.
    #[error("unsupported {format} image {path}: {message}", path = path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The detected container format.
        format: &'static str,
        /// What is not supported.
        message: String,
    },
    /// The image has more pixels than allowed (decompression-bomb guard).
    #[error(
        "image {path} is {width}x{height} = {pixels} pixels, above the limit of {limit} pixels \
         (decompression-bomb guard; raise it with DIFFCLIP_MAX_PIXELS=N in the environment, \
         preprocess --max-pixels or DecodeOptions::max_pixels)",
        path = path.display(),
        pixels = *width as u64 * *height as u64
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// The configured limit.
        limit: u64,
    },
    /// The file (or in-memory image) is longer than [`crate::preprocess::DecodeOptions::max_bytes`].
    #[error(
        "image {path} is larger than the limit of {limit} bytes \
         (raise it with DIFFCLIP_MAX_IMAGE_BYTES=N in the environment, preprocess --max-bytes \
         or DecodeOptions::max_bytes)",
        path = path.display()
    )]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// The configured limit in bytes.
        limit: u64,
    },
    /// An unknown preset name.
    #[error(
        "unknown preprocessing preset {0:?}; expected one of: openai, slip, square-imagenet, slip-train"
    )]
    UnknownPreset(String),
    /// An inconsistent [`crate::preprocess::PreprocessConfig`].
    #[error("invalid preprocessing config: {0}")]
    InvalidConfig(String),
    /// Pixel data whose length does not match its dimensions.
    #[error("pixel buffer of {got} samples does not match {width}x{height}x{channels}")]
    BadBuffer {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Samples per pixel.
        channels: usize,
        /// The buffer's length.
        got: usize,
    },
    /// A preprocessed image of the wrong length for its tensor.
    #[error("image {index} holds {got} values, not 3 x {size} x {size}: it was preprocessed for another size")]
    ImageLength {
        /// Its place in the batch (0 for a lone image).
        index: usize,
        /// Its length.
        got: usize,
        /// The side the tensor is built for.
        size: usize,
    },
}

impl PreprocessError {
    /// The file the error is about, if any.
    ///
    /// ```
    /// use diffclip_data::preprocess::PreprocessError;
    /// let e = PreprocessError::Empty { path: "a.png".into() };
    /// assert_eq!(e.path().unwrap().to_str(), Some("a.png"));
    /// ```
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Self::Io { path, .. }
            | Self::Empty { path }
            | Self::UnknownFormat { path }
            | Self::Decode { path, .. }
            | Self::Unsupported { path, .. }
            | Self::TooLarge { path, .. }
            | Self::FileTooLarge { path, .. } => Some(path),
            _ => None,
        }
    }
}
