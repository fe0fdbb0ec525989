//! A held-out set evaluated during training (`train --eval SPEC`): the synthetic test split,
//! a captions CSV (retrieval) or an image folder (zero-shot).

use std::collections::HashMap;
use std::path::PathBuf;

use diffclip_clip::Clip;
use diffclip_data::datasets::{BadSamplePolicy, ClassificationDataset, CsvConfig, CsvDataset, DataSpec, ImageFolderDataset, ImageLoader};
use diffclip_data::synthetic::Split;
use diffclip_data::{ClipBatcher, ClipTokenizer, Pipeline, SyntheticConfig, SyntheticDataset, TokenizerConfig, Truncation};
use serde_json::{Value, json};

use crate::heldout::evaluate_synthetic_heldout;
use crate::{Encoder, EvalError, Evaluator, ImageSource, RetrievalMetrics};

/// A held-out set and how to score a model on it.
pub enum EvalSet {
    /// The synthetic test split: the quickstart's held-out metrics.
    Synthetic(SyntheticDataset),
    /// Image–caption pairs: image↔text recall@1/5. Rows naming the same image are one image
    /// with several captions (as `eval --task retrieval` counts them), so a caption of the
    /// image is a hit whichever row it came from.
    Pairs {
        /// The CSV, for messages.
        name: String,
        /// Each image once, in order of first appearance.
        paths: Vec<PathBuf>,
        /// Every caption.
        captions: Vec<String>,
        /// The image (index into `paths`) of each caption.
        text_to_image: Vec<usize>,
        /// How images are preprocessed.
        pipeline: Pipeline,
    },
    /// An image folder: zero-shot top-1/top-5 with the given templates.
    Folder(ImageFolderDataset),
}

/// How to open an [`EvalSet`].
#[derive(Debug, Clone)]
pub struct EvalSetOptions {
    /// Image side the model takes.
    pub image_size: u32,
    /// Preprocessing preset (evaluation uses `slip` where training uses `slip-train`).
    pub preprocess: String,
    /// Seeds the synthetic set.
    pub seed: u64,
    /// Class-name templates of `folder:` sets.
    pub templates: Vec<String>,
    /// Columns and separator of `csv:` sets.
    pub csv: CsvConfig,
}

impl EvalSet {
    /// Opens `spec` (`synthetic`, `csv:PATH` or `folder:PATH`; WebDataset shards are not an
    /// evaluation set).
    ///
    /// ```
    /// use diffclip_eval::eval_set::{EvalSet, EvalSetOptions};
    /// let o = EvalSetOptions { image_size: 32, preprocess: "openai".into(), seed: 0, templates: vec!["a {c}".into()], csv: Default::default() };
    /// assert!(matches!(EvalSet::open(&"synthetic".parse().unwrap(), &o).unwrap(), EvalSet::Synthetic(_)));
    /// assert!(EvalSet::open(&"wds:x.tar".parse().unwrap(), &o).is_err());
    /// ```
    pub fn open(spec: &DataSpec, o: &EvalSetOptions) -> Result<Self, EvalError> {
        let pipeline = Pipeline::from_name(&o.preprocess, o.image_size)?;
        match spec {
            DataSpec::Synthetic => {
                let cfg = SyntheticConfig { image_size: o.image_size, seed: o.seed, test_size: 500, ..SyntheticConfig::default() };
                Ok(Self::Synthetic(SyntheticDataset::new(cfg, Split::Test)?))
            }
            DataSpec::Csv(path) => {
                let loader = ImageLoader::new(pipeline.clone()).with_policy(BadSamplePolicy::Fail);
                // As eval's caption sets: a row with a blank caption lists an image without one.
                let ds = CsvDataset::open(path, &CsvConfig { require_caption: false, ..o.csv.clone() }, loader)?;
                let (mut paths, mut index) = (Vec::new(), HashMap::new());
                let mut captioned = Vec::new();
                for r in ds.rows() {
                    let image = *index.entry(r.image.clone()).or_insert_with(|| {
                        paths.push(r.image.clone());
                        paths.len() - 1
                    });
                    if !diffclip_data::tokenizer::is_blank(&r.caption) {
                        captioned.push((image, r.caption.clone()));
                    }
                }
                let (text_to_image, captions): (Vec<usize>, Vec<String>) = captioned.into_iter().unzip();
                if captions.is_empty() {
                    return Err(EvalError::Invalid(format!("{}: no row has a caption", path.display())));
                }
                if paths.len() < 2 {
                    return Err(EvalError::Invalid(format!("{}: retrieval needs at least 2 images, found {}", path.display(), paths.len())));
                }
                // A missing image is found now, not at the first evaluation, hours into a run.
                if let Some(row) = ds.rows().iter().find(|r| !r.image.is_file()) {
                    return Err(EvalError::Dataset { path: format!("{}:{}", path.display(), row.line), message: format!("image {} is not a file", row.image.display()) });
                }
                Ok(Self::Pairs { name: path.display().to_string(), paths, captions, text_to_image, pipeline })
            }
            DataSpec::Folder(path) => {
                let loader = ImageLoader::new(pipeline).with_policy(BadSamplePolicy::Fail);
                // As eval's zero-shot: ROOT/test when there is one.
                let root = if path.join("test").is_dir() { path.join("test") } else { path.clone() };
                let ds = ImageFolderDataset::open(&root, loader)?.with_templates(o.templates.clone())?;
                // One class is always right: its top-1 of 1.0 would say nothing.
                if ds.class_names().len() < 2 {
                    return Err(EvalError::Invalid(format!("{}: zero-shot classification needs at least 2 class folders, found {}", root.display(), ds.class_names().len())));
                }
                Ok(Self::Folder(ds))
            }
            DataSpec::WebDataset(_) => {
                Err(EvalError::Invalid("an evaluation set is synthetic, csv:PATH or folder:PATH (WebDataset shards stream and are not an evaluation set)".into()))
            }
        }
    }

    /// Scores `model` (captions tokenised with `truncation`) as a JSON object of metrics.
    pub fn evaluate(&self, model: &Clip, truncation: Truncation) -> Result<Value, EvalError> {
        let encoder = Encoder::new(model)?.with_truncation(truncation)?.with_progress(false).with_batch_size(128);
        let retrieval_json = |r: &RetrievalMetrics| {
            json!({
                "image_to_text_r1": r.image_to_text[0].recall, "image_to_text_r5": r.image_to_text[1].recall,
                "text_to_image_r1": r.text_to_image[0].recall, "text_to_image_r5": r.text_to_image[1].recall,
            })
        };
        Ok(match self {
            Self::Synthetic(test) => {
                let (_, _, context_length) = model.input_sizes();
                let batcher = ClipBatcher::new(ClipTokenizer::with_config(TokenizerConfig { context_length, truncation })?);
                let held = evaluate_synthetic_heldout(model, test, &batcher, 0)?;
                let mut v = serde_json::to_value(held.metrics).map_err(|e| EvalError::Invalid(e.to_string()))?;
                if let Some(o) = v.as_object_mut() {
                    o.remove("step");
                }
                v
            }
            Self::Pairs { name, paths, captions, text_to_image, pipeline } => {
                let images = ImageSource::files(paths.clone(), pipeline);
                let metrics = Evaluator::new(encoder).retrieval(&images, captions, text_to_image, &[1, 5]).map_err(|e| EvalError::Dataset { path: name.clone(), message: e.to_string() })?;
                retrieval_json(&metrics)
            }
            Self::Folder(ds) => {
                let m = Evaluator::new(encoder).zero_shot_dataset(ds, None)?;
                json!({ "zero_shot_top1": m.top1, "zero_shot_top5": m.top5 })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_of_one_image_are_one_image_with_several_captions() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("val.csv");
        std::fs::write(&csv, "filepath,title\na.png,a dog\nb.png,a cat\n./a.png,a dog running\n").unwrap();
        for image in ["a.png", "b.png"] {
            std::fs::write(dir.path().join(image), b"").unwrap(); // opened: they must exist
        }
        let o = EvalSetOptions { image_size: 32, preprocess: "openai".into(), seed: 0, templates: vec![], csv: CsvConfig::default() };
        let Ok(EvalSet::Pairs { paths, captions, text_to_image, .. }) = EvalSet::open(&DataSpec::Csv(csv.clone()), &o) else { panic!("a pairs set") };
        assert_eq!(paths, [dir.path().join("a.png"), dir.path().join("b.png")]);
        assert_eq!(captions, ["a dog", "a cat", "a dog running"]);
        assert_eq!(text_to_image, [0, 1, 0]);
        std::fs::write(&csv, "filepath,title\na.png,a dog\na.png,a cat\n").unwrap();
        let e = EvalSet::open(&DataSpec::Csv(csv.clone()), &o).err().unwrap().to_string();
        assert!(e.contains("at least 2 images, found 1"), "{e}");
        std::fs::write(&csv, "filepath,title\na.png,a dog\nc.png,a cat\n").unwrap();
        let e = EvalSet::open(&DataSpec::Csv(csv), &o).err().unwrap().to_string();
        assert!(e.ends_with(&format!("val.csv:3: image {} is not a file", dir.path().join("c.png").display())), "{e}");
    }
}
