//! The shards as the index sees them: the same list as exact search, each shard's header (row
//! paths, tensor shape, where its data lies), its rows, and a fingerprint telling whether it
//! changed since an index was built. Header, fingerprint and rows come from one open file, so
//! a shard replaced meanwhile (`embed` renames atomically) is read whole, old or new.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::IndexError;

/// Largest safetensors header read (as the `safetensors` crate's limit).
const MAX_HEADER: u64 = 100 << 20;

/// The `embeddings-*.safetensors` shards of `dir`, sorted (the order of exact search).
pub(crate) fn list(dir: &Path) -> Result<Vec<PathBuf>, IndexError> {
    let shards = crate::shards::list_shards(dir).map_err(|e| IndexError::io(dir, e))?;
    if shards.is_empty() {
        return Err(IndexError::shard(dir, "no embeddings-NNNNN.safetensors shards"));
    }
    Ok(shards)
}

/// What identifies a shard's content for the index: a change of any of these makes it stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ShardPrint {
    /// File name in the folder.
    pub name: String,
    /// Rows of the indexed tensor.
    pub rows: usize,
    /// File size.
    pub bytes: u64,
    /// SHA-256 of the header (paths, shapes, offsets and, where `embed` wrote them, every
    /// tensor's checksum) and of the first and last rows.
    pub sha256: String,
    /// Modification time, in nanoseconds since 1970: a shard rewritten (atomically, so a new
    /// file) with rows changed in its middle is stale too. Absent in older manifests, which
    /// are then stale once.
    #[serde(default)]
    pub modified: Option<String>,
}

/// One open shard: its row paths and the place of the indexed tensor.
pub(crate) struct Shard {
    path: PathBuf,
    file: File,
    /// Each row's `paths` entry.
    pub paths: Vec<String>,
    /// Columns of the tensor (0 when the shard has no rows).
    pub cols: usize,
    /// Byte offset of the tensor's data in the file.
    offset: u64,
    /// Fingerprint of this shard.
    pub print: ShardPrint,
    /// The indexed tensor's name and the file's checksums, when it has them.
    tensor: String,
    sums: Option<diffclip_clip::checksum::Checksums>,
}

impl Shard {
    /// Opens `path` and reads its header and the rows its fingerprint covers. A shard without
    /// `tensor` is an error, as in exact search.
    pub fn open(path: &Path, tensor: &str) -> Result<Self, IndexError> {
        let bad = |m: String| IndexError::shard(path, m);
        // Checked before opening: opening a FIFO would block.
        if !std::fs::metadata(path).map_err(|e| IndexError::io(path, e))?.is_file() {
            return Err(bad("not a regular file".into()));
        }
        let mut file = File::open(path).map_err(|e| IndexError::io(path, e))?;
        let meta = file.metadata().map_err(|e| IndexError::io(path, e))?;
        let mut len = [0u8; 8];
        file.read_exact(&mut len).map_err(|_| bad("not a safetensors file (shorter than 8 bytes)".into()))?;
        let len = u64::from_le_bytes(len);
        if len > MAX_HEADER || len + 8 > meta.len() {
            return Err(bad(format!("not a safetensors file (header of {len} bytes in a {}-byte file)", meta.len())));
        }
        let mut header = vec![0u8; len as usize];
        file.read_exact(&mut header).map_err(|e| IndexError::io(path, e))?;
        let json: serde_json::Value = serde_json::from_slice(&header).map_err(|e| bad(format!("safetensors header: {e}")))?;
        // The metadata (the row list) and the tensor names checked before they are read.
        let metadata: Option<std::collections::HashMap<String, String>> = match json.get("__metadata__") {
            Some(m) => Some(serde_json::from_value(m.clone()).map_err(|e| bad(format!("safetensors metadata: {e}")))?),
            None => None,
        };
        let sums = diffclip_clip::checksum::Checksums::from_metadata(metadata.as_ref()).map_err(bad)?;
        if let Some(sums) = &sums {
            let names = json.as_object().into_iter().flat_map(|o| o.keys()).map(String::as_str).filter(|k| *k != "__metadata__");
            sums.check_names(names).map_err(bad)?;
        }
        let paths = crate::shards::shard_paths(json.pointer("/__metadata__/paths").and_then(|p| p.as_str())).map_err(bad)?;
        let (rows, cols, start) = match json.get(tensor) {
            None => return Err(bad(crate::shards::missing_tensor(tensor, json.as_object().into_iter().flat_map(|o| o.keys())))),
            Some(t) => tensor_place(t, paths.len(), meta.len() - 8 - len).map_err(|m| bad(format!("{tensor}: {m}")))?,
        };
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_nanos().to_string());
        let print = ShardPrint { name, rows, bytes: meta.len(), sha256: String::new(), modified };
        let paths = if rows == 0 { Vec::new() } else { paths };
        let mut shard = Self { path: path.to_path_buf(), file, paths, cols, offset: 8 + len + start, print, tensor: tensor.to_string(), sums };
        let mut h = Sha256::new();
        h.update(&header);
        if rows > 0 {
            h.update(shard.read_bytes(0, cols * 4)?);
            h.update(shard.read_bytes((rows - 1) * cols * 4, cols * 4)?);
        }
        shard.print.sha256 = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(shard)
    }

    /// All rows, row-major `[rows, cols]`. Every value must be finite: the graph cannot place a
    /// NaN (exact search still can, with NaN scores).
    pub fn rows(&mut self) -> Result<Vec<f32>, IndexError> {
        let bytes = self.read_bytes(0, self.print.rows * self.cols * 4)?;
        if let Some(sums) = &self.sums {
            sums.check(&self.tensor, &bytes).map_err(|m| IndexError::shard(&self.path, m))?;
        }
        let values: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            let row = i / self.cols.max(1);
            return Err(IndexError::shard(&self.path, format!("row {row} ({}) is not finite; the approximate index needs finite rows", self.paths[row])));
        }
        Ok(values)
    }

    fn read_bytes(&mut self, at: usize, n: usize) -> Result<Vec<u8>, IndexError> {
        let mut buf = vec![0u8; n];
        self.file.seek(SeekFrom::Start(self.offset + at as u64)).and_then(|_| self.file.read_exact(&mut buf)).map_err(|e| IndexError::io(&self.path, e))?;
        Ok(buf)
    }
}

/// `(rows, cols, data start)` of a header entry `{dtype, shape, data_offsets}` that must be
/// F32 `[paths, cols]` and lie within the `data_len` bytes after the header.
fn tensor_place(t: &serde_json::Value, paths: usize, data_len: u64) -> Result<(usize, usize, u64), String> {
    let dims = |key: &str| -> Option<Vec<u64>> { t.get(key)?.as_array()?.iter().map(|v| v.as_u64()).collect() };
    let (Some(shape), Some(offsets)) = (dims("shape"), dims("data_offsets")) else {
        return Err("malformed header entry".into());
    };
    let dtype = t.get("dtype").and_then(|d| d.as_str()).unwrap_or("?");
    if dtype != "F32" || shape.len() != 2 || shape[0] != paths as u64 || offsets.len() != 2 {
        return Err(format!("is {dtype} {shape:?}, expected F32 [{paths}, E]"));
    }
    let (rows, cols) = (shape[0] as usize, if shape[0] == 0 { 0 } else { shape[1] as usize });
    let need = shape[0].checked_mul(shape[1]).and_then(|n| n.checked_mul(4));
    let (start, end) = (offsets[0], offsets[1]);
    if need.is_none() || need != end.checked_sub(start) || end > data_len {
        return Err(format!("data offsets {offsets:?} do not hold {shape:?} f32 within the file"));
    }
    if rows > 0 && cols == 0 {
        return Err("rows of zero columns".into());
    }
    Ok((rows, cols, start))
}
