//! Training checkpoints: model weights, optimizer moments, step and data position in one
//! safetensors file, written to a temporary file and renamed so a crash never leaves a torn one.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use diffclip_clip::checkpoint::{CheckpointFormat, StateTensor, load_state_dict, state_dict_of, to_canonical, write_atomic};
use diffclip_clip::{Clip, ClipConfig};
use safetensors::tensor::TensorView;
use serde::{Deserialize, Serialize};

use crate::{AdamW, Moments, TrainConfig, TrainError};

/// Where training stands: enough to continue exactly where it stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TrainState {
    /// Optimizer steps done.
    pub step: u64,
    /// Current epoch and position inside its sample order.
    pub epoch: u64,
    pub position: usize,
    pub samples_seen: u64,
    pub skipped_samples: usize,
    /// Loss of the last step.
    pub last_loss: f32,
}

/// What a training checkpoint holds besides the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub state: TrainState,
    pub model: ClipConfig,
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
            let data = t.clone().into_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| TrainError::Resume { path: name.clone(), message: format!("{e:?}") })?;
            tensors.insert(format!("{prefix}{k}"), StateTensor { shape: vec![data.len()], data });
        }
    }
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(k, t)| (k, t.shape, t.data.iter().flat_map(|v| v.to_le_bytes()).collect()))
        .collect();
    let views = bytes
        .iter()
        .map(|(k, s, b)| TensorView::new(safetensors::Dtype::F32, s.clone(), b).map(|v| (k.clone(), v)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TrainError::Resume { path: name.clone(), message: e.to_string() })?;
    let meta = HashMap::from([
        ("diffclip_training".to_string(), serde_json::to_string(meta).expect("serialises")),
        ("diffclip_config".to_string(), serde_json::to_string(&meta.model).expect("serialises")),
        ("optim_step".to_string(), optim.step.to_string()),
    ]);
    let out = safetensors::serialize(views, Some(meta)).map_err(|e| TrainError::Resume { path: name.clone(), message: e.to_string() })?;
    Ok(write_atomic(path, &out)?)
}

/// Read a checkpoint: build the model on `device`, load its weights and the optimizer state.
pub fn load_training_checkpoint(path: impl AsRef<Path>, device: &Device) -> Result<(Clip, AdamW, Checkpoint), TrainError> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let err = |message: String| TrainError::Resume { path: name.clone(), message };
    let bytes = std::fs::read(path).map_err(|source| TrainError::Io { path: name.clone(), source })?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| err(e.to_string()))?;
    let meta_map = header.metadata().clone().unwrap_or_default();
    let meta: Checkpoint = meta_map
        .get("diffclip_training")
        .ok_or_else(|| err("not a diffclip training checkpoint (no diffclip_training metadata)".into()))
        .and_then(|j| serde_json::from_str(j).map_err(|e| err(e.to_string())))?;
    let optim_step: u64 = meta_map.get("optim_step").and_then(|s| s.parse().ok()).ok_or_else(|| err("missing optim_step".into()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| err(e.to_string()))?;

    let mut weights = BTreeMap::new();
    let mut moments: BTreeMap<String, (Option<Tensor<1>>, Option<Tensor<1>>)> = BTreeMap::new();
    let inner = device.clone().inner();
    for (k, view) in st.tensors() {
        let data: Vec<f32> = view.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
        if let Some(key) = k.strip_prefix(MODEL) {
            weights.insert(key.to_string(), StateTensor { shape: view.shape().to_vec(), data });
        } else if let Some(key) = k.strip_prefix(M) {
            let n = data.len();
            moments.entry(key.to_string()).or_default().0 = Some(Tensor::from_data(TensorData::new(data, [n]), &inner));
        } else if let Some(key) = k.strip_prefix(V) {
            let n = data.len();
            moments.entry(key.to_string()).or_default().1 = Some(Tensor::from_data(TensorData::new(data, [n]), &inner));
        } else {
            return Err(err(format!("unexpected tensor '{k}'")));
        }
    }
    let mut model = meta.model.init(device).map_err(|e| err(e.to_string()))?;
    let canonical = to_canonical(weights, CheckpointFormat::DiffClip, &name)?;
    load_state_dict(&mut model, canonical, &name)?;
    let mut optim = AdamW::new(meta.train.adamw.clone());
    optim.step = optim_step;
    for (k, (m, v)) in moments {
        let (Some(m), Some(v)) = (m, v) else { return Err(err(format!("incomplete optimizer state for '{k}'"))) };
        optim.moments.insert(k, Moments { m, v });
    }
    Ok((model, optim, meta))
}
