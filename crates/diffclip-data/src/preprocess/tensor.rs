//! Burn tensors from preprocessed images.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};

use super::error::PreprocessError;
use super::pipeline::Pipeline;

/// One `[3, S, S]` CHW image as a `Tensor<3>`.
///
/// ```
/// use burn::tensor::Device;
/// use diffclip_data::preprocess::{image_tensor, DecodedImage, Pipeline, Pixels};
/// let p = Pipeline::from_name("openai", 8).unwrap();
/// let img = DecodedImage::new(2, 2, Pixels::Rgb(vec![9; 12])).unwrap();
/// let t = image_tensor(p.process_image(&img, 0), 8, &Device::flex()).unwrap();
/// assert_eq!(t.dims(), [3, 8, 8]);
/// assert!(image_tensor(vec![0.0; 5], 8, &Device::flex()).is_err()); // not 3 x 8 x 8
/// ```
pub fn image_tensor(chw: Vec<f32>, size: usize, device: &Device) -> Result<Tensor<3>, PreprocessError> {
    if Some(chw.len()) != size.checked_mul(size).and_then(|n| n.checked_mul(3)) {
        return Err(PreprocessError::ImageLength { index: 0, got: chw.len(), size });
    }
    Ok(Tensor::<3>::from_data(TensorData::new(chw, [3, size, size]), device))
}

/// Stacks `[3, S, S]` CHW images into a `[B, 3, S, S]` `Tensor<4>`.
///
/// ```
/// use burn::tensor::Device;
/// use diffclip_data::preprocess::batch_tensor;
/// let b = batch_tensor(vec![vec![0.0; 3 * 4 * 4], vec![1.0; 3 * 4 * 4]], 4, &Device::flex()).unwrap();
/// assert_eq!(b.dims(), [2, 3, 4, 4]);
/// let e = batch_tensor(vec![vec![0.0; 48], vec![0.0; 12]], 4, &Device::flex()).unwrap_err();
/// assert!(e.to_string().starts_with("image 1 holds 12 values"), "{e}");
/// ```
pub fn batch_tensor(images: Vec<Vec<f32>>, size: usize, device: &Device) -> Result<Tensor<4>, PreprocessError> {
    let b = images.len();
    if let Some((index, img)) = images.iter().enumerate().find(|(_, img)| Some(img.len()) != size.checked_mul(size).and_then(|n| n.checked_mul(3))) {
        return Err(PreprocessError::ImageLength { index, got: img.len(), size });
    }
    let flat: Vec<f32> = images.into_iter().flatten().collect();
    Ok(Tensor::<4>::from_data(TensorData::new(flat, [b, 3, size, size]), device))
}

impl Pipeline {
    /// Decodes and processes one file into a `[3, S, S]` tensor.
    ///
    /// ```no_run
    /// use burn::tensor::Device;
    /// use diffclip_data::preprocess::Pipeline;
    /// let t = Pipeline::from_name("openai", 224)?.load_tensor("a.jpg", 0, &Device::flex())?;
    /// assert_eq!(t.dims(), [3, 224, 224]);
    /// # Ok::<(), diffclip_data::preprocess::PreprocessError>(())
    /// ```
    pub fn load_tensor(
        &self,
        path: impl AsRef<Path>,
        seed: u64,
        device: &Device,
    ) -> Result<Tensor<3>, PreprocessError> {
        image_tensor(self.process_file(path, seed)?, self.size(), device)
    }

    /// Decodes and processes files in parallel into a `[B, 3, S, S]` tensor
    /// (see [`Pipeline::process_files`] for seeding and errors).
    ///
    /// ```no_run
    /// use burn::tensor::Device;
    /// use diffclip_data::preprocess::Pipeline;
    /// let p = Pipeline::from_name("slip", 224)?;
    /// let x = p.load_batch(&["a.jpg", "b.png"], 0, &Device::flex())?;
    /// assert_eq!(x.dims(), [2, 3, 224, 224]);
    /// # Ok::<(), diffclip_data::preprocess::PreprocessError>(())
    /// ```
    pub fn load_batch<P: AsRef<Path> + Sync>(
        &self,
        paths: &[P],
        seed: u64,
        device: &Device,
    ) -> Result<Tensor<4>, PreprocessError> {
        batch_tensor(self.process_files(paths, seed)?, self.size(), device)
    }
}
