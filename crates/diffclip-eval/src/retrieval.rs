//! Image–text retrieval recall@k with several captions per image (CLIP_benchmark definitions).

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::matrix::dot;
use crate::ranking::rank_of;
use crate::{EvalError, Matrix};

/// Recall at one cut-off `k`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecallAt {
    /// The cut-off.
    pub k: usize,
    /// `hits / n` (CLIP_benchmark reports the float32 rounding of this value).
    pub recall: f64,
    /// Queries with a correct item in their top-k.
    pub hits: usize,
    /// Queries (texts for text→image, images for image→text).
    pub n: usize,
    /// 95 % Wilson score interval of `recall`, the queries taken as independent (captions of
    /// one image are not quite: text→image intervals are a little narrow); `[0, 0]` in results
    /// written before it.
    #[serde(default)]
    pub ci95: [f64; 2],
}

/// Recall@k in both directions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievalMetrics {
    /// Number of images.
    pub n_images: usize,
    /// Number of captions.
    pub n_texts: usize,
    /// Images without any caption (they count as misses for image→text).
    pub images_without_caption: usize,
    /// Text→image ("image retrieval" in CLIP_benchmark): a caption hits if its own image is in
    /// its top-k images; averaged over captions.
    pub text_to_image: Vec<RecallAt>,
    /// Image→text ("text retrieval" in CLIP_benchmark): an image hits if any of its captions is
    /// in its top-k captions; averaged over all images.
    pub image_to_text: Vec<RecallAt>,
}

impl RetrievalMetrics {
    /// The metrics under CLIP_benchmark's names: `image_retrieval_recall@k` (text→image) and
    /// `text_retrieval_recall@k` (image→text).
    pub fn clip_benchmark_names(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for r in &self.text_to_image {
            out.insert(format!("image_retrieval_recall@{}", r.k), r.recall);
        }
        for r in &self.image_to_text {
            out.insert(format!("text_retrieval_recall@{}", r.k), r.recall);
        }
        out
    }
}

/// Recall@k for `ks` of `image_emb [I, E]` against `text_emb [T, E]`, where caption `t` belongs to
/// image `text_to_image[t]`. Scores are the plain dot products `text · image` (pass L2-normalised
/// embeddings for cosine similarity, as [`crate::Evaluator`] does).
///
/// Definitions (CLIP_benchmark `zeroshot_retrieval`): a caption is a hit at `k` if its image is
/// among its `k` best images; an image is a hit at `k` if **any** of its captions is among its
/// `k` best captions; an image without captions is a miss and stays in the denominator. Ties
/// follow [`crate::ranking`]: equal scores rank the lower index first.
///
/// ```
/// use diffclip_eval::{Matrix, retrieval_recall};
/// let images = Matrix::new(2, 2, vec![1.0, 0.0, 0.0, 1.0]).unwrap();
/// let texts = Matrix::new(3, 2, vec![0.9, 0.1, 0.2, 0.8, 0.7, 0.3]).unwrap();
/// let m = retrieval_recall(&images, &texts, &[0, 1, 1], &[1]).unwrap();
/// assert_eq!(m.text_to_image[0].hits, 2); // the third caption prefers image 0
/// assert_eq!(m.image_to_text[0].hits, 2);
/// ```
pub fn retrieval_recall(
    image_emb: &Matrix,
    text_emb: &Matrix,
    text_to_image: &[usize],
    ks: &[usize],
) -> Result<RetrievalMetrics, EvalError> {
    let (n_images, n_texts) = (image_emb.rows(), text_emb.rows());
    if image_emb.cols() != text_emb.cols() {
        return Err(EvalError::Shape(format!(
            "image embeddings have {} columns, text embeddings {}",
            image_emb.cols(),
            text_emb.cols()
        )));
    }
    if text_to_image.len() != n_texts {
        return Err(EvalError::Shape(format!(
            "{n_texts} captions but {} image indices",
            text_to_image.len()
        )));
    }
    if n_images == 0 || n_texts == 0 {
        return Err(EvalError::Invalid(format!(
            "retrieval over {n_images} images and {n_texts} captions"
        )));
    }
    if ks.is_empty() || ks.contains(&0) {
        return Err(EvalError::Invalid(format!(
            "recall cut-offs must be >= 1, got {ks:?}"
        )));
    }
    EvalError::check_labels(text_to_image, n_images)?;
    image_emb.check_finite("image embeddings")?;
    text_emb.check_finite("text embeddings")?;

    // Rank of each caption's own image among all images.
    let text_ranks: Vec<usize> = (0..n_texts)
        .into_par_iter()
        .map(|t| {
            let q = text_emb.row(t);
            let scores: Vec<f32> = image_emb.row_iter().map(|im| dot(q, im)).collect();
            rank_of(&scores, text_to_image[t])
        })
        .collect();

    // Best rank of any of an image's captions among all captions (None: no caption).
    let mut captions: Vec<Vec<usize>> = vec![Vec::new(); n_images];
    for (t, &i) in text_to_image.iter().enumerate() {
        captions[i].push(t);
    }
    let image_ranks: Vec<Option<usize>> = (0..n_images)
        .into_par_iter()
        .map(|i| {
            if captions[i].is_empty() {
                return None;
            }
            let q = image_emb.row(i);
            let scores: Vec<f32> = text_emb.row_iter().map(|tx| dot(tx, q)).collect();
            captions[i].iter().map(|&t| rank_of(&scores, t)).min()
        })
        .collect();

    let recall = |k: usize, hits: usize, n: usize| RecallAt {
        k,
        recall: hits as f64 / n as f64,
        hits,
        n,
        ci95: crate::stats::ci95(hits, n),
    };
    Ok(RetrievalMetrics {
        n_images,
        n_texts,
        images_without_caption: captions.iter().filter(|c| c.is_empty()).count(),
        text_to_image: ks
            .iter()
            .map(|&k| recall(k, text_ranks.iter().filter(|&&r| r < k).count(), n_texts))
            .collect(),
        image_to_text: ks
            .iter()
            .map(|&k| {
                recall(
                    k,
                    image_ranks
                        .iter()
                        .filter(|r| r.is_some_and(|r| r < k))
                        .count(),
                    n_images,
                )
            })
            .collect(),
    })
}
