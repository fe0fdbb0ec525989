//! Training checkpoints: model weights, optimizer moments, step and data position in one
//! safetensors file, written to a temporary file and renamed so a crash never leaves a torn one.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use diffclip_clip::checkpoint::{CheckpointError, CheckpointFormat, StateTensor, load_state_dict, safetensors_to_f32, state_dict_of, to_canonical};
use diffclip_clip::checksum::Checksums;
use diffclip_clip::files::{F32Tensor, write_safetensors};
use diffclip_clip::{Clip, ClipConfig};
use serde::{Deserialize, Serialize};

use crate::{AdamW, Moments, TrainConfig, TrainError};

/// Where training stands: enough to continue exactly where it stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TrainState {
    /// Optimizer steps done.
    pub step: u64,
    /// Current epoch (0-based).
    pub epoch: u64,
    /// Samples of the current epoch's order already consumed (the index of the next one).
    pub position: usize,
    /// Samples trained on over all steps so far.
    pub samples_seen: u64,
    /// Samples that failed to load and were skipped, over all steps so far.
    pub skipped_samples: usize,
    /// Loss of the last step.
    pub last_loss: f32,
    /// `f16` mixed precision: the factor on the loss before backward (0 until the first
    /// step sets it to 2^16). Halved after a step whose gradients overflow (that step is
    /// skipped: no update), doubled after [`LOSS_SCALE_GROWTH`](crate::LOSS_SCALE_GROWTH) good
    /// steps in a row, as PyTorch's `GradScaler` does.
    #[serde(default)]
    pub loss_scale: f64,
    /// Good `f16` steps since the loss scale last changed.
    #[serde(default)]
    pub loss_scale_good_steps: u64,
    /// Steps skipped because their gradients overflowed (`f16`).
    #[serde(default)]
    pub skipped_steps: u64,
    /// What the epoch order indexes ([`OpenedSource::fingerprint`](crate::OpenedSource)), once
    /// [`Trainer::use_data`](crate::Trainer::use_data) was told; `None` in checkpoints written
    /// before it existed, or by runs that never said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

impl TrainState {
    /// Checks what any run of `config` leaves true, so that a state no run writes (an edited
    /// or damaged checkpoint) is refused on resume instead of steering the run: at most a
    /// step's samples per step, an epoch only after samples, skipped steps among the steps,
    /// a finite loss and loss scale. `config` is the one the run trained with: a run that
    /// lowered its batch or accumulation after a resume writes states this refuses.
    ///
    /// ```
    /// use diffclip_train::{TrainConfig, TrainState};
    /// let config = TrainConfig { batch_size: 4, ..TrainConfig::default() };
    /// let state = TrainState { step: 2, samples_seen: 8, epoch: 1, ..TrainState::default() };
    /// assert!(state.check(&config).is_ok());
    /// let err = TrainState { epoch: u64::MAX, ..state.clone() }.check(&config).unwrap_err();
    /// assert!(err.contains("epoch 18446744073709551615"), "{err}");
    /// assert!(TrainState { samples_seen: 9, ..state }.check(&config).is_err());
    /// ```
    pub fn check(&self, config: &TrainConfig) -> Result<(), String> {
        let per_step = (config.batch_size as u64).saturating_mul(config.accum_steps as u64);
        let consumed = self.samples_seen.saturating_add(self.skipped_samples as u64);
        let problem = if self.samples_seen > self.step.saturating_mul(per_step) {
            format!("{} samples trained in {} steps of at most {per_step}", self.samples_seen, self.step)
        } else if self.epoch > consumed {
            format!("epoch {} after {} samples trained and {} skipped (an epoch takes at least one)", self.epoch, self.samples_seen, self.skipped_samples)
        } else if self.skipped_steps > self.step {
            format!("{} steps skipped of {}", self.skipped_steps, self.step)
        } else if !self.last_loss.is_finite() {
            format!("last loss {}", self.last_loss)
        } else if !(self.loss_scale.is_finite() && self.loss_scale >= 0.0) || self.loss_scale_good_steps >= crate::LOSS_SCALE_GROWTH {
            format!("loss scale {} after {} good steps", self.loss_scale, self.loss_scale_good_steps)
        } else {
            return Ok(());
        };
        Err(format!("its stored state holds {problem}, which no run writes: the checkpoint is damaged"))
    }
}

/// What a training checkpoint holds besides the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Step, data position and counters at the time of saving.
    pub state: TrainState,
    /// The model's configuration (to rebuild it before loading the weights).
    pub model: ClipConfig,
    /// The training configuration of the run.
    pub train: TrainConfig,
}

const MODEL: &str = "model.";
const M: &str = "optim.m.";
const V: &str = "optim.v.";

/// Write `model`, `optim` and `meta` to `path` atomically (temporary file + rename).
pub fn save_training_checkpoint(path: impl AsRef<Path>, model: &Clip, optim: &AdamW, meta: &Checkpoint) -> Result<(), TrainError> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let mut tensors: BTreeMap<String, StateTensor> = BTreeMap::new();
    for (k, t) in state_dict_of(&model.clone().valid())? {
        tensors.insert(format!("{MODEL}{k}"), t);
    }
    for (k, mom) in &optim.moments {
        for (prefix, t) in [(M, &mom.m), (V, &mom.v)] {
            let data = t.clone().into_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| TrainError::Save { path: name.clone(), message: format!("{prefix}{k}: {e:?}") })?;
            tensors.insert(format!("{prefix}{k}"), StateTensor { shape: vec![data.len()], data });
        }
    }
    // A checkpoint is what a run resumes from: one with a NaN weight or moment would train on
    // silently (a NaN row of an embedding no batch looks up leaves the loss finite).
    if let Some(bad) = first_bad_value(tensors.iter().map(|(k, t)| (k.as_str(), t.data.as_slice()))) {
        return Err(TrainError::Save { path: name, message: format!("{bad}: not written, so the last good checkpoint is kept") });
    }
    let views: Vec<F32Tensor> = tensors.iter().map(|(k, t)| F32Tensor { name: k.clone(), shape: t.shape.clone(), data: &t.data }).collect();
    let meta = HashMap::from([
        ("diffclip_training".to_string(), serde_json::to_string(meta).expect("serialises")),
        ("diffclip_config".to_string(), serde_json::to_string(&meta.model).expect("serialises")),
        ("optim_step".to_string(), optim.step.to_string()),
    ]);
    write_safetensors(path, &views, meta).map_err(|e| TrainError::Checkpoint(e.into()))
}

/// The first value of `tensors` that no training state holds, named with its tensor and
/// element: a NaN or infinity anywhere, or a negative second moment (`optim.v.*`, a mean of
/// squares).
fn first_bad_value<'a>(tensors: impl IntoIterator<Item = (&'a str, &'a [f32])>) -> Option<String> {
    tensors.into_iter().find_map(|(k, data)| {
        let moment2 = k.starts_with(V);
        let i = data.iter().position(|&x| !x.is_finite() || (moment2 && x < 0.0))?;
        Some(format!("tensor '{k}' holds {} at element {i}", data[i]))
    })
}

/// Read a checkpoint: build the model on `device`, load its weights and the optimizer state.
/// A value no training writes (NaN, infinity, a negative second moment) is an error naming it.
pub fn load_training_checkpoint(path: impl AsRef<Path>, device: &Device) -> Result<(Clip, AdamW, Checkpoint), TrainError> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let err = |message: String| TrainError::Resume { path: name.clone(), message };
    // The layout first, from the header alone: a file that is not one is refused before its
    // bytes are read (a 10 GiB file of anything would otherwise be read whole).
    diffclip_clip::checkpoint::check_safetensors(path).map_err(|e| match e {
        CheckpointError::Io { source, .. } => TrainError::Io { path: name.clone(), source },
        // A header that reads but whose tensors do not fill the file: cut short or grown.
        CheckpointError::Read { message, .. } if message.starts_with("header: ") || message.starts_with("the header describes") => err(format!("a damaged safetensors file (cut short, or written over?): {message}")),
        CheckpointError::Read { message, .. } => err(format!("not a diffclip training checkpoint (written by train as a safetensors file, which this is not: {message})")),
        e => err(e.to_string()),
    })?;
    let bytes = diffclip_clip::files::read_regular(path).map_err(|source| TrainError::Io { path: name.clone(), source })?;
    // The parser's errors, said with the tensor at fault where it can be named.
    let damaged = || diffclip_clip::checkpoint::safetensors_problem(&bytes).map(|p| err(format!("a damaged safetensors file: {p}")));
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| damaged().unwrap_or_else(|| err(format!("not a diffclip training checkpoint (written by train as a safetensors file, which this is not: {e})"))))?;
    let meta_map = header.metadata().clone().unwrap_or_default();
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| damaged().unwrap_or_else(|| err(e.to_string())))?;
    // Damage is said as damage before any of it is read as settings. Checkpoints written before
    // checksums existed have none, and load unchecked.
    Checksums::check_file(Some(&meta_map), &st, |_| true).map_err(&err)?;
    let meta: Checkpoint = meta_map
        .get("diffclip_training")
        .ok_or_else(|| err("not a diffclip training checkpoint (no diffclip_training metadata)".into()))
        .and_then(|j| diffclip_clip::json::from_json_objects(j).map_err(|e| err(format!("its diffclip_training metadata does not read: {e}"))))?;
    let optim_step: u64 = meta_map.get("optim_step").and_then(|s| s.parse().ok()).ok_or_else(|| err("missing optim_step".into()))?;

    let mut weights = BTreeMap::new();
    // Moments stay host vectors until they are checked against the model's parameters.
    type HostMoments = (Option<Vec<f32>>, Option<Vec<f32>>); // (m, v)
    let mut moments: BTreeMap<String, HostMoments> = BTreeMap::new();
    for (k, view) in st.tensors() {
        // Float dtypes are converted (F64/F16/BF16 -> f32); integers and bool are refused.
        let data = safetensors_to_f32(view.dtype(), view.data(), &k, &name)?;
        if let Some(bad) = first_bad_value([(k.as_str(), data.as_slice())]) {
            return Err(err(format!("{bad}: the checkpoint is damaged")));
        }
        if let Some(key) = k.strip_prefix(MODEL) {
            weights.insert(key.to_string(), StateTensor { shape: view.shape().to_vec(), data });
        } else if let Some(key) = k.strip_prefix(M) {
            moments.entry(key.to_string()).or_default().0 = Some(data);
        } else if let Some(key) = k.strip_prefix(V) {
            moments.entry(key.to_string()).or_default().1 = Some(data);
        } else {
            return Err(err(format!("unexpected tensor '{k}'")));
        }
    }
    let mut model = meta.model.init_lazy(device).map_err(|e| err(e.to_string()))?;
    let canonical = to_canonical(weights, CheckpointFormat::DiffClip, &name)?;
    load_state_dict(&mut model, canonical, &name)?;
    let mut optim = AdamW::new(meta.train.adamw.clone());
    optim.step = optim_step;
    // Every moment must belong to a parameter and hold exactly its number of elements, so
    // that no later optimizer step meets a mismatched one.
    let sizes = crate::optim::parameter_sizes(&model);
    let inner = device.clone().inner();
    for (k, (m, v)) in moments {
        let (Some(m), Some(v)) = (m, v) else { return Err(err(format!("incomplete optimizer state for '{k}'"))) };
        let Some(&n) = sizes.get(&k) else {
            return Err(err(format!("optimizer state '{M}{k}' is for a parameter the model does not have")));
        };
        for (prefix, len) in [(M, m.len()), (V, v.len())] {
            if len != n {
                return Err(err(format!("optimizer state '{prefix}{k}' has {len} elements, but its parameter has {n}")));
            }
        }
        let m = Tensor::from_data(TensorData::new(m, [n]), &inner);
        let v = Tensor::from_data(TensorData::new(v, [n]), &inner);
        optim.moments.insert(k, Moments { m, v });
    }
    Ok((model, optim, meta))
}
