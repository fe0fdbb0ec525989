//! PyTorch (.pt) files, written here: a zip with `data.pkl` (protocol 2) and one storage per
//! tensor, as `torch.save` lays them out.

use super::*;

pub(super) struct PtTensor {
    pub(super) key: String,
    /// `FloatStorage`, `DoubleStorage`, `HalfStorage`, `BFloat16Storage`, `LongStorage`, `BoolStorage`, ...
    pub(super) storage: &'static str,
    /// Elements the storage declares.
    pub(super) numel: i64,
    pub(super) shape: Vec<i64>,
    pub(super) stride: Vec<i64>,
    pub(super) offset: i64,
    pub(super) bytes: Vec<u8>,
}

pub(super) fn contiguous(key: &str, storage: &'static str, shape: &[usize], bytes: Vec<u8>) -> PtTensor {
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
pub(super) fn pickle(tensors: &[PtTensor], wrap: bool) -> Vec<u8> {
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
pub(super) fn zip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
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

pub(super) fn torch_file(tensors: &[PtTensor], wrap: bool) -> Vec<u8> {
    let mut entries = vec![("archive/data.pkl".to_string(), pickle(tensors, wrap)), ("archive/byteorder".to_string(), b"little".to_vec())];
    for (i, t) in tensors.iter().enumerate() {
        entries.push((format!("archive/data/{i}"), t.bytes.clone()));
    }
    entries.push(("archive/version".to_string(), b"3\n".to_vec()));
    zip(&entries)
}

pub(super) fn write_pt(name: &str, tensors: &[PtTensor], wrap: bool) -> TempPath {
    let path = tmp(name);
    std::fs::write(&path, torch_file(tensors, wrap)).unwrap();
    path
}

/// The diffclip_tiny fixture as a `.pt` state dict with every tensor in `storage`.
pub(super) fn fixture_as_pt(name: &str, storage: &'static str, encode: fn(&[f32]) -> Vec<u8>) -> TempPath {
    let (tensors, _) = read_f32(&fixture("diffclip_tiny/model.safetensors"));
    let pts: Vec<PtTensor> = tensors.iter().map(|(k, s, v)| contiguous(&format!("module.{k}"), storage, s, encode(v))).collect();
    write_pt(name, &pts, true)
}
