//! Hostile and unusual checkpoint files (issue 14): container detection by structure, dtype
//! handling in every reader (safetensors, PyTorch pickle, training checkpoints), optimizer
//! moments that do not fit their parameters, and property tests asserting that the readers
//! return a value or an error on arbitrary, flipped and truncated bytes, never a panic.

#[path = "../common/mod.rs"]
mod common;
mod container;
mod dtypes;
mod fuzz;
mod pytorch;
mod torch_file;
mod training;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use common::{devices, fixture, read_arrays};
use diffclip::clip::checkpoint::{CheckpointError, read_state_dict, state_dict_of};
use diffclip::clip::{Clip, ClipConfig, load_checkpoint};
use diffclip::train::{AdamW, AdamWConfig, Checkpoint, GradBuffer, TrainConfig, TrainError, TrainState, load_training_checkpoint, save_training_checkpoint};
use proptest::prelude::*;
use safetensors::Dtype;
use safetensors::tensor::TensorView;
use tempfile::TempPath;
use torch_file::{PtTensor, contiguous, fixture_as_pt, torch_file, write_pt, zip};
use training::{ad_device, serial, training_checkpoint_at};

// ------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------

/// A fresh path for a temporary file ending in `name`, removed when dropped (also on a panic).
fn tmp(name: &str) -> TempPath {
    common::temp_path(name)
}

/// A file built once per run and shared by its tests (statics are never dropped): a fixed
/// name, so each run replaces the last run's file instead of adding one.
fn shared(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("diffclip-hostile-ckpt-shared-{name}"))
}

/// A tensor to write: key, dtype, shape, little-endian bytes.
type Raw = (String, Dtype, Vec<usize>, Vec<u8>);

fn write_safetensors(path: &Path, tensors: &[Raw], meta: Option<HashMap<String, String>>) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> =
        tensors.iter().map(|(k, d, s, b)| (k.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    let bytes = safetensors::serialize(views, meta).unwrap();
    std::fs::write(path, &bytes).unwrap();
    bytes
}

/// Every tensor of a safetensors file as f32 (the files read here are all F32), with its metadata.
#[allow(clippy::type_complexity)]
fn read_f32(path: &Path) -> (Vec<(String, Vec<usize>, Vec<f32>)>, Option<HashMap<String, String>>) {
    let bytes = std::fs::read(path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(k, v)| {
            assert_eq!(v.dtype(), Dtype::F32, "{k}");
            (k, v.shape().to_vec(), v.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    (out, header.metadata().clone())
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
fn f64_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|&x| (x as f64).to_le_bytes()).collect()
}
/// bf16 by truncation, so the expected f32 is exactly `bits & 0xffff0000`.
fn bf16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| ((x.to_bits() >> 16) as u16).to_le_bytes()).collect()
}
fn bf16_value(x: f32) -> f32 {
    f32::from_bits(x.to_bits() & 0xffff_0000)
}
/// IEEE half, rounding to nearest (ties away; tests compare with a tolerance).
fn f16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let man = b & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        return sign | ((m + (1 << (shift - 1))) >> shift) as u16;
    }
    let m = man + 0x1000;
    if m & 0x80_0000 != 0 {
        return if e + 1 >= 0x1f { sign | 0x7c00 } else { sign | (((e + 1) as u16) << 10) };
    }
    sign | ((e as u16) << 10) | (m >> 13) as u16
}
fn f16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|&x| f16_bits(x).to_le_bytes()).collect()
}
fn assert_f16_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-3 * w.abs() + 1e-7, "{what}[{i}]: {g} vs {w}");
    }
}

/// Unnormalised image and text embeddings of the fixture inputs.
fn embed(model: &Clip, device: &Device) -> Vec<f32> {
    let inputs = read_arrays("diffclip_tiny/inputs.safetensors");
    let out = model.forward(inputs.float("image", device), inputs.int::<2>("text", device));
    let mut v = out.image_embed.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    v.extend(out.text_embed.into_data().convert::<f32>().try_to_vec::<f32>().unwrap());
    v
}

fn tiny_loaded(path: &Path) -> Result<Vec<f32>, CheckpointError> {
    let (_, device) = devices().remove(0);
    let mut model = ClipConfig::diffclip_tiny().init(&device).unwrap();
    load_checkpoint(&mut model, path)?;
    Ok(embed(&model, &device))
}

/// The reference embeddings: the fixture loaded as it is.
fn reference() -> Vec<f32> {
    tiny_loaded(&fixture("diffclip_tiny/model.safetensors")).unwrap()
}

/// The diffclip_tiny fixture re-encoded: `dtype_of(key)` picks each tensor's dtype.
fn reencode(path: &Path, dtype_of: impl Fn(&str) -> Dtype, meta: Option<HashMap<String, String>>) -> Vec<u8> {
    let (tensors, _) = read_f32(&fixture("diffclip_tiny/model.safetensors"));
    let raw: Vec<Raw> = tensors
        .into_iter()
        .map(|(k, s, v)| {
            let d = dtype_of(&k);
            let b = match d {
                Dtype::F32 => f32_bytes(&v),
                Dtype::F64 => f64_bytes(&v),
                Dtype::BF16 => bf16_bytes(&v),
                Dtype::F16 => f16_bytes(&v),
                Dtype::I64 => v.iter().flat_map(|&x| (x.round() as i64).to_le_bytes()).collect(),
                Dtype::I32 => v.iter().flat_map(|&x| (x.round() as i32).to_le_bytes()).collect(),
                Dtype::BOOL | Dtype::U8 => v.iter().map(|&x| (x != 0.0) as u8).collect(),
                other => panic!("{other:?}"),
            };
            (k, d, s, b)
        })
        .collect();
    write_safetensors(path, &raw, meta)
}
