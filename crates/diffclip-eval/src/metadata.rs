//! Class names and prompt templates shipped in the crate (`data/zeroshot_metadata.json`, 84 KB):
//! ImageNet's 1000 classes, WordNet ids, the 80 OpenAI templates, the 7 "simple" templates, the
//! 200-class subsets of ImageNet-A/-R/-O, and CLIP_benchmark's names/templates of other datasets.

use std::collections::HashMap;
use std::sync::OnceLock;

pub use diffclip_data::metadata::{
    DatasetPrompts, ImageNetMetadata, MAX_PROMPT_BYTES, MAX_PROMPTS_TOTAL_BYTES, ZeroShotMetadata, check_prompt, fill_template, filled_len, is_template, shortened,
};

use crate::EvalError;

const METADATA_JSON: &str = include_str!("../data/zeroshot_metadata.json");

/// The shipped metadata, parsed once (by [`ZeroShotMetadata`], the one parser of the file).
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
        ZeroShotMetadata::from_json(METADATA_JSON).expect("embedded zeroshot_metadata.json")
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
    // A dataset's entry may repeat a built-in name (imagenet1k): each name once.
    let mut seen = std::collections::HashSet::new();
    known.retain(|k| seen.insert(*k));
    EvalError::Unknown {
        what,
        name: name.into(),
        known: known.join(", "),
    }
}

/// Class names from a metadata name ([`classnames`]) or, when `spec` is an existing file, from
/// the file ([`diffclip_data::datasets::read_class_names`]: one name per line, blank lines
/// skipped, or a JSON list).
pub fn classnames_from(spec: &str) -> Result<Vec<String>, EvalError> {
    let path = std::path::Path::new(spec);
    if path.is_file() {
        Ok(diffclip_data::datasets::read_class_names(path, &[])?)
    } else {
        classnames(spec).map_err(|e| not_a_file(spec).unwrap_or(e))
    }
}

/// When `spec`, known by no name, exists or looks like a path: why it is not a file to read
/// (a missing file is a missing file, not an unknown name).
fn not_a_file(spec: &str) -> Option<EvalError> {
    let path = std::path::Path::new(spec);
    let why = match std::fs::metadata(path) {
        Ok(m) => format!("is {}, not a file to read", diffclip_data::files::file_kind(m.file_type()).unwrap_or("not a regular file")),
        Err(e) if spec.contains(['/', '\\']) || path.extension().is_some() => e.to_string(),
        Err(_) => return None,
    };
    Some(EvalError::dataset(path, why))
}

/// Templates from a name ([`templates`]) or, when `spec` is an existing file, one template per
/// line of it ([`diffclip_data::files::read_lines`]: trimmed, blank lines skipped). Each must
/// have a placeholder, `{c}` or `{}` ([`fill_template`]); an empty file is an error.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let p = dir.path().join("t.txt");
/// std::fs::write(&p, "a photo of a {c}.\n\nitap of a {}.\n").unwrap();
/// let t = diffclip_eval::metadata::templates_from(p.to_str().unwrap()).unwrap();
/// assert_eq!(t, ["a photo of a {c}.", "itap of a {}."]);
/// std::fs::write(&p, "a photo.\n").unwrap();
/// assert!(diffclip_eval::metadata::templates_from(p.to_str().unwrap()).is_err());
/// assert_eq!(diffclip_eval::metadata::templates_from("simple").unwrap().len(), 7);
/// let missing = diffclip_eval::metadata::templates_from("prompts.txt").unwrap_err();
/// assert!(missing.to_string().contains("No such file"), "{missing}");
/// let device = diffclip_eval::metadata::templates_from("/dev/null").unwrap_err();
/// assert!(device.to_string().contains("is a character device"), "{device}");
/// ```
pub fn templates_from(spec: &str) -> Result<Vec<String>, EvalError> {
    let path = std::path::Path::new(spec);
    if !path.is_file() {
        return templates(spec).map_err(|e| not_a_file(spec).unwrap_or(e));
    }
    let lines = diffclip_data::files::read_lines(path)?;
    if lines.is_empty() {
        return Err(EvalError::dataset(path, "no templates"));
    }
    if let Some(t) = lines.iter().find(|t| !is_template(t)) {
        return Err(EvalError::dataset(
            path,
            format!("template {t:?} has no {{c}} where the class name goes"),
        ));
    }
    Ok(lines)
}
