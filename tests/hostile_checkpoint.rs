//! Hostile and unusual checkpoint files (issue 14): container detection by structure, dtype
//! handling in every reader (safetensors, PyTorch pickle, training checkpoints), optimizer
//! moments that do not fit their parameters, and property tests asserting that the readers
//! return a value or an error on arbitrary, flipped and truncated bytes, never a panic.

mod common;

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

// ------------------------------------------------------------------------------------------
// Container detection
// ------------------------------------------------------------------------------------------

/// The fixture with its metadata padded so that the header length is `want` modulo `modulus`
/// (headers are padded to 8 bytes, so a pad of `d` characters adds exactly `d` when `d` is a
/// multiple of 8). Returns the file's bytes.
fn padded_fixture(path: &Path, want: u64, modulus: u64) -> Vec<u8> {
    let meta = |pad: usize| Some(HashMap::from([("format".to_string(), "pt".to_string()), ("pad".to_string(), "x".repeat(pad))]));
    let base = reencode(path, |_| Dtype::F32, meta(0));
    let n = u64::from_le_bytes(base[..8].try_into().unwrap());
    let pad = (want + modulus - n % modulus) % modulus;
    let bytes = reencode(path, |_| Dtype::F32, meta(pad as usize));
    assert_eq!(u64::from_le_bytes(bytes[..8].try_into().unwrap()) % modulus, want);
    bytes
}

#[test]
fn safetensors_whose_header_length_starts_with_0x80_is_read_as_safetensors() {
    let want = reference();
    let path = tmp("low-byte-0x80.safetensors");
    let bytes = padded_fixture(&path, 0x80, 0x100);
    assert_eq!(bytes[0], 0x80);
    assert_eq!(tiny_loaded(&path).unwrap(), want);
    assert_eq!(read_state_dict(&path).unwrap(), read_state_dict(fixture("diffclip_tiny/model.safetensors")).unwrap());
}

#[test]
fn safetensors_that_opens_like_a_protocol_2_pickle_is_read_as_safetensors() {
    // Header length 0x1_0280: the file opens with 0x80 0x02, exactly a pickle's PROTO 2.
    let path = tmp("pickle-lookalike.safetensors");
    let bytes = padded_fixture(&path, 0x0280, 0x1_0000);
    assert_eq!(&bytes[..2], &[0x80, 0x02]);
    assert_eq!(tiny_loaded(&path).unwrap(), reference());
}

#[test]
fn a_safetensors_header_longer_than_the_file_is_an_error() {
    let mut bytes = std::fs::read(fixture("diffclip_tiny/model.safetensors")).unwrap();
    for claimed in [bytes.len() as u64, 1 << 40, u64::MAX, 0x80] {
        bytes[..8].copy_from_slice(&claimed.to_le_bytes());
        let path = tmp("long-header.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        let err = read_state_dict(&path).unwrap_err();
        assert!(err.to_string().contains("long-header.safetensors"), "{err}");
        assert!(tiny_loaded(&path).is_err());
    }
}

#[test]
fn real_pickles_and_zips_are_still_pytorch() {
    // The authors' checkpoints (zip) still load.
    let want = reference();
    assert_eq!(tiny_loaded(&fixture("diffclip_tiny/checkpoint.pt")).unwrap(), want);
    assert_eq!(tiny_loaded(&fixture("diffclip_tiny/checkpoint_full.pt")).unwrap(), want);
    // A legacy (non-zip) pickle is detected as PyTorch: the error comes from the pickle reader.
    let path = tmp("legacy.pt");
    let mut legacy = vec![0x80, 0x02, 0x8a, 0x0a];
    legacy.extend([0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, b'.']);
    std::fs::write(&path, legacy).unwrap();
    let err = read_state_dict(&path).unwrap_err();
    assert!(!matches!(err, CheckpointError::UnknownContainer { .. }), "{err}");
    // Something that is none of them.
    std::fs::write(&path, b"\x80\x09 not a pickle protocol").unwrap();
    assert!(matches!(read_state_dict(&path).unwrap_err(), CheckpointError::UnknownContainer { .. }));
}

// ------------------------------------------------------------------------------------------
// Dtypes: safetensors
// ------------------------------------------------------------------------------------------

#[test]
fn f64_weights_convert_exactly() {
    let path = tmp("f64.safetensors");
    reencode(&path, |_| Dtype::F64, None);
    assert_eq!(tiny_loaded(&path).unwrap(), reference());
}

#[test]
fn bf16_and_f16_weights_convert() {
    let path = tmp("bf16.safetensors");
    reencode(&path, |_| Dtype::BF16, None);
    let sd = read_state_dict(&path).unwrap();
    let (orig, _) = read_f32(&fixture("diffclip_tiny/model.safetensors"));
    for (k, s, v) in &orig {
        let t = &sd[k];
        assert_eq!(&t.shape, s, "{k}");
        assert_eq!(t.data, v.iter().map(|&x| bf16_value(x)).collect::<Vec<_>>(), "{k}");
    }
    assert!(tiny_loaded(&path).is_ok());

    let path = tmp("f16.safetensors");
    reencode(&path, |_| Dtype::F16, None);
    let sd = read_state_dict(&path).unwrap();
    for (k, _, v) in &orig {
        assert_f16_close(k, &sd[k].data, v);
    }
    assert!(tiny_loaded(&path).is_ok());
}

#[test]
fn exact_f16_values() {
    let path = tmp("f16-exact.safetensors");
    let bits: [u16; 6] = [0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x8000];
    let raw = vec![("w".to_string(), Dtype::F16, vec![6], bits.iter().flat_map(|b| b.to_le_bytes()).collect())];
    write_safetensors(&path, &raw, None);
    let sd = read_state_dict(&path).unwrap();
    assert_eq!(sd["w"].data, vec![1.0, -2.0, 0.5, 65504.0, 2f32.powi(-24), -0.0]);
}

#[test]
fn integer_and_bool_weights_are_refused_naming_the_key() {
    for dtype in [Dtype::I64, Dtype::I32, Dtype::BOOL, Dtype::U8] {
        let path = tmp("int-weight.safetensors");
        reencode(&path, |k| if k == "image_projection" { dtype } else { Dtype::F32 }, None);
        let err = tiny_loaded(&path).unwrap_err();
        let CheckpointError::Dtype { key, dtype: found, .. } = &err else { panic!("{dtype:?}: {err}") };
        assert_eq!(key, "image_projection");
        assert_eq!(found, &format!("{dtype:?}"));
        let msg = err.to_string();
        assert!(msg.contains("int-weight.safetensors") && msg.contains("image_projection"), "{msg}");
    }
}

#[test]
fn integer_index_buffers_are_skipped_not_loaded() {
    // HuggingFace state dicts may carry int64 `position_ids`; they are not weights.
    let (tensors, _) = read_f32(&fixture("hf_tiny/model.safetensors"));
    let mut raw: Vec<Raw> = tensors.iter().map(|(k, s, v)| (k.clone(), Dtype::F32, s.clone(), f32_bytes(v))).collect();
    let ids: Vec<u8> = (0..77i64).flat_map(|i| i.to_le_bytes()).collect();
    raw.push(("text_model.embeddings.position_ids".into(), Dtype::I64, vec![1, 77], ids));
    let path = tmp("hf-with-ids.safetensors");
    write_safetensors(&path, &raw, None);
    let sd = read_state_dict(&path).unwrap();
    assert!(!sd.contains_key("text_model.embeddings.position_ids"));
    assert_eq!(sd, read_state_dict(fixture("hf_tiny/model.safetensors")).unwrap());
}

// ------------------------------------------------------------------------------------------
// PyTorch (.pt) files, written here: a zip with `data.pkl` (protocol 2) and one storage per
// tensor, as `torch.save` lays them out.
// ------------------------------------------------------------------------------------------

struct PtTensor {
    key: String,
    /// `FloatStorage`, `DoubleStorage`, `HalfStorage`, `BFloat16Storage`, `LongStorage`, `BoolStorage`, ...
    storage: &'static str,
    /// Elements the storage declares.
    numel: i64,
    shape: Vec<i64>,
    stride: Vec<i64>,
    offset: i64,
    bytes: Vec<u8>,
}

fn contiguous(key: &str, storage: &'static str, shape: &[usize], bytes: Vec<u8>) -> PtTensor {
    let mut stride = vec![1i64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        stride[i] = stride[i + 1] * shape[i + 1] as i64;
    }
    PtTensor {
        key: key.into(),
        storage,
        numel: shape.iter().product::<usize>() as i64,
        shape: shape.iter().map(|&d| d as i64).collect(),
        stride,
        offset: 0,
        bytes,
    }
}

fn p_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'X');
    out.extend((s.len() as u32).to_le_bytes());
    out.extend(s.as_bytes());
}
fn p_int(out: &mut Vec<u8>, v: i64) {
    if let Ok(v) = i32::try_from(v) {
        out.push(b'J');
        out.extend(v.to_le_bytes());
    } else {
        out.extend([0x8a, 8]);
        out.extend(v.to_le_bytes());
    }
}
fn p_tuple(out: &mut Vec<u8>, items: &[i64]) {
    out.push(b'(');
    for &i in items {
        p_int(out, i);
    }
    out.push(b't');
}

/// `{key: tensor, ...}`, optionally under a top-level `state_dict` entry.
fn pickle(tensors: &[PtTensor], wrap: bool) -> Vec<u8> {
    let mut p = vec![0x80, 0x02];
    if wrap {
        p.push(b'}');
        p_str(&mut p, "state_dict");
    }
    p.push(b'}');
    p.push(b'(');
    for (i, t) in tensors.iter().enumerate() {
        p_str(&mut p, &t.key);
        p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
        p.push(b'(');
        p_str(&mut p, "storage");
        p.extend(format!("ctorch\n{}\n", t.storage).as_bytes());
        p_str(&mut p, &i.to_string());
        p_str(&mut p, "cpu");
        p_int(&mut p, t.numel);
        p.extend(b"tQ");
        p_int(&mut p, t.offset);
        p_tuple(&mut p, &t.shape);
        p_tuple(&mut p, &t.stride);
        p.push(0x89);
        p.extend(b"ccollections\nOrderedDict\n)RtR");
    }
    p.push(b'u');
    if wrap {
        p.push(b's');
    }
    p.push(b'.');
    p
}

fn crc32(b: &[u8]) -> u32 {
    let mut c = !0u32;
    for &x in b {
        c ^= x as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 };
        }
    }
    !c
}

/// A stored (uncompressed) zip archive.
fn zip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let len = data.len() as u32;
        out.extend(0x0403_4b50u32.to_le_bytes());
        out.extend([20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]); // version, flags, stored, time, date
        out.extend(crc.to_le_bytes());
        out.extend(len.to_le_bytes());
        out.extend(len.to_le_bytes());
        out.extend((name.len() as u16).to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out.extend(name.as_bytes());
        out.extend(data);
        central.extend(0x0201_4b50u32.to_le_bytes());
        central.extend([20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
        central.extend(crc.to_le_bytes());
        central.extend(len.to_le_bytes());
        central.extend(len.to_le_bytes());
        central.extend((name.len() as u16).to_le_bytes());
        central.extend([0u8; 8]); // extra, comment, disk, internal attributes
        central.extend(0u32.to_le_bytes()); // external attributes
        central.extend(offset.to_le_bytes());
        central.extend(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend(&central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

fn torch_file(tensors: &[PtTensor], wrap: bool) -> Vec<u8> {
    let mut entries = vec![("archive/data.pkl".to_string(), pickle(tensors, wrap)), ("archive/byteorder".to_string(), b"little".to_vec())];
    for (i, t) in tensors.iter().enumerate() {
        entries.push((format!("archive/data/{i}"), t.bytes.clone()));
    }
    entries.push(("archive/version".to_string(), b"3\n".to_vec()));
    zip(&entries)
}

fn write_pt(name: &str, tensors: &[PtTensor], wrap: bool) -> TempPath {
    let path = tmp(name);
    std::fs::write(&path, torch_file(tensors, wrap)).unwrap();
    path
}

/// The diffclip_tiny fixture as a `.pt` state dict with every tensor in `storage`.
fn fixture_as_pt(name: &str, storage: &'static str, encode: fn(&[f32]) -> Vec<u8>) -> TempPath {
    let (tensors, _) = read_f32(&fixture("diffclip_tiny/model.safetensors"));
    let pts: Vec<PtTensor> = tensors.iter().map(|(k, s, v)| contiguous(&format!("module.{k}"), storage, s, encode(v))).collect();
    write_pt(name, &pts, true)
}

#[test]
fn generated_pt_files_match_the_fixture() {
    // The generator itself: F32 storages give exactly the fixture.
    let path = fixture_as_pt("f32.pt", "FloatStorage", f32_bytes);
    assert_eq!(tiny_loaded(&path).unwrap(), reference());
}

#[test]
fn pt_float_storages_convert() {
    let want = reference();
    let path = fixture_as_pt("f64.pt", "DoubleStorage", f64_bytes);
    assert_eq!(tiny_loaded(&path).unwrap(), want);

    let (orig, _) = read_f32(&fixture("diffclip_tiny/model.safetensors"));
    let path = fixture_as_pt("bf16.pt", "BFloat16Storage", bf16_bytes);
    let sd = read_state_dict(&path).unwrap();
    for (k, _, v) in &orig {
        assert_eq!(sd[&format!("module.{k}")].data, v.iter().map(|&x| bf16_value(x)).collect::<Vec<_>>(), "{k}");
    }
    assert!(tiny_loaded(&path).is_ok());

    let path = fixture_as_pt("f16.pt", "HalfStorage", f16_bytes);
    let sd = read_state_dict(&path).unwrap();
    for (k, _, v) in &orig {
        assert_f16_close(k, &sd[&format!("module.{k}")].data, v);
    }
    assert!(tiny_loaded(&path).is_ok());
}

#[test]
fn pt_integer_and_bool_weights_are_refused_naming_the_key() {
    let (tensors, _) = read_f32(&fixture("diffclip_tiny/model.safetensors"));
    for (storage, size) in [("LongStorage", 8), ("IntStorage", 4), ("BoolStorage", 1), ("ByteStorage", 1)] {
        let pts: Vec<PtTensor> = tensors
            .iter()
            .map(|(k, s, v)| {
                if k == "image_projection" {
                    contiguous(&format!("module.{k}"), storage, s, vec![1u8; v.len() * size])
                } else {
                    contiguous(&format!("module.{k}"), "FloatStorage", s, f32_bytes(v))
                }
            })
            .collect();
        let path = write_pt("int-weight.pt", &pts, true);
        let err = tiny_loaded(&path).unwrap_err();
        let CheckpointError::Dtype { key, .. } = &err else { panic!("{storage}: {err}") };
        assert_eq!(key, "module.image_projection");
        assert!(err.to_string().contains("int-weight.pt"), "{err}");
    }
    // An integer index buffer is skipped.
    let mut pts = vec![contiguous("w", "FloatStorage", &[2], f32_bytes(&[1.0, 2.0]))];
    pts.push(contiguous("embeddings.position_ids", "LongStorage", &[1, 3], (0..3i64).flat_map(|i| i.to_le_bytes()).collect()));
    let sd = read_state_dict(write_pt("ids.pt", &pts, false)).unwrap();
    assert_eq!(sd.keys().collect::<Vec<_>>(), ["w"]);
    assert_eq!(sd["w"].data, [1.0, 2.0]);
}

#[test]
fn pt_views_claiming_more_than_the_file_are_errors() {
    // Stride 0 repeats one stored float 2^31 times: 8 GiB from a file of a few hundred bytes.
    let mut t = contiguous("w", "FloatStorage", &[1], f32_bytes(&[1.0]));
    t.shape = vec![1 << 31];
    t.stride = vec![0];
    let err = read_state_dict(write_pt("broadcast.pt", &[t], false)).unwrap_err();
    assert!(err.to_string().contains("broadcast.pt") && err.to_string().contains("'w'"), "{err}");
    // A storage that claims terabytes.
    let mut t = contiguous("w", "FloatStorage", &[1], f32_bytes(&[1.0]));
    t.numel = 1 << 40;
    t.shape = vec![1 << 40];
    assert!(read_state_dict(write_pt("huge.pt", &[t], false)).is_err());
    // A storage shorter than its tensor.
    let mut t = contiguous("w", "FloatStorage", &[4], f32_bytes(&[1.0]));
    t.numel = 4;
    assert!(read_state_dict(write_pt("short.pt", &[t], false)).is_err());
    // A pickle string whose length field claims 4 GiB.
    let mut p = vec![0x80, 0x02, b'}', b'X'];
    p.extend(0xffff_fff0u32.to_le_bytes());
    p.extend(b"short");
    let path = tmp("long-string.pt");
    std::fs::write(&path, zip(&[("archive/data.pkl".into(), p)])).unwrap();
    assert!(read_state_dict(&path).is_err());
    // A zip entry whose size field claims 4 GiB.
    let mut bytes = std::fs::read(fixture_as_pt("zip-size.pt", "FloatStorage", f32_bytes)).unwrap();
    let cd = u32::from_le_bytes(bytes[bytes.len() - 6..bytes.len() - 2].try_into().unwrap()) as usize;
    assert_eq!(bytes[cd..cd + 4], 0x0201_4b50u32.to_le_bytes());
    bytes[cd + 20..cd + 28].copy_from_slice(&[0xf0, 0xff, 0xff, 0xff, 0xf0, 0xff, 0xff, 0xff]);
    let path = tmp("zip-size.pt");
    std::fs::write(&path, &bytes).unwrap();
    assert!(read_state_dict(&path).is_err());
}

// ------------------------------------------------------------------------------------------
// Training checkpoints and optimizer moments
// ------------------------------------------------------------------------------------------

// The device RNG is global: tests that build models for training take this lock.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn ad_device() -> Device {
    devices().remove(0).1.autodiff()
}

/// A model after one AdamW step (so every parameter has moments) and its gradients.
fn stepped() -> (Clip, AdamW, GradBuffer, ClipConfig) {
    let device = ad_device();
    let cfg = ClipConfig::diffclip_tiny();
    let model = cfg.init(&device).unwrap();
    let inputs = read_arrays("diffclip_tiny/inputs.safetensors");
    let out = model.forward(inputs.float("image", &device), inputs.int::<2>("text", &device));
    let grads = (out.image_embed.sum() + out.text_embed.sum() * 0.5).backward();
    let mut buf = GradBuffer::default();
    buf.accumulate(&model, &grads);
    let mut opt = AdamW::new(AdamWConfig::default());
    let model = opt.step(model, 1e-3, &buf);
    (model, opt, buf, cfg)
}

/// A training checkpoint written by `save_training_checkpoint`.
fn training_checkpoint(name: &str) -> (TempPath, Clip, AdamW) {
    let path = tmp(name);
    let (model, opt) = training_checkpoint_at(&path);
    (path, model, opt)
}

fn training_checkpoint_at(path: &Path) -> (Clip, AdamW) {
    let (model, opt, _, cfg) = stepped();
    let meta = Checkpoint { state: TrainState { step: 1, ..TrainState::default() }, model: cfg, train: TrainConfig::default() };
    save_training_checkpoint(path, &model, &opt, &meta).unwrap();
    (model, opt)
}

/// Rewrite a training checkpoint: `edit` gets each (key, shape, values) and returns the
/// dtype, shape and bytes to store, or None to drop the tensor.
fn rewrite(src: &Path, dst: &Path, edit: impl Fn(&str, &[usize], &[f32]) -> Option<(Dtype, Vec<usize>, Vec<u8>)>) {
    let (tensors, meta) = read_f32(src);
    let raw: Vec<Raw> = tensors.iter().filter_map(|(k, s, v)| edit(k, s, v).map(|(d, s, b)| (k.clone(), d, s, b))).collect();
    write_safetensors(dst, &raw, meta);
}

fn moments_of(opt: &AdamW, key: &str) -> (Vec<f32>, Vec<f32>) {
    let m = &opt.moments[key];
    (m.m.clone().into_data().convert::<f32>().try_to_vec::<f32>().unwrap(), m.v.clone().into_data().convert::<f32>().try_to_vec::<f32>().unwrap())
}

#[test]
fn training_checkpoints_in_f64_and_f16_resume() {
    let _serial = serial();
    let (path, _, _) = training_checkpoint("train-f32.safetensors");
    let device = ad_device();
    let (model, opt, _) = load_training_checkpoint(&path, &device).unwrap();
    let want_weights = state_dict_of(&model).unwrap();

    // F64 everywhere: identical.
    let f64_path = tmp("train-f64.safetensors");
    rewrite(&path, &f64_path, |_, s, v| Some((Dtype::F64, s.to_vec(), f64_bytes(v))));
    let (m64, o64, _) = load_training_checkpoint(&f64_path, &device).unwrap();
    assert_eq!(state_dict_of(&m64).unwrap(), want_weights);
    assert_eq!(o64.step, opt.step);
    for key in opt.moments.keys() {
        assert_eq!(moments_of(&o64, key), moments_of(&opt, key), "{key}");
    }

    // F16 weights and moments: converted (the `[64, 32]` projection panicked before).
    let f16_path = tmp("train-f16.safetensors");
    rewrite(&path, &f16_path, |k, s, v| {
        if k == "model.image_projection" || k.starts_with("optim.") {
            Some((Dtype::F16, s.to_vec(), f16_bytes(v)))
        } else {
            Some((Dtype::F32, s.to_vec(), f32_bytes(v)))
        }
    });
    let (m16, o16, _) = load_training_checkpoint(&f16_path, &device).unwrap();
    let got = state_dict_of(&m16).unwrap();
    assert_f16_close("image_projection", &got["image_projection"].data, &want_weights["image_projection"].data);
    for key in opt.moments.keys() {
        let ((gm, gv), (wm, wv)) = (moments_of(&o16, key), moments_of(&opt, key));
        assert_f16_close(key, &gm, &wm);
        assert_f16_close(key, &gv, &wv);
    }
    // And training goes on from it.
    let (_, _, buf, _) = stepped();
    let mut o16 = o16;
    o16.try_step(m16, 1e-3, &buf).unwrap();
}

#[test]
fn training_checkpoints_with_integer_tensors_are_refused_naming_the_key() {
    let _serial = serial();
    let (path, _, _) = training_checkpoint("train-int-src.safetensors");
    let device = ad_device();
    for target in ["model.image_projection", "optim.m.image_projection"] {
        for dtype in [Dtype::I64, Dtype::BOOL] {
            let bad = tmp("train-int.safetensors");
            rewrite(&path, &bad, |k, s, v| {
                Some(if k == target {
                    let b = if dtype == Dtype::I64 { v.iter().flat_map(|&x| (x as i64).to_le_bytes()).collect() } else { vec![1u8; v.len()] };
                    (dtype, s.to_vec(), b)
                } else {
                    (Dtype::F32, s.to_vec(), f32_bytes(v))
                })
            });
            let err = load_training_checkpoint(&bad, &device).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(target) && msg.contains(&format!("{dtype:?}")) && msg.contains("train-int.safetensors"), "{msg}");
        }
    }
}

#[test]
fn moments_that_do_not_fit_their_parameter_are_refused_at_load() {
    let _serial = serial();
    let (path, _, _) = training_checkpoint("train-moments-src.safetensors");
    let device = ad_device();
    let bad = tmp("train-moments.safetensors");
    type Corrupt = fn(&[f32]) -> Vec<f32>;
    let cases: [(&str, Corrupt); 3] = [
        ("optim.m.image_projection", |v| v[..v.len() - 1].to_vec()),
        ("optim.v.visual.blocks.0.attn.Differential.lambda_q1", |v| [v, &[0.0]].concat()),
        ("optim.m.visual.cls_token", |_| Vec::new()),
    ];
    let keys: Vec<String> = read_f32(&path).0.into_iter().map(|t| t.0).collect();
    for (target, f) in cases {
        assert!(keys.iter().any(|k| k == target), "{target} not in {keys:?}");
        rewrite(&path, &bad, |k, s, v| {
            if k == target {
                let v = f(v);
                Some((Dtype::F32, vec![v.len()], f32_bytes(&v)))
            } else {
                Some((Dtype::F32, s.to_vec(), f32_bytes(v)))
            }
        });
        let err = load_training_checkpoint(&bad, &device).unwrap_err();
        assert!(matches!(err, TrainError::Resume { .. }), "{err}");
        assert!(err.to_string().contains(target), "{target}: {err}");
    }
    // A moment for a parameter the model does not have.
    let (tensors, meta) = read_f32(&path);
    let mut raw: Vec<Raw> = tensors.iter().map(|(k, s, v)| (k.clone(), Dtype::F32, s.clone(), f32_bytes(v))).collect();
    raw.push(("optim.m.nonexistent".into(), Dtype::F32, vec![2], f32_bytes(&[0.0, 0.0])));
    raw.push(("optim.v.nonexistent".into(), Dtype::F32, vec![2], f32_bytes(&[0.0, 0.0])));
    write_safetensors(&bad, &raw, meta);
    let err = load_training_checkpoint(&bad, &device).unwrap_err();
    assert!(err.to_string().contains("nonexistent"), "{err}");
}

#[test]
fn adamw_step_does_not_panic_on_a_mismatched_moment() {
    let _serial = serial();
    let (model, mut opt, buf, _) = stepped();
    let device = ad_device().inner();
    let short = Tensor::<1>::from_data(TensorData::new(vec![0.5f32; 3], [3]), &device);
    opt.moments.get_mut("image_projection").unwrap().m = short;
    // try_step refuses and changes nothing.
    let before = opt.step;
    let err = opt.try_step(model.clone(), 1e-3, &buf).unwrap_err();
    assert!(err.to_string().contains("image_projection"), "{err}");
    assert_eq!(opt.step, before);
    // step restarts the moment instead of panicking.
    let after = opt.step(model, 1e-3, &buf);
    let n = after.image_projection.val().shape().num_elements();
    assert_eq!(opt.moments["image_projection"].m.dims()[0], n);
    // A gradient of the wrong length: try_step refuses, step leaves the parameter alone.
    let mut bad = buf.clone();
    bad.grads.insert("image_projection".into(), Tensor::<1>::from_data(TensorData::new(vec![1.0f32; 5], [5]), &device));
    assert!(opt.try_step(after.clone(), 1e-3, &bad).is_err());
    let values = |m: &Clip| m.image_projection.val().into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    let before = values(&after);
    let again = opt.step(after, 1e-3, &bad);
    assert_eq!(values(&again), before);
}

// ------------------------------------------------------------------------------------------
// Property tests: arbitrary, flipped and truncated bytes give a value or an error.
// ------------------------------------------------------------------------------------------

/// Small case counts keep the suite fast; `PROPTEST_CASES` raises them for a longer hunt.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(cases);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Read `bytes` as a checkpoint file: read_state_dict and load_checkpoint may fail, not panic.
fn read_bytes(name: &str, bytes: &[u8], model: Option<&mut Clip>) {
    let path = tmp(name);
    std::fs::write(&path, bytes).unwrap();
    let _ = read_state_dict(&path);
    if let Some(model) = model {
        let _ = load_checkpoint(model, &path);
    }
}

/// Apply `flips` (position, xor mask) within `range` and cut the file at `cut` (a fraction).
fn mutate(mut bytes: Vec<u8>, range: std::ops::Range<usize>, flips: &[(usize, u8)], cut: Option<f64>) -> Vec<u8> {
    let span = range.end.min(bytes.len()).saturating_sub(range.start).max(1);
    for &(pos, mask) in flips {
        let i = range.start + pos % span;
        if i < bytes.len() {
            bytes[i] ^= mask.max(1);
        }
    }
    if let Some(f) = cut {
        bytes.truncate((bytes.len() as f64 * f) as usize);
    }
    bytes
}

fn small_pt() -> Vec<u8> {
    torch_file(
        &[
            contiguous("a.weight", "FloatStorage", &[3, 2], f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])),
            contiguous("a.bias", "HalfStorage", &[2], vec![0, 0x3c, 0, 0xc0]),
            contiguous("ids.position_ids", "LongStorage", &[2], vec![0; 16]),
        ],
        true,
    )
}

fn small_safetensors() -> Vec<u8> {
    let path = tmp("small.safetensors");
    write_safetensors(
        &path,
        &[
            ("w".into(), Dtype::F32, vec![2, 2], f32_bytes(&[1.0, 2.0, 3.0, 4.0])),
            ("b".into(), Dtype::BF16, vec![2], vec![0x80, 0x3f, 0, 0x40]),
        ],
        Some(HashMap::from([("format".into(), "pt".into())])),
    )
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn arbitrary_bytes_are_an_error_or_a_state_dict(
        prefix in prop::sample::select(vec![&b""[..], &b"PK\x03\x04"[..], &b"\x80\x02"[..], &b"\x80\x02\x8a\x0a"[..], &b"NRUB"[..], &b"NRUB\x01\x00"[..], &b"\x40\x00\x00\x00\x00\x00\x00\x00{"[..]]),
        body in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        let bytes = [prefix, &body[..]].concat();
        let (_, device) = devices().remove(0);
        let mut model = ClipConfig::diffclip_tiny().init(&device).unwrap();
        read_bytes("arbitrary.bin", &bytes, Some(&mut model));
    }

    #[test]
    fn flipped_or_cut_small_files_are_an_error_or_a_state_dict(
        which in 0..2usize,
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in prop::option::of(0.0f64..1.0),
    ) {
        let bytes = if which == 0 { small_pt() } else { small_safetensors() };
        let len = bytes.len();
        read_bytes("small-mutated.bin", &mutate(bytes, 0..len, &flips, cut), None);
    }
}

proptest! {
    #![proptest_config(config(16))]

    /// The fixture checkpoints, flipped in their structure (safetensors header, the `.pt`
    /// pickle and zip directory) or cut anywhere, then loaded into a model.
    #[test]
    fn flipped_or_cut_fixtures_are_an_error_or_load(
        which in 0..4usize,
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in prop::option::of(0.0f64..1.0),
    ) {
        let (path, range) = match which {
            0 => (fixture("diffclip_tiny/model.safetensors"), 0..9_800),
            1 => (fixture("diffclip_tiny/checkpoint.pt"), 0..11_400),
            2 => (fixture("diffclip_tiny/checkpoint.pt"), 13_560_000..usize::MAX),
            // Our own burnpack: header and CBOR metadata.
            _ => (burnpack_fixture(), 0..20_000),
        };
        let bytes = std::fs::read(path).unwrap();
        let (_, device) = devices().remove(0);
        let mut model = ClipConfig::diffclip_tiny().init(&device).unwrap();
        let name = ["fixture-mutated.safetensors", "fixture-mutated.pt", "fixture-mutated.pt", "fixture-mutated.bpk"][which];
        read_bytes(name, &mutate(bytes, range, &flips, cut), Some(&mut model));
    }

    /// A training checkpoint with its tensor header or data flipped, or cut anywhere. The
    /// metadata (the embedded config, validated elsewhere) is left alone.
    #[test]
    fn flipped_or_cut_training_checkpoints_are_an_error_or_load(
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in prop::option::of(0.0f64..1.0),
    ) {
        let path = training_fixture();
        let bytes = std::fs::read(&path).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = String::from_utf8_lossy(&bytes[8..8 + n]).into_owned();
        // The tensor entries follow the metadata object.
        let start = header.find("},\"").map_or(8 + n, |i| 8 + i + 2);
        let out = tmp("train-mutated.safetensors");
        std::fs::write(&out, mutate(bytes, start..usize::MAX, &flips, cut)).unwrap();
        let _ = load_training_checkpoint(&out, &ad_device());
    }
}

fn training_fixture() -> PathBuf {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let _serial = serial();
        let path = shared("train-fixture.safetensors");
        training_checkpoint_at(&path);
        path
    })
    .clone()
}

fn burnpack_fixture() -> PathBuf {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let (_, device) = devices().remove(0);
        let mut model = ClipConfig::diffclip_tiny().init(&device).unwrap();
        load_checkpoint(&mut model, fixture("diffclip_tiny/model.safetensors")).unwrap();
        let path = shared("tiny.bpk");
        diffclip::clip::save_burnpack(&model, &path).unwrap();
        path
    })
    .clone()
}
