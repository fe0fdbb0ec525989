//! Retrieval sets with several captions per image (Karpathy-split JSON: Flickr30k, COCO).

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::batch::ClipItem;
use super::error::DataError;
use super::loader::ImageLoader;
use super::skip::BadSamplePolicy;
use super::traits::{ClipDataset, RetrievalDataset, impl_burn_dataset};

/// Which entries of a Karpathy JSON to read, and where the images are.
///
/// ```
/// use diffclip_data::datasets::KarpathyConfig;
/// let c = KarpathyConfig::default();
/// assert_eq!(c.splits, ["test"]);
/// let all: KarpathyConfig = serde_json::from_str(r#"{"splits": []}"#).unwrap();
/// assert!(all.splits.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KarpathyConfig {
    /// Keep entries whose `split` is one of these (empty = all entries).
    pub splits: Vec<String>,
    /// Directory holding the images (`ROOT/[filepath/]filename`); `None` = the JSON's directory.
    pub image_root: Option<PathBuf>,
}

impl Default for KarpathyConfig {
    fn default() -> Self {
        Self {
            splits: vec!["test".into()],
            image_root: None,
        }
    }
}

/// A Karpathy-style retrieval set: `{"images": [{"filename", "filepath"?, "split",
/// "sentences": [{"raw"}, ...]}, ...]}`. Items are images (with their first caption);
/// [`captions`](RetrievalDataset::captions) lists every caption grouped by image and
/// [`caption_to_image`](RetrievalDataset::caption_to_image) maps each to its image.
///
/// Entries without a file name or without captions are skipped and counted under
/// [`BadSamplePolicy::Skip`], or fail the open (naming the entry) under
/// [`BadSamplePolicy::Fail`]; a file that is not such JSON always fails.
///
/// ```no_run
/// use diffclip_data::datasets::{ImageLoader, KarpathyConfig, KarpathyDataset, RetrievalDataset};
/// use diffclip_data::preprocess::Pipeline;
/// let loader = ImageLoader::new(Pipeline::from_name("openai", 224)?);
/// let config = KarpathyConfig { image_root: Some("flickr30k-images".into()), ..Default::default() };
/// let ds = KarpathyDataset::open("dataset_flickr30k.json", &config, loader)?;
/// assert_eq!((ds.num_images(), ds.captions().len()), (1000, 5000));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct KarpathyDataset {
    images: Vec<PathBuf>,
    captions: Vec<String>,
    caption_to_image: Vec<usize>,
    ranges: Vec<Range<usize>>,
    loader: ImageLoader,
}

impl KarpathyDataset {
    /// Reads the JSON file (images are not opened yet).
    pub fn open(
        path: impl AsRef<Path>,
        config: &KarpathyConfig,
        loader: ImageLoader,
    ) -> Result<Self, DataError> {
        let path = path.as_ref();
        let json_err = |message: String| DataError::Json {
            path: path.to_path_buf(),
            message,
        };
        let text = crate::files::read_to_string(path, 1 << 30).map_err(|e| DataError::io(path, e))?;
        let json: Value = serde_json::from_str(&text).map_err(|e| json_err(e.to_string()))?;
        let entries = json
            .get("images")
            .and_then(Value::as_array)
            .ok_or_else(|| json_err("no \"images\" array".into()))?;
        let root = match &config.image_root {
            Some(r) => r.clone(),
            None => path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf(),
        };
        let mut ds = Self {
            images: vec![],
            captions: vec![],
            caption_to_image: vec![],
            ranges: vec![],
            loader,
        };
        let mut selected = 0;
        for (i, entry) in entries.iter().enumerate() {
            let split = entry.get("split").and_then(Value::as_str).unwrap_or("");
            if !config.splits.is_empty() && !config.splits.iter().any(|s| s == split) {
                continue;
            }
            selected += 1;
            match parse_entry(entry, &root) {
                Ok((image, captions)) => ds.push(image, captions),
                Err(m) => {
                    let e = json_err(format!("images[{i}]: {m}"));
                    if ds.loader.policy() == BadSamplePolicy::Fail {
                        return Err(e);
                    }
                    ds.loader.skip_counter().record(&e);
                }
            }
        }
        // An empty set would evaluate to nothing without a word: say why it is empty.
        if ds.is_empty() {
            let found: std::collections::BTreeSet<&str> = entries
                .iter()
                .map(|e| e.get("split").and_then(Value::as_str).unwrap_or("(none)"))
                .collect();
            let found: Vec<&str> = found.into_iter().collect();
            return Err(json_err(match (entries.is_empty(), selected) {
                (true, _) => "the \"images\" array is empty".into(),
                (false, 0) => format!(
                    "no entry has split {}; the file's splits are {}",
                    config.splits.join(" or "),
                    found.join(", ")
                ),
                (false, n) => format!("none of the {n} selected entries could be used"),
            }));
        }
        Ok(ds)
    }

    /// A retrieval set from in-memory lists: image paths and each image's captions.
    ///
    /// ```
    /// use diffclip_data::datasets::{ImageLoader, KarpathyDataset, RetrievalDataset};
    /// use diffclip_data::preprocess::Pipeline;
    /// let loader = ImageLoader::new(Pipeline::from_name("openai", 32).unwrap());
    /// let caps = vec![vec!["a dog".to_string(), "a puppy".to_string()], vec!["a cat".to_string()]];
    /// let ds = KarpathyDataset::from_lists(vec!["a.jpg".into(), "b.jpg".into()], caps, loader).unwrap();
    /// assert_eq!(ds.caption_to_image(), [0, 0, 1]);
    /// assert_eq!(ds.captions_of(0), ["a dog", "a puppy"]);
    /// ```
    pub fn from_lists(
        images: Vec<PathBuf>,
        captions: Vec<Vec<String>>,
        loader: ImageLoader,
    ) -> Result<Self, DataError> {
        if images.len() != captions.len() || captions.iter().any(Vec::is_empty) {
            return Err(DataError::Config(
                "every image needs at least one caption".into(),
            ));
        }
        let mut ds = Self {
            images: vec![],
            captions: vec![],
            caption_to_image: vec![],
            ranges: vec![],
            loader,
        };
        for (image, caps) in images.into_iter().zip(captions) {
            ds.push(image, caps);
        }
        Ok(ds)
    }

    fn push(&mut self, image: PathBuf, captions: Vec<String>) {
        let start = self.captions.len();
        self.caption_to_image
            .extend(std::iter::repeat_n(self.images.len(), captions.len()));
        self.captions.extend(captions);
        self.ranges.push(start..self.captions.len());
        self.images.push(image);
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// The image paths.
    pub fn images(&self) -> &[PathBuf] {
        &self.images
    }

    /// The captions of image `index` (empty if out of range).
    pub fn captions_of(&self, index: usize) -> &[String] {
        self.ranges
            .get(index)
            .map_or(&[], |r| &self.captions[r.clone()])
    }

    /// The indices (into [`captions`](RetrievalDataset::captions)) of image `index`'s captions.
    pub fn caption_range(&self, index: usize) -> Option<Range<usize>> {
        self.ranges.get(index).cloned()
    }

    /// Caption `caption` with its image, as a training pair.
    pub fn pair(&self, caption: usize) -> Result<ClipItem, DataError> {
        let len = self.captions.len();
        let image = *self
            .caption_to_image
            .get(caption)
            .ok_or(DataError::OutOfRange {
                index: caption,
                len,
            })?;
        let pixels = self.loader.load(&self.images[image], image)?;
        Ok(ClipItem {
            image: pixels,
            size: self.loader.image_size(),
            caption: self.captions[caption].clone(),
            label: None,
        })
    }

    /// The image loader (pipeline, seed, epoch, policy, skip counter).
    pub fn loader(&self) -> &ImageLoader {
        &self.loader
    }

    /// Skipped entries and images so far.
    pub fn skip_counter(&self) -> &super::SkipCounter {
        self.loader.skip_counter()
    }
}

fn parse_entry(entry: &Value, root: &Path) -> Result<(PathBuf, Vec<String>), String> {
    let filename = entry
        .get("filename")
        .and_then(Value::as_str)
        .filter(|f| !f.is_empty());
    let filename = filename.ok_or("no \"filename\"")?;
    let mut image = root.to_path_buf();
    if let Some(dir) = entry.get("filepath").and_then(Value::as_str) {
        image.push(dir);
    }
    image.push(filename);
    let sentences = entry
        .get("sentences")
        .and_then(Value::as_array)
        .ok_or("no \"sentences\" array")?;
    let captions = sentences
        .iter()
        .map(|s| match s.get("raw").and_then(Value::as_str) {
            Some(raw) => Some(raw.trim().to_string()),
            None => s.as_str().map(|raw| raw.trim().to_string()),
        })
        .collect::<Option<Vec<_>>>()
        .ok_or("a sentence without \"raw\" text")?;
    if captions.is_empty() {
        return Err(format!("{filename} has no captions"));
    }
    Ok((image, captions))
}

impl RetrievalDataset for KarpathyDataset {
    fn num_images(&self) -> usize {
        self.images.len()
    }

    fn image_size(&self) -> usize {
        self.loader.image_size()
    }

    fn load_image(&self, index: usize) -> Result<Vec<f32>, DataError> {
        let path = self.images.get(index).ok_or(DataError::OutOfRange {
            index,
            len: self.images.len(),
        })?;
        self.loader.load(path, index)
    }

    fn captions(&self) -> &[String] {
        &self.captions
    }

    fn caption_to_image(&self) -> &[usize] {
        &self.caption_to_image
    }
}

impl ClipDataset for KarpathyDataset {
    fn num_items(&self) -> usize {
        self.images.len()
    }

    fn image_size(&self) -> usize {
        self.loader.image_size()
    }

    fn set_epoch(&self, epoch: u64) {
        self.loader.set_epoch(epoch);
    }

    fn try_get(&self, index: usize) -> Result<ClipItem, DataError> {
        let image = self.load_image(index)?;
        Ok(ClipItem {
            image,
            size: self.loader.image_size(),
            caption: self.captions_of(index)[0].clone(),
            label: None,
        })
    }

    fn get_item(&self, index: usize) -> Result<ClipItem, DataError> {
        self.loader
            .get_with_policy(self.images.len(), index, |i| self.try_get(i))
    }
}

impl_burn_dataset!(KarpathyDataset);
