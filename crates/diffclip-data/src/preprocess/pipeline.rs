//! The preprocessing pipeline: decoded image -> `[3, S, S]` normalised f32.

use std::borrow::Cow;
use std::path::Path;

use rand::{SeedableRng, rngs::StdRng};
use rayon::prelude::*;

use super::config::{ConvertOrder, Geometry, PreprocessConfig, Preset};
use super::decode::{decode_bytes, decode_file};
use super::error::PreprocessError;
use super::geometry::{center_crop_offsets, random_resized_crop_box, shorter_side_size};
use super::pixels::DecodedImage;
use super::resample::Window;
use super::resize::resize_window;

/// A validated [`PreprocessConfig`] that turns images into `[3, S, S]` CHW f32.
///
/// ```
/// use diffclip_data::preprocess::{DecodedImage, Pipeline, Pixels};
/// let p = Pipeline::from_name("openai", 224).unwrap();
/// let img = DecodedImage::new(4, 2, Pixels::Rgb(vec![128; 24])).unwrap();
/// let x = p.process_image(&img, 0);
/// assert_eq!(x.len(), 3 * 224 * 224);
/// assert!(Pipeline::from_name("nope", 224).is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    config: PreprocessConfig,
}

impl Pipeline {
    /// Validates `config`.
    pub fn new(config: PreprocessConfig) -> Result<Self, PreprocessError> {
        config.check()?;
        Ok(Self { config })
    }

    /// A preset at output size `size`.
    pub fn from_preset(preset: Preset, size: u32) -> Result<Self, PreprocessError> {
        Self::new(PreprocessConfig::preset(preset, size))
    }

    /// A preset by name (`openai`, `slip`, `square-imagenet`, `slip-train`).
    pub fn from_name(name: &str, size: u32) -> Result<Self, PreprocessError> {
        Self::from_preset(name.parse()?, size)
    }

    /// The configuration.
    pub fn config(&self) -> &PreprocessConfig {
        &self.config
    }

    /// Output side `S`.
    pub fn size(&self) -> usize {
        self.config.size as usize
    }

    /// Geometry + resampling + RGB conversion: `S x S` RGB bytes, row-major HWC,
    /// i.e. what torchvision hands to `ToTensor`. `seed` drives random geometry only.
    ///
    /// ```
    /// use diffclip_data::preprocess::{DecodedImage, Pipeline, Pixels};
    /// let p = Pipeline::from_name("square-imagenet", 2).unwrap();
    /// let img = DecodedImage::new(1, 1, Pixels::Rgb(vec![200, 100, 50])).unwrap();
    /// assert_eq!(p.process_image_u8(&img, 0), [200, 100, 50].repeat(4));
    /// ```
    pub fn process_image_u8(&self, img: &DecodedImage, seed: u64) -> Vec<u8> {
        let c = &self.config;
        let s = c.size;
        let img: Cow<'_, DecodedImage> = match c.convert {
            ConvertOrder::ConvertThenResize if img.mode_name() != "RGB" => Cow::Owned(img.to_rgb()),
            _ => Cow::Borrowed(img),
        };
        let out = match c.geometry {
            Geometry::ShorterSideCrop => {
                let (rw, rh) = shorter_side_size(img.width(), img.height(), s);
                let (left, top) = center_crop_offsets(rw, rh, s);
                let win = Window {
                    x: left as usize,
                    y: top as usize,
                    width: s as usize,
                    height: s as usize,
                };
                resize_window(&img, rw, rh, c.resampling(), win)
            }
            Geometry::Square => resize_window(
                &img,
                s,
                s,
                c.resampling(),
                Window::full(s as usize, s as usize),
            ),
            Geometry::RandomResizedCrop { scale, ratio } => {
                let mut rng = StdRng::seed_from_u64(seed);
                let b = random_resized_crop_box(img.width(), img.height(), scale, ratio, &mut rng);
                let cropped = img.crop(b.left, b.top, b.width, b.height);
                resize_window(
                    &cropped,
                    s,
                    s,
                    c.resampling(),
                    Window::full(s as usize, s as usize),
                )
            }
        };
        out.to_rgb_bytes()
    }

    /// `ToTensor` + `Normalize`: HWC RGB bytes -> CHW `((v / 255) - mean) / std` in f32
    /// (bit-exact with torchvision's float32 arithmetic).
    ///
    /// ```
    /// use diffclip_data::preprocess::{Pipeline, IMAGENET_MEAN, IMAGENET_STD};
    /// let p = Pipeline::from_name("slip", 1).unwrap();
    /// let x = p.normalize(&[255, 0, 0]);
    /// assert_eq!(x[0], (1.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]);
    /// ```
    pub fn normalize(&self, rgb_hwc: &[u8]) -> Vec<f32> {
        let n = rgb_hwc.len() / 3;
        let mut out = vec![0f32; n * 3];
        for c in 0..3 {
            let (m, s) = (self.config.mean[c], self.config.std[c]);
            for (o, px) in out[c * n..(c + 1) * n]
                .iter_mut()
                .zip(rgb_hwc.chunks_exact(3))
            {
                *o = (f32::from(px[c]) / 255f32 - m) / s;
            }
        }
        out
    }

    /// The full pipeline on a decoded image: `3 * S * S` f32, CHW.
    pub fn process_image(&self, img: &DecodedImage, seed: u64) -> Vec<f32> {
        self.normalize(&self.process_image_u8(img, seed))
    }

    /// Decodes (with the config's [`super::DecodeOptions`]) and processes a file.
    ///
    /// ```no_run
    /// use diffclip_data::preprocess::Pipeline;
    /// let x = Pipeline::from_name("openai", 224)?.process_file("cat.jpg", 0)?;
    /// # Ok::<(), diffclip_data::preprocess::PreprocessError>(())
    /// ```
    pub fn process_file(
        &self,
        path: impl AsRef<Path>,
        seed: u64,
    ) -> Result<Vec<f32>, PreprocessError> {
        Ok(self.process_image(&decode_file(path, &self.config.decode)?, seed))
    }

    /// Decodes and processes in-memory bytes; `name` labels errors.
    pub fn process_bytes(
        &self,
        bytes: &[u8],
        name: impl AsRef<Path>,
        seed: u64,
    ) -> Result<Vec<f32>, PreprocessError> {
        Ok(self.process_image(&decode_bytes(bytes, name, &self.config.decode)?, seed))
    }

    /// Decodes and processes files in parallel (rayon). Item `i` uses the seed
    /// [`item_seed`]`(seed, i)`. Fails with the first (in order) bad file's error.
    ///
    /// ```no_run
    /// use diffclip_data::preprocess::Pipeline;
    /// let xs = Pipeline::from_name("slip", 224)?.process_files(&["a.jpg", "b.png"], 0)?;
    /// assert_eq!(xs.len(), 2);
    /// # Ok::<(), diffclip_data::preprocess::PreprocessError>(())
    /// ```
    pub fn process_files<P: AsRef<Path> + Sync>(
        &self,
        paths: &[P],
        seed: u64,
    ) -> Result<Vec<Vec<f32>>, PreprocessError> {
        let results: Vec<Result<Vec<f32>, PreprocessError>> = paths
            .par_iter()
            .enumerate()
            .map(|(i, p)| self.process_file(p, item_seed(seed, i as u64)))
            .collect();
        // Report the first bad file in input order, deterministically.
        results.into_iter().collect()
    }
}

/// The seed of item `index` of a batch seeded with `seed` (SplitMix64 of both),
/// so that every image gets its own reproducible random crop.
///
/// ```
/// use diffclip_data::preprocess::item_seed;
/// assert_ne!(item_seed(0, 0), item_seed(0, 1));
/// assert_eq!(item_seed(5, 3), item_seed(5, 3));
/// ```
pub fn item_seed(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
