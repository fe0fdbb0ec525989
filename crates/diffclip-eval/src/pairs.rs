//! Fine-grained pairs (MMVP-VLM): a pair scores only if both of its members pick their own match.

use diffclip_data::Pipeline;
use serde::{Deserialize, Serialize};

use crate::dataset::PairSet;
use crate::{EvalError, Evaluator, ImageSource, Matrix};

/// Pair accuracy of one category (or of all pairs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairScore {
    /// Category name (`"all"` for the overall score).
    pub category: String,
    /// Pairs.
    pub n_pairs: usize,
    /// MMVP-VLM's score: each statement prefers its own image (text→image), both must.
    pub text_to_image: f64,
    /// Each image prefers its own statement (image→text), both must.
    pub image_to_text: f64,
}

/// Per-category and overall pair accuracy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairMetrics {
    /// Categories in order of first appearance.
    pub categories: Vec<PairScore>,
    /// All pairs together.
    pub overall: PairScore,
    /// Mean over categories of `text_to_image` (MMVP-VLM's reported average).
    pub average_text_to_image: f64,
    /// Mean over categories of `image_to_text`.
    pub average_image_to_text: f64,
}

/// Score pairs from embeddings: rows `2p` and `2p + 1` of `image_emb` are pair `p`'s images and
/// the same rows of `text_emb` their statements. Similarities are cosine; a choice needs a
/// strictly higher similarity, so exact ties count as wrong (MMVP's script, comparing a softmax
/// with `> 0.5`, gives ties to the second image).
///
/// ```
/// use diffclip_eval::{Matrix, pairs::pair_metrics};
/// let images = Matrix::new(2, 2, vec![1.0, 0.0, 0.0, 1.0]).unwrap();
/// let texts = Matrix::new(2, 2, vec![0.9, 0.1, 0.2, 0.8]).unwrap();
/// let m = pair_metrics(&images, &texts, &["color".to_string()]).unwrap();
/// assert_eq!((m.overall.text_to_image, m.overall.image_to_text), (1.0, 1.0));
/// ```
pub fn pair_metrics(
    image_emb: &Matrix,
    text_emb: &Matrix,
    categories: &[String],
) -> Result<PairMetrics, EvalError> {
    let n = categories.len();
    if n == 0 || image_emb.rows() != 2 * n || text_emb.rows() != 2 * n {
        return Err(EvalError::Shape(format!(
            "{n} pairs need {} image and statement embeddings, got {} and {}",
            2 * n,
            image_emb.rows(),
            text_emb.rows()
        )));
    }
    image_emb.check_finite("image embeddings")?;
    text_emb.check_finite("text embeddings")?;
    let (im, tx) = (image_emb.l2_normalized(), text_emb.l2_normalized());
    let s = |i: usize, t: usize| crate::matrix::dot(im.row(i), tx.row(t));
    let mut names: Vec<String> = Vec::new();
    let mut counts: Vec<[usize; 3]> = Vec::new(); // pairs, text->image hits, image->text hits
    let mut total = [0usize; 3];
    for (p, cat) in categories.iter().enumerate() {
        let (a, b) = (2 * p, 2 * p + 1);
        let t2i = s(a, a) > s(b, a) && s(b, b) > s(a, b);
        let i2t = s(a, a) > s(a, b) && s(b, b) > s(b, a);
        let k = match names.iter().position(|c| c == cat) {
            Some(k) => k,
            None => {
                names.push(cat.clone());
                counts.push([0; 3]);
                names.len() - 1
            }
        };
        for c in [&mut counts[k], &mut total] {
            c[0] += 1;
            c[1] += usize::from(t2i);
            c[2] += usize::from(i2t);
        }
    }
    let score = |name: &str, c: [usize; 3]| PairScore {
        category: name.to_string(),
        n_pairs: c[0],
        text_to_image: c[1] as f64 / c[0] as f64,
        image_to_text: c[2] as f64 / c[0] as f64,
    };
    let categories: Vec<PairScore> = names
        .iter()
        .zip(&counts)
        .map(|(n, &c)| score(n, c))
        .collect();
    let k = categories.len() as f64;
    Ok(PairMetrics {
        average_text_to_image: categories.iter().map(|c| c.text_to_image).sum::<f64>() / k,
        average_image_to_text: categories.iter().map(|c| c.image_to_text).sum::<f64>() / k,
        overall: score("all", total),
        categories,
    })
}

impl Evaluator<'_> {
    /// Score a [`PairSet`], images through `pipeline`.
    pub fn pairs(&self, set: &PairSet, pipeline: &Pipeline) -> Result<PairMetrics, EvalError> {
        let images = ImageSource::files(set.image_paths(), pipeline);
        let image_emb = self.image_features(&images)?;
        let text_emb = self.text_features(&set.statements())?;
        pair_metrics(&image_emb, &text_emb, &set.categories())
    }
}
