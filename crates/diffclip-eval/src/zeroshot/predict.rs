//! Class probabilities of images under a zero-shot classifier and the model's temperature.

use crate::{EvalError, Matrix};

/// A zero-shot classifier `[C, E]` with the model's temperature: probabilities of each class,
/// `softmax(exp(logit_scale) · normalise(image) · classifierᵀ)`, as CLIP's `logits_per_image`
/// gives them. Built by [`Evaluator::zero_shot_classifier`](crate::Evaluator::zero_shot_classifier)
/// or from weights of your own.
///
/// ```
/// use diffclip_eval::{Matrix, ZeroShotClassifier};
/// // Two classes along the axes; the learned temperature of CLIP, exp(4.6052) = 100.
/// let weights = Matrix::new(2, 2, vec![1.0, 0.0, 0.0, 1.0])?;
/// let classifier = ZeroShotClassifier::new(weights, 4.6052)?;
/// let images = Matrix::new(2, 2, vec![3.0, 0.1, 0.2, 2.0])?;
/// let top = classifier.top_k(&images, 1)?;
/// assert_eq!((top[0][0].0, top[1][0].0), (0, 1));
/// assert!(top[0][0].1 > 0.99);
/// let p = classifier.probabilities(&images)?;
/// assert!((p.row(1).iter().sum::<f32>() - 1.0).abs() < 1e-6);
/// // A temperature of e^100 overflows f32 but not the f64 softmax; e^1000 is refused.
/// assert!(ZeroShotClassifier::new(classifier.weights().clone(), 100.0)?.top_k(&images, 1)?[0][0].1 > 0.99);
/// assert!(ZeroShotClassifier::new(classifier.weights().clone(), 1000.0).is_err());
/// // An embedding that is not finite has no probabilities.
/// assert!(classifier.top_k(&Matrix::new(1, 2, vec![f32::NAN, 1.0])?, 1).is_err());
/// # Ok::<(), diffclip_eval::EvalError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ZeroShotClassifier {
    weights: Matrix,
    scale: f64,
}

impl ZeroShotClassifier {
    /// `weights [C, E]` (rows unit-length, as
    /// [`classifier_from_text_embeddings`](crate::classifier_from_text_embeddings) makes them)
    /// and the model's `logit_scale` (a log-temperature; its exponential is taken in f64, so a
    /// stored value above ~88.7, which overflows f32, still works). A scale whose exponential is
    /// not finite is refused.
    pub fn new(weights: Matrix, logit_scale: f32) -> Result<Self, EvalError> {
        let scale = temperature(logit_scale)?;
        if weights.rows() == 0 {
            return Err(EvalError::Invalid("a zero-shot classifier needs at least one class".into()));
        }
        weights.check_finite("the zero-shot classifier")?;
        Ok(Self { weights, scale })
    }

    /// The classifier's weights `[C, E]`.
    pub fn weights(&self) -> &Matrix {
        &self.weights
    }

    /// The number of classes.
    pub fn classes(&self) -> usize {
        self.weights.rows()
    }

    /// Each image's class probabilities `[N, C]` (rows sum to 1), from unnormalised image
    /// embeddings `[N, E]`. Embeddings that are not finite (a damaged or diverged model) are an
    /// error: no probability can be given for them.
    pub fn probabilities(&self, image_embeddings: &Matrix) -> Result<Matrix, EvalError> {
        image_embeddings.check_finite("the image embedding (the model's weights are damaged or diverged)")?;
        let logits = image_embeddings.l2_normalized().matmul_t(&self.weights)?;
        let data = logits.row_iter().flat_map(|row| softmax(row, self.scale)).collect();
        Matrix::new(logits.rows(), logits.cols(), data)
    }

    /// Each image's `k` most probable classes (at least one, at most all) with their
    /// probabilities, most probable first; ties go to the lower class index.
    pub fn top_k(&self, image_embeddings: &Matrix, k: usize) -> Result<Vec<Vec<(usize, f32)>>, EvalError> {
        let p = self.probabilities(image_embeddings)?;
        Ok(p.row_iter().map(|row| top_k(row, k)).collect())
    }
}

/// `exp(logit_scale)` in f64, refused when not finite.
pub(crate) fn temperature(logit_scale: f32) -> Result<f64, EvalError> {
    let scale = f64::from(logit_scale).exp();
    if !scale.is_finite() {
        return Err(EvalError::Invalid(format!(
            "the model's logit_scale {logit_scale} is not a usable log-temperature (its exponential overflows or is NaN)"
        )));
    }
    Ok(scale)
}

/// Softmax of `logits · scale`, in f64 (the largest logit subtracted first).
fn softmax(logits: &[f32], scale: f64) -> Vec<f32> {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let exp: Vec<f64> = logits.iter().map(|&v| (f64::from(v - max) * scale).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.iter().map(|e| (e / sum) as f32).collect()
}

/// The `k` most probable classes, most probable first (ties: lower index first).
fn top_k(p: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
    idx.into_iter().take(k.max(1)).map(|i| (i, p[i])).collect()
}
