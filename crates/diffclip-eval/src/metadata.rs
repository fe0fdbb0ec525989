//! Class names and prompt templates shipped in the crate (`data/zeroshot_metadata.json`, 84 KB):
//! ImageNet's 1000 classes, WordNet ids, the 80 OpenAI templates, the 7 "simple" templates, the
//! 200-class subsets of ImageNet-A/-R/-O, and CLIP_benchmark's names/templates of other datasets.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use serde::Deserialize;

use crate::EvalError;

const METADATA_JSON: &str = include_str!("../data/zeroshot_metadata.json");

/// The whole metadata file.
#[derive(Debug, Clone, Deserialize)]
pub struct ZeroShotMetadata {
    /// Where the data comes from.
    pub description: String,
    /// ImageNet-1k names, templates, WordNet ids and subsets.
    pub imagenet1k: ImageNetMetadata,
    /// Other datasets by CLIP_benchmark name (`cifar10`, `pets`, `flowers`, ...).
    pub datasets: BTreeMap<String, DatasetPrompts>,
}

/// ImageNet-1k metadata (class-index order throughout).
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
pub struct DatasetPrompts {
    /// Class names; `None` where CLIP_benchmark takes them from the dataset itself.
    pub classnames: Option<Vec<String>>,
    /// Prompt templates with `{c}`.
    pub templates: Option<Vec<String>>,
}

/// The parsed metadata (parsed once).
///
/// ```
/// let m = diffclip_eval::metadata::metadata();
/// assert_eq!(m.imagenet1k.classnames.len(), 1000);
/// assert_eq!(m.imagenet1k.templates_openai.len(), 80);
/// assert_eq!(m.imagenet1k.imagenet_r_class_indices.len(), 200);
/// ```
///
/// # Panics
/// Only if the JSON embedded at build time is corrupt (a unit test parses it).
pub fn metadata() -> &'static ZeroShotMetadata {
    static PARSED: OnceLock<ZeroShotMetadata> = OnceLock::new();
    PARSED.get_or_init(|| {
        serde_json::from_str(METADATA_JSON).expect("embedded zeroshot_metadata.json")
    })
}

/// Index of an ImageNet WordNet id (`n01440764` -> 0).
///
/// ```
/// assert_eq!(diffclip_eval::metadata::imagenet_wnid_index("n01443537"), Some(1));
/// ```
pub fn imagenet_wnid_index(wnid: &str) -> Option<usize> {
    static INDEX: OnceLock<HashMap<String, usize>> = OnceLock::new();
    INDEX
        .get_or_init(|| {
            metadata()
                .imagenet1k
                .wnids
                .iter()
                .enumerate()
                .map(|(i, w)| (w.clone(), i))
                .collect()
        })
        .get(wnid)
        .copied()
}

/// The 200-class subsets of ImageNet variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageNetSubset {
    /// ImageNet-A.
    A,
    /// ImageNet-R.
    R,
    /// ImageNet-O.
    O,
}

impl ImageNetSubset {
    /// The subset's class indices into the 1000 ImageNet classes.
    pub fn class_indices(self) -> &'static [usize] {
        let m = &metadata().imagenet1k;
        match self {
            Self::A => &m.imagenet_a_class_indices,
            Self::R => &m.imagenet_r_class_indices,
            Self::O => &m.imagenet_o_class_indices,
        }
    }
}

/// Templates by name: `openai` (80), `simple` (7), or a dataset of [`ZeroShotMetadata::datasets`].
///
/// ```
/// assert_eq!(diffclip_eval::metadata::templates("simple").unwrap().len(), 7);
/// assert!(diffclip_eval::metadata::templates("nope").is_err());
/// ```
pub fn templates(name: &str) -> Result<Vec<String>, EvalError> {
    let m = metadata();
    match name {
        "openai" | "imagenet" | "imagenet1k" => Ok(m.imagenet1k.templates_openai.clone()),
        "simple" => Ok(m.imagenet1k.templates_simple.clone()),
        _ => m
            .datasets
            .get(name)
            .and_then(|d| d.templates.clone())
            .ok_or_else(|| unknown("template set", name, true)),
    }
}

/// Class names by dataset name: `imagenet1k` or a dataset of [`ZeroShotMetadata::datasets`] that
/// ships names (CIFAR, DTD, ... take theirs from the data: pass a `classnames.txt` instead).
///
/// ```
/// assert_eq!(diffclip_eval::metadata::classnames("pets").unwrap().len(), 37);
/// assert!(diffclip_eval::metadata::classnames("cifar10").is_err());
/// ```
pub fn classnames(dataset: &str) -> Result<Vec<String>, EvalError> {
    let m = metadata();
    match dataset {
        "imagenet" | "imagenet1k" => Ok(m.imagenet1k.classnames.clone()),
        _ => m
            .datasets
            .get(dataset)
            .and_then(|d| d.classnames.clone())
            .ok_or_else(|| unknown("class-name set", dataset, false)),
    }
}

fn unknown(what: &'static str, name: &str, templates: bool) -> EvalError {
    let mut known: Vec<&str> = if templates {
        vec!["openai", "simple", "imagenet1k"]
    } else {
        vec!["imagenet1k"]
    };
    known.extend(
        metadata()
            .datasets
            .iter()
            .filter(|(_, d)| {
                if templates {
                    d.templates.is_some()
                } else {
                    d.classnames.is_some()
                }
            })
            .map(|(k, _)| k.as_str()),
    );
    EvalError::Unknown {
        what,
        name: name.into(),
        known: known.join(", "),
    }
}

/// A template with the class name filled in (`{c}`, or `{}` as in OpenAI's notebook).
///
/// ```
/// assert_eq!(diffclip_eval::metadata::fill_template("a photo of a {c}.", "dog"), "a photo of a dog.");
/// ```
pub fn fill_template(template: &str, classname: &str) -> String {
    if template.contains("{c}") {
        template.replace("{c}", classname)
    } else {
        template.replace("{}", classname)
    }
}

/// Class names from a metadata name ([`classnames`]) or, when `spec` is an existing file, one
/// name per line of it.
pub fn classnames_from(spec: &str) -> Result<Vec<String>, EvalError> {
    let path = std::path::Path::new(spec);
    if path.is_file() {
        crate::dataset::read_lines(path)
    } else {
        classnames(spec)
    }
}

/// Templates from a name ([`templates`]) or, when `spec` is an existing file, one template per
/// line of it (each must contain `{c}` or `{}`).
pub fn templates_from(spec: &str) -> Result<Vec<String>, EvalError> {
    let path = std::path::Path::new(spec);
    if !path.is_file() {
        return templates(spec);
    }
    let lines = crate::dataset::read_lines(path)?;
    if let Some(i) = lines
        .iter()
        .position(|t| !t.contains("{c}") && !t.contains("{}"))
    {
        return Err(EvalError::format(
            path,
            i + 1,
            "a template needs {c} where the class name goes",
        ));
    }
    Ok(lines)
}
