//! One-call evaluations of a model on in-memory data (e.g. periodic evaluation in training).

use burn::tensor::Tensor;
use diffclip_clip::Clip;

use crate::{
    Encoder, EvalError, RetrievalMetrics, ZeroShotMetrics, build_classifier, retrieval_recall,
    zero_shot_metrics_from_embeddings,
};

/// Zero-shot metrics of `model` on preprocessed `images [N, 3, S, S]` with `labels`, the
/// classifier built from `classnames` × `templates` (`{c}` is the class name). No progress bars.
///
/// ```no_run
/// use burn::tensor::{Device, Distribution, Tensor};
/// use diffclip_clip::ClipConfig;
/// use diffclip_eval::{evaluate_zero_shot, metadata};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let device = Device::flex();
/// let model = ClipConfig::diffclip_tiny().init(&device)?;
/// let images = Tensor::<4>::random([4, 3, 32, 32], Distribution::Default, &device);
/// let m = evaluate_zero_shot(&model, images, &[0, 1, 0, 1], &["cat", "dog"], &metadata::templates("simple")?)?;
/// println!("top-1 {:.3}", m.top1);
/// # Ok(()) }
/// ```
pub fn evaluate_zero_shot<S: AsRef<str>, T: AsRef<str>>(
    model: &Clip,
    images: Tensor<4>,
    labels: &[usize],
    classnames: &[S],
    templates: &[T],
) -> Result<ZeroShotMetrics, EvalError> {
    let encoder = Encoder::new(model)?.with_progress(false);
    let classifier = build_classifier(&encoder, classnames, templates)?;
    let features = encoder.encode_images(images)?;
    zero_shot_metrics_from_embeddings(&features, &classifier, labels)
}

/// Retrieval recall@`ks` of `model` on preprocessed `images [N, 3, S, S]` and `captions`, caption
/// `t` describing image `text_to_image[t]`. Embeddings are L2-normalised. No progress bars.
///
/// ```
/// use burn::tensor::{Device, Distribution, Tensor};
/// use diffclip_clip::ClipConfig;
/// use diffclip_eval::evaluate_retrieval;
/// let device = Device::flex();
/// let model = ClipConfig::diffclip_tiny().init(&device).unwrap();
/// let images = Tensor::<4>::random([3, 3, 32, 32], Distribution::Default, &device);
/// // Captions 0 and 1 describe image 0, caption 2 image 2; image 1 has none.
/// let r = evaluate_retrieval(&model, images, &["a dog", "a brown dog", "a cat"], &[0, 0, 2], &[1, 3]).unwrap();
/// assert_eq!((r.n_images, r.n_texts, r.images_without_caption), (3, 3, 1));
/// assert_eq!(r.text_to_image[1].recall, 1.0); // every caption's image is among all 3
/// assert!(r.image_to_text[1].recall < 1.0); // image 1 is a miss, whatever the model
/// ```
pub fn evaluate_retrieval<S: AsRef<str> + Sync>(
    model: &Clip,
    images: Tensor<4>,
    captions: &[S],
    text_to_image: &[usize],
    ks: &[usize],
) -> Result<RetrievalMetrics, EvalError> {
    let encoder = Encoder::new(model)?.with_progress(false);
    let image_emb = encoder.encode_images(images)?.l2_normalized();
    let text_emb = encoder.encode_texts(captions)?.l2_normalized();
    retrieval_recall(&image_emb, &text_emb, text_to_image, ks)
}
