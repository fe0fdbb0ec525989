//! Export to safetensors (the DiffCLIP authors' or open_clip's key names, PyTorch layout) and
//! burnpack.

use std::collections::HashMap;
use std::path::Path;

use burn::store::{BurnToPyTorchAdapter, BurnpackStore, ModuleSnapshot, bridge};

use super::export_names::{is_openai_layout, to_diffclip_names, to_openclip_names};
use super::{CheckpointError, StateDict, StateTensor};
use crate::files::{F32Tensor, FileError, write_atomic_with, write_safetensors};
use crate::{Clip, ClipConfig};

/// The model's weights as a state dict with PyTorch layouts (`logit_scale` 0-d), exactly what
/// [`save_safetensors`] writes: under the DiffCLIP authors' key names, or open_clip's for a
/// model in the OpenAI layout (`ln_pre`, no patch bias).
///
/// ```
/// use burn::tensor::Device;
/// use diffclip_clip::{ClipConfig, checkpoint::state_dict_of};
/// let model = ClipConfig::diffclip_tiny().init(&Device::flex()).unwrap();
/// let sd = state_dict_of(&model).unwrap();
/// assert!(sd["logit_scale"].shape.is_empty()); // 0-d, as PyTorch stores it
/// assert!(sd.contains_key("visual.blocks.0.attn.lambda_q1")); // the authors' names
/// ```
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
    if is_openai_layout(&sd) {
        to_openclip_names(sd, "<model>")
    } else {
        to_diffclip_names(sd, "<model>")
    }
}

/// Write the weights as a safetensors state dict, loadable by
/// [`load_checkpoint`](super::load_checkpoint) and by the PyTorch code of the model's layout:
/// the DiffCLIP authors' for the timm layout, open_clip's `CLIP.load_state_dict` for a
/// standard-attention model in the OpenAI layout (see [`state_dict_of`]). The config is stored
/// in the metadata under `diffclip_config` when given. Written atomically.
///
/// ```
/// use burn::tensor::Device;
/// use diffclip_clip::{ClipConfig, checkpoint::config_of, load_checkpoint, save_safetensors};
/// let device = Device::flex();
/// let config = ClipConfig::diffclip_tiny();
/// let model = config.init(&device).unwrap();
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("model.safetensors");
/// save_safetensors(&model, Some(&config), &path).unwrap();
/// // The file alone rebuilds the model.
/// let stored = config_of(&path).unwrap().unwrap();
/// let mut loaded = stored.init_lazy(&device).unwrap();
/// load_checkpoint(&mut loaded, &path).unwrap();
/// assert_eq!(
///     loaded.logit_scale.val().into_data().try_into_vec::<f32>().unwrap(),
///     model.logit_scale.val().into_data().try_into_vec::<f32>().unwrap(),
/// );
/// ```
pub fn save_safetensors(model: &Clip, config: Option<&ClipConfig>, path: impl AsRef<Path>) -> Result<(), CheckpointError> {
    let sd = state_dict_of(model)?;
    let tensors: Vec<F32Tensor> = sd.iter().map(|(k, t)| F32Tensor { name: k.clone(), shape: t.shape.clone(), data: &t.data }).collect();
    let mut meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    if let Some(c) = config {
        meta.insert(CONFIG_KEY.into(), serde_json::to_string(c).expect("config serialises"));
    }
    Ok(write_safetensors(path.as_ref(), &tensors, meta)?)
}

/// Write the weights in Burn's burnpack format (Burn layout), atomically. The config is stored
/// in the metadata under `diffclip_config` when given, so [`config_of`] (and
/// [`ClipConfig::select`] with only a checkpoint) can rebuild the model from the file alone.
///
/// ```
/// # use burn::tensor::Device;
/// use diffclip_clip::{ClipConfig, checkpoint::config_of, save_burnpack};
/// let config = ClipConfig::diffclip_tiny();
/// let model = config.init(&Device::flex()).unwrap();
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("model.bpk");
/// save_burnpack(&model, Some(&config), &path).unwrap();
/// assert_eq!(config_of(&path).unwrap(), Some(config));
/// ```
pub fn save_burnpack(model: &Clip, config: Option<&ClipConfig>, path: impl AsRef<Path>) -> Result<(), CheckpointError> {
    let path = path.as_ref();
    let json = config.map(|c| serde_json::to_string(c).expect("config serialises"));
    Ok(write_atomic_with(path, |tmp| {
        let mut store = BurnpackStore::from_file(tmp).overwrite(true);
        if let Some(json) = &json {
            store = store.metadata(CONFIG_KEY, json.as_str());
        }
        model.save_into(&mut store).map_err(|e| FileError::Serialize { path: path.display().to_string(), message: e.to_string() })
    })?)
}

/// The metadata key under which both savers store the config.
const CONFIG_KEY: &str = "diffclip_config";

/// The config stored in a safetensors or burnpack file written by [`save_safetensors`] or
/// [`save_burnpack`] (or in a training checkpoint), if any. Only the header is read. The config
/// is untrusted: it is [checked](ClipConfig::check_fits) against the default limits, and an
/// invalid one is an error naming the file, and so is a damaged file or one of no checkpoint
/// format. A PyTorch file that opens carries no config (`Ok(None)`).
/// (Example: [`save_safetensors`], [`save_burnpack`].)
pub fn config_of(path: impl AsRef<Path>) -> Result<Option<ClipConfig>, CheckpointError> {
    let path = path.as_ref();
    let name = path.display().to_string();
    // A damaged file says what is wrong with it, not that it carries no config.
    let json = match super::state_dict::detect_container(path)? {
        super::Container::Burnpack => burn::store::burn_pack::Reader::from_file_exact(path)
            .map_err(|e| CheckpointError::Read { path: name.clone(), message: e.to_string() })?
            .metadata()
            .get(CONFIG_KEY)
            .cloned(),
        // torch.save files carry no config; a damaged one is named as such.
        super::Container::Pytorch => super::state_dict::open_pytorch(path).map(|_| None)?,
        super::Container::Safetensors => {
            super::check_safetensors(path)?;
            let header = super::safetensors_header(path).map_err(|source| CheckpointError::Io { path: name.clone(), source })?;
            let metadata: Option<HashMap<String, String>> = header.as_ref().and_then(|h| serde_json::from_value(h.get(crate::files::METADATA_KEY)?.clone()).ok());
            // A damaged config is said as damage, not read as another model.
            crate::checksum::Checksums::from_metadata(metadata.as_ref()).map_err(|message| CheckpointError::Damaged { path: name.clone(), message })?;
            metadata.and_then(|mut m| m.remove(CONFIG_KEY))
        }
    };
    let Some(json) = json else {
        return Ok(None);
    };
    let invalid = |e: crate::ClipError| CheckpointError::Read { path: name.clone(), message: format!("{CONFIG_KEY} in the metadata: {e}") };
    let config = ClipConfig::from_json(&json).map_err(invalid)?;
    config.check_fits(&crate::ModelLimits::default()).map_err(invalid)?;
    Ok(Some(config))
}
