//! Checkpoint import and export.
//!
//! Reads the DiffCLIP authors' `.pt` training checkpoints and plain safetensors state dicts,
//! open_clip / OpenAI checkpoints, HuggingFace `CLIPModel` safetensors, and our own exports.
//! The container (`.pt`, safetensors, burnpack) and the key layout are detected from the file.

mod error;
mod export;
mod export_names;
mod header_check;
mod layout;
mod state_dict;

use std::path::Path;

use burn::store::{BurnpackStore, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, bridge};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};

pub use error::{CheckpointError, KeyMismatch};
pub use export::{config_of, save_burnpack, save_safetensors, state_dict_of};
pub use export_names::{to_diffclip_names, to_openclip_names};
pub use header_check::safetensors_problem;
pub use layout::{CheckpointFormat, detect_format, to_canonical};
pub use state_dict::{Container, StateDict, StateTensor, check_safetensors, safetensors_header, safetensors_to_f32};

use crate::Clip;

/// Read every tensor of a checkpoint file (any container) with its stored keys.
///
/// ```
/// use burn::tensor::Device;
/// use diffclip_clip::{ClipConfig, checkpoint::read_state_dict, save_safetensors};
/// let model = ClipConfig::diffclip_tiny().init(&Device::flex()).unwrap();
/// let dir = tempfile::tempdir().unwrap();
/// save_safetensors(&model, None, dir.path().join("m.safetensors")).unwrap();
/// let sd = read_state_dict(dir.path().join("m.safetensors")).unwrap();
/// let proj = &sd["image_projection"];
/// assert_eq!(proj.data.len(), proj.shape.iter().product::<usize>());
/// ```
pub fn read_state_dict(path: impl AsRef<Path>) -> Result<StateDict, CheckpointError> {
    read_keys(path.as_ref(), state_dict::Keys::All)
}

fn read_keys(path: &Path, which: state_dict::Keys) -> Result<StateDict, CheckpointError> {
    match state_dict::detect_container(path)? {
        Container::Safetensors => state_dict::read_safetensors_keys(path, which),
        Container::Pytorch => state_dict::read_pytorch_keys(path, which),
        Container::Burnpack => Err(CheckpointError::Read {
            path: path.display().to_string(),
            message: "burnpack files are loaded with load_checkpoint, not read as a state dict".into(),
        }),
    }
}

/// Load weights from `path` into `model`, detecting container and layout. Every key of the
/// model must be present with the right shape, and nothing may be left over; otherwise one
/// error lists all missing, unexpected and mis-shaped keys and the model is left untouched.
///
/// ```no_run
/// # use burn::tensor::Device;
/// use diffclip_clip::{ClipConfig, load_checkpoint};
/// # fn f(device: Device) -> Result<(), Box<dyn std::error::Error>> {
/// let mut model = ClipConfig::openai_vit_b16().init_lazy(&device)?;
/// let format = load_checkpoint(&mut model, "open_clip_model.safetensors")?;
/// println!("loaded a {format:?} checkpoint");
/// # Ok(()) }
/// ```
pub fn load_checkpoint(model: &mut Clip, path: impl AsRef<Path>) -> Result<CheckpointFormat, CheckpointError> {
    let path = path.as_ref();
    let name = path.display().to_string();
    if state_dict::detect_container(path)? == Container::Burnpack {
        load_burnpack(model, path)?;
        return Ok(CheckpointFormat::Burnpack);
    }
    // A diffclip training checkpoint loads as its `model.*` weights, the optimizer left unread.
    let sd = read_keys(path, state_dict::Keys::Weights)?;
    let format = detect_format(&sd);
    let sd = to_canonical(sd, format, &name)?;
    load_state_dict(model, sd, &name)?;
    Ok(format)
}

/// Apply a canonical state dict (see [`to_canonical`]) to `model`, checking names and shapes.
/// `source` names the origin in error messages.
///
/// ```
/// use burn::tensor::Device;
/// use diffclip_clip::{CheckpointError, ClipConfig};
/// use diffclip_clip::checkpoint::{detect_format, load_state_dict, state_dict_of, to_canonical};
/// let device = Device::flex();
/// let model = ClipConfig::diffclip_tiny().init(&device).unwrap();
/// let sd = state_dict_of(&model).unwrap();
/// let canonical = to_canonical(sd, detect_format(&state_dict_of(&model).unwrap()), "memory").unwrap();
/// let mut other = ClipConfig::diffclip_tiny().init_lazy(&device).unwrap();
/// load_state_dict(&mut other, canonical.clone(), "memory").unwrap();
/// // A key too many is refused, naming it; the model is left as it was.
/// let mut extra = canonical;
/// extra.insert("stray".into(), extra["logit_scale"].clone());
/// let err = load_state_dict(&mut other, extra, "memory").unwrap_err();
/// assert!(matches!(err, CheckpointError::Mismatch { .. }) && err.to_string().contains("stray"), "{err}");
/// ```
pub fn load_state_dict(model: &mut Clip, mut sd: StateDict, source: &str) -> Result<(), CheckpointError> {
    for (key, t) in &sd {
        let numel = t.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if numel != Some(t.data.len()) {
            return Err(CheckpointError::Transform {
                path: source.into(),
                key: key.clone(),
                message: format!("shape {:?} does not match its {} values", t.shape, t.data.len()),
            });
        }
    }
    let expected = state_dict_shapes(model);
    let mut mismatch = KeyMismatch::default();
    for (key, shape) in &expected {
        match sd.get_mut(key) {
            None => mismatch.missing.push((key.clone(), shape.clone())),
            Some(t) if &t.shape != shape => {
                // Unit dimensions differ between layouts (0-d logit_scale, `[W]` class embedding).
                let squeeze = |s: &[usize]| s.iter().copied().filter(|&d| d != 1).collect::<Vec<_>>();
                if squeeze(&t.shape) == squeeze(shape) {
                    t.shape = shape.clone();
                } else {
                    mismatch.shapes.push((key.clone(), shape.clone(), t.shape.clone()));
                }
            }
            Some(_) => {}
        }
    }
    for (key, t) in &sd {
        if !expected.contains_key(key) {
            mismatch.unexpected.push((key.clone(), t.shape.clone()));
        }
    }
    if !mismatch.is_empty() {
        return Err(CheckpointError::Mismatch { path: source.into(), mismatch });
    }
    // One tensor at a time: each source tensor is freed once the model holds its (transposed)
    // copy, so loading peaks at one model plus one tensor instead of two models. Names and
    // shapes were checked above, so every call must use its one tensor.
    for (key, t) in sd {
        let tensor = bridge::from_data(TensorData::new(t.data, t.shape), key, None);
        let result = model.apply(vec![tensor], None, Some(Box::new(PyTorchToBurnAdapter)), true);
        if !result.errors.is_empty() || !result.unused.is_empty() || result.applied.len() != 1 {
            return Err(CheckpointError::Apply { path: source.into(), message: result.to_string() });
        }
    }
    Ok(())
}

/// The model's canonical keys and PyTorch-layout shapes.
///
/// Read from the parameters' declared shapes, so a model built with
/// [`ClipConfig::init_lazy`](crate::ClipConfig::init_lazy) (weights not drawn yet) allocates
/// nothing here: loading then holds one model's weights, not a random initialisation beside
/// the checkpoint's.
///
/// ```
/// use burn::tensor::Device;
/// use diffclip_clip::{ClipConfig, checkpoint::state_dict_shapes};
/// let model = ClipConfig::diffclip_vit_b16().init_lazy(&Device::flex()).unwrap();
/// let shapes = state_dict_shapes(&model); // nothing of ViT-B/16 is allocated
/// assert_eq!(shapes["visual.patch_embed.proj.weight"], [768, 3, 16, 16]);
/// ```
pub fn state_dict_shapes(model: &Clip) -> std::collections::BTreeMap<String, Vec<usize>> {
    let mut shapes = ShapeVisitor::default();
    model.visit(&mut shapes);
    shapes.shapes
}

/// Collects names and shapes the way burn-store's collector with [`BurnToPyTorchAdapter`]
/// names them (enum variants left out of paths, `Linear` weights transposed, norm
/// `gamma`/`beta` as `weight`/`bias`), without reading any values.
#[derive(Default)]
struct ShapeVisitor {
    path: Vec<String>,
    containers: Vec<String>,
    shapes: std::collections::BTreeMap<String, Vec<usize>>,
}

impl ModuleVisitor for ShapeVisitor {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.containers.push(container_type.to_string());
        if !container_type.starts_with("Enum:") {
            self.path.push(name.to_string());
        }
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.containers.pop();
        if !container_type.starts_with("Enum:") {
            self.path.pop();
        }
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let mut shape = param.lazy_shape().to_vec();
        let mut path = self.path.clone();
        let module = self.containers.iter().rev().find(|c| c.starts_with("Struct:") || c.starts_with("Enum:")).map(String::as_str);
        let last = path.last().map(String::as_str);
        match (module, last) {
            (Some("Struct:Linear"), Some("weight")) if shape.len() == 2 => shape.reverse(),
            (Some("Struct:BatchNorm" | "Struct:LayerNorm" | "Struct:GroupNorm" | "Struct:RmsNorm"), Some(p @ ("gamma" | "beta"))) => {
                let renamed = if p == "gamma" { "weight" } else { "bias" };
                *path.last_mut().expect("a parameter has a name") = renamed.into();
            }
            _ => {}
        }
        self.shapes.insert(path.join("."), shape);
    }
}

/// Every parameter's shape under its Burn path (enum variants included, as burnpack stores
/// them), read without initialising a lazy model.
fn burn_shapes(model: &Clip) -> std::collections::HashMap<String, Vec<usize>> {
    struct Shapes {
        path: Vec<String>,
        shapes: std::collections::HashMap<String, Vec<usize>>,
    }
    impl ModuleVisitor for Shapes {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.shapes.insert(self.path.join("."), param.lazy_shape().to_vec());
        }
    }
    let mut v = Shapes { path: Vec::new(), shapes: Default::default() };
    model.visit(&mut v);
    v.shapes
}

fn load_burnpack(model: &mut Clip, path: &Path) -> Result<(), CheckpointError> {
    let name = path.display().to_string();
    // The path as given: with its default auto_extension the store would read `weights.bpk`
    // for a file named `weights`.
    // Not validated by the store: its shape errors are listed below like the other containers'.
    let mut store = BurnpackStore::from_file(path).auto_extension(false).allow_partial(true).validate(false);
    // Applied to a copy (sharing the tensors, so no second allocation): a load that fails half
    // way leaves the model as it was.
    let mut loaded = model.clone();
    let result = store.apply_to(&mut loaded).map_err(|e| CheckpointError::Read { path: name.clone(), message: e.to_string() })?;
    if !result.errors.is_empty() || !result.missing.is_empty() || !result.unused.is_empty() {
        // Said as for the other containers, not with Burn's advice on editing Rust code.
        let expected = burn_shapes(model);
        let found: std::collections::HashMap<String, Vec<usize>> = store.get_all_tensors().map(|all| all.iter().map(|(k, t)| (k.clone(), t.shape.to_vec())).collect()).unwrap_or_default();
        let mut mismatch = KeyMismatch {
            missing: result.missing.iter().map(|(k, _)| (k.clone(), expected.get(k).cloned().unwrap_or_default())).collect(),
            unexpected: result.unused.iter().map(|k| (k.clone(), found.get(k).cloned().unwrap_or_default())).collect(),
            shapes: Vec::new(),
        };
        for e in &result.errors {
            match e {
                burn::store::ApplyError::ShapeMismatch { path, expected, found } => mismatch.shapes.push((path.clone(), expected.to_vec(), found.to_vec())),
                other => return Err(CheckpointError::Apply { path: name, message: other.to_string() }),
            }
        }
        return Err(CheckpointError::Mismatch { path: name, mismatch });
    }
    *model = loaded;
    Ok(())
}
