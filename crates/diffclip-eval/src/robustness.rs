//! Robustness: one model and one classifier over several sets sharing a label space (ImageNet,
//! -V2, -Sketch, and the 200-class -A / -R), each reported and averaged.

use std::path::Path;

use diffclip_data::Pipeline;
use diffclip_data::datasets::LabelSubset;
use serde::{Deserialize, Serialize};

use crate::dataset::ImageFolder;
use crate::metadata::{ImageNetSubset, imagenet_wnid_index, metadata};
use crate::{EvalError, Evaluator, ImageSource, Matrix, ZeroShotMetrics, zero_shot_metrics};

/// One evaluation set of a shared label space.
#[derive(Debug)]
pub struct RobustnessSet<'d> {
    /// Name in the report.
    pub name: String,
    /// The images.
    pub images: ImageSource<'d>,
    /// Labels in the full label space.
    pub labels: Vec<usize>,
    /// Classes the set is scored over (`None`: all); ImageNet-A/-R use their 200 classes.
    pub subset: Option<Vec<usize>>,
}

/// Metrics of one set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RobustnessEntry {
    /// Set name.
    pub name: String,
    /// Classes scored over.
    pub n_classes: usize,
    /// Its metrics.
    pub metrics: ZeroShotMetrics,
}

/// Every set and the unweighted averages over sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RobustnessReport {
    /// Per set, in the given order.
    pub sets: Vec<RobustnessEntry>,
    /// Mean top-1 over sets.
    pub average_top1: f64,
    /// Mean top-5 over the sets that have one.
    pub average_top5: Option<f64>,
}

/// Zero-shot metrics of `image_emb` against the rows `subset` of a full-space `classifier`
/// (all rows when `None`); `labels` are full-space and must lie in the subset.
///
/// ```
/// use diffclip_eval::{Matrix, robustness::subset_metrics};
/// let classifier = Matrix::new(3, 2, vec![1.0, 0.0, 0.0, 1.0, 0.7, 0.7]).unwrap();
/// let images = Matrix::new(1, 2, vec![0.6, 0.8]).unwrap();
/// // Over all classes the image picks class 2; over the subset {0, 1} it picks class 1.
/// assert_eq!(subset_metrics(&images, &[1], &classifier, None).unwrap().top1, 0.0);
/// assert_eq!(subset_metrics(&images, &[1], &classifier, Some(&[0, 1])).unwrap().top1, 1.0);
/// assert!(subset_metrics(&images, &[1], &classifier, Some(&[1, 1])).is_err());
/// ```
pub fn subset_metrics(
    image_emb: &Matrix,
    labels: &[usize],
    classifier: &Matrix,
    subset: Option<&[usize]>,
) -> Result<ZeroShotMetrics, EvalError> {
    let all: Vec<usize> = (0..classifier.rows()).collect();
    // Distinct classes in range: a repeated one would tie with itself and never be predicted.
    let subset = LabelSubset::new(subset.unwrap_or(&all).to_vec(), classifier.rows())?;
    let local_labels = labels
        .iter()
        .enumerate()
        .map(|(index, &y)| {
            subset.to_local(y).ok_or_else(|| EvalError::Invalid(format!("label {y} of image {index} is not in the class subset")))
        })
        .collect::<Result<Vec<usize>, EvalError>>()?;
    image_emb.check_finite("image embeddings")?;
    let logits = image_emb
        .l2_normalized()
        .matmul_t(&classifier.select_rows(subset.indices())?)?;
    zero_shot_metrics(&logits, &local_labels)
}

impl Evaluator<'_> {
    /// Evaluate every set with one full-space `classifier` and average.
    pub fn robustness(
        &self,
        classifier: &Matrix,
        sets: &[RobustnessSet<'_>],
    ) -> Result<RobustnessReport, EvalError> {
        if sets.is_empty() {
            return Err(EvalError::Invalid(
                "robustness needs at least one set".into(),
            ));
        }
        let mut entries = Vec::new();
        for set in sets {
            let features = self.image_features(&set.images)?;
            let metrics =
                subset_metrics(&features, &set.labels, classifier, set.subset.as_deref())?;
            let n_classes = set.subset.as_ref().map_or(classifier.rows(), Vec::len);
            entries.push(RobustnessEntry {
                name: set.name.clone(),
                n_classes,
                metrics,
            });
        }
        Ok(report(entries))
    }
}

/// Averages of `entries`.
pub fn report(sets: Vec<RobustnessEntry>) -> RobustnessReport {
    let n = sets.len().max(1) as f64;
    let average_top1 = sets.iter().map(|e| e.metrics.top1).sum::<f64>() / n;
    let top5: Vec<f64> = sets.iter().filter_map(|e| e.metrics.top5).collect();
    let average_top5 = (!top5.is_empty()).then(|| top5.iter().sum::<f64>() / top5.len() as f64);
    RobustnessReport {
        sets,
        average_top1,
        average_top5,
    }
}

/// Folder names of the ImageNet variants, as looked for under a robustness data root.
pub const IMAGENET_VARIANTS: &[&str] = &[
    "imagenet",
    "imagenet-v2",
    "imagenet-sketch",
    "imagenet-a",
    "imagenet-r",
];

/// The ImageNet class of a folder name: a WordNet id (`n01440764`), a class index (`0`..`999`,
/// ImageNet-V2's layout) or an OpenAI class name (case-insensitive, `_` as space).
///
/// ```
/// use diffclip_eval::robustness::imagenet_class_of_folder;
/// assert_eq!(imagenet_class_of_folder("n01440764"), Some(0));
/// assert_eq!(imagenet_class_of_folder("999"), Some(999));
/// assert_eq!(imagenet_class_of_folder("great_white_shark"), Some(2));
/// assert_eq!(imagenet_class_of_folder("1000"), None);
/// assert_eq!(imagenet_class_of_folder("sunglasses"), None); // two classes bear that name
/// ```
pub fn imagenet_class_of_folder(name: &str) -> Option<usize> {
    if let Some(i) = imagenet_wnid_index(name) {
        return Some(i);
    }
    let names = &metadata().imagenet1k.classnames;
    if let Ok(i) = name.parse::<usize>() {
        return (i < names.len()).then_some(i);
    }
    let wanted = name.replace('_', " ");
    // OpenAI's names repeat two ("missile" 657/744, "sunglasses" 836/837): such a folder must be
    // named by WordNet id or index, not guessed.
    let mut matches = names.iter().enumerate().filter(|(_, c)| c.eq_ignore_ascii_case(&wanted)).map(|(i, _)| i);
    match (matches.next(), matches.next()) {
        (Some(i), None) => Some(i),
        _ => None,
    }
}

/// The class subset scored for an ImageNet variant by name: `imagenet-a` and `imagenet-r`
/// (also with `_`) use their 200 classes; every other set all 1000.
pub fn imagenet_subset_of(name: &str) -> Option<Vec<usize>> {
    match imagenet_variant_name(name)? {
        "imagenet-a" => Some(ImageNetSubset::A.class_indices().to_vec()),
        "imagenet-r" => Some(ImageNetSubset::R.class_indices().to_vec()),
        _ => None,
    }
}

/// The entry of [`IMAGENET_VARIANTS`] that `name` spells (any case, `_` for `-`), if any.
///
/// ```
/// use diffclip_eval::robustness::imagenet_variant_name;
/// assert_eq!(imagenet_variant_name("ImageNet_A"), Some("imagenet-a"));
/// assert_eq!(imagenet_variant_name("imagenet-aa"), None);
/// ```
pub fn imagenet_variant_name(name: &str) -> Option<&'static str> {
    let wanted = name.to_ascii_lowercase().replace('_', "-");
    IMAGENET_VARIANTS.iter().copied().find(|v| *v == wanted)
}

/// An ImageNet-variant image folder (`ROOT/<wnid or index>/...`) as a set named `name`, one of
/// [`IMAGENET_VARIANTS`] (any case, `_` for `-`: a misspelt `imagenet-a` would be scored over
/// 1000 classes instead of its 200). A folder that is no ImageNet class, or a class outside the
/// set's subset, is an error naming the folder.
pub fn imagenet_variant(
    name: &str,
    root: &Path,
    pipeline: &Pipeline,
) -> Result<RobustnessSet<'static>, EvalError> {
    if imagenet_variant_name(name).is_none() {
        return Err(EvalError::Invalid(format!("unknown ImageNet variant {name:?} (known: {})", IMAGENET_VARIANTS.join(", "))));
    }
    let folder = ImageFolder::open(root)?;
    let mut class_of = Vec::with_capacity(folder.classes.len());
    for c in &folder.classes {
        class_of.push(imagenet_class_of_folder(c).ok_or_else(|| {
            EvalError::dataset(
                root.join(c),
                "not an ImageNet class (expected a WordNet id, 0..999 or a class name)",
            )
        })?);
    }
    let subset = imagenet_subset_of(name);
    if let Some(s) = &subset
        && let Some((i, _)) = class_of.iter().enumerate().find(|(_, c)| !s.contains(c))
    {
        return Err(EvalError::dataset(
            root.join(&folder.classes[i]),
            format!("class not in {name}'s 200-class subset"),
        ));
    }
    let labels = folder.labels.iter().map(|&l| class_of[l]).collect();
    Ok(RobustnessSet {
        name: name.to_string(),
        images: ImageSource::files(folder.images, pipeline),
        labels,
        subset,
    })
}
