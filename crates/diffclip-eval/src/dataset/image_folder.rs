//! `ImageFolder`: `ROOT/<class>/**/<image>` as torchvision's `ImageFolder` reads it.

use std::path::{Path, PathBuf};

use crate::EvalError;

/// File extensions taken as images (case-insensitive), as torchvision's `IMG_EXTENSIONS`.
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp", "gif",
];

/// A classification set: one sub-folder per class (sorted by name: the label order), every image
/// below it (recursively, sorted by path). An optional `classnames.txt` in `ROOT` gives one
/// display name per line, in label order.
///
/// ```no_run
/// let set = diffclip_eval::dataset::ImageFolder::open("data/pets/test".as_ref())?;
/// println!("{} images of {} classes", set.len(), set.classes.len());
/// # Ok::<(), diffclip_eval::EvalError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFolder {
    /// The folder.
    pub root: PathBuf,
    /// Class folder names, sorted (label `i` is `classes[i]`).
    pub classes: Vec<String>,
    /// Display names from `classnames.txt`, if present.
    pub classnames: Option<Vec<String>>,
    /// Image paths.
    pub images: Vec<PathBuf>,
    /// Label of each image.
    pub labels: Vec<usize>,
}

impl ImageFolder {
    /// Scan `root`. Errors: a missing folder, no class folders, a class folder without images,
    /// a `classnames.txt` whose line count differs from the class count.
    pub fn open(root: &Path) -> Result<Self, EvalError> {
        let mut classes: Vec<String> = Vec::new();
        for entry in std::fs::read_dir(root).map_err(|e| EvalError::io(root, e))? {
            let entry = entry.map_err(|e| EvalError::io(root, e))?;
            if entry.path().is_dir() {
                classes.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        classes.sort();
        if classes.is_empty() {
            return Err(EvalError::dataset(
                root,
                "no class sub-folders (expected ROOT/<class>/<image>)",
            ));
        }
        let mut images = Vec::new();
        let mut labels = Vec::new();
        for (label, class) in classes.iter().enumerate() {
            let dir = root.join(class);
            let files = list_images(&dir)?;
            if files.is_empty() {
                return Err(EvalError::dataset(&dir, "class folder without images"));
            }
            labels.extend(std::iter::repeat_n(label, files.len()));
            images.extend(files);
        }
        let names_file = root.join("classnames.txt");
        let classnames = if names_file.is_file() {
            let names = read_lines(&names_file)?;
            if names.len() != classes.len() {
                return Err(EvalError::format(
                    &names_file,
                    names.len() + 1,
                    format!(
                        "{} class names for {} class folders",
                        names.len(),
                        classes.len()
                    ),
                ));
            }
            Some(names)
        } else {
            None
        };
        Ok(Self {
            root: root.to_path_buf(),
            classes,
            classnames,
            images,
            labels,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Whether the set has no images.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// Display names: `classnames.txt` if present, else the folder names with `_` as spaces.
    pub fn display_names(&self) -> Vec<String> {
        self.classnames
            .clone()
            .unwrap_or_else(|| self.classes.iter().map(|c| c.replace('_', " ")).collect())
    }
}

/// Every image file below `dir`, recursively, sorted by path.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>, EvalError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| EvalError::io(&d, e))? {
            let path = entry.map_err(|e| EvalError::io(&d, e))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if is_image(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Whether `path` has an image extension.
pub fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Non-empty trimmed lines of a text file; an empty line in the middle is an error naming it.
pub fn read_lines(path: &Path) -> Result<Vec<String>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let l = l.trim();
            if l.is_empty() {
                Err(EvalError::format(path, i + 1, "empty line"))
            } else {
                Ok(l.to_string())
            }
        })
        .collect()
}
