//! The held-out metrics of a model on the built-in synthetic test split (what the quickstart and
//! `reproduce` report), with the per-sample outcomes behind each metric so that differences
//! between models can be bootstrapped over test samples ([`crate::stats`]).

use std::collections::BTreeMap;

use burn::module::Module;
use diffclip_clip::Clip;
use diffclip_clip::loss::MAX_LOGIT_SCALE;
use diffclip_data::synthetic::{ClassTask, SyntheticDataset};
use diffclip_data::{ClipBatcher, ClipItem, datasets::RetrievalDataset};
use serde::{Deserialize, Serialize};

use crate::ranking::rank_of;
use crate::{
    Encoder, EvalError, Evaluator, ImageSource, Matrix, dataset_labels, retrieval_recall,
    zero_shot_metrics_from_embeddings,
};

/// The held-out metrics, in report order. `heldout_loss` is lower-is-better, the others are
/// fractions in `[0, 1]`, higher-is-better.
pub const HELDOUT_METRICS: [&str; 7] = [
    "zero_shot_shape_top1",
    "zero_shot_color_top1",
    "image_to_text_r1",
    "image_to_text_r5",
    "text_to_image_r1",
    "text_to_image_r5",
    "heldout_loss",
];

/// Pairs (image, its first caption) in the held-out loss.
pub const HELDOUT_LOSS_PAIRS: usize = 256;

/// Held-out metrics of one model at one step (the quickstart's `metrics.json` names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOutMetrics {
    /// Training step of the model.
    pub step: u64,
    /// Contrastive loss on [`HELDOUT_LOSS_PAIRS`] held-out pairs (image, its first caption).
    pub heldout_loss: f32,
    /// Zero-shot top-1 accuracy on the salient object's shape.
    pub zero_shot_shape_top1: f64,
    /// Zero-shot top-1 accuracy on the salient object's colour.
    pub zero_shot_color_top1: f64,
    /// Image→text recall@1.
    pub image_to_text_r1: f64,
    /// Image→text recall@5.
    pub image_to_text_r5: f64,
    /// Text→image recall@1.
    pub text_to_image_r1: f64,
    /// Text→image recall@5.
    pub text_to_image_r5: f64,
}

impl HeldOutMetrics {
    /// The value of a metric named as in [`HELDOUT_METRICS`].
    pub fn get(&self, name: &str) -> Option<f64> {
        Some(match name {
            "heldout_loss" => self.heldout_loss as f64,
            "zero_shot_shape_top1" => self.zero_shot_shape_top1,
            "zero_shot_color_top1" => self.zero_shot_color_top1,
            "image_to_text_r1" => self.image_to_text_r1,
            "image_to_text_r5" => self.image_to_text_r5,
            "text_to_image_r1" => self.text_to_image_r1,
            "text_to_image_r5" => self.text_to_image_r5,
            _ => return None,
        })
    }

    /// Mean of the six accuracy/recall metrics (the quickstart's one-number summary).
    pub fn mean_score(&self) -> f64 {
        HELDOUT_METRICS[..6]
            .iter()
            .filter_map(|m| self.get(m))
            .sum::<f64>()
            / 6.0
    }
}

/// Metrics and, for each metric, one outcome per test unit whose mean is the metric: per image
/// (0/1 correct) for zero-shot and image→text; per image the fraction of its captions that hit
/// for text→image (equal to the per-caption recall since every synthetic image has the same
/// number of captions); per held-out pair the pair's loss term for `heldout_loss`.
#[derive(Debug, Clone)]
pub struct HeldOut {
    /// The metric values.
    pub metrics: HeldOutMetrics,
    /// Per metric name ([`HELDOUT_METRICS`]), one outcome per test unit.
    pub per_sample: BTreeMap<String, Vec<f64>>,
}

/// Name of the summary score: the mean of the six accuracy/recall metrics.
pub const MEAN_SCORE: &str = "mean_score";

impl HeldOut {
    /// The value of `metric` ([`HELDOUT_METRICS`] or [`MEAN_SCORE`]).
    pub fn value(&self, metric: &str) -> Option<f64> {
        if metric == MEAN_SCORE {
            return Some(self.metrics.mean_score());
        }
        self.metrics.get(metric)
    }

    /// The per-sample outcomes of `metric`; for [`MEAN_SCORE`] the per-image mean of the six
    /// accuracy outcomes (all six are per image), whose mean is the score.
    pub fn outcomes(&self, metric: &str) -> Option<Vec<f64>> {
        if metric != MEAN_SCORE {
            return self.per_sample.get(metric).cloned();
        }
        let parts: Vec<&Vec<f64>> = HELDOUT_METRICS[..6]
            .iter()
            .map(|m| self.per_sample.get(*m))
            .collect::<Option<_>>()?;
        let n = parts[0].len();
        if parts.iter().any(|p| p.len() != n) {
            return None;
        }
        Some(
            (0..n)
                .map(|i| parts.iter().map(|p| p[i]).sum::<f64>() / parts.len() as f64)
                .collect(),
        )
    }
}

/// Percentile bootstrap over test samples of the difference `a − b` of `metric` between two
/// models evaluated on the same test set; `a[r]` and `b[r]` are paired runs (e.g. the same
/// seed), see [`crate::stats::bootstrap_paired_diff`].
pub fn bootstrap_heldout_diff(
    a: &[&HeldOut],
    b: &[&HeldOut],
    metric: &str,
    resamples: usize,
    seed: u64,
) -> Option<crate::stats::BootstrapDiff> {
    let outcomes = |runs: &[&HeldOut]| {
        runs.iter()
            .map(|h| h.outcomes(metric))
            .collect::<Option<Vec<_>>>()
    };
    crate::stats::bootstrap_paired_diff(&outcomes(a)?, &outcomes(b)?, resamples, 0.95, seed)
}

/// Evaluate `model` on the synthetic `test` split: zero-shot shape and colour top-1 (the
/// dataset's class names and templates), image↔text recall@1/5 over all captions, and the
/// contrastive loss on the first [`HELDOUT_LOSS_PAIRS`] images with their first caption
/// (tokenised by `batcher`, whose truncation the recalls use too). Test images are encoded once.
pub fn evaluate_synthetic_heldout(
    model: &Clip,
    test: &SyntheticDataset,
    batcher: &ClipBatcher,
    step: u64,
) -> Result<HeldOut, EvalError> {
    let (loss, loss_terms) = heldout_loss_terms(model, test, batcher)?;
    // The recalls tokenise captions as the loss does: with the batcher's tokenizer where it
    // fills the model's context, else the built-in one with its truncation (`drop-eot`
    // included).
    let encoder = match Encoder::new(model)?.with_tokenizer(batcher.tokenizer().clone()) {
        Ok(encoder) => encoder,
        Err(_) => Encoder::new(model)?.with_truncation(batcher.tokenizer().truncation())?,
    };
    let ev = Evaluator::new(encoder.with_progress(false).with_batch_size(128));
    let images = ImageSource::new(test.len(), test.image_size(), None, |i| {
        Ok(test.image_eval(i))
    });
    let image_emb = ev.image_features(&images)?;
    let mut per_sample = BTreeMap::new();
    let mut zero_shot = |task: ClassTask, name: &str| -> Result<f64, EvalError> {
        let view = test.classification(task);
        let labels = dataset_labels(&view)?;
        use diffclip_data::datasets::ClassificationDataset;
        let classifier = ev.classifier(view.class_names(), view.templates())?;
        let m = zero_shot_metrics_from_embeddings(&image_emb, &classifier, &labels)?;
        let logits = image_emb.l2_normalized().matmul_t(&classifier)?;
        let hits: Vec<f64> = labels
            .iter()
            .enumerate()
            .map(|(i, &y)| f64::from(u8::from(rank_of(logits.row(i), y) == 0)))
            .collect();
        per_sample.insert(name.to_string(), hits);
        Ok(m.top1)
    };
    let shape = zero_shot(ClassTask::Shape, "zero_shot_shape_top1")?;
    let color = zero_shot(ClassTask::Color, "zero_shot_color_top1")?;

    let retrieval = test.retrieval();
    let (captions, owner) = (retrieval.captions(), retrieval.caption_to_image());
    let img = image_emb.l2_normalized();
    let txt = ev.text_features(captions)?.l2_normalized();
    let r = retrieval_recall(&img, &txt, owner, &[1, 5])?;
    let (i2t, t2i) = retrieval_outcomes(&img, &txt, owner, &[1, 5])?;
    for (k, name) in [(0, "image_to_text_r1"), (1, "image_to_text_r5")] {
        per_sample.insert(name.to_string(), i2t[k].clone());
    }
    for (k, name) in [(0, "text_to_image_r1"), (1, "text_to_image_r5")] {
        per_sample.insert(name.to_string(), t2i[k].clone());
    }
    per_sample.insert("heldout_loss".to_string(), loss_terms);
    Ok(HeldOut {
        metrics: HeldOutMetrics {
            step,
            heldout_loss: loss,
            zero_shot_shape_top1: shape,
            zero_shot_color_top1: color,
            image_to_text_r1: r.image_to_text[0].recall,
            image_to_text_r5: r.image_to_text[1].recall,
            text_to_image_r1: r.text_to_image[0].recall,
            text_to_image_r5: r.text_to_image[1].recall,
        },
        per_sample,
    })
}

/// Per image, for each `k`: image→text hit (any of its captions in its top-k) and the fraction
/// of its captions whose own image is in their top-k (text→image), under the tie rule of
/// [`crate::ranking`] (the definitions of [`retrieval_recall`]).
#[allow(clippy::type_complexity)]
pub fn retrieval_outcomes(
    image_emb: &Matrix,
    text_emb: &Matrix,
    owner: &[usize],
    ks: &[usize],
) -> Result<(Vec<Vec<f64>>, Vec<Vec<f64>>), EvalError> {
    let n = image_emb.rows();
    let scores_it = image_emb.matmul_t(text_emb)?; // [images, texts]
    let scores_ti = text_emb.matmul_t(image_emb)?; // [texts, images]
    let mut caps: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (t, &i) in owner.iter().enumerate() {
        caps.get_mut(i)
            .ok_or_else(|| EvalError::Invalid(format!("caption {t} of image {i} of {n}")))?
            .push(t);
    }
    let best_image_rank: Vec<Option<usize>> = (0..n)
        .map(|i| caps[i].iter().map(|&t| rank_of(scores_it.row(i), t)).min())
        .collect();
    let text_rank: Vec<usize> = owner
        .iter()
        .enumerate()
        .map(|(t, &i)| rank_of(scores_ti.row(t), i))
        .collect();
    let i2t = ks
        .iter()
        .map(|&k| {
            best_image_rank
                .iter()
                .map(|r| f64::from(u8::from(r.is_some_and(|r| r < k))))
                .collect()
        })
        .collect();
    let t2i = ks
        .iter()
        .map(|&k| {
            (0..n)
                .map(|i| {
                    let c = &caps[i];
                    if c.is_empty() {
                        0.0
                    } else {
                        c.iter().filter(|&&t| text_rank[t] < k).count() as f64 / c.len() as f64
                    }
                })
                .collect()
        })
        .collect();
    Ok((i2t, t2i))
}

/// The symmetric InfoNCE loss on the first [`HELDOUT_LOSS_PAIRS`] test images with their first
/// caption (logit scale clamped at 100, as in training), and each pair's term
/// `(ℓ_image→text + ℓ_text→image) / 2`, whose mean is the loss.
fn heldout_loss_terms(
    model: &Clip,
    test: &SyntheticDataset,
    batcher: &ClipBatcher,
) -> Result<(f32, Vec<f64>), EvalError> {
    let device = model
        .devices()
        .into_iter()
        .next()
        .ok_or_else(|| EvalError::Invalid("model without parameters".into()))?;
    let items = (0..test.len().min(HELDOUT_LOSS_PAIRS))
        .map(|i| ClipItem {
            image: test.image_eval(i),
            size: test.image_size(),
            caption: test.captions(i).swap_remove(0),
            label: None,
        })
        .collect();
    let batch = batcher
        .try_batch(items, &device)
        .map_err(|e| EvalError::Invalid(e.to_string()))?;
    let out = model.forward(batch.images, batch.texts);
    let scale = out
        .logit_scale_exp
        .clamp_max(MAX_LOGIT_SCALE)
        .into_scalar::<f32>() as f64;
    let img = Matrix::from_tensor(out.image_embed)?.l2_normalized();
    let txt = Matrix::from_tensor(out.text_embed)?.l2_normalized();
    let sim = img.matmul_t(&txt)?;
    let n = sim.rows();
    let logit = |i: usize, j: usize| scale * sim.row(i)[j] as f64;
    let lse = |v: &mut dyn Iterator<Item = f64>| {
        let v: Vec<f64> = v.collect();
        let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
    };
    let terms: Vec<f64> = (0..n)
        .map(|i| {
            let row = lse(&mut (0..n).map(|j| logit(i, j)));
            let col = lse(&mut (0..n).map(|j| logit(j, i)));
            ((row - logit(i, i)) + (col - logit(i, i))) / 2.0
        })
        .collect();
    let loss = terms.iter().sum::<f64>() / n.max(1) as f64;
    Ok((loss as f32, terms))
}
