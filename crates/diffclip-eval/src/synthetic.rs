//! Evaluation tasks on the built-in synthetic dataset (`diffclip_data::synthetic`): MMVP-style
//! pairs and distribution-shifted variants for robustness, so every task runs without data.

use diffclip_data::synthetic::{ClassTask, Split, SyntheticConfig, SyntheticDataset};

use crate::pairs::{PairMetrics, pair_metrics};
use crate::robustness::RobustnessSet;
use crate::{EvalError, Evaluator, ImageSource, dataset_labels};

/// Pairs of test images whose salient objects differ in exactly one of colour, shape or object
/// count, with one statement true of each image (categories `color`, `shape`, `count`).
/// Images are paired greedily in index order among the first `scan` samples; at most
/// `per_category` pairs each. Returns `(image index pairs, statement pairs, categories)`.
pub fn synthetic_pairs(
    ds: &SyntheticDataset,
    scan: usize,
    per_category: usize,
) -> (Vec<[usize; 2]>, Vec<[String; 2]>, Vec<String>) {
    let n = scan.min(ds.len());
    let scenes: Vec<_> = (0..n).map(|i| ds.scene(i)).collect();
    let counts = ClassTask::Count.class_names(ds.config().max_objects);
    let (mut idx, mut statements, mut categories) = (Vec::new(), Vec::new(), Vec::new());
    for category in ["color", "shape", "count"] {
        let mut used = vec![false; n];
        let mut made = 0;
        for i in 0..n {
            if made == per_category {
                break;
            }
            let (a, ca) = (scenes[i].salient(), scenes[i].objects.len());
            let partner = (i + 1..n).find(|&j| {
                let (b, cb) = (scenes[j].salient(), scenes[j].objects.len());
                !used[i]
                    && !used[j]
                    && match category {
                        "color" => a.shape == b.shape && a.color != b.color,
                        "shape" => a.color == b.color && a.shape != b.shape,
                        _ => ca != cb,
                    }
            });
            if let Some(j) = partner {
                used[i] = true;
                used[j] = true;
                made += 1;
                let text = |k: usize| match category {
                    "count" => format!("a picture with {}.", counts[scenes[k].objects.len() - 1]),
                    _ => format!("a photo of {}.", scenes[k].salient().describe(false)),
                };
                idx.push([i, j]);
                statements.push([text(i), text(j)]);
                categories.push(category.to_string());
            }
        }
    }
    (idx, statements, categories)
}

impl Evaluator<'_> {
    /// MMVP-style pair accuracy on [`synthetic_pairs`] of `ds`.
    pub fn synthetic_pairs(
        &self,
        ds: &SyntheticDataset,
        scan: usize,
        per_category: usize,
    ) -> Result<PairMetrics, EvalError> {
        let (idx, statements, categories) = synthetic_pairs(ds, scan, per_category);
        if idx.is_empty() {
            return Err(EvalError::Invalid(
                "no synthetic pairs found; scan more samples".into(),
            ));
        }
        let flat: Vec<usize> = idx.iter().flatten().copied().collect();
        let images = ImageSource::new(flat.len(), ds.image_size(), None, |k| {
            Ok(ds.image_eval(flat[k]))
        });
        let texts: Vec<String> = statements.into_iter().flatten().collect();
        pair_metrics(
            &self.image_features(&images)?,
            &self.text_features(&texts)?,
            &categories,
        )
    }
}

/// Test splits of `base` under growing distribution shift, sharing `task`'s label space:
/// `synthetic` (as configured), `synthetic-clutter` (20–40 clutter items), `synthetic-crowded`
/// (4 shapes) and `synthetic-seed+1` (another seed). `test_size` is taken from `base`.
pub fn synthetic_variants(
    base: &SyntheticConfig,
) -> Result<Vec<(String, SyntheticDataset)>, EvalError> {
    let variants = [
        ("synthetic", base.clone()),
        (
            "synthetic-clutter",
            SyntheticConfig {
                distractors: [20, 40],
                ..base.clone()
            },
        ),
        (
            "synthetic-crowded",
            SyntheticConfig {
                max_objects: 4,
                ..base.clone()
            },
        ),
        (
            "synthetic-seed+1",
            SyntheticConfig {
                seed: base.seed.wrapping_add(1),
                ..base.clone()
            },
        ),
    ];
    variants
        .into_iter()
        .map(|(name, cfg)| Ok((name.to_string(), SyntheticDataset::new(cfg, Split::Test)?)))
        .collect()
}

/// [`RobustnessSet`]s of `task` on `variants` (the `count` task is scored over the base's
/// classes, so a crowded variant's 4-shape images are outside the label space: use `shape` or
/// `color` for robustness).
pub fn synthetic_robustness_sets<'d>(
    variants: &'d [(String, SyntheticDataset)],
    task: ClassTask,
    base_max_objects: usize,
) -> Result<Vec<RobustnessSet<'d>>, EvalError> {
    let n_classes = task.class_names(base_max_objects).len();
    let mut sets = Vec::new();
    for (name, ds) in variants {
        let view = ds.classification(task);
        let labels = dataset_labels(&view)?;
        if labels.iter().any(|&l| l >= n_classes) {
            continue; // a variant outside the label space (count task, crowded)
        }
        let images = ImageSource::new(ds.len(), ds.image_size(), None, move |i| {
            Ok(ds.image_eval(i))
        });
        sets.push(RobustnessSet {
            name: name.clone(),
            images,
            labels,
            subset: None,
        });
    }
    Ok(sets)
}
