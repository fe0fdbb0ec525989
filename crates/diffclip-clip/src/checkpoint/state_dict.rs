//! Reading every tensor of a checkpoint file into memory as f32, whatever the container.
//!
//! Files are untrusted: the container is detected from its structure, every length a file
//! declares is checked against the file before anything is allocated for it, and weights
//! must be stored as floating point (F64, F32, F16 or BF16, converted to f32 exactly as
//! PyTorch's `.float()` does). Integer and bool tensors are refused with their key named,
//! except the integer index buffers that no layout loads as weights (`*.position_ids`,
//! `*.num_batches_tracked`), which are skipped.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use burn::store::pytorch_reader::{DType as PtDType, PytorchReader};
use safetensors::Dtype;
use safetensors::tensor::Metadata;

use super::CheckpointError;
use crate::checksum::Checksums;

/// One tensor of a state dict, row-major f32.
#[derive(Debug, Clone, PartialEq)]
pub struct StateTensor {
    /// Dimensions as stored (PyTorch order).
    pub shape: Vec<usize>,
    /// The values, row-major, `shape.iter().product()` of them.
    pub data: Vec<f32>,
}

/// Tensors by key, as stored in the file (after container unwrapping).
pub type StateDict = BTreeMap<String, StateTensor>;

/// The file container, detected from its structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// A safetensors file.
    Safetensors,
    /// `torch.save` output (zip, legacy pickle or tar).
    Pytorch,
    /// Burn's own burnpack format.
    Burnpack,
}

/// The largest JSON header the safetensors format accepts (the `safetensors` crate's limit).
const SAFETENSORS_MAX_HEADER: u64 = 100_000_000;

/// How much of the file's start the magic numbers are looked for in (a tar header's
/// `ustar` sits at offset 257).
const HEAD_LEN: usize = 512;

/// Detect the container from the file's structure, not from one byte:
///
/// 1. safetensors: a little-endian `u64` header length `n` with `2 <= n <= 100 MB` and
///    `8 + n <=` the file length, followed by `n` bytes that parse as a JSON object. This
///    comes first because `n`'s low bytes can be anything, pickle's `0x80 0x02` included.
/// 2. PyTorch zip (`PK\x03\x04`, or `PK\x05\x06` for an empty archive).
/// 3. PyTorch legacy pickle: the `PROTO` opcode `0x80` followed by a protocol 2 to 5.
/// 4. PyTorch tar: `ustar` at offset 257.
/// 5. burnpack: `BURN` (or `NRUB`) magic.
/// 6. Otherwise a file whose ninth byte opens a JSON object or list is taken for a broken safetensors
///    file, so that its reader says what is wrong (header longer than the file, bad JSON, ...).
pub(crate) fn detect_container(path: &Path) -> Result<Container, CheckpointError> {
    let name = path.display().to_string();
    let io = |source| CheckpointError::Io { path: name.clone(), source };
    let mut f = crate::files::open_regular(path).map_err(io)?;
    let file_len = f.metadata().map_err(io)?.len();
    let mut head = Vec::with_capacity(HEAD_LEN);
    (&mut f).take(HEAD_LEN as u64).read_to_end(&mut head).map_err(io)?;

    if parses_as_safetensors(&mut f, &head, file_len).map_err(io)? {
        return Ok(Container::Safetensors);
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Ok(Container::Pytorch);
    }
    if head.len() >= 2 && head[0] == 0x80 && (2..=5).contains(&head[1]) {
        return Ok(Container::Pytorch);
    }
    if head.get(257..262) == Some(b"ustar") {
        return Ok(Container::Pytorch);
    }
    if head.starts_with(b"BURN") || head.starts_with(b"NRUB") {
        return Ok(Container::Burnpack);
    }
    if matches!(head.get(8), Some(b'{' | b'[')) {
        return Ok(Container::Safetensors);
    }
    Err(CheckpointError::UnknownContainer { path: name })
}

/// Whether the file holds a well-formed safetensors header (tensor offsets are checked by
/// the reader).
fn parses_as_safetensors(f: &mut std::fs::File, head: &[u8], file_len: u64) -> std::io::Result<bool> {
    Ok(head.get(8) == Some(&b'{') && read_header(f, file_len)?.is_some())
}

/// The JSON header of a safetensors file (tensors and `__metadata__`), reading only the header;
/// `None` when the file is not safetensors.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let p = dir.path().join("x.bin");
/// std::fs::write(&p, b"not safetensors").unwrap();
/// assert!(diffclip_clip::checkpoint::safetensors_header(&p).unwrap().is_none());
/// ```
pub fn safetensors_header(path: &Path) -> std::io::Result<Option<serde_json::Map<String, serde_json::Value>>> {
    let mut f = crate::files::open_regular(path)?;
    let file_len = f.metadata()?.len();
    read_header(&mut f, file_len)
}

fn read_header(f: &mut std::fs::File, file_len: u64) -> std::io::Result<Option<serde_json::Map<String, serde_json::Value>>> {
    let mut len = [0u8; 8];
    f.seek(SeekFrom::Start(0))?;
    if f.read_exact(&mut len).is_err() {
        return Ok(None);
    }
    let len = u64::from_le_bytes(len);
    let fits = len.checked_add(8).is_some_and(|end| end <= file_len);
    if !(2..=SAFETENSORS_MAX_HEADER).contains(&len) || !fits {
        return Ok(None);
    }
    // Bounded by the file length and by SAFETENSORS_MAX_HEADER above.
    let mut json = vec![0u8; len as usize];
    f.read_exact(&mut json)?;
    Ok(serde_json::from_slice(&json).ok())
}

/// Checks a safetensors file's layout, reading only its header: the header's length, every
/// tensor entry (named when at fault), and that the tensors fill the file exactly. For readers
/// that then take the whole file into memory: a file that is not one, or whose header lies, is
/// refused before its bytes are read.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let p = dir.path().join("big.safetensors");
/// std::fs::File::create(&p).unwrap().set_len(1 << 40).unwrap(); // 1 TiB of zeros, sparse
/// let err = diffclip_clip::checkpoint::check_safetensors(&p).unwrap_err().to_string();
/// assert!(err.contains("header length 0"), "{err}");
/// ```
pub fn check_safetensors(path: &Path) -> Result<(), CheckpointError> {
    open_safetensors(path).map(|_| ())
}

/// The file, its header's metadata and where its tensors' bytes start, after the checks of
/// [`check_safetensors`].
fn open_safetensors(path: &Path) -> Result<(std::fs::File, Metadata, u64), CheckpointError> {
    let name = path.display().to_string();
    let io = |source| CheckpointError::Io { path: name.clone(), source };
    let read_err = |message: String| CheckpointError::Read { path: name.clone(), message };
    let mut f = crate::files::open_regular(path).map_err(io)?;
    let file_len = f.metadata().map_err(io)?.len();
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|_| read_err("shorter than the 8-byte header length".into()))?;
    let header_len = u64::from_le_bytes(len);
    if !(2..=SAFETENSORS_MAX_HEADER).contains(&header_len) {
        return Err(read_err(format!("header length {header_len} is not one of a safetensors file (2 to {SAFETENSORS_MAX_HEADER} bytes)")));
    }
    if header_len + 8 > file_len {
        return Err(read_err(format!("header length {header_len} does not fit the {file_len}-byte file")));
    }
    let mut header = vec![0u8; header_len as usize];
    f.read_exact(&mut header).map_err(io)?;
    // Each entry checked first, so that an error names its tensor; safetensors' own parser then
    // checks everything again.
    super::header_check::check_entries(&header).map_err(|m| read_err(format!("header: {m}")))?;
    let metadata: Metadata = serde_json::from_slice(&header).map_err(|e| read_err(format!("header: {e}")))?;
    let data_start = 8 + header_len;
    if data_start.checked_add(metadata.data_len() as u64) != Some(file_len) {
        return Err(read_err(format!("the header describes {} bytes of tensors but the file holds {}", metadata.data_len(), file_len - data_start)));
    }
    Ok((f, metadata, data_start))
}

/// Read a safetensors file, one tensor at a time: only the header and one tensor's bytes are
/// held besides the f32 result, so loading never keeps a second full copy of the weights.
pub(crate) fn read_safetensors_keys(path: &Path, which: Keys) -> Result<StateDict, CheckpointError> {
    let name = path.display().to_string();
    let io = |source| CheckpointError::Io { path: name.clone(), source };
    let (mut f, metadata, data_start) = open_safetensors(path)?;
    let damaged = |message: String| CheckpointError::Damaged { path: name.clone(), message };
    let sums = Checksums::from_metadata(metadata.metadata().as_ref()).map_err(damaged)?;
    if let Some(sums) = &sums {
        sums.check_names(metadata.offset_keys().iter().map(String::as_str)).map_err(damaged)?;
    }
    let mut out = StateDict::new();
    let mut bytes = Vec::new();
    let keys = metadata.offset_keys();
    let select = which.selector(&keys);
    for stored in keys {
        let Some(key) = select(&stored) else { continue };
        let info = metadata.info(&stored).expect("offset_keys lists known tensors");
        if !is_float_safetensors(info.dtype) && is_index_buffer(&key) {
            continue;
        }
        let (start, end) = info.data_offsets;
        bytes.resize(end - start, 0);
        f.seek(SeekFrom::Start(data_start + start as u64)).map_err(io)?;
        f.read_exact(&mut bytes).map_err(io)?;
        if let Some(sums) = &sums {
            sums.check(&stored, &bytes).map_err(damaged)?;
        }
        let data = safetensors_to_f32(info.dtype, &bytes, &key, &name)?;
        out.insert(key, StateTensor { shape: info.shape.clone(), data });
    }
    Ok(out)
}

/// Read a `torch.save` checkpoint: the `state_dict` entry of a training checkpoint (optimizer,
/// scaler and args are ignored) or a plain state dict.
/// The `torch.save` file opened: its archive and pickle read, its tensors listed, none loaded.
/// The `state_dict` entry of a training checkpoint, else the whole file as a state dict.
pub(crate) fn open_pytorch(path: &Path) -> Result<PytorchReader, CheckpointError> {
    // A corrupt file can make a third-party parser panic; that is this file's error, not ours.
    let guarded = |top: Option<&str>| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match top {
            Some(k) => PytorchReader::with_top_level_key(path, k),
            None => PytorchReader::new(path),
        }))
        .unwrap_or_else(|_| Err(burn::store::pytorch_reader::PytorchError::InvalidFormat("the PyTorch reader failed on this file".into())))
    };
    match guarded(Some("state_dict")) {
        Ok(r) => Ok(r),
        Err(_) => guarded(None).map_err(|e| CheckpointError::Read { path: path.display().to_string(), message: e.to_string() }),
    }
}

pub(crate) fn read_pytorch_keys(path: &Path, which: Keys) -> Result<StateDict, CheckpointError> {
    let name = path.display().to_string();
    let read_err = |e: &dyn std::fmt::Display| CheckpointError::Read { path: name.clone(), message: e.to_string() };
    let reader = open_pytorch(path)?;
    let file_len = std::fs::metadata(path).map_err(|source| CheckpointError::Io { path: name.clone(), source })?.len();
    // What the tensors may claim: the file's bytes, or for an archive whose storages are
    // deflated (re-zipped: torch.save stores them) what its entries declare, capped at 4× the
    // file: float weights barely compress, and a small file must not claim gigabytes.
    let budget = reader.metadata().total_data_size.map_or(file_len, |d| (d as u64).min(file_len.saturating_mul(4))).max(file_len);
    let holds = if budget == file_len { format!("the {file_len}-byte file holds") } else { format!("the {budget} bytes its compressed {file_len}-byte file may hold (what its storages declare, at most 4x the file)") };
    let mut out = StateDict::new();
    let tensors = reader.into_tensors();
    let stored: Vec<String> = tensors.keys().cloned().collect();
    let select = which.selector(&stored);
    // Views may share one storage, so each tensor fitting the file is not enough: a small file
    // could name the same 4 MB storage under a million keys. Weights stored once (ties aside)
    // never claim more than the file holds; twice that is refused.
    let mut claimed = 0u64;
    for (key, t) in tensors {
        let Some(key) = select(&key) else { continue };
        if !is_float_pytorch(t.dtype()) {
            if is_index_buffer(&key) {
                continue;
            }
            return Err(not_float(&name, &key, format!("{:?}", t.dtype())));
        }
        // A strided view may repeat its storage (stride 0), so a tiny file can declare a
        // tensor of gigabytes. Stored weights never do; refuse anything the file cannot hold.
        let numel = t.shape().iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let byte_len = numel.and_then(|n| n.checked_mul(t.dtype().size()));
        if byte_len.is_none_or(|b| b as u64 > budget) {
            return Err(CheckpointError::Transform {
                path: name.clone(),
                key,
                message: format!("shape {:?} needs more bytes than {holds}", t.shape()),
            });
        }
        claimed = claimed.saturating_add(byte_len.unwrap_or(usize::MAX) as u64);
        if claimed > budget.saturating_mul(2) {
            return Err(CheckpointError::Transform {
                path: name.clone(),
                key,
                message: format!("the tensors so far claim {claimed} bytes, more than twice what {holds} (views repeating one storage)"),
            });
        }
        let bytes = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.read()))
            .unwrap_or_else(|_| Err(std::io::Error::other("the PyTorch reader failed on this tensor")))
            .map_err(|e| read_err(&e))?;
        let data = pytorch_to_f32(t.dtype(), &bytes);
        if Some(data.len()) != numel {
            return Err(CheckpointError::Transform {
                path: name.clone(),
                key,
                message: format!("shape {:?} but {} bytes of {:?}", t.shape(), bytes.len(), t.dtype()),
            });
        }
        out.insert(key, StateTensor { shape: t.shape().to_vec(), data });
    }
    Ok(out)
}

/// Which tensors of a file to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keys {
    /// Every tensor, under its stored key.
    All,
    /// The model weights: a diffclip training checkpoint's `model.*` tensors without the prefix,
    /// its optimizer moments (`optim.*`, twice the model's size) never read; any other file whole.
    Weights,
}

impl Keys {
    /// The key each stored key is read under, `None` to skip it, for a file holding `stored`.
    fn selector(self, stored: &[String]) -> impl Fn(&str) -> Option<String> + use<> {
        let training = self == Keys::Weights
            && stored.iter().any(|k| k.starts_with("optim.m."))
            && stored.iter().all(|k| k.starts_with("model.") || k.starts_with("optim."));
        move |key: &str| if training { key.strip_prefix("model.").map(str::to_string) } else { Some(key.to_string()) }
    }
}

/// Integer bookkeeping buffers that some state dicts carry and no layout loads as weights.
fn is_index_buffer(key: &str) -> bool {
    key.ends_with("position_ids") || key.ends_with("num_batches_tracked")
}

fn not_float(path: &str, key: &str, dtype: String) -> CheckpointError {
    CheckpointError::Dtype { path: path.into(), key: key.into(), dtype }
}

fn chunks<const N: usize>(b: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    b.chunks_exact(N).map(|c| c.try_into().expect("exact chunk"))
}

fn is_float_safetensors(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F64 | Dtype::F32 | Dtype::F16 | Dtype::BF16)
}

/// Convert one safetensors tensor's bytes to f32: F64, F32, F16 and BF16 are converted (F64
/// rounds to nearest); anything else (integers, bool, 8-bit floats) is refused with its key.
/// `data` must be the tensor's bytes as a validated [`safetensors::SafeTensors`] hands them out, so its
/// length is a whole number of elements.
pub fn safetensors_to_f32(dtype: Dtype, data: &[u8], key: &str, path: &str) -> Result<Vec<f32>, CheckpointError> {
    Ok(match dtype {
        Dtype::F32 => chunks::<4>(data).map(f32::from_le_bytes).collect(),
        Dtype::F64 => chunks::<8>(data).map(|c| f64::from_le_bytes(c) as f32).collect(),
        Dtype::F16 => chunks::<2>(data).map(|c| half::f16::from_le_bytes(c).to_f32()).collect(),
        Dtype::BF16 => chunks::<2>(data).map(|c| half::bf16::from_le_bytes(c).to_f32()).collect(),
        other => return Err(not_float(path, key, format!("{other:?}"))),
    })
}

fn is_float_pytorch(dtype: PtDType) -> bool {
    matches!(dtype, PtDType::F64 | PtDType::F32 | PtDType::F16 | PtDType::BF16)
}

// pytorch_reader returns native-endian bytes. Only called for float dtypes.
fn pytorch_to_f32(dtype: PtDType, b: &[u8]) -> Vec<f32> {
    match dtype {
        PtDType::F32 => chunks::<4>(b).map(f32::from_ne_bytes).collect(),
        PtDType::F64 => chunks::<8>(b).map(|c| f64::from_ne_bytes(c) as f32).collect(),
        PtDType::F16 => chunks::<2>(b).map(|c| half::f16::from_ne_bytes(c).to_f32()).collect(),
        PtDType::BF16 => chunks::<2>(b).map(|c| half::bf16::from_ne_bytes(c).to_f32()).collect(),
        _ => Vec::new(),
    }
}
