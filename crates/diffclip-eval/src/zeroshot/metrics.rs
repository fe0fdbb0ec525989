//! Zero-shot classification metrics on logits: top-1, top-5, mean per-class recall.

use serde::{Deserialize, Serialize};

use crate::ranking::{argmax, rank_of};
use crate::stats::mean;
use crate::{EvalError, Matrix};

/// Classification accuracy as CLIP_benchmark reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZeroShotMetrics {
    /// Number of evaluated images.
    pub n_samples: usize,
    /// Number of classes (logit columns).
    pub n_classes: usize,
    /// Fraction of images whose label ranks first.
    pub top1: f64,
    /// Fraction of images whose label is among the 5 best; `None` with fewer than 5 classes.
    pub top5: Option<f64>,
    /// Mean over the classes present in the labels of the per-class recall of the argmax
    /// (scikit-learn's `balanced_accuracy_score`); classes absent from the labels are skipped.
    pub mean_per_class_recall: f64,
    /// Images counted in `top1`.
    pub top1_correct: usize,
    /// Images counted in `top5`.
    pub top5_correct: Option<usize>,
    /// 95 % Wilson score interval of `top1` ([`wilson_interval`](crate::stats::wilson_interval):
    /// the images a sample of the set's distribution); `[0, 0]` in results written before it.
    #[serde(default)]
    pub top1_ci95: [f64; 2],
    /// The same for `top5`.
    #[serde(default)]
    pub top5_ci95: Option<[f64; 2]>,
}

/// Metrics of `logits [N, C]` (any monotone score: logits, cosine similarities, probabilities)
/// against `labels` (`N` values in `0..C`).
///
/// Top-k uses the tie rule of [`crate::ranking`] (lower class index first); the mean per-class
/// recall uses the first maximal index (`torch.argmax`), exactly as CLIP_benchmark.
///
/// ```
/// use diffclip_eval::{Matrix, zero_shot_metrics};
/// let logits = Matrix::new(3, 2, vec![0.9, 0.1, 0.2, 0.8, 0.6, 0.4]).unwrap();
/// let m = zero_shot_metrics(&logits, &[0, 1, 1]).unwrap();
/// assert_eq!(m.top1_correct, 2);
/// assert_eq!(m.top5, None); // fewer than 5 classes
/// assert_eq!(m.mean_per_class_recall, 0.75); // class 0: 1/1, class 1: 1/2
/// assert!(m.top1_ci95[0] < m.top1 && m.top1 < m.top1_ci95[1]); // 2 of 3: a wide interval
/// ```
pub fn zero_shot_metrics(logits: &Matrix, labels: &[usize]) -> Result<ZeroShotMetrics, EvalError> {
    let (n, c) = (logits.rows(), logits.cols());
    if labels.len() != n {
        return Err(EvalError::Shape(format!(
            "{n} rows of logits but {} labels",
            labels.len()
        )));
    }
    if n == 0 || c == 0 {
        return Err(EvalError::Invalid(format!(
            "zero-shot metrics of a {n} x {c} logit matrix"
        )));
    }
    EvalError::check_labels(labels, c)?;
    logits.check_finite("logits")?;

    let ranks: Vec<usize> = labels
        .iter()
        .enumerate()
        .map(|(i, &y)| rank_of(logits.row(i), y))
        .collect();
    let top1_correct = ranks.iter().filter(|&&r| r < 1).count();
    let top5_correct = (c >= 5).then(|| ranks.iter().filter(|&&r| r < 5).count());
    let predictions: Vec<usize> = logits.row_iter().map(|r| argmax(r).unwrap_or(0)).collect();
    Ok(ZeroShotMetrics {
        n_samples: n,
        n_classes: c,
        top1: top1_correct as f64 / n as f64,
        top5: top5_correct.map(|k| k as f64 / n as f64),
        mean_per_class_recall: mean_per_class_recall(&predictions, labels, c)?,
        top1_correct,
        top5_correct,
        top1_ci95: crate::stats::ci95(top1_correct, n),
        top5_ci95: top5_correct.map(|k| crate::stats::ci95(k, n)),
    })
}

/// Zero-shot metrics of image embeddings against a classifier (one row per class, as built by
/// [`crate::classifier_from_text_embeddings`]): the images are L2-normalised and scored by
/// cosine similarity (the logit scale does not change rankings).
///
/// ```
/// use diffclip_eval::{Matrix, zero_shot_metrics_from_embeddings};
/// let images = Matrix::new(2, 2, vec![2.0, 0.1, 0.0, 3.0]).unwrap();
/// let classes = Matrix::new(2, 2, vec![1.0, 0.0, 0.0, 1.0]).unwrap();
/// assert_eq!(zero_shot_metrics_from_embeddings(&images, &classes, &[0, 1]).unwrap().top1, 1.0);
/// ```
pub fn zero_shot_metrics_from_embeddings(
    image_emb: &Matrix,
    classifier: &Matrix,
    labels: &[usize],
) -> Result<ZeroShotMetrics, EvalError> {
    image_emb.check_finite("image embeddings")?;
    let logits = image_emb.l2_normalized().matmul_t(classifier)?;
    zero_shot_metrics(&logits, labels)
}

/// scikit-learn's `balanced_accuracy_score(labels, predictions)`: the mean (numpy order) over the
/// classes present in `labels` of `#correct / #labelled`. Predictions of classes that never occur
/// as labels lower the recall of the true class only.
///
/// Errors when the two lengths differ, when there are no labels, or when a label or prediction
/// is outside `0..n_classes` (scikit-learn would count such a label as a class of its own).
///
/// ```
/// use diffclip_eval::mean_per_class_recall;
/// assert_eq!(mean_per_class_recall(&[0, 0, 1], &[0, 1, 1], 2).unwrap(), 0.75);
/// assert!(mean_per_class_recall(&[0, 1], &[0, 1, 1], 2).is_err()); // lengths differ
/// assert!(mean_per_class_recall(&[0, 2], &[0, 1], 2).is_err()); // prediction 2 of 2 classes
/// ```
pub fn mean_per_class_recall(
    predictions: &[usize],
    labels: &[usize],
    n_classes: usize,
) -> Result<f64, EvalError> {
    if predictions.len() != labels.len() {
        return Err(EvalError::Shape(format!(
            "{} predictions but {} labels",
            predictions.len(),
            labels.len()
        )));
    }
    if labels.is_empty() {
        return Err(EvalError::Invalid(
            "mean per-class recall of no labels".into(),
        ));
    }
    EvalError::check_labels(labels, n_classes)?;
    if let Some((i, &p)) = predictions
        .iter()
        .enumerate()
        .find(|&(_, &p)| p >= n_classes)
    {
        return Err(EvalError::Invalid(format!(
            "prediction {p} at position {i} is outside 0..{n_classes}"
        )));
    }
    let mut count = vec![0usize; n_classes];
    let mut correct = vec![0usize; n_classes];
    for (&p, &y) in predictions.iter().zip(labels) {
        count[y] += 1;
        correct[y] += usize::from(p == y);
    }
    let recalls: Vec<f64> = (0..n_classes)
        .filter(|&k| count[k] > 0)
        .map(|k| correct[k] as f64 / count[k] as f64)
        .collect();
    Ok(mean(&recalls))
}
