//! Embedding cache: features computed once per (model, data) and stored as safetensors.
//!
//! Layout: `DIR/<model key>/<kind>-<data key>.safetensors` with one f32 tensor `features`
//! `[N, E]` and metadata holding the full keys. Keys are SHA-256 digests (the first 16 hex
//! digits name files):
//! - model: the checkpoint's canonical path, size and modification time, and the model
//!   config's JSON ([`ModelKey::new`]), and for a cache also samples of the checkpoint's bytes
//!   ([`ModelKey::with_contents`]: a file replaced by another of the same size and time);
//! - images: every file's canonical path, size and modification time, and the preprocessing
//!   config; in-memory tensors: their bytes;
//! - texts: every text and the tokenizer settings.
//!
//! A file that is unreadable or whose stored keys or row count disagree is recomputed and
//! overwritten; so is one holding NaN or infinity. Writes are atomic ([`write_safetensors`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use diffclip_clip::files::{F32Tensor, write_safetensors};
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};

use crate::{EvalError, Matrix};

/// What identifies a model's weights and architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelKey(String);

impl ModelKey {
    /// The key of `config_json` loaded from `checkpoint` (path, size and modification time).
    ///
    /// ```no_run
    /// let cfg = serde_json::to_string(&diffclip_clip::ClipConfig::diffclip_tiny()).unwrap();
    /// let key = diffclip_eval::ModelKey::new(Some("ckpt.pt".as_ref()), &cfg).unwrap();
    /// ```
    pub fn new(checkpoint: Option<&Path>, config_json: &str) -> Result<Self, EvalError> {
        let mut h = Sha256::new();
        h.update(b"diffclip-eval model v1\0");
        match checkpoint {
            Some(p) => h.update(file_identity(p)?.as_bytes()),
            None => h.update(b"random-init"),
        }
        h.update(b"\0");
        h.update(config_json.as_bytes());
        Ok(Self(hex(&h.finalize())))
    }

    /// [`new`](Self::new) and, with a checkpoint, a digest of 65 blocks of 16 KiB spread over
    /// its bytes (about 1 MiB read): another file put in its place with the same size and
    /// modification time (`cp -p`, `rsync -t`, a coarse-clock filesystem) gets another key,
    /// since trained weights differ throughout. For a cache, whose stale entry would be a
    /// silently wrong result.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let p = dir.path().join("m.safetensors");
    /// std::fs::write(&p, vec![1u8; 100_000]).unwrap();
    /// let time = std::fs::metadata(&p).unwrap().modified().unwrap();
    /// let a = diffclip_eval::ModelKey::with_contents(Some(&p), "{}").unwrap();
    /// std::fs::write(&p, vec![2u8; 100_000]).unwrap();
    /// std::fs::File::options().write(true).open(&p).unwrap().set_modified(time).unwrap();
    /// assert_ne!(a, diffclip_eval::ModelKey::with_contents(Some(&p), "{}").unwrap());
    /// ```
    pub fn with_contents(checkpoint: Option<&Path>, config_json: &str) -> Result<Self, EvalError> {
        let base = Self::new(checkpoint, config_json)?;
        let Some(path) = checkpoint else { return Ok(base) };
        let mut h = Sha256::new();
        h.update(base.0.as_bytes());
        h.update(sampled_digest(path)?);
        Ok(Self(hex(&h.finalize())))
    }

    /// A key from any caller-chosen identity string (e.g. a training run and step).
    pub fn from_identity(identity: &str) -> Self {
        Self(hex(&Sha256::digest(
            format!("diffclip-eval model id\0{identity}").as_bytes(),
        )))
    }

    /// The hex digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// SHA-256 of 65 blocks of 16 KiB of `path` at evenly spread offsets, the last ending the file.
fn sampled_digest(path: &Path) -> Result<[u8; 32], EvalError> {
    use std::io::{Read, Seek, SeekFrom};
    const BLOCK: u64 = 16 << 10;
    let mut file = diffclip_data::files::open_regular(path).map_err(|e| EvalError::io(path, e))?;
    let len = file.metadata().map_err(|e| EvalError::io(path, e))?.len();
    let mut h = Sha256::new();
    let mut block = Vec::with_capacity(BLOCK as usize);
    for i in 0..=64u64 {
        let at = (len.saturating_sub(BLOCK)) * i / 64;
        file.seek(SeekFrom::Start(at)).map_err(|e| EvalError::io(path, e))?;
        block.clear();
        (&mut file).take(BLOCK).read_to_end(&mut block).map_err(|e| EvalError::io(path, e))?;
        h.update(&block);
    }
    Ok(h.finalize().into())
}

/// `canonical path \0 size \0 mtime-ns` of a file.
pub fn file_identity(path: &Path) -> Result<String, EvalError> {
    let meta = std::fs::metadata(path).map_err(|e| EvalError::io(path, e))?;
    identity_of(path, &meta)
}

/// [`file_identity`] of `path` from its metadata `meta`, already read.
pub(crate) fn identity_of(path: &Path, meta: &std::fs::Metadata) -> Result<String, EvalError> {
    let canonical = std::fs::canonicalize(path).map_err(|e| EvalError::io(path, e))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(format!(
        "{}\0{}\0{}",
        canonical.display(),
        meta.len(),
        mtime
    ))
}

/// A key of data from its parts (hashed in order).
pub fn data_key<I, B>(kind: &str, parts: I) -> String
where
    I: IntoIterator<Item = B>,
    B: AsRef<[u8]>,
{
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    for p in parts {
        h.update(b"\0");
        h.update(p.as_ref());
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Widest embedding a cache entry is read for (wider ones are recomputed each time).
const MAX_CACHED_WIDTH: usize = 16384;

/// The on-disk cache of one model.
///
/// ```
/// use diffclip_eval::{EmbeddingCache, Matrix, ModelKey, cache::data_key};
/// let dir = tempfile::tempdir().unwrap();
/// let cache = EmbeddingCache::new(dir.path(), ModelKey::from_identity("run 7, step 300"));
/// let key = data_key("captions", ["a dog", "a cat"]);
/// let mut computed = 0;
/// for _ in 0..2 {
///     let m = cache.get_or_compute("text", &key, 2, || {
///         computed += 1;
///         Matrix::new(2, 3, vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
///     }).unwrap();
///     assert_eq!(m.row(1), [0.0, 1.0, 0.0]);
/// }
/// assert_eq!(computed, 1); // the second call read the file
/// // Another model's cache in the same folder never sees these features.
/// let other = EmbeddingCache::new(dir.path(), ModelKey::from_identity("run 8"));
/// assert!(other.load("text", &key, 2).is_none());
/// ```
#[derive(Debug, Clone)]
pub struct EmbeddingCache {
    dir: PathBuf,
    model: ModelKey,
}

impl EmbeddingCache {
    /// The cache of `model` under `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>, model: ModelKey) -> Self {
        Self {
            dir: dir.into(),
            model,
        }
    }

    /// The file for data of `kind` with key `key`.
    pub fn path(&self, kind: &str, key: &str) -> PathBuf {
        self.dir
            .join(&self.model.0[..16])
            .join(format!("{kind}-{}.safetensors", &key[..16.min(key.len())]))
    }

    /// The stored features of `key` with `rows` rows, if present and consistent.
    pub fn load(&self, kind: &str, key: &str, rows: usize) -> Option<Matrix> {
        let path = self.path(kind, key);
        // Only a regular file of the size such an entry can have (a FIFO or device there would
        // block or read without end): anything else is a miss, recomputed.
        let cap = rows.saturating_mul(4 * MAX_CACHED_WIDTH).saturating_add(1 << 20);
        let bytes = diffclip_data::files::read_capped(&path, cap as u64).ok()??;
        let st = SafeTensors::deserialize(&bytes).ok()?;
        let (_, header) = SafeTensors::read_metadata(&bytes).ok()?;
        let meta = header.metadata().as_ref()?;
        if meta.get("model_key") != Some(&self.model.0)
            || meta.get("data_key").map(String::as_str) != Some(key)
        {
            return None;
        }
        // A damaged entry is a miss like any other, recomputed.
        diffclip_clip::checksum::Checksums::check_file(Some(meta), &st, |name| name == "features").ok()?;
        let view = st.tensor("features").ok()?;
        let shape = view.shape();
        if view.dtype() != Dtype::F32 || shape.len() != 2 || shape[0] != rows {
            return None;
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        // A damaged entry (NaN or inf) is recomputed like any other inconsistent one.
        if data.iter().any(|v| !v.is_finite()) {
            return None;
        }
        Matrix::new(shape[0], shape[1], data).ok()
    }

    /// Store `features` under `key`.
    pub fn store(&self, kind: &str, key: &str, features: &Matrix) -> Result<(), EvalError> {
        let path = self.path(kind, key);
        let err = |message: String| EvalError::Cache {
            path: path.display().to_string(),
            message,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| EvalError::io(dir, e))?;
        }
        let meta = HashMap::from([
            ("model_key".to_string(), self.model.0.clone()),
            ("data_key".to_string(), key.to_string()),
            ("kind".to_string(), kind.to_string()),
        ]);
        let tensor = F32Tensor { name: "features".into(), shape: vec![features.rows(), features.cols()], data: features.data() };
        write_safetensors(&path, &[tensor], meta).map_err(|e| err(e.to_string()))
    }

    /// The cached features of `key`, or `compute()`'s result, stored for next time.
    pub fn get_or_compute(
        &self,
        kind: &str,
        key: &str,
        rows: usize,
        compute: impl FnOnce() -> Result<Matrix, EvalError>,
    ) -> Result<Matrix, EvalError> {
        if let Some(m) = self.load(kind, key, rows) {
            return Ok(m);
        }
        let m = compute()?;
        self.store(kind, key, &m)?;
        Ok(m)
    }
}
