//! Reading every tensor of a checkpoint file into memory as f32, whatever the container.

use std::collections::BTreeMap;
use std::path::Path;

use burn::store::pytorch_reader::{DType as PtDType, PytorchReader};
use safetensors::{Dtype, SafeTensors};

use super::CheckpointError;

/// One tensor of a state dict, row-major f32.
#[derive(Debug, Clone, PartialEq)]
pub struct StateTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Tensors by key, as stored in the file (after container unwrapping).
pub type StateDict = BTreeMap<String, StateTensor>;

/// The file container, detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Safetensors,
    /// `torch.save` output (zip or legacy pickle).
    Pytorch,
    /// Burn's own burnpack format.
    Burnpack,
}

pub(crate) fn detect_container(path: &Path) -> Result<Container, CheckpointError> {
    let bytes = read_head(path)?;
    if bytes.len() >= 4 && (&bytes[..4] == b"BURN" || &bytes[..4] == b"NRUB") {
        return Ok(Container::Burnpack);
    }
    if bytes.len() >= 4 && &bytes[..4] == b"PK\x03\x04" || bytes.first() == Some(&0x80) {
        return Ok(Container::Pytorch);
    }
    if bytes.len() >= 9 && bytes[8] == b'{' {
        return Ok(Container::Safetensors);
    }
    Err(CheckpointError::UnknownContainer { path: path.display().to_string() })
}

fn read_head(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|source| CheckpointError::Io { path: path.display().to_string(), source })?;
    let mut buf = vec![0u8; 16];
    let n = f.read(&mut buf).map_err(|source| CheckpointError::Io { path: path.display().to_string(), source })?;
    buf.truncate(n);
    Ok(buf)
}

/// Read a safetensors file.
pub fn read_safetensors(path: &Path) -> Result<StateDict, CheckpointError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io { path: name.clone(), source })?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| CheckpointError::Read { path: name.clone(), message: e.to_string() })?;
    let mut out = StateDict::new();
    for (key, view) in st.tensors() {
        let data = safetensors_to_f32(view.dtype(), view.data())
            .ok_or_else(|| CheckpointError::Read { path: name.clone(), message: format!("tensor '{key}' has unsupported dtype {:?}", view.dtype()) })?;
        out.insert(key, StateTensor { shape: view.shape().to_vec(), data });
    }
    Ok(out)
}

/// Read a `torch.save` checkpoint: the `state_dict` entry of a training checkpoint (optimizer,
/// scaler and args are ignored) or a plain state dict.
pub fn read_pytorch(path: &Path) -> Result<StateDict, CheckpointError> {
    let name = path.display().to_string();
    let reader = match PytorchReader::with_top_level_key(path, "state_dict") {
        Ok(r) => r,
        Err(_) => PytorchReader::new(path).map_err(|e| CheckpointError::Read { path: name.clone(), message: e.to_string() })?,
    };
    let mut out = StateDict::new();
    for (key, t) in reader.into_tensors() {
        let bytes = t.read().map_err(|e| CheckpointError::Read { path: name.clone(), message: e.to_string() })?;
        let data = pytorch_to_f32(t.dtype(), &bytes);
        out.insert(key, StateTensor { shape: t.shape().to_vec(), data });
    }
    Ok(out)
}

fn chunks<const N: usize>(b: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    b.chunks_exact(N).map(|c| c.try_into().expect("exact chunk"))
}

fn safetensors_to_f32(dtype: Dtype, b: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => chunks::<4>(b).map(f32::from_le_bytes).collect(),
        Dtype::F64 => chunks::<8>(b).map(|c| f64::from_le_bytes(c) as f32).collect(),
        Dtype::F16 => chunks::<2>(b).map(|c| half::f16::from_le_bytes(c).to_f32()).collect(),
        Dtype::BF16 => chunks::<2>(b).map(|c| half::bf16::from_le_bytes(c).to_f32()).collect(),
        Dtype::I64 => chunks::<8>(b).map(|c| i64::from_le_bytes(c) as f32).collect(),
        Dtype::I32 => chunks::<4>(b).map(|c| i32::from_le_bytes(c) as f32).collect(),
        Dtype::U8 | Dtype::BOOL => b.iter().map(|&v| v as f32).collect(),
        _ => return None,
    })
}

// pytorch_reader returns native-endian bytes.
fn pytorch_to_f32(dtype: PtDType, b: &[u8]) -> Vec<f32> {
    match dtype {
        PtDType::F32 => chunks::<4>(b).map(f32::from_ne_bytes).collect(),
        PtDType::F64 => chunks::<8>(b).map(|c| f64::from_ne_bytes(c) as f32).collect(),
        PtDType::F16 => chunks::<2>(b).map(|c| half::f16::from_ne_bytes(c).to_f32()).collect(),
        PtDType::BF16 => chunks::<2>(b).map(|c| half::bf16::from_ne_bytes(c).to_f32()).collect(),
        PtDType::I64 => chunks::<8>(b).map(|c| i64::from_ne_bytes(c) as f32).collect(),
        PtDType::U64 => chunks::<8>(b).map(|c| u64::from_ne_bytes(c) as f32).collect(),
        PtDType::I32 => chunks::<4>(b).map(|c| i32::from_ne_bytes(c) as f32).collect(),
        PtDType::U32 => chunks::<4>(b).map(|c| u32::from_ne_bytes(c) as f32).collect(),
        PtDType::I16 => chunks::<2>(b).map(|c| i16::from_ne_bytes(c) as f32).collect(),
        PtDType::U16 => chunks::<2>(b).map(|c| u16::from_ne_bytes(c) as f32).collect(),
        PtDType::I8 => b.iter().map(|&v| v as i8 as f32).collect(),
        PtDType::U8 | PtDType::Bool => b.iter().map(|&v| v as f32).collect(),
    }
}
