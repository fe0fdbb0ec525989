use std::collections::BTreeMap;

use diffclip_clip::Precision;
use serde::{Deserialize, Serialize};

use crate::{AdamWConfig, LrSchedule};

/// Which contrastive loss to train with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// Symmetric InfoNCE on normalised features (open_clip `ClipLoss`).
    #[default]
    Clip,
    /// SigLIP sigmoid loss (needs `logit_bias_init` in the model config).
    Siglip,
}

/// The learning rate after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LrDecay {
    /// Cosine decay to `min_lr` at the last step (the paper's).
    #[default]
    Cosine,
    /// Constant at `lr`.
    Constant,
}

/// Most batches one optimizer step accumulates (`accum_steps`).
pub const MAX_ACCUM_STEPS: usize = 1 << 16;

/// Most samples one optimizer step takes (`batch_size × accum_steps`).
pub const MAX_SAMPLES_PER_STEP: usize = 1 << 24;

/// Training hyper-parameters. Defaults follow the paper (lr 5e-4, wd 0.5, β2 0.98, cosine).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Optimizer steps in total.
    pub steps: u64,
    /// Samples per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer step (gradient accumulation).
    pub accum_steps: usize,
    /// Peak learning rate (reached at the end of warm-up).
    pub lr: f64,
    /// Learning rate at the last step under cosine decay.
    pub min_lr: f64,
    /// Linear warm-up steps (the paper warms up for one epoch).
    pub warmup_steps: u64,
    /// What the learning rate does after warm-up.
    pub decay: LrDecay,
    /// Optimizer settings.
    pub adamw: AdamWConfig,
    /// Clip the global gradient norm to this value.
    pub grad_clip: Option<f64>,
    /// The contrastive loss.
    pub loss: LossKind,
    /// Seeds the data order, caption choice and dropout.
    pub seed: u64,
    /// Evaluate every N steps (0: only at the end).
    pub eval_every: u64,
    /// Write a checkpoint every N steps (0: only at the end).
    pub checkpoint_every: u64,
    /// Show a progress bar.
    pub progress: bool,
    /// What the forward and backward compute in: `f32`, or mixed precision with `bf16` or
    /// `f16`: every micro-batch runs on the f32 master weights taken to that precision by
    /// [`Clip::with_precision`](diffclip_clip::Clip::with_precision) (cast on GPUs; on the CPU,
    /// flex, nothing is cast and the linear layers multiply operands rounded to that type,
    /// summing in f32: bf16 runs faster than f32 on Intel Xeons with AMX and AMD CPUs with
    /// AVX512-BF16, and f16 about as fast,
    /// where a cast model runs slower); gradients and AdamW state stay f32, and `f16` runs
    /// with dynamic loss scaling, see [`TrainState::loss_scale`](crate::TrainState::loss_scale).
    pub precision: Precision,
    /// The data settings of the program driving the run, in its words (`examples/train`
    /// stores `--data`, `--preprocess`, `--shuffle-buffer`, ...): kept in the checkpoint so a
    /// resumed run can read the same data the same way. The trainer itself does not read them.
    pub data: BTreeMap<String, String>,
}

impl Default for TrainConfig {
    /// The paper's optimiser settings for 1000 steps of 128, 100 warm-up steps, cosine decay.
    fn default() -> Self {
        Self {
            steps: 1000,
            batch_size: 128,
            accum_steps: 1,
            lr: 5e-4,
            min_lr: 0.0,
            warmup_steps: 100,
            decay: LrDecay::Cosine,
            adamw: AdamWConfig::default(),
            grad_clip: None,
            loss: LossKind::Clip,
            seed: 0,
            eval_every: 0,
            checkpoint_every: 0,
            progress: true,
            precision: Precision::F32,
            data: BTreeMap::new(),
        }
    }
}

impl TrainConfig {
    /// The learning-rate schedule these settings describe.
    pub fn schedule(&self) -> LrSchedule {
        match self.decay {
            LrDecay::Cosine => LrSchedule::WarmupCosine { base: self.lr, warmup: self.warmup_steps, total: self.steps, min: self.min_lr },
            LrDecay::Constant => LrSchedule::WarmupConstant { base: self.lr, warmup: self.warmup_steps },
        }
    }

    /// Refuses training a model of `model` on `device` with these settings where the step would
    /// fail or train something else (checked by [`Trainer::fit`](crate::Trainer::fit) before
    /// anything is written; call it first to refuse before building the model): a text
    /// vocabulary smaller than the CLIP tokenizer's, SigLIP without a logit bias to learn, and,
    /// on a device computing in the host's memory, a batch that cannot fit in it
    /// ([`ModelLimits::check_batch`](diffclip_clip::ModelLimits::check_batch); a GPU's memory is
    /// its own).
    ///
    /// ```
    /// use burn::tensor::Device;
    /// use diffclip_clip::ClipConfig;
    /// use diffclip_train::{LossKind, TrainConfig};
    /// let siglip = TrainConfig { loss: LossKind::Siglip, ..TrainConfig::default() };
    /// let err = siglip.check_model(&ClipConfig::diffclip_tiny(), &Device::flex()).unwrap_err().to_string();
    /// assert!(err.contains("logit bias"), "{err}");
    /// let with_bias = ClipConfig { logit_bias_init: Some(-10.0), ..ClipConfig::diffclip_tiny() };
    /// assert!(siglip.check_model(&with_bias, &Device::flex()).is_ok());
    /// ```
    pub fn check_model(&self, model: &diffclip_clip::ClipConfig, device: &burn::tensor::Device) -> Result<(), crate::TrainError> {
        let bad = |m: String| Err(crate::TrainError::Config(m));
        // The built-in tokenizer's ids reach 49 407 (end of text): a smaller embedding table
        // would fail at the first lookup.
        let vocab = model.text.vocab_size;
        if vocab < diffclip_data::tokenizer::VOCAB_SIZE {
            return bad(format!(
                "the model's text vocabulary (text.vocab_size) holds {vocab} ids, fewer than the CLIP tokenizer's {}: its token ids would fall outside it",
                diffclip_data::tokenizer::VOCAB_SIZE
            ));
        }
        // SigLIP learns a bias next to the scale: without one it would train another loss.
        if self.loss == LossKind::Siglip && model.logit_bias_init.is_none() {
            return bad("loss siglip (--loss siglip) needs a model with a logit bias: set \"logit_bias_init\" (e.g. -10) in the model config".into());
        }
        // A batch that cannot fit is refused up front, not aborted in the allocator.
        if !diffclip_clip::attention::is_host_device(device) {
            return Ok(());
        }
        diffclip_clip::ModelLimits::default()
            .check_batch(&model.estimate(), self.batch_size, diffclip_clip::Workload::Training)
            .map_err(|e| crate::TrainError::Config(format!("batch_size (--batch-size): {e}")))
    }

    /// Settings that are allowed but probably not meant, each said in a line: a warm-up longer
    /// than the run never reaches `lr`.
    ///
    /// ```
    /// use diffclip_train::TrainConfig;
    /// let config = TrainConfig { steps: 50, warmup_steps: 100, ..TrainConfig::default() };
    /// assert!(config.warnings()[0].contains("never reaches"));
    /// assert!(TrainConfig { steps: 200, ..config }.warnings().is_empty());
    /// ```
    pub fn warnings(&self) -> Vec<String> {
        let mut said = Vec::new();
        if self.warmup_steps > self.steps {
            let peak = self.schedule().lr(self.steps.saturating_sub(1));
            said.push(format!(
                "the warm-up (--warmup-steps/--warmup-epochs) of {} steps is longer than the run's {}: the learning rate never reaches --lr {:.2e} (it peaks at {peak:.2e})",
                self.warmup_steps, self.steps, self.lr
            ));
        }
        said
    }

    /// Refuses settings that would fail or train silently wrong (a batch below 2, no positive
    /// `lr`, `min_lr` above it, `beta2` of 1, a zero `eps` or clip, …), naming the flag.
    /// [`Trainer::fit`](crate::Trainer::fit) calls it; call it first to refuse a run before
    /// building anything.
    ///
    /// ```
    /// use diffclip_train::TrainConfig;
    /// assert!(TrainConfig::default().check().is_ok());
    /// let err = TrainConfig { lr: 0.0, ..TrainConfig::default() }.check().unwrap_err();
    /// assert!(err.to_string().contains("lr (--lr) must be a finite number > 0, got 0"));
    /// let endless = TrainConfig { accum_steps: 1 << 62, ..TrainConfig::default() };
    /// assert!(endless.check().unwrap_err().to_string().contains("at most 65536 batches"));
    /// ```
    pub fn check(&self) -> Result<(), crate::TrainError> {
        let bad = |m: &str| Err(crate::TrainError::Config(m.into()));
        if self.batch_size < 2 {
            return bad(&format!("batch_size (--batch-size) must be at least 2 (contrastive loss needs negatives), got {}", self.batch_size));
        }
        if self.accum_steps == 0 {
            return bad("accum_steps (--accum-steps) must be at least 1, got 0");
        }
        // A step of more batches than this never ends in practice (and the product of a huge
        // count with the batch size would wrap): refused, as a stop asked mid-step waits for it.
        if self.accum_steps > MAX_ACCUM_STEPS || self.batch_size.checked_mul(self.accum_steps).is_none_or(|n| n > MAX_SAMPLES_PER_STEP) {
            return bad(&format!(
                "a step of {} batches (--accum-steps) of {} (--batch-size): at most {MAX_ACCUM_STEPS} batches and {MAX_SAMPLES_PER_STEP} samples a step",
                self.accum_steps, self.batch_size
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(&format!("lr (--lr) must be a finite number > 0, got {}", self.lr));
        }
        // Each of these would train silently wrong: NaN weights (beta2 = 1, eps = 0), updates
        // against the gradient (a negative clip) or none at all (a zero clip).
        if !(self.min_lr.is_finite() && self.min_lr >= 0.0) {
            return bad(&format!("min_lr (--min-lr) must be a finite number >= 0, got {}", self.min_lr));
        }
        if self.decay == LrDecay::Cosine && self.min_lr > self.lr {
            return bad(&format!("min_lr (--min-lr) {} is above lr (--lr) {}: the cosine decay would climb", self.min_lr, self.lr));
        }
        let a = &self.adamw;
        for (name, value) in [("adamw.beta1", a.beta1), ("adamw.beta2 (--beta2)", a.beta2)] {
            if !(0.0..1.0).contains(&value) {
                return bad(&format!("{name} must lie in [0, 1), got {value}"));
            }
        }
        if !(a.eps.is_finite() && a.eps > 0.0) {
            return bad(&format!("adamw.eps (--adam-eps) must be a finite number > 0, got {}", a.eps));
        }
        if !(a.weight_decay.is_finite() && a.weight_decay >= 0.0) {
            return bad(&format!("adamw.weight_decay (--wd) must be a finite number >= 0, got {}", a.weight_decay));
        }
        if let Some(clip) = self.grad_clip.filter(|c| !(c.is_finite() && *c > 0.0)) {
            return bad(&format!("grad_clip (--grad-clip) must be a finite number > 0, got {clip}"));
        }
        Ok(())
    }
}
