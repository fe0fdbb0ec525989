//! Compact CLIP-family models trained on the built-in synthetic image–caption set and evaluated
//! on its test split: the driver shared by the quickstart, `reproduce` and `convert` examples.
//!
//! ```no_run
//! use burn::tensor::Device;
//! use diffclip_train::synthetic::{CompactShape, SyntheticTask, compact_train_config, init_compact, train_and_evaluate};
//!
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let task = SyntheticTask::new(Default::default())?;
//! let device = Device::flex().autodiff();
//! let (model, config) = init_compact("diffclip", &CompactShape::default(), 0, &device)?;
//! let run = train_and_evaluate(model, config, compact_train_config(250, 64, 0, 50), None, None, &task)?;
//! println!("shape zero-shot {:.3}", run.test.metrics.zero_shot_shape_top1);
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;
use diffclip_clip::attention::{AttentionKind, LambdaInit};
use diffclip_clip::encoders::{TextConfig, VisionConfig};
use diffclip_clip::{Clip, ClipConfig};
use diffclip_data::synthetic::{ContrastiveView, Split};
use diffclip_data::{ClipBatcher, ClipTokenizer, SyntheticConfig, SyntheticDataset, TokenizerConfig};
use diffclip_eval::heldout::{HeldOut, HeldOutMetrics, evaluate_synthetic_heldout};
use serde::Serialize;

use crate::{AdamWConfig, LrScale, RunOptions, TrainConfig, TrainError, Trainer, mean_lambda};

/// The model variants, as the examples' `--variants` name them: standard attention (`clip`),
/// differential attention in both towers (`diffclip`), the same with the depth schedule of
/// `lambda_init` (`diffclip-star`, the paper's DiffCLIP*), differential attention in the vision
/// tower only (`diffclip-dagger`, DiffCLIP†).
pub const VARIANTS: [&str; 4] = ["clip", "diffclip", "diffclip-star", "diffclip-dagger"];

/// Text context of the compact models (the synthetic captions are far shorter than 77 tokens).
pub const CONTEXT: usize = 32;

/// Shape of the compact models: both towers `width` wide with 4 heads, patch size 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CompactShape {
    /// Width of both towers and of the embedding.
    pub width: usize,
    /// Vision transformer layers.
    pub vision_layers: usize,
    /// Text transformer layers.
    pub text_layers: usize,
    /// Image side in pixels.
    pub image_size: usize,
}

impl Default for CompactShape {
    /// The quickstart's model: width 96, 4 vision and 2 text layers, 64-pixel images.
    fn default() -> Self {
        Self { width: 96, vision_layers: 4, text_layers: 2, image_size: 64 }
    }
}

impl CompactShape {
    /// Checks the sizes, naming the offending one as the examples' flags do (`--width`, ...).
    pub fn check(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Config(m));
        for (flag, v) in [("--width", self.width), ("--vision-layers", self.vision_layers), ("--text-layers", self.text_layers), ("--image-size", self.image_size)] {
            if v == 0 {
                return bad(format!("{flag} must be at least 1"));
            }
        }
        if !self.width.is_multiple_of(4) {
            return bad(format!("--width must be a multiple of 4 (the towers have 4 heads), got {}", self.width));
        }
        if !self.image_size.is_multiple_of(8) {
            return bad(format!("--image-size must be a multiple of the patch size 8, got {}", self.image_size));
        }
        Ok(())
    }
}

/// Rough wall time in seconds of `steps` training steps of `shape` at `batch_size` on 2 CPU
/// cores, held-out evaluations included, for the examples' up-front estimates. The default model
/// at batch 64 ran 2.25 steps/s on the otherwise idle machine of `docs/reproduction.md` (1.3
/// while other jobs ran); other shapes are scaled by batch, tokens, width² and depth.
pub fn expected_seconds(shape: &CompactShape, batch_size: usize, steps: u64) -> f64 {
    let d = CompactShape::default();
    let cost = (batch_size as f64 / 64.0)
        * (shape.image_size as f64 / d.image_size as f64).powi(2)
        * (shape.width as f64 / d.width as f64).powi(2)
        * (shape.vision_layers + shape.text_layers) as f64
        / (d.vision_layers + d.text_layers) as f64;
    steps as f64 * cost / 2.0
}

/// The compact model config of `variant` (one of [`VARIANTS`]); every variant has the same shape.
pub fn compact_config(variant: &str, shape: &CompactShape) -> Result<ClipConfig, TrainError> {
    shape.check()?;
    let mut vision = VisionConfig::timm(shape.image_size, 8, shape.width, shape.vision_layers, 4);
    let mut text = TextConfig::new(shape.width, shape.text_layers, 4);
    text.context_length = CONTEXT;
    let (v, t, schedule) = match variant {
        "clip" => (AttentionKind::Standard, AttentionKind::Standard, false),
        "diffclip" => (AttentionKind::Differential, AttentionKind::Differential, false),
        "diffclip-star" => (AttentionKind::Differential, AttentionKind::Differential, true),
        "diffclip-dagger" => (AttentionKind::Differential, AttentionKind::Standard, false),
        other => return Err(TrainError::Config(format!("unknown variant '{other}' ({})", VARIANTS.join(", ")))),
    };
    vision.attention.kind = v;
    text.attention.kind = t;
    if schedule {
        vision.attention.lambda_init = LambdaInit::DepthSchedule;
        text.attention.lambda_init = LambdaInit::DepthSchedule;
    }
    Ok(ClipConfig { embed_dim: shape.width, vision, text, logit_scale_init: (1.0f64 / 0.07).ln(), logit_bias_init: None })
}

/// A fresh compact model of `variant` on the autodiff `device`, initialised from `seed`.
pub fn init_compact(variant: &str, shape: &CompactShape, seed: u64, device: &Device) -> Result<(Clip, ClipConfig), TrainError> {
    let config = compact_config(variant, shape)?;
    device.seed(seed);
    let model = config.init(device)?;
    Ok((model, config))
}

/// The compact recipe: AdamW at lr 1e-3 (warm-up over the first tenth, then cosine to 0),
/// weight decay 0.1 on matrices, gradient norm clipped at 1; `seed` fixes the data order,
/// `eval_every` the held-out curve's spacing (0: only at the end).
pub fn compact_train_config(steps: u64, batch_size: usize, seed: u64, eval_every: u64) -> TrainConfig {
    TrainConfig {
        steps,
        batch_size,
        lr: 1e-3,
        warmup_steps: steps / 10,
        adamw: AdamWConfig { weight_decay: 0.1, ..Default::default() },
        grad_clip: Some(1.0),
        seed,
        eval_every,
        ..TrainConfig::default()
    }
}

/// The synthetic training set, its test split and the batcher of the compact models.
pub struct SyntheticTask {
    /// The training split.
    pub train: SyntheticDataset,
    /// The test split (held-out metrics).
    pub test: SyntheticDataset,
    /// Tokenises captions to [`CONTEXT`] tokens.
    pub batcher: ClipBatcher,
    data: ContrastiveView,
}

impl SyntheticTask {
    /// Both splits of `config` (its `seed` fixes the images and captions) and a tokenizer with
    /// the compact models' context of [`CONTEXT`] tokens.
    pub fn new(config: SyntheticConfig) -> Result<Self, TrainError> {
        let train = SyntheticDataset::new(config.clone(), Split::Train)?;
        let test = SyntheticDataset::new(config, Split::Test)?;
        let tokenizer = ClipTokenizer::with_config(TokenizerConfig { context_length: CONTEXT, ..Default::default() })?;
        Ok(Self { data: train.contrastive(), train, test, batcher: ClipBatcher::new(tokenizer) })
    }

    /// Chance levels: shape top-1, colour top-1, retrieval recall@1.
    pub fn chance(&self) -> (f64, f64, f64) {
        use diffclip_data::datasets::ClassificationDataset;
        use diffclip_data::synthetic::ClassTask;
        let classes = |t| self.test.classification(t).class_names().len() as f64;
        (1.0 / classes(ClassTask::Shape), 1.0 / classes(ClassTask::Color), 1.0 / self.test.len() as f64)
    }
}

/// One training run and its held-out evaluation.
pub struct RunOutcome {
    /// The trained model on the inference device.
    pub model: Clip,
    /// Parameter count.
    pub params: usize,
    /// Training loss of the last step.
    pub final_loss: f32,
    /// Training loss of every step.
    pub losses: Vec<f32>,
    /// Training throughput.
    pub samples_per_s: f64,
    /// Wall time of training including the evaluations.
    pub train_seconds: f64,
    /// Held-out metrics every `eval_every` steps and at the end.
    pub curve: Vec<HeldOutMetrics>,
    /// Mean λ of the vision and text towers at each point of `curve` (`None`: no differential layer).
    pub lambdas: Vec<(u64, Option<f32>, Option<f32>)>,
    /// The final evaluation with its per-sample outcomes.
    pub test: HeldOut,
}

/// Train `model` (on an autodiff device) with `train` on `task`'s training set, evaluating it
/// on the test split every `train.eval_every` steps and at the end. With `output`, checkpoints
/// and `metrics.jsonl` go there (replacing an earlier run's). `lr_scale`: per-parameter
/// learning-rate factors (see [`RunOptions::lr_scale`]).
pub fn train_and_evaluate(
    model: Clip,
    model_config: ClipConfig,
    train: TrainConfig,
    output: Option<PathBuf>,
    lr_scale: Option<LrScale>,
    task: &SyntheticTask,
) -> Result<RunOutcome, TrainError> {
    let params = model.num_params();
    // One run writes a folder at a time, from before its first write to the end of evaluation.
    let _held = match &output {
        Some(dir) => crate::hold_output(dir)?,
        None => None,
    };
    let options = RunOptions { output, overwrite: true, lr_scale, ..RunOptions::default() };
    let mut trainer = Trainer::new(model, model_config, train, options);
    let (mut curve, mut lambdas, mut last) = (Vec::new(), Vec::new(), None);
    let mut hook = |m: &Clip, step: u64| {
        let h = evaluate_synthetic_heldout(m, &task.test, &task.batcher, step).map_err(|e| TrainError::Eval(e.to_string()))?;
        curve.push(h.metrics.clone());
        lambdas.push((step, mean_lambda(m.visual.lambdas()), mean_lambda(m.text.lambdas())));
        let value = serde_json::to_value(&h.metrics).map_err(|e| TrainError::Eval(e.to_string()))?;
        last = Some(h);
        Ok(value)
    };
    let start = Instant::now();
    let report = trainer.fit(&task.data, &task.batcher, Some(&mut hook))?;
    let train_seconds = start.elapsed().as_secs_f64();
    let test = last.ok_or_else(|| TrainError::Eval("no evaluation ran".into()))?;
    Ok(RunOutcome {
        model: trainer.model.valid(),
        params,
        final_loss: report.final_loss,
        losses: report.losses,
        samples_per_s: report.samples_per_s,
        train_seconds,
        curve,
        lambdas,
        test,
    })
}
