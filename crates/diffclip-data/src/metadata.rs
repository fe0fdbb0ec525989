//! `zeroshot_metadata.json` (class names, prompt templates, ImageNet subsets) and the filling
//! of prompt templates.
//!
//! [`ZeroShotMetadata`] is the one parser of that file: `diffclip-eval` reads its shipped copy
//! with it (`diffclip_eval::metadata::metadata()`), and
//! [`LabelSubset::from_metadata_file`](crate::datasets::LabelSubset::from_metadata_file) reads
//! any copy on disk with it. [`fill_template`] is the one way a class name goes into a prompt
//! template, for training captions of image folders and zero-shot classifiers alike.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::DataError;

/// The whole metadata file. Only `imagenet1k` is required; every other field defaults to empty,
/// so that a file holding only what one reader needs (e.g. a subset's class indices) parses.
///
/// ```
/// use diffclip_data::metadata::ZeroShotMetadata;
/// let m = ZeroShotMetadata::from_json(r#"{"imagenet1k": {"classnames": ["a", "b"], "imagenet_a_class_indices": [1]}}"#).unwrap();
/// assert_eq!(m.imagenet1k.subset("imagenet-a").unwrap(), [1]);
/// assert!(m.imagenet1k.subset("imagenet_r").is_err()); // absent (empty)
/// assert!(m.datasets.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ZeroShotMetadata {
    /// Where the data comes from.
    #[serde(default)]
    pub description: String,
    /// ImageNet-1k names, templates, WordNet ids and subsets.
    pub imagenet1k: ImageNetMetadata,
    /// Other datasets by CLIP_benchmark name (`cifar10`, `pets`, `flowers`, ...).
    #[serde(default)]
    pub datasets: BTreeMap<String, DatasetPrompts>,
}

/// ImageNet-1k metadata (class-index order throughout).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ImageNetMetadata {
    /// The OpenAI CLIP class names.
    pub classnames: Vec<String>,
    /// The 80 prompt templates of OpenAI CLIP (`{c}` stands for the class name).
    pub templates_openai: Vec<String>,
    /// The 7-template subset OpenAI found best.
    pub templates_simple: Vec<String>,
    /// WordNet ids (`n01440764`, ...), the folder names of ImageNet-style datasets.
    pub wnids: Vec<String>,
    /// The 200 class indices of ImageNet-A.
    pub imagenet_a_class_indices: Vec<usize>,
    /// The 200 class indices of ImageNet-R.
    pub imagenet_r_class_indices: Vec<usize>,
    /// The 200 class indices of ImageNet-O.
    pub imagenet_o_class_indices: Vec<usize>,
}

/// One dataset's class names (when CLIP_benchmark ships them) and templates.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct DatasetPrompts {
    /// Class names; `None` where CLIP_benchmark takes them from the dataset itself.
    #[serde(default)]
    pub classnames: Option<Vec<String>>,
    /// Prompt templates with `{c}`.
    #[serde(default)]
    pub templates: Option<Vec<String>>,
}

impl ZeroShotMetadata {
    /// Parses the JSON text of the file.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Reads and parses a metadata file (a regular file, see [`crate::files::open_regular`]);
    /// errors name it.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, DataError> {
        let path = path.as_ref();
        let text = crate::files::read_to_string(path, crate::files::MAX_LINE_BYTES).map_err(|e| DataError::io(path, e))?;
        Self::from_json(&text).map_err(|e| DataError::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }
}

impl ImageNetMetadata {
    /// The class indices of a 200-class subset by name: `imagenet_a`, `imagenet_r` or
    /// `imagenet_o` (any case, `-` for `_`, or the full key `imagenet_a_class_indices`). An
    /// unknown name, or a subset absent from the file, is an error saying so.
    pub fn subset(&self, name: &str) -> Result<&[usize], String> {
        let base = name.trim().to_ascii_lowercase().replace('-', "_");
        let base = base.strip_suffix("_class_indices").unwrap_or(&base);
        let list = match base {
            "imagenet_a" => &self.imagenet_a_class_indices,
            "imagenet_r" => &self.imagenet_r_class_indices,
            "imagenet_o" => &self.imagenet_o_class_indices,
            _ => {
                return Err(format!(
                    "unknown subset {name:?} (known: imagenet_a, imagenet_r, imagenet_o)"
                ));
            }
        };
        if list.is_empty() {
            return Err(format!(
                "no array \"imagenet1k.{base}_class_indices\" in the metadata"
            ));
        }
        Ok(list)
    }
}

/// A prompt template with the class name filled in. The placeholder is `{c}` (as in
/// `zeroshot_metadata.json` and open_clip); a template without `{c}` takes `{}` instead (as in
/// OpenAI's notebook). Every occurrence is replaced; a template with neither is returned as it
/// is ([`is_template`] tells).
///
/// ```
/// use diffclip_data::metadata::fill_template;
/// assert_eq!(fill_template("a photo of a {c}.", "dog"), "a photo of a dog.");
/// assert_eq!(fill_template("itap of a {}.", "dog"), "itap of a dog.");
/// assert_eq!(fill_template("{c} or {}?", "dog"), "dog or {}?");
/// ```
pub fn fill_template(template: &str, class_name: &str) -> String {
    if template.contains("{c}") {
        template.replace("{c}", class_name)
    } else {
        template.replace("{}", class_name)
    }
}

/// The most bytes a filled prompt may have: 64 KiB, thousands of tokens where the text tower
/// reads 77. A long name under a template repeating `{c}` would otherwise ask for gigabytes.
pub const MAX_PROMPT_BYTES: usize = 64 * 1024;

/// The most bytes all prompts of one classifier (every class under every template) may take
/// together: 256 MiB, where ImageNet's 1000 classes under the 80 OpenAI templates take 4 MB.
pub const MAX_PROMPTS_TOTAL_BYTES: usize = 256 * 1024 * 1024;

/// The bytes [`fill_template`] of `template` and `class_name` takes, computed without filling it.
pub fn filled_len(template: &str, class_name: &str) -> usize {
    let placeholder = if template.contains("{c}") { "{c}" } else { "{}" };
    let count = template.matches(placeholder).count();
    (template.len() - count * placeholder.len()).saturating_add(count.saturating_mul(class_name.len()))
}

/// Checks that [`fill_template`] of `template` and `class_name` stays within
/// [`MAX_PROMPT_BYTES`], before filling it; the error names the template and the name, shortened.
///
/// ```
/// use diffclip_data::metadata::check_prompt;
/// assert!(check_prompt("a photo of a {c}.", "dog").is_ok());
/// let err = check_prompt(&"{c}".repeat(1000), &"b".repeat(1000)).unwrap_err();
/// assert!(err.contains("1000000 bytes") && err.contains("bbbb…"), "{err}");
/// ```
pub fn check_prompt(template: &str, class_name: &str) -> Result<(), String> {
    let len = filled_len(template, class_name);
    if len <= MAX_PROMPT_BYTES {
        return Ok(());
    }
    Err(format!(
        "the class name {:?} ({} bytes) in the template {:?} makes a prompt of {len} bytes; at most {MAX_PROMPT_BYTES}",
        shortened(class_name, 40),
        class_name.len(),
        shortened(template, 40)
    ))
}

/// `text`'s first `max_chars` characters, with `…` when some were left out: a class name or
/// label quoted in a message, which may be megabytes long.
///
/// ```
/// use diffclip_data::metadata::shortened;
/// assert_eq!(shortened("golden retriever", 6), "golden…");
/// assert_eq!(shortened("dog", 6), "dog");
/// ```
pub fn shortened(text: &str, max_chars: usize) -> String {
    let mut out: String = text.chars().take(max_chars).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// Whether `template` has a placeholder [`fill_template`] fills (`{c}` or `{}`).
///
/// ```
/// assert!(diffclip_data::metadata::is_template("a {c}."));
/// assert!(!diffclip_data::metadata::is_template("a photo."));
/// ```
pub fn is_template(template: &str) -> bool {
    template.contains("{c}") || template.contains("{}")
}
