//! Image-folder classification sets (`root/CLASS/*.jpg`, torchvision's `ImageFolder`).

use std::path::{Path, PathBuf};

use super::batch::ClipItem;
use super::error::DataError;
use super::loader::ImageLoader;
use super::subset::LabelSubset;
use super::traits::{ClassificationDataset, ClipDataset, impl_burn_dataset};

/// File extensions (lower case) taken as images.
pub const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "webp", "gif", "bmp"];

/// `root/CLASS/**/*.{jpg,jpeg,png,webp,gif,bmp}`: classes are the sub-folders in sorted order
/// (class `i` = the `i`-th folder), images sorted by path within each class, hidden entries
/// ignored. Class names default to the folder names; item captions are the first template
/// with the class name. A class folder without any image is an error naming it (the same rule
/// as `diffclip-eval`'s `ImageFolder`).
///
/// ```no_run
/// use diffclip_data::datasets::{ClassificationDataset, ImageFolderDataset, ImageLoader, LabelSubset};
/// use diffclip_data::preprocess::Pipeline;
/// let loader = ImageLoader::new(Pipeline::from_name("openai", 224)?);
/// let subset = LabelSubset::from_metadata_file("zeroshot_metadata.json", "imagenet_a")?;
/// let ds = ImageFolderDataset::open("imagenet-a", loader)?   // 200 WordNet-id folders
///     .with_label_subset(subset)?                          // local class i = ImageNet class indices[i]
///     .with_class_names_file("imagenet_a_names.txt")?;     // one name per line, folder order
/// assert_eq!(ds.class_names().len(), 200);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ImageFolderDataset {
    root: PathBuf,
    folders: Vec<String>,
    class_names: Vec<String>,
    templates: Vec<String>,
    samples: Vec<(PathBuf, usize)>,
    subset: Option<LabelSubset>,
    loader: ImageLoader,
}

impl ImageFolderDataset {
    /// Lists `root`'s class folders and images (images are not opened yet).
    pub fn open(root: impl AsRef<Path>, loader: ImageLoader) -> Result<Self, DataError> {
        let root = root.as_ref().to_path_buf();
        let mut folders: Vec<String> = sorted_entries(&root)?
            .into_iter()
            .filter(|p| p.is_dir())
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        folders.sort();
        if folders.is_empty() {
            return Err(DataError::Config(format!(
                "{} has no class folders",
                root.display()
            )));
        }
        let mut samples = Vec::new();
        for (class, folder) in folders.iter().enumerate() {
            let dir = root.join(folder);
            let mut files = Vec::new();
            collect_images(&dir, &mut files)?;
            if files.is_empty() {
                // The same rule as diffclip-eval's ImageFolder: an empty class is almost
                // always a mistake (wrong root, images not copied yet).
                return Err(DataError::Config(format!(
                    "class folder {} has no images (.{})",
                    dir.display(),
                    IMAGE_EXTENSIONS.join(", .")
                )));
            }
            files.sort();
            samples.extend(files.into_iter().map(|f| (f, class)));
        }
        Ok(Self {
            root,
            class_names: folders.clone(),
            folders,
            templates: vec!["a photo of a {c}.".into()],
            samples,
            subset: None,
            loader,
        })
    }

    /// Replaces the class names (one per folder, in folder order).
    pub fn with_class_names(mut self, names: Vec<String>) -> Result<Self, DataError> {
        if names.len() != self.folders.len() {
            return Err(DataError::Config(format!(
                "{} class names for {} class folders",
                names.len(),
                self.folders.len()
            )));
        }
        self.class_names = names;
        Ok(self)
    }

    /// Reads class names from a file: one per line in folder order, a JSON array in folder
    /// order, or a JSON object mapping folder name -> class name.
    pub fn with_class_names_file(self, path: impl AsRef<Path>) -> Result<Self, DataError> {
        let path = path.as_ref();
        let text = crate::files::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let json_err = |m: String| DataError::Json {
            path: path.to_path_buf(),
            message: m,
        };
        let names = match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| json_err("class names must be strings".into()))?,
            Ok(serde_json::Value::Object(map)) => self
                .folders
                .iter()
                .map(|f| map.get(f).and_then(|v| v.as_str()).map(str::to_string))
                .zip(&self.folders)
                .map(|(n, f)| n.ok_or_else(|| json_err(format!("no class name for folder {f:?}"))))
                .collect::<Result<Vec<_>, _>>()?,
            _ => text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
        };
        self.with_class_names(names)
    }

    /// Declares that the folders are the classes of `subset` (in order), e.g. ImageNet-A's 200
    /// of ImageNet's 1000; labels stay local (`0..200`), [`full_label`](Self::full_label) maps
    /// them to the full space.
    pub fn with_label_subset(mut self, subset: LabelSubset) -> Result<Self, DataError> {
        if subset.len() != self.folders.len() {
            return Err(DataError::Config(format!(
                "label subset has {} classes but {} has {} class folders",
                subset.len(),
                self.root.display(),
                self.folders.len()
            )));
        }
        self.subset = Some(subset);
        Ok(self)
    }

    /// [`with_label_subset`](Self::with_label_subset) with the subset found by looking up each
    /// folder name in `full_ids` (e.g. ImageNet's WordNet ids).
    pub fn with_folder_ids<S: AsRef<str>>(self, full_ids: &[S]) -> Result<Self, DataError> {
        let subset = LabelSubset::from_ids(&self.folders, full_ids)?;
        self.with_label_subset(subset)
    }

    /// Replaces the prompt templates (`{c}` = class name); the first makes item captions.
    pub fn with_templates(mut self, templates: Vec<String>) -> Result<Self, DataError> {
        if templates.is_empty() {
            return Err(DataError::Config(
                "at least one prompt template is needed".into(),
            ));
        }
        self.templates = templates;
        Ok(self)
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Class folder names, sorted (class `i` = `folders()[i]`).
    pub fn folders(&self) -> &[String] {
        &self.folders
    }

    /// Every image with its (local) class.
    pub fn samples(&self) -> &[(PathBuf, usize)] {
        &self.samples
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The label subset, if one was set.
    pub fn label_subset(&self) -> Option<&LabelSubset> {
        self.subset.as_ref()
    }

    /// The full-space label of local class `class` (itself without a subset).
    pub fn full_label(&self, class: usize) -> Option<usize> {
        match &self.subset {
            Some(s) => s.to_full(class),
            None => (class < self.folders.len()).then_some(class),
        }
    }

    /// The image loader (pipeline, seed, epoch, policy, skip counter).
    pub fn loader(&self) -> &ImageLoader {
        &self.loader
    }

    /// Skipped images so far.
    pub fn skip_counter(&self) -> &super::SkipCounter {
        self.loader.skip_counter()
    }
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let read = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut out = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

fn collect_images(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DataError> {
    for path in sorted_entries(dir)? {
        if path.is_dir() {
            collect_images(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            out.push(path);
        }
    }
    Ok(())
}

impl ClipDataset for ImageFolderDataset {
    fn num_items(&self) -> usize {
        self.samples.len()
    }

    fn image_size(&self) -> usize {
        self.loader.image_size()
    }

    fn set_epoch(&self, epoch: u64) {
        self.loader.set_epoch(epoch);
    }

    fn try_get(&self, index: usize) -> Result<ClipItem, DataError> {
        let (path, class) = self.samples.get(index).ok_or(DataError::OutOfRange {
            index,
            len: self.samples.len(),
        })?;
        let image = self.loader.load(path, index)?;
        let caption = self.templates[0].replace("{c}", &self.class_names[*class]);
        Ok(ClipItem {
            image,
            size: self.loader.image_size(),
            caption,
            label: Some(*class),
        })
    }

    fn get_item(&self, index: usize) -> Result<ClipItem, DataError> {
        self.loader
            .get_with_policy(self.samples.len(), index, |i| self.try_get(i))
    }
}

impl ClassificationDataset for ImageFolderDataset {
    fn class_names(&self) -> &[String] {
        &self.class_names
    }

    fn templates(&self) -> &[String] {
        &self.templates
    }

    fn label(&self, index: usize) -> Result<usize, DataError> {
        self.samples
            .get(index)
            .map(|s| s.1)
            .ok_or(DataError::OutOfRange {
                index,
                len: self.samples.len(),
            })
    }
}

impl_burn_dataset!(ImageFolderDataset);
