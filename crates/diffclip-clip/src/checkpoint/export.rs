//! Export to safetensors (DiffCLIP authors' key names, PyTorch layout) and burnpack.

use std::collections::HashMap;
use std::path::Path;

use burn::store::{BurnToPyTorchAdapter, BurnpackStore, ModuleSnapshot, bridge};
use safetensors::tensor::TensorView;

use super::layout::to_diffclip_names;
use super::{CheckpointError, StateDict, StateTensor};
use crate::{Clip, ClipConfig};

/// The model's weights as a state dict with the DiffCLIP authors' key names and PyTorch
/// layouts (`logit_scale` 0-d), exactly what [`save_safetensors`] writes.
pub fn state_dict_of(model: &Clip) -> Result<StateDict, CheckpointError> {
    let mut sd = StateDict::new();
    for t in model.collect(None, Some(Box::new(BurnToPyTorchAdapter)), true) {
        let name = t.name.clone();
        let data = bridge::into_data(t)
            .map_err(|e| CheckpointError::Read { path: "<model>".into(), message: format!("{name}: {e}") })?;
        let shape = data.shape().to_vec();
        let values = data
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| CheckpointError::Read { path: "<model>".into(), message: format!("{name}: {e:?}") })?;
        sd.insert(name, StateTensor { shape, data: values });
    }
    if let Some(t) = sd.get_mut("logit_scale") {
        t.shape.clear();
    }
    to_diffclip_names(sd, "<model>")
}

/// Write the weights as a safetensors state dict in the DiffCLIP layout, loadable by
/// [`load_checkpoint`](super::load_checkpoint) and by the authors' PyTorch code. The config is
/// stored in the metadata under `diffclip_config` when given. Written atomically.
pub fn save_safetensors(model: &Clip, config: Option<&ClipConfig>, path: impl AsRef<Path>) -> Result<(), CheckpointError> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let sd = state_dict_of(model)?;
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = sd
        .into_iter()
        .map(|(k, t)| (k, t.data.iter().flat_map(|v| v.to_le_bytes()).collect(), t.shape))
        .collect();
    let views = bytes
        .iter()
        .map(|(k, b, s)| TensorView::new(safetensors::Dtype::F32, s.clone(), b).map(|v| (k.clone(), v)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CheckpointError::Write { path: name.clone(), message: e.to_string() })?;
    let mut meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    if let Some(c) = config {
        meta.insert("diffclip_config".into(), serde_json::to_string(c).expect("config serialises"));
    }
    let out = safetensors::serialize(views, Some(meta)).map_err(|e| CheckpointError::Write { path: name.clone(), message: e.to_string() })?;
    write_atomic(path, &out)
}

/// Write the weights in Burn's burnpack format (Burn layout), atomically.
pub fn save_burnpack(model: &Clip, path: impl AsRef<Path>) -> Result<(), CheckpointError> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let tmp = tmp_path(path);
    let mut store = BurnpackStore::from_file(&tmp).overwrite(true);
    model.save_into(&mut store).map_err(|e| CheckpointError::Write { path: name.clone(), message: e.to_string() })?;
    std::fs::rename(&tmp, path).map_err(|source| CheckpointError::Io { path: name, source })
}

/// The config stored in a safetensors file written by [`save_safetensors`], if any.
pub fn config_of(path: impl AsRef<Path>) -> Result<Option<ClipConfig>, CheckpointError> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io { path: name.clone(), source })?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| CheckpointError::Read { path: name.clone(), message: e.to_string() })?;
    let Some(json) = meta.metadata().as_ref().and_then(|m| m.get("diffclip_config").cloned()) else {
        return Ok(None);
    };
    ClipConfig::from_json(&json).map(Some).map_err(|e| CheckpointError::Read { path: name, message: format!("diffclip_config: {e}") })
}

fn tmp_path(path: &Path) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".tmp{}", std::process::id()));
    s.into()
}

/// Write via a temporary file and rename, so a crash never leaves a truncated file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let name = path.display().to_string();
    let tmp = tmp_path(path);
    std::fs::write(&tmp, bytes).map_err(|source| CheckpointError::Io { path: name.clone(), source })?;
    std::fs::rename(&tmp, path).map_err(|source| CheckpointError::Io { path: name, source })
}
