//! `Evaluator`: the tasks on datasets, with features from the embedding cache when possible.

use diffclip_data::datasets::{ClassificationDataset, RetrievalDataset};

use crate::cache::data_key;
use crate::probe::{
    FewShotConfig, FewShotPoint, LinearProbeConfig, LinearProbeResult, Split, few_shot,
    linear_probe,
};
use crate::{
    EmbeddingCache, Encoder, EvalError, ImageSource, Matrix, RetrievalMetrics, ZeroShotClassifier,
    ZeroShotMetrics,
    classifier_from_text_embeddings, retrieval_recall,
    zero_shot_metrics_from_embeddings,
};

/// Images with their labels.
#[derive(Debug, Clone, Copy)]
pub struct Labelled<'s, 'd> {
    /// The images.
    pub images: &'s ImageSource<'d>,
    /// One label per image.
    pub labels: &'s [usize],
}

/// Runs the evaluation tasks with one [`Encoder`], caching features when given a cache.
///
/// ```no_run
/// use burn::tensor::Device;
/// use diffclip_clip::ClipConfig;
/// use diffclip_data::synthetic::{ClassTask, SyntheticConfig, SyntheticDataset, Split};
/// use diffclip_eval::{Encoder, Evaluator};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let model = ClipConfig::diffclip_tiny().init(&Device::flex())?;
/// let test = SyntheticDataset::new(SyntheticConfig { image_size: 32, ..Default::default() }, Split::Test)?;
/// let eval = Evaluator::new(Encoder::new(&model)?);
/// let m = eval.zero_shot_dataset(&test.classification(ClassTask::Shape), None)?;
/// println!("shape top-1 {:.3}", m.top1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Evaluator<'a> {
    encoder: Encoder<'a>,
    cache: Option<EmbeddingCache>,
}

impl<'a> Evaluator<'a> {
    /// An evaluator without a cache.
    pub fn new(encoder: Encoder<'a>) -> Self {
        Self {
            encoder,
            cache: None,
        }
    }

    /// Cache features in `cache` (its [`crate::ModelKey`] must identify this encoder's model).
    pub fn with_cache(mut self, cache: EmbeddingCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The encoder.
    pub fn encoder(&self) -> &Encoder<'a> {
        &self.encoder
    }

    /// Image embeddings (unnormalised), from the cache when the source has an identity.
    pub fn image_features(&self, images: &ImageSource<'_>) -> Result<Matrix, EvalError> {
        match (&self.cache, images.identity()) {
            (Some(cache), Some(id)) => cache.get_or_compute("images", id, images.len(), || {
                self.encoder.encode_source(images)
            }),
            _ => self.encoder.encode_source(images),
        }
    }

    /// Text embeddings (unnormalised), cached by the texts and the tokenizer's fingerprint
    /// ([`TextTokenizer::fingerprint`](diffclip_data::TextTokenizer::fingerprint): its settings, and
    /// for a `tokenizer.json` a hash of the file).
    pub fn text_features<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Matrix, EvalError> {
        let Some(cache) = &self.cache else {
            return self.encoder.encode_texts(texts);
        };
        let tok = self.encoder.tokenizer().fingerprint();
        let key = data_key(
            "texts",
            std::iter::once(tok.as_str()).chain(texts.iter().map(|t| t.as_ref())),
        );
        cache.get_or_compute("texts", &key, texts.len(), || {
            self.encoder.encode_texts(texts)
        })
    }

    /// The zero-shot classifier `[C, E]`: every class under every template embedded, the
    /// templates' unit embeddings averaged per class and normalised again. Cached when the
    /// evaluator has a cache.
    ///
    /// ```no_run
    /// use burn::tensor::Device;
    /// use diffclip_clip::ClipConfig;
    /// use diffclip_eval::{Encoder, Evaluator, metadata};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let model = ClipConfig::diffclip_tiny().init(&Device::flex())?;
    /// let eval = Evaluator::new(Encoder::new(&model)?);
    /// let names = metadata::classnames("imagenet1k")?;
    /// let classifier = eval.classifier(&names, &metadata::templates("simple")?)?;
    /// assert_eq!(classifier.rows(), 1000);
    /// # Ok(()) }
    /// ```
    pub fn classifier<S: AsRef<str>, T: AsRef<str>>(
        &self,
        classnames: &[S],
        templates: &[T],
    ) -> Result<Matrix, EvalError> {
        let prompts = crate::zeroshot::class_prompts(classnames, templates)?;
        classifier_from_text_embeddings(
            &self.text_features(&prompts)?,
            classnames.len(),
            templates.len(),
        )
    }

    /// The classifier of [`Self::classifier`] with the model's temperature: class probabilities
    /// of image embeddings ([`ZeroShotClassifier::top_k`]).
    ///
    /// ```
    /// use burn::tensor::{Device, Distribution, Tensor};
    /// use diffclip_clip::ClipConfig;
    /// use diffclip_eval::{Encoder, Evaluator, ImageSource};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let model = ClipConfig::diffclip_tiny().init(&Device::flex())?;
    /// let eval = Evaluator::new(Encoder::new(&model)?.with_progress(false));
    /// let labels = ["cat", "dog", "bird"];
    /// let classifier = eval.zero_shot_classifier(&labels, &["a photo of a {c}."])?;
    /// let images = Tensor::<4>::random([2, 3, 32, 32], Distribution::Default, &Device::flex());
    /// let embeddings = eval.image_features(&ImageSource::from_tensor(images)?)?;
    /// for top in classifier.top_k(&embeddings, 2)? {
    ///     println!("{} ({:.2}), then {}", labels[top[0].0], top[0].1, labels[top[1].0]);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn zero_shot_classifier<S: AsRef<str>, T: AsRef<str>>(
        &self,
        classnames: &[S],
        templates: &[T],
    ) -> Result<ZeroShotClassifier, EvalError> {
        let logit_scale = self.encoder.model().logit_scale.val().into_scalar::<f32>();
        // A damaged temperature is said before every prompt is embedded.
        crate::zeroshot::temperature(logit_scale)?;
        ZeroShotClassifier::new(self.classifier(classnames, templates)?, logit_scale)
    }

    /// Zero-shot classification of `images` with `labels`, the classifier built from
    /// `classnames` × `templates` (`{c}` is the class name).
    ///
    /// ```
    /// use burn::tensor::{Device, Distribution, Tensor};
    /// use diffclip_clip::ClipConfig;
    /// use diffclip_eval::{Encoder, Evaluator, ImageSource, Labelled, metadata};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let device = Device::flex();
    /// let model = ClipConfig::diffclip_tiny().init(&device)?;
    /// let eval = Evaluator::new(Encoder::new(&model)?.with_progress(false));
    /// let images = Tensor::<4>::random([4, 3, 32, 32], Distribution::Default, &device);
    /// let images = ImageSource::from_tensor(images)?;
    /// let data = Labelled { images: &images, labels: &[0, 1, 0, 1] };
    /// let m = eval.zero_shot(data, &["cat", "dog"], &metadata::templates("simple")?)?;
    /// assert!((0.0..=1.0).contains(&m.top1));
    /// assert_eq!(m.top5, None); // top-5 is reported from five classes on
    /// # Ok(()) }
    /// ```
    pub fn zero_shot<S: AsRef<str>, T: AsRef<str>>(
        &self,
        data: Labelled<'_, '_>,
        classnames: &[S],
        templates: &[T],
    ) -> Result<ZeroShotMetrics, EvalError> {
        let classifier = self.classifier(classnames, templates)?;
        zero_shot_metrics_from_embeddings(
            &self.image_features(data.images)?,
            &classifier,
            data.labels,
        )
    }

    /// Zero-shot classification of a `diffclip-data` set with its own class names and templates.
    pub fn zero_shot_dataset(
        &self,
        ds: &dyn ClassificationDataset,
        identity: Option<String>,
    ) -> Result<ZeroShotMetrics, EvalError> {
        let labels = dataset_labels(ds)?;
        let images = ImageSource::classification(ds, identity);
        self.zero_shot(
            Labelled {
                images: &images,
                labels: &labels,
            },
            ds.class_names(),
            ds.templates(),
        )
    }

    /// Retrieval recall@`ks`, caption `t` describing image `text_to_image[t]`; embeddings are
    /// L2-normalised.
    ///
    /// ```
    /// use burn::tensor::{Device, Distribution, Tensor};
    /// use diffclip_clip::ClipConfig;
    /// use diffclip_eval::{Encoder, Evaluator, ImageSource};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let device = Device::flex();
    /// let model = ClipConfig::diffclip_tiny().init(&device)?;
    /// let eval = Evaluator::new(Encoder::new(&model)?.with_progress(false));
    /// let images = Tensor::<4>::random([3, 3, 32, 32], Distribution::Default, &device);
    /// let images = ImageSource::from_tensor(images)?;
    /// // Captions 0 and 1 describe image 0, caption 2 image 2; image 1 has none.
    /// let r = eval.retrieval(&images, &["a dog", "a brown dog", "a cat"], &[0, 0, 2], &[1, 3])?;
    /// assert_eq!((r.n_images, r.n_texts, r.images_without_caption), (3, 3, 1));
    /// assert_eq!(r.text_to_image[1].recall, 1.0); // every caption's image is among all 3
    /// assert!(r.image_to_text[1].recall < 1.0); // image 1 is a miss, whatever the model
    /// # Ok(()) }
    /// ```
    pub fn retrieval<S: AsRef<str> + Sync>(
        &self,
        images: &ImageSource<'_>,
        captions: &[S],
        text_to_image: &[usize],
        ks: &[usize],
    ) -> Result<RetrievalMetrics, EvalError> {
        let image_emb = self.image_features(images)?.l2_normalized();
        let text_emb = self.text_features(captions)?.l2_normalized();
        retrieval_recall(&image_emb, &text_emb, text_to_image, ks)
    }

    /// Retrieval on a `diffclip-data` set.
    pub fn retrieval_dataset(
        &self,
        ds: &dyn RetrievalDataset,
        identity: Option<String>,
        ks: &[usize],
    ) -> Result<RetrievalMetrics, EvalError> {
        let images = ImageSource::retrieval(ds, identity);
        self.retrieval(&images, ds.captions(), ds.caption_to_image(), ks)
    }

    /// Linear probe on the image features (see [`crate::probe::linear_probe`]).
    pub fn linear_probe(
        &self,
        train: Labelled<'_, '_>,
        val: Option<Labelled<'_, '_>>,
        test: Labelled<'_, '_>,
        n_classes: usize,
        config: &LinearProbeConfig,
    ) -> Result<LinearProbeResult, EvalError> {
        let (tr, va, te) = self.features3(train, val, test)?;
        let (tr, va, te) = splits(&tr, va.as_ref(), &te, train, val, test);
        linear_probe(tr, va, te, n_classes, config)
    }

    /// k-shot evaluation on the image features (see [`crate::probe::few_shot`]).
    pub fn few_shot(
        &self,
        train: Labelled<'_, '_>,
        val: Option<Labelled<'_, '_>>,
        test: Labelled<'_, '_>,
        n_classes: usize,
        config: &FewShotConfig,
    ) -> Result<Vec<FewShotPoint>, EvalError> {
        let (tr, va, te) = self.features3(train, val, test)?;
        let (tr, va, te) = splits(&tr, va.as_ref(), &te, train, val, test);
        few_shot(tr, va, te, n_classes, config)
    }

    fn features3(
        &self,
        train: Labelled<'_, '_>,
        val: Option<Labelled<'_, '_>>,
        test: Labelled<'_, '_>,
    ) -> Result<(Matrix, Option<Matrix>, Matrix), EvalError> {
        for (name, d) in [
            ("train", Some(train)),
            ("validation", val),
            ("test", Some(test)),
        ] {
            if let Some(d) = d.filter(|d| d.images.len() != d.labels.len()) {
                return Err(EvalError::Shape(format!(
                    "{name}: {} images but {} labels",
                    d.images.len(),
                    d.labels.len()
                )));
            }
        }
        let tr = self.image_features(train.images)?;
        let va = val.map(|v| self.image_features(v.images)).transpose()?;
        let te = self.image_features(test.images)?;
        Ok((tr, va, te))
    }
}

/// Every label of a classification set.
pub fn dataset_labels(ds: &dyn ClassificationDataset) -> Result<Vec<usize>, EvalError> {
    (0..ds.num_items())
        .map(|i| ds.label(i).map_err(EvalError::from))
        .collect()
}

/// Pair computed features with their labels for the probe functions.
fn splits<'a>(
    tr: &'a Matrix,
    va: Option<&'a Matrix>,
    te: &'a Matrix,
    train: Labelled<'a, '_>,
    val: Option<Labelled<'a, '_>>,
    test: Labelled<'a, '_>,
) -> (Split<'a>, Option<Split<'a>>, Split<'a>) {
    let val = va.zip(val).map(|(f, v)| Split {
        features: f,
        labels: v.labels,
    });
    (
        Split {
            features: tr,
            labels: train.labels,
        },
        val,
        Split {
            features: te,
            labels: test.labels,
        },
    )
}
