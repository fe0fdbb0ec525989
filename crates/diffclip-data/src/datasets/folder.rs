//! Image-folder classification sets (`root/CLASS/*.jpg`, torchvision's `ImageFolder`).

use std::path::{Path, PathBuf};

use super::batch::ClipItem;
use super::class_names::read_class_names;
use super::error::DataError;
use super::loader::ImageLoader;
use super::subset::LabelSubset;
use super::traits::{ClassificationDataset, ClipDataset, impl_burn_dataset};
use crate::metadata::fill_template;
use crate::preprocess::{IMAGE_EXTENSIONS, ImageFormat};

/// An image-folder classification set, listed (no image is opened): `root/CLASS/**/IMAGE`, as
/// torchvision's `ImageFolder`. This is the one folder reader of the workspace: training's
/// `folder:` data and `--eval folder:` ([`ImageFolderDataset`]) and every evaluation of
/// `diffclip-eval` list folders with it, so a folder gives the same images, labels and class
/// names wherever it is read.
///
/// * **Classes** are the sub-folders of `root`, sorted by name (class `i` = the `i`-th folder).
/// * **Images** are the files below a class folder, recursively, whose extension (any case) is
///   one the decoder reads: [`IMAGE_EXTENSIONS`] (`jpg jpeg png gif webp bmp`, from
///   [`ImageFormat`]); within a class in torchvision's order: folders sorted by their path as a
///   string (the class folder's own files first), each folder's files by name. Other files are
///   ignored.
/// * **Hidden entries** (names starting with `.`) are ignored: class folders such as
///   `.ipynb_checkpoints`, hidden files and hidden sub-folders.
/// * A class folder without any image is an error naming it, as is a `root` without class
///   folders.
/// * **Class names**: `root/classnames.txt` when it exists (one name per class folder, in folder
///   order; read by [`read_class_names`], so a JSON list or folder-to-name object works too),
///   else the folder names with `_` read as spaces (`golden_retriever` -> `golden retriever`).
///
/// ```
/// use diffclip_data::datasets::ImageFolder;
/// let dir = tempfile::tempdir().unwrap();
/// for f in ["sea_lion/a.png", "sea_lion/b.JPG", "cat/x/c.webp", "cat/notes.txt", "cat/.d.png", ".git/e.png"] {
///     let p = dir.path().join(f);
///     std::fs::create_dir_all(p.parent().unwrap()).unwrap();
///     std::fs::write(p, b"").unwrap();
/// }
/// let set = ImageFolder::open(dir.path()).unwrap();
/// assert_eq!(set.classes, ["cat", "sea_lion"]);
/// assert_eq!(set.class_names, ["cat", "sea lion"]);
/// assert_eq!(set.labels, [0, 1, 1]);
/// assert_eq!(set.images[0], dir.path().join("cat/x/c.webp"));
/// std::fs::write(dir.path().join("classnames.txt"), "house cat\nsea lion (Zalophus)\n").unwrap();
/// assert_eq!(ImageFolder::open(dir.path()).unwrap().class_names[1], "sea lion (Zalophus)");
/// // A name too long for a prompt ("a photo of a {c}.", at most 64 KiB) is the file's error.
/// std::fs::write(dir.path().join("classnames.txt"), format!("cat\n{}\n", "z".repeat(70_000))).unwrap();
/// let err = ImageFolder::open(dir.path()).unwrap_err().to_string();
/// assert!(err.contains("classnames.txt") && err.contains("(70000 bytes)"), "{err}");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFolder {
    /// The folder.
    pub root: PathBuf,
    /// Class folder names, sorted (label `i` is `classes[i]`).
    pub classes: Vec<String>,
    /// Class names: from `classnames.txt`, else the folder names with `_` as spaces.
    pub class_names: Vec<String>,
    /// Image paths, by class, in torchvision's order within a class.
    pub images: Vec<PathBuf>,
    /// Label of each image.
    pub labels: Vec<usize>,
}

impl ImageFolder {
    /// Lists `root`. Errors name the folder or file: a missing `root`, no class folders, a class
    /// folder without images, a `classnames.txt` whose count differs from the class count or
    /// with a name too long for a prompt.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, DataError> {
        let root = root.as_ref().to_path_buf();
        let mut classes = Vec::new();
        for dir in sorted_entries(&root)?.into_iter().filter(|p| p.is_dir()) {
            // A class is named by its folder: a name that is no text cannot be one.
            match dir.file_name().map(|n| n.to_str()) {
                Some(Some(name)) => classes.push(name.to_string()),
                _ => return Err(DataError::Config(format!("class folder {} has a name that is not UTF-8 text: rename it", crate::files::printable(&dir.display().to_string())))),
            }
        }
        classes.sort();
        if classes.is_empty() {
            return Err(DataError::Config(format!(
                "{} has no class folders (expected ROOT/CLASS/IMAGE)",
                root.display()
            )));
        }
        let mut images = Vec::new();
        let mut labels = Vec::new();
        for (class, folder) in classes.iter().enumerate() {
            let dir = root.join(folder);
            let mut files = Vec::new();
            collect_images(&dir, &mut files)?;
            if files.is_empty() {
                // An empty class is almost always a mistake (wrong root, images not copied yet).
                return Err(DataError::Config(format!(
                    "class folder {} has no images (.{})",
                    dir.display(),
                    IMAGE_EXTENSIONS.join(", .")
                )));
            }
            labels.extend(std::iter::repeat_n(class, files.len()));
            images.extend(files);
        }
        let names_file = root.join("classnames.txt");
        // One that is there but no file (a FIFO, a folder) is refused by read_class_names, not
        // passed over for the folder names.
        // read_class_names gives one name per folder (or refuses the file).
        let class_names = if std::fs::symlink_metadata(&names_file).is_ok() {
            let names = read_class_names(&names_file, &classes)?;
            // Captioned under the default template until other templates are given (and
            // checked again then): a name too long for a prompt is the file's error.
            let too_long = |m: String| DataError::Config(format!("{}: {m}", names_file.display()));
            names.iter().try_for_each(|c| crate::metadata::check_prompt(DEFAULT_TEMPLATE, c)).map_err(too_long)?;
            names
        } else {
            classes.iter().map(|c| c.replace('_', " ")).collect()
        };
        Ok(Self {
            root,
            classes,
            class_names,
            images,
            labels,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}

/// The classification dataset of an [`ImageFolder`] (same listing rules): item captions are the
/// first template with the class name ([`fill_template`]). Class names default to the listing's
/// (`classnames.txt`, else folder names with `_` as spaces).
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
    /// Lists `root`'s class folders and images ([`ImageFolder::open`]; images are not opened
    /// yet).
    pub fn open(root: impl AsRef<Path>, loader: ImageLoader) -> Result<Self, DataError> {
        Ok(Self::from_folder(ImageFolder::open(root)?, loader))
    }

    /// The dataset of a listing.
    pub fn from_folder(folder: ImageFolder, loader: ImageLoader) -> Self {
        let ImageFolder {
            root,
            classes,
            class_names,
            images,
            labels,
        } = folder;
        Self {
            root,
            folders: classes,
            class_names,
            templates: vec![DEFAULT_TEMPLATE.into()],
            samples: images.into_iter().zip(labels).collect(),
            subset: None,
            loader,
        }
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
        check_captions(&self.templates[0], &names)?;
        self.class_names = names;
        Ok(self)
    }

    /// Reads class names from a file ([`read_class_names`]): one per line in folder order, a
    /// JSON array in folder order, or a JSON object mapping folder name -> class name.
    pub fn with_class_names_file(self, path: impl AsRef<Path>) -> Result<Self, DataError> {
        let names = read_class_names(path, &self.folders)?;
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

    /// Replaces the prompt templates (`{c}`, or `{}`, = class name: [`fill_template`]); the first
    /// makes item captions.
    pub fn with_templates(mut self, templates: Vec<String>) -> Result<Self, DataError> {
        if templates.is_empty() {
            return Err(DataError::Config(
                "at least one prompt template is needed".into(),
            ));
        }
        // Without the class name every class would get the same caption and prompt.
        if let Some(t) = templates.iter().find(|t| !crate::metadata::is_template(t)) {
            return Err(DataError::Config(format!(
                "prompt template {t:?} has no {{c}} (or {{}}) for the class name"
            )));
        }
        check_captions(&templates[0], &self.class_names)?;
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

/// The image files named by `paths`: a file is taken as given; a folder contributes every file
/// below it (recursively, hidden entries skipped) with an image extension, in torchvision's
/// `ImageFolder` order (folders by path string, then files by name), and the result keeps the
/// order of `paths`. A path of `paths` that does not exist (or a link to nothing) is an error
/// naming it.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::create_dir(dir.path().join("sub")).unwrap();
/// for f in ["b.png", "sub/a.jpg", "notes.txt", ".hidden.png"] {
///     std::fs::write(dir.path().join(f), b"").unwrap();
/// }
/// let files = diffclip_data::datasets::list_image_files(&[dir.path()]).unwrap();
/// let names: Vec<_> = files.iter().map(|p| p.strip_prefix(dir.path()).unwrap().to_path_buf()).collect();
/// assert_eq!(names, [std::path::PathBuf::from("b.png"), "sub/a.jpg".into()]);
/// assert!(diffclip_data::datasets::list_image_files(&[dir.path().join("typo")]).unwrap_err().to_string().contains("typo"));
/// ```
pub fn list_image_files(paths: &[impl AsRef<Path>]) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    for path in paths {
        let path = path.as_ref();
        // A path named by the caller must exist (a typo is an error); a file found in a folder
        // that cannot be read is the decoder's to report.
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => collect_images(path, &mut out)?,
            Ok(_) => out.push(path.to_path_buf()),
            Err(e) => return Err(DataError::io(path, e)),
        }
    }
    Ok(out)
}

/// The images below `dir` in torchvision's `ImageFolder` order: `sorted(os.walk(dir))` sorts the
/// folders by their path as a string (`c` < `c/a` < `c/a-b` < `c/a/x`, so a class folder's own
/// files come before its sub-folders'), then each folder's files by name.
fn collect_images(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DataError> {
    let mut found = Vec::new();
    walk_images(dir, &mut Vec::new(), &mut found)?;
    found.sort_by(|a, b| (a.parent().map(Path::as_os_str), a.file_name()).cmp(&(b.parent().map(Path::as_os_str), b.file_name())));
    out.extend(found);
    Ok(())
}

/// `chain`: the folders being walked, resolved, so that a link back to one of them (a loop,
/// which would list its images again and again) is an error naming the link.
fn walk_images(dir: &Path, chain: &mut Vec<PathBuf>, out: &mut Vec<PathBuf>) -> Result<(), DataError> {
    let resolved = std::fs::canonicalize(dir).map_err(|e| DataError::io(dir, e))?;
    if chain.contains(&resolved) {
        // Named by the link that closes the loop: the deepest one on the way to `dir`.
        let link = dir.ancestors().find(|a| a.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink())).unwrap_or(dir);
        let loop_error = std::io::Error::other(format!("a symbolic link back to {}, which holds it (a loop; met as {})", resolved.display(), dir.display()));
        return Err(DataError::io(link, loop_error));
    }
    chain.push(resolved);
    for path in sorted_entries(dir)? {
        if path.is_dir() {
            walk_images(&path, chain, out)?;
        } else if ImageFormat::from_path(&path).is_some() {
            out.push(path);
        }
    }
    chain.pop();
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
        let caption = fill_template(&self.templates[0], &self.class_names[*class]);
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

/// The template that captions a folder's images until [`ImageFolderDataset::with_templates`].
const DEFAULT_TEMPLATE: &str = "a photo of a {c}.";

/// Every class's caption (the first template filled) within the prompt limit.
fn check_captions(template: &str, class_names: &[String]) -> Result<(), DataError> {
    class_names.iter().try_for_each(|c| crate::metadata::check_prompt(template, c).map_err(DataError::Config))
}
