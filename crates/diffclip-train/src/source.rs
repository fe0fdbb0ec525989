//! Opening training data from a [`DataSpec`]: a random-access dataset (CSV, image folder,
//! synthetic) or a WebDataset stream, with the checks a run needs before it starts.

use std::path::PathBuf;

use diffclip_data::datasets::{
    BadSamplePolicy, ClassificationDataset, ClipDataset, CsvConfig, CsvDataset, DataSpec, ImageFolderDataset, ImageLoader, ReportBadSamples,
    WebDataset, WebDatasetConfig,
};
use diffclip_data::synthetic::Split;
use diffclip_data::{ClipBatcher, Pipeline, SyntheticConfig, SyntheticDataset};

use crate::data_print::DataPrint;
use crate::{EvalHook, TrainError, TrainReport, Trainer, WdsStream};

/// How to open a [`TrainSource`].
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// Image side the model takes.
    pub image_size: u32,
    /// Preprocessing preset (`slip-train`, `openai`, ...).
    pub preprocess: String,
    /// Seeds random crops and the synthetic set.
    pub seed: u64,
    /// Skip-and-count or fail on a bad sample.
    pub policy: BadSamplePolicy,
    /// Caption templates for `folder:` data (the first one captions training images).
    pub templates: Vec<String>,
    /// Columns and separator of `csv:` data.
    pub csv: CsvConfig,
    /// `wds:` shuffle buffer in samples.
    pub shuffle_buffer: usize,
    /// `wds:` samples per epoch (else img2dataset's `*_stats.json`); `synthetic`: its size.
    pub num_samples: Option<usize>,
    /// `wds:` decoding threads (0: one per core).
    pub workers: usize,
}

impl Default for SourceOptions {
    /// 224 px, `slip-train`, seed 0, skip bad samples, `a photo of a {c}.`, default CSV columns,
    /// a 2000-sample shuffle buffer.
    fn default() -> Self {
        Self {
            image_size: 224,
            preprocess: "slip-train".into(),
            seed: 0,
            policy: BadSamplePolicy::Skip,
            templates: vec!["a photo of a {c}.".into()],
            csv: CsvConfig::default(),
            shuffle_buffer: 2000,
            num_samples: None,
            workers: 0,
        }
    }
}

/// Training data, opened and checked.
#[allow(clippy::large_enum_variant)] // one per training run
pub enum TrainSource {
    /// Random access (a seeded permutation per epoch).
    Map {
        /// The samples; bad ones come back as errors so the trainer counts them.
        data: Box<dyn ClipDataset>,
        /// What it is, for messages.
        name: String,
    },
    /// A WebDataset stream.
    Stream {
        /// The shards.
        data: WdsStream,
        /// Samples per epoch, when known.
        epoch_len: Option<usize>,
    },
}

/// A source and what the user should hear about it (its size, skipped rows, missing shards).
pub struct OpenedSource {
    /// The data.
    pub source: TrainSource,
    /// One line describing it, e.g. `train.csv, 3000 image–caption pairs`.
    pub description: String,
    /// Warnings worth printing before training.
    pub warnings: Vec<String>,
    /// Rows left out as the data was opened (CSV rows that are malformed or lack a caption):
    /// not in [`TrainReport::skipped_samples`](crate::TrainReport), which counts samples that
    /// failed to load during training.
    pub rows_left_out: usize,
    /// What the epoch order indexes, in one line ("CSV of 3000 rows, CRC-32 1a2b3c4d"): rows,
    /// images or shards in order, paths taken relative to the data's folder. Give it to
    /// [`Trainer::use_data`] so a resumed run refuses data changed since it stopped.
    pub fingerprint: String,
}

impl TrainSource {
    /// Opens `spec` and checks that it can feed a run: some rows are usable and the first
    /// images can be read (wrong paths fail here, not at step 1).
    ///
    /// ```
    /// use diffclip_train::{SourceOptions, TrainSource};
    /// let opts = SourceOptions { image_size: 32, num_samples: Some(64), ..SourceOptions::default() };
    /// let opened = TrainSource::open(&"synthetic".parse().unwrap(), &opts).unwrap();
    /// assert_eq!(opened.source.epoch_len(), Some(64));
    /// ```
    pub fn open(spec: &DataSpec, o: &SourceOptions) -> Result<OpenedSource, TrainError> {
        let loader = || -> Result<ImageLoader, TrainError> {
            Ok(ImageLoader::new(Pipeline::from_name(&o.preprocess, o.image_size)?).with_seed(o.seed).with_policy(o.policy))
        };
        let mut warnings = Vec::new();
        match spec {
            DataSpec::Csv(path) => {
                let ds = CsvDataset::open(path, &o.csv, loader()?)?;
                let name = path.display().to_string();
                let counter = ds.skip_counter().clone();
                if ds.is_empty() {
                    let why = counter.last_error().map(|e| format!(" (last bad row: {e})")).unwrap_or_default();
                    return Err(TrainError::UnusableData(format!("{name}: no usable rows{why}")));
                }
                if counter.skipped() > 0 {
                    warnings.push(format!("{name}: skipped {} bad rows (last: {})", counter.skipped(), counter.last_error().unwrap_or_default()));
                }
                check_readable(&ds, &name)?;
                let description = format!("{name}, {} image–caption pairs", ds.len());
                let policy = ds.loader().policy();
                let rows_left_out = counter.skipped();
                let root = ds.image_root().to_path_buf();
                let mut print = DataPrint::new("CSV", "rows");
                for row in ds.rows() {
                    let label = row.label.map(|l| (l as u64).to_le_bytes());
                    print.add(&[DataPrint::path(&row.image, &root), row.caption.as_bytes(), label.as_ref().map_or(&[][..], |l| &l[..])]);
                }
                let fingerprint = print.finish();
                Ok(OpenedSource { source: Self::map(ReportBadSamples::new(ds, policy, counter), name), description, warnings, rows_left_out, fingerprint })
            }
            DataSpec::Folder(path) => {
                let ds = ImageFolderDataset::open(path, loader()?)?.with_templates(o.templates.clone())?;
                let name = path.display().to_string();
                if ds.is_empty() {
                    return Err(TrainError::UnusableData(format!("{name}: no images in the class folders")));
                }
                check_readable(&ds, &name)?;
                let description = format!("{name}, {} images in {} classes, captions \"{}\"", ds.len(), ds.class_names().len(), o.templates[0]);
                let (policy, counter) = (ds.loader().policy(), ds.skip_counter().clone());
                let mut print = DataPrint::new("image folder", "images");
                for (image, class) in ds.samples() {
                    print.add(&[DataPrint::path(image, ds.root()), &(*class as u64).to_le_bytes()]);
                }
                let fingerprint = print.finish();
                Ok(OpenedSource { source: Self::map(ReportBadSamples::new(ds, policy, counter), name), description, warnings, rows_left_out: 0, fingerprint })
            }
            DataSpec::Synthetic => {
                let mut cfg = SyntheticConfig { image_size: o.image_size, seed: o.seed, ..SyntheticConfig::default() };
                if let Some(n) = o.num_samples {
                    cfg.train_size = n;
                }
                let ds = SyntheticDataset::new(cfg, Split::Train)?;
                let description = format!("built-in synthetic set, {} samples of {}px", ds.len(), o.image_size);
                let fingerprint = format!("synthetic set of {} samples of {}px, seed {}", ds.len(), o.image_size, o.seed);
                Ok(OpenedSource { source: Self::Map { data: Box::new(ds.contrastive()), name: "the synthetic set".into() }, description, warnings, rows_left_out: 0, fingerprint })
            }
            DataSpec::WebDataset(pattern) => {
                let config = WebDatasetConfig { shuffle_shards: true, shuffle_buffer: o.shuffle_buffer, ..WebDatasetConfig::default() };
                let wds = WebDataset::new(pattern, config, loader()?)?;
                // A shard that is not a file (missing, or a folder named by the pattern) is no shard.
                let missing: Vec<String> = wds.shards().iter().filter(|p| !p.is_file()).map(|p| p.display().to_string()).collect();
                if missing.len() == wds.shards().len() {
                    return Err(TrainError::UnusableData(format!("{pattern}: none of the {} shards is a file (first: {})", missing.len(), missing[0])));
                }
                if !missing.is_empty() {
                    warnings.push(format!("{} of {} shards are missing or not files (first: {}); they will be skipped", missing.len(), wds.shards().len(), missing[0]));
                }
                let n = o.num_samples.or_else(|| stats_successes(wds.shards(), &mut warnings));
                let description = format!(
                    "{} WebDataset shards, {}",
                    wds.shards().len(),
                    n.map(|n| format!("{n} samples per epoch")).unwrap_or_else(|| "epoch size unknown".into())
                );
                // Shards by name and size: reading every shard's bytes would take as long as an epoch.
                let mut print = DataPrint::new("WebDataset", "shards");
                for shard in wds.shards() {
                    let size = std::fs::metadata(shard).map_or(0, |m| m.len()).to_le_bytes();
                    print.add(&[shard.file_name().map_or(&[][..], |n| n.as_encoded_bytes()), &size]);
                }
                let fingerprint = print.finish();
                Ok(OpenedSource { source: Self::Stream { data: WdsStream::new(wds).with_workers(o.workers), epoch_len: n }, description, warnings, rows_left_out: 0, fingerprint })
            }
        }
    }

    fn map(data: impl ClipDataset + 'static, name: String) -> Self {
        Self::Map { data: Box::new(data), name }
    }

    /// Samples per epoch, when known.
    pub fn epoch_len(&self) -> Option<usize> {
        match self {
            Self::Map { data, .. } => Some(data.num_items()),
            Self::Stream { epoch_len, .. } => *epoch_len,
        }
    }

    /// An error when a random-access source holds fewer samples than one batch.
    pub fn check_batch(&self, batch_size: usize) -> Result<(), TrainError> {
        match self {
            Self::Map { data, name } if data.num_items() < batch_size => {
                Err(TrainError::Config(format!("{name} has {} usable samples, fewer than one batch of {batch_size}", data.num_items())))
            }
            _ => Ok(()),
        }
    }

    /// Trains `trainer` on this source ([`Trainer::fit`] or [`Trainer::fit_stream`]).
    pub fn fit(&self, trainer: &mut Trainer, batcher: &ClipBatcher, eval: Option<EvalHook<'_>>) -> Result<TrainReport, TrainError> {
        match self {
            Self::Map { data, .. } => trainer.fit(data.as_ref(), batcher, eval),
            Self::Stream { data, .. } => trainer.fit_stream(data, batcher, eval),
        }
    }
}

/// Fails early when none of the first images can be read (wrong paths, wrong root).
fn check_readable(ds: &dyn ClipDataset, name: &str) -> Result<(), TrainError> {
    let n = ds.num_items().min(8);
    let mut last = None;
    for i in 0..n {
        match ds.try_get(i) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) => Err(TrainError::UnusableData(format!("{name}: none of the first {n} images can be read; last error: {e}"))),
        None => Ok(()),
    }
}

/// Sum of img2dataset's per-shard `NNNNN_stats.json` "successes", when every shard has one; a
/// stats file that is there but unusable is a warning naming it (the epoch size is then unknown).
fn stats_successes(shards: &[PathBuf], warnings: &mut Vec<String>) -> Option<usize> {
    let mut total = 0usize;
    for shard in shards {
        let stem = shard.file_stem()?.to_string_lossy().into_owned();
        let stats = shard.with_file_name(format!("{stem}_stats.json"));
        if !stats.exists() {
            return None;
        }
        let count = diffclip_data::files::read_capped(&stats, 1 << 20)
            .map_err(|e| e.to_string())
            .and_then(|bytes| bytes.ok_or_else(|| "over 1 MiB".to_string()))
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).map_err(|e| e.to_string()))
            .and_then(|v| v.get("successes").and_then(|s| s.as_u64()).ok_or_else(|| "no \"successes\" count (a whole number)".to_string()));
        match count {
            Ok(n) => total = total.saturating_add(usize::try_from(n).unwrap_or(usize::MAX)),
            Err(why) => {
                warnings.push(format!("{}: {why}; the epoch size is unknown (give --train-num-samples)", stats.display()));
                return None;
            }
        }
    }
    // Zero successes over shards that exist, or a sum past any real collection, say nothing
    // true about the epoch: unknown, with a warning, not an epoch of 0 samples.
    if total == 0 || total as u64 >= 1u64 << 48 {
        warnings.push(format!("the shards' *_stats.json files count {total} samples in all; the epoch size is unknown (give --train-num-samples)"));
        return None;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::stats_successes;

    #[test]
    fn img2dataset_stats_give_the_epoch_size_or_a_warning_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let shards = [dir.path().join("00000.tar"), dir.path().join("00001.tar")];
        let stats = |k: usize, json: &str| std::fs::write(dir.path().join(format!("0000{k}_stats.json")), json).unwrap();
        let mut warnings = Vec::new();
        stats(0, r#"{"successes": 7}"#);
        assert_eq!(stats_successes(&shards, &mut warnings), None, "a shard without stats: unknown");
        stats(1, r#"{"successes": 5}"#);
        assert_eq!(stats_successes(&shards, &mut warnings), Some(12));
        assert!(warnings.is_empty(), "{warnings:?}");
        stats(0, r#"{"successes": 0}"#);
        stats(1, r#"{"successes": 0}"#);
        assert_eq!(stats_successes(&shards, &mut warnings), None, "no sample at all says nothing");
        assert!(warnings.len() == 1 && warnings[0].contains("count 0 samples"), "{warnings:?}");
        warnings.clear();
        stats(1, r#"{"successes": -5}"#);
        assert_eq!(stats_successes(&shards, &mut warnings), None);
        assert!(warnings.len() == 1 && warnings[0].contains("00001_stats.json") && warnings[0].contains("successes"), "{warnings:?}");
    }
}
