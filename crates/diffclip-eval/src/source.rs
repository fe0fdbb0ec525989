//! `ImageSource`: where a pass gets its preprocessed images from, and what identifies them for
//! the embedding cache.

use std::path::PathBuf;

use burn::tensor::Tensor;
use diffclip_data::Pipeline;
use diffclip_data::datasets::{ClassificationDataset, RetrievalDataset};

use crate::EvalError;
use crate::cache::{data_key, identity_of};

type Loader<'d> = Box<dyn Fn(usize) -> Result<Vec<f32>, EvalError> + Send + Sync + 'd>;

/// `len` images of side `size`, each loaded on demand as `[3, S, S]` CHW f32, with an optional
/// identity: sources with one are cached by an [`crate::Evaluator`] with a cache.
///
/// ```no_run
/// use diffclip_data::Pipeline;
/// use diffclip_eval::ImageSource;
/// let pipeline = Pipeline::from_name("slip", 224)?;
/// let src = ImageSource::files(vec!["a.jpg".into(), "b.png".into()], &pipeline);
/// assert_eq!(src.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ImageSource<'d> {
    len: usize,
    size: usize,
    load: Loader<'d>,
    identity: Option<String>,
}

impl std::fmt::Debug for ImageSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageSource")
            .field("len", &self.len)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl<'d> ImageSource<'d> {
    /// Any loader; `identity` (when `Some`) must change whenever the images may change (it is
    /// hashed, with `len` and `size`, into the cache key).
    pub fn new(
        len: usize,
        size: usize,
        identity: Option<String>,
        load: impl Fn(usize) -> Result<Vec<f32>, EvalError> + Send + Sync + 'd,
    ) -> Self {
        let identity =
            identity.map(|id| data_key("image-source", [id, len.to_string(), size.to_string()]));
        Self {
            len,
            size,
            load: Box::new(load),
            identity,
        }
    }

    /// Image files through `pipeline`. The identity hashes every file's canonical path, size
    /// and modification time, on Unix its inode and status-change time too (which no copy
    /// keeping times, `cp -p` or `rsync -t`, can carry over), and the pipeline's configuration.
    pub fn files(paths: Vec<PathBuf>, pipeline: &Pipeline) -> ImageSource<'static> {
        let mut parts = vec![serde_json::to_string(pipeline.config()).unwrap_or_default()];
        for p in &paths {
            // A file that cannot be read still gets a key, so that its image fails alone when it
            // is decoded (skipped, or an error naming it), not the whole set.
            // One status read per file serves both parts.
            let identity = std::fs::metadata(p).map_err(|e| EvalError::io(p, e)).and_then(|meta| Ok(format!("{}\0{}", identity_of(p, &meta)?, change_stamp(&meta))));
            parts.push(identity.unwrap_or_else(|e| format!("{}\0unreadable\0{e}", p.display())));
        }
        let identity = data_key("image-files", &parts);
        let pipeline = pipeline.clone();
        ImageSource::new(paths.len(), pipeline.size(), Some(identity), move |i| Ok(pipeline.process_file(&paths[i], 0)?))
    }

    /// Preprocessed images already in a tensor `[N, 3, S, S]`, read back from its device once.
    /// Never cached (no identity): the tensor's values name nothing that could be checked later.
    ///
    /// ```
    /// use burn::tensor::{Device, Distribution, Tensor};
    /// use diffclip_eval::ImageSource;
    /// let images = Tensor::<4>::random([2, 3, 32, 32], Distribution::Default, &Device::flex());
    /// let src = ImageSource::from_tensor(images)?;
    /// assert_eq!((src.len(), src.size(), src.identity()), (2, 32, None));
    /// assert_eq!(src.load(1)?.len(), 3 * 32 * 32);
    /// # Ok::<(), diffclip_eval::EvalError>(())
    /// ```
    pub fn from_tensor(images: Tensor<4>) -> Result<ImageSource<'static>, EvalError> {
        let [n, c, h, w] = images.dims();
        if c != 3 || h != w {
            return Err(EvalError::Shape(format!(
                "images must be [N, 3, S, S], got {:?}",
                [n, c, h, w]
            )));
        }
        let values = images
            .try_to_vec_as::<f32>()
            .map_err(|e| EvalError::TensorRead(format!("{e:?}")))?;
        let per_image = c * h * w;
        Ok(ImageSource::new(n, h, None, move |i| {
            Ok(values[i * per_image..(i + 1) * per_image].to_vec())
        }))
    }

    /// The images of a `diffclip-data` classification set (e.g. a synthetic view);
    /// `identity` names it for the cache (`None`: never cached).
    pub fn classification(ds: &'d dyn ClassificationDataset, identity: Option<String>) -> Self {
        Self::new(ds.num_items(), ds.image_size(), identity, move |i| {
            Ok(ds.try_get(i)?.image)
        })
    }

    /// The images of a `diffclip-data` retrieval set.
    pub fn retrieval(ds: &'d dyn RetrievalDataset, identity: Option<String>) -> Self {
        Self::new(ds.num_images(), ds.image_size(), identity, move |i| {
            Ok(ds.load_image(i)?)
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Image side `S`.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The cache key (a SHA-256 hex digest), if any.
    pub fn identity(&self) -> Option<&str> {
        self.identity.as_deref()
    }

    /// Image `index` (below [`Self::len`]), checked to hold `3 * S * S` values.
    pub fn load(&self, index: usize) -> Result<Vec<f32>, EvalError> {
        // Loaders index their own lists: one past the end would panic inside them.
        if index >= self.len {
            return Err(EvalError::Invalid(format!(
                "image {index} asked of a source of {} images",
                self.len
            )));
        }
        let v = (self.load)(index)?;
        if v.len() != 3 * self.size * self.size {
            return Err(EvalError::Shape(format!(
                "image {index} has {} values, expected 3 x {1} x {1}",
                v.len(),
                self.size
            )));
        }
        Ok(v)
    }
}

/// A file's inode and status-change time on Unix: a file replaced (written, copied over, even
/// with its old modification time set back) gets another. Empty elsewhere.
fn change_stamp(meta: &std::fs::Metadata) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        format!("{}\0{}.{}", meta.ino(), meta.ctime(), meta.ctime_nsec())
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        String::new()
    }
}
