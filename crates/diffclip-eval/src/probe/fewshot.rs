//! k-shot evaluation: k random training images per class, several seeds, mean ± std accuracy.

use serde::{Deserialize, Serialize};

use super::linear_probe::{LinearProbeConfig, Split, check_splits, sweep_c};
use super::logreg::{LogRegOptions, LogisticRegression, count_correct};
use super::sampling::{sample_shots, stratified_split};
use crate::{EvalError, Matrix};

/// The classifier fitted on the support set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FewShotClassifier {
    /// Logistic regression; `C` chosen by validation accuracy (the probe's sweep), then fitted on
    /// the k-shot support set alone.
    LogisticRegression,
    /// Nearest class mean of the L2-normalised support features; `cosine` renormalises the means
    /// and ranks by dot product, otherwise by Euclidean distance.
    NearestClassMean {
        /// Cosine instead of Euclidean.
        cosine: bool,
    },
}

/// Settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)] // a misspelt key is an error, not a default
pub struct FewShotConfig {
    /// Shots per class.
    pub shots: Vec<usize>,
    /// One support set per seed.
    pub seeds: Vec<u64>,
    /// What is fitted on the support set.
    pub classifier: FewShotClassifier,
    /// Sweep settings (logistic regression) and the validation split when none is given.
    pub probe: LinearProbeConfig,
}

impl Default for FewShotConfig {
    /// k = 1, 2, 4, 8, 16; seeds 0, 1, 2; logistic regression with a 7-point `C` grid.
    fn default() -> Self {
        Self {
            shots: vec![1, 2, 4, 8, 16],
            seeds: vec![0, 1, 2],
            classifier: FewShotClassifier::LogisticRegression,
            probe: LinearProbeConfig {
                c_grid: (-2..=4).map(|e| 10f64.powi(e)).collect(),
                refine_steps: 1,
                ..LinearProbeConfig::default()
            },
        }
    }
}

/// Accuracy at one k.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FewShotPoint {
    /// Shots per class asked for.
    pub shots: usize,
    /// Shots of the class with the fewest training samples: below `shots` when a class has
    /// fewer than `shots` to draw from (all of them are then used). `None` in results written
    /// before it was recorded.
    #[serde(default)]
    pub fewest_shots: Option<usize>,
    /// Mean test accuracy over seeds.
    pub mean_accuracy: f64,
    /// Population standard deviation over seeds.
    pub std_accuracy: f64,
    /// Test accuracy per seed.
    pub accuracies: Vec<f64>,
    /// The `C` chosen per seed (logistic regression only).
    pub c: Vec<f64>,
}

/// Run every (k, seed). Features are L2-normalised here. Without `val`, a stratified
/// validation split is first held out of `train` (it chooses `C`; shots are drawn from the rest).
pub fn few_shot(
    train: Split<'_>,
    val: Option<Split<'_>>,
    test: Split<'_>,
    n_classes: usize,
    cfg: &FewShotConfig,
) -> Result<Vec<FewShotPoint>, EvalError> {
    if cfg.shots.is_empty() || cfg.shots.contains(&0) || cfg.seeds.is_empty() {
        return Err(EvalError::Invalid(format!(
            "shots {:?} (each >= 1) and seeds {:?} (non-empty)",
            cfg.shots, cfg.seeds
        )));
    }
    check_splits(&train, val.as_ref(), &test, n_classes)?;
    let train_x = train.features.l2_normalized();
    let test_x = test.features.l2_normalized();
    let (pool_x, pool_y, val_xy) = match (val, cfg.classifier) {
        (_, FewShotClassifier::NearestClassMean { .. }) => (train_x, train.labels.to_vec(), None),
        (Some(v), _) => (
            train_x,
            train.labels.to_vec(),
            Some((v.features.l2_normalized(), v.labels.to_vec())),
        ),
        (None, _) => {
            let (tr, va) = stratified_split(
                train.labels,
                n_classes,
                cfg.probe.val_fraction,
                cfg.probe.seed,
            );
            if va.is_empty() {
                return Err(EvalError::Invalid(
                    "no validation samples to choose C: give a validation set or more training samples per class".into(),
                ));
            }
            let pick = |idx: &[usize]| idx.iter().map(|&i| train.labels[i]).collect::<Vec<_>>();
            let val = (train_x.select_rows(&va)?, pick(&va));
            (train_x.select_rows(&tr)?, pick(&tr), Some(val))
        }
    };
    let pool_per_class: Vec<usize> = super::sampling::indices_by_class(&pool_y, n_classes).iter().map(Vec::len).collect();
    let mut out = Vec::new();
    for &k in &cfg.shots {
        let (mut accs, mut cs) = (Vec::new(), Vec::new());
        for &seed in &cfg.seeds {
            let idx = sample_shots(
                &pool_y,
                n_classes,
                k,
                seed.wrapping_mul(1000).wrapping_add(k as u64),
            );
            let sx = pool_x.select_rows(&idx)?;
            let sy: Vec<usize> = idx.iter().map(|&i| pool_y[i]).collect();
            let pred = match (cfg.classifier, &val_xy) {
                (FewShotClassifier::NearestClassMean { cosine }, _) => {
                    nearest_class_mean(&sx, &sy, n_classes, &test_x, cosine)?
                }
                (FewShotClassifier::LogisticRegression, Some((vx, vy))) => {
                    let (c, _, _) = sweep_c(
                        Split {
                            features: &sx,
                            labels: &sy,
                        },
                        Split {
                            features: vx,
                            labels: vy,
                        },
                        n_classes,
                        &cfg.probe,
                    )?;
                    cs.push(c);
                    let opts = LogRegOptions {
                        c,
                        max_iter: cfg.probe.max_iter,
                        tol: cfg.probe.tol,
                    };
                    LogisticRegression::fit(&sx, &sy, n_classes, &opts, None)?.predict(&test_x)?
                }
                (FewShotClassifier::LogisticRegression, None) => {
                    return Err(EvalError::Invalid(
                        "logistic regression needs a validation split".into(),
                    ));
                }
            };
            accs.push(count_correct(&pred, test.labels) as f64 / test.labels.len().max(1) as f64);
        }
        let mean = accs.iter().sum::<f64>() / accs.len() as f64;
        let var = accs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / accs.len() as f64;
        out.push(FewShotPoint {
            shots: k,
            fewest_shots: Some(pool_per_class.iter().map(|&n| n.min(k)).min().unwrap_or(0)),
            mean_accuracy: mean,
            std_accuracy: var.sqrt(),
            accuracies: accs,
            c: cs,
        });
    }
    Ok(out)
}

/// Nearest-class-mean predictions for `query` from a support set (features used as given: pass
/// L2-normalised ones). Classes without support samples are never predicted; ties go to the
/// lower class index. Computed in f64.
///
/// ```
/// use diffclip_eval::{Matrix, probe::nearest_class_mean};
/// let s = Matrix::new(2, 2, vec![1.0, 0.0, 0.0, 1.0]).unwrap();
/// let q = Matrix::new(1, 2, vec![0.2, 0.9]).unwrap();
/// assert_eq!(nearest_class_mean(&s, &[0, 1], 2, &q, false).unwrap(), vec![1]);
/// ```
pub fn nearest_class_mean(
    support: &Matrix,
    labels: &[usize],
    n_classes: usize,
    query: &Matrix,
    cosine: bool,
) -> Result<Vec<usize>, EvalError> {
    let d = support.cols();
    if labels.len() != support.rows() || query.cols() != d {
        return Err(EvalError::Shape(format!(
            "{} support rows, {} labels, {}- vs {}-dim features",
            support.rows(),
            labels.len(),
            d,
            query.cols()
        )));
    }
    // A NaN support row would make its class mean NaN and, never beaten, that class every answer.
    support.check_finite("support")?;
    query.check_finite("query")?;
    EvalError::check_labels(labels, n_classes)?;
    let mut means = vec![0f64; n_classes * d];
    let mut counts = vec![0usize; n_classes];
    for (row, &y) in support.row_iter().zip(labels) {
        counts[y] += 1;
        for (m, &v) in means[y * d..(y + 1) * d].iter_mut().zip(row) {
            *m += f64::from(v);
        }
    }
    for (c, m) in means.chunks_exact_mut(d.max(1)).enumerate().take(n_classes) {
        if counts[c] > 0 {
            m.iter_mut().for_each(|v| *v /= counts[c] as f64);
            if cosine {
                let norm = m.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
                m.iter_mut().for_each(|v| *v /= norm);
            }
        }
    }
    let mut out = Vec::with_capacity(query.rows());
    for q in query.row_iter() {
        let mut best: Option<(usize, f64)> = None;
        for c in (0..n_classes).filter(|&c| counts[c] > 0) {
            let m = &means[c * d..(c + 1) * d];
            let score = if cosine {
                m.iter().zip(q).map(|(a, &b)| a * f64::from(b)).sum::<f64>()
            } else {
                -m.iter()
                    .zip(q)
                    .map(|(a, &b)| (a - f64::from(b)).powi(2))
                    .sum::<f64>()
            };
            if best.is_none_or(|(_, s)| score > s) {
                best = Some((c, score));
            }
        }
        out.push(best.map_or(0, |(c, _)| c));
    }
    Ok(out)
}
