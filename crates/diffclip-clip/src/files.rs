//! Writing output files safely: atomically (temporary file, fsync, rename, fsync of the folder),
//! through symlinks to their target, never over a device, FIFO or one of the program's inputs,
//! with the permissions the umask gives; and the one f32 safetensors writer built on it.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::checksum::{CHECKSUM_KEY, Checksums};

mod hold;
pub use hold::{FolderHold, hold_folder};

/// Why an output file could not be written.
#[derive(Debug, Error)]
pub enum FileError {
    /// The operating system refused a read, write, rename or sync.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder concerned.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The output exists and is a device, FIFO, socket or folder.
    #[error("{path} is {kind}, not a regular file: refusing to replace it")]
    NotRegularFile {
        /// The output path.
        path: String,
        /// What it is, with its article ("a named pipe (FIFO)").
        kind: &'static str,
    },
    /// An output folder's path exists as a file, device, FIFO or socket.
    #[error("{path} is {kind}, not a folder")]
    NotAFolder {
        /// The output folder's path.
        path: String,
        /// What it is.
        kind: &'static str,
    },
    /// The output is one of the inputs.
    #[error("output {path} is also an input ({input}): refusing to overwrite it")]
    SameAsInput {
        /// The output path.
        path: String,
        /// The input it names.
        input: String,
    },
    /// The tensors could not be serialised.
    #[error("{path}: cannot serialise tensors: {message}")]
    Serialize {
        /// The output path.
        path: String,
        /// What safetensors said.
        message: String,
    },
}

fn io(path: &Path, source: std::io::Error) -> FileError {
    FileError::Io { path: path.display().to_string(), source }
}

pub use diffclip_files::{open_regular, read_regular, read_regular_capped};

/// Creates the output folder `dir` and its parents; a path that exists as something else is
/// refused, saying what it is (not the system's bare "File exists").
///
/// ```
/// use diffclip_clip::files::{create_output_dir, FileError};
/// let dir = tempfile::tempdir().unwrap();
/// create_output_dir(&dir.path().join("a/b")).unwrap();
/// std::fs::write(dir.path().join("f"), b"x").unwrap();
/// let e = create_output_dir(&dir.path().join("f")).unwrap_err();
/// assert!(matches!(e, FileError::NotAFolder { kind: "a file", .. }), "{e}");
/// let e = create_output_dir(&dir.path().join("f/run")).unwrap_err(); // "…/f is a file, not a folder"
/// assert!(matches!(&e, FileError::NotAFolder { path, .. } if path.ends_with("/f")), "{e}");
/// # #[cfg(unix)] {
/// std::os::unix::fs::symlink(dir.path().join("gone"), dir.path().join("link")).unwrap();
/// let e = create_output_dir(&dir.path().join("link")).unwrap_err();
/// assert!(matches!(e, FileError::NotAFolder { kind: "a symbolic link to nothing", .. }), "{e}");
/// # }
/// ```
pub fn create_output_dir(dir: &Path) -> Result<(), FileError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        // The path, or the first of its folders that exists, as something else names the culprit:
        // a link to nothing too (the system says "File exists" of it).
        match dir.ancestors().find_map(|a| std::fs::symlink_metadata(a).ok().map(|m| (a, m))) {
            Some((a, m)) if m.file_type().is_symlink() && std::fs::metadata(a).is_err() => {
                FileError::NotAFolder { path: a.display().to_string(), kind: "a symbolic link to nothing" }
            }
            _ => match dir.ancestors().find_map(|a| std::fs::metadata(a).ok().map(|m| (a, m))) {
                Some((a, m)) if !m.is_dir() => FileError::NotAFolder { path: a.display().to_string(), kind: diffclip_files::file_kind(m.file_type()).unwrap_or("a file") },
                _ => io(dir, e),
            },
        }
    })
}

/// The file a write to `path` lands in: symlinks are followed (to their target even when it does
/// not exist yet), so the link itself is kept.
pub fn resolve_output(path: &Path) -> Result<PathBuf, FileError> {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&current).map_err(|e| io(&current, e))?;
                current = match current.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok(current),
        }
    }
    Err(io(path, std::io::Error::other("too many levels of symbolic links")))
}

/// Refuses an output that is a device, FIFO, socket or folder, that is the same file as one of
/// `inputs` (compared by device and inode, so other spellings and links are caught), or whose
/// folder does not exist, is not a folder, or cannot be read or written (checked before the
/// work, not found when writing its result: a file is made there and removed).
///
/// ```
/// use diffclip_clip::files::{check_output, FileError};
/// let dir = tempfile::tempdir().unwrap();
/// let input = dir.path().join("in.png");
/// std::fs::write(&input, b"x").unwrap();
/// assert!(matches!(check_output(&input, &[input.as_path()]), Err(FileError::SameAsInput { .. })));
/// assert!(check_output(&dir.path().join("out.bin"), &[input.as_path()]).is_ok());
/// assert!(matches!(check_output(std::path::Path::new("/dev/null"), &[]), Err(FileError::NotRegularFile { .. })));
/// let e = check_output(&dir.path().join("no/out.bin"), &[]).unwrap_err().to_string();
/// assert!(e.ends_with(&format!("out.bin: its folder {} does not exist", dir.path().join("no").display())), "{e}");
/// // A folder no file can be made in (a read-only mount; /proc here), whatever its permissions say.
/// let e = check_output(std::path::Path::new("/proc/results.json"), &[]).unwrap_err().to_string();
/// assert!(e.contains("its folder /proc cannot be written"), "{e}");
/// assert!(std::fs::read_dir(dir.path()).unwrap().count() == 1, "the check leaves no file behind");
/// ```
pub fn check_output(output: &Path, inputs: &[&Path]) -> Result<(), FileError> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(output) else {
        let dir = folder_of(output);
        return match folder_problem(&dir) {
            Some((kind, why)) => Err(io(output, std::io::Error::new(kind, format!("its folder {} {why}", dir.display())))),
            None => Ok(()),
        };
    };
    if let Some(kind) = diffclip_files::file_kind(meta.file_type()) {
        return Err(FileError::NotRegularFile { path: output.display().to_string(), kind });
    }
    // Replaced through a new file beside it: its folder must take one.
    let dir = folder_of(output);
    if let Some((kind, why)) = folder_problem(&dir) {
        return Err(io(output, std::io::Error::new(kind, format!("its folder {} {why}", dir.display()))));
    }
    for input in inputs {
        if let Ok(m) = std::fs::metadata(input)
            && m.dev() == meta.dev()
            && m.ino() == meta.ino()
        {
            return Err(FileError::SameAsInput { path: output.display().to_string(), input: input.display().to_string() });
        }
    }
    Ok(())
}

/// Whether a file can be made in `dir`, found by making one and removing it: permissions alone
/// do not tell (a read-only mount, a process running as root), and a long job must not learn it
/// only when it writes its results.
fn writable(dir: &Path) -> std::io::Result<()> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let probe = dir.join(format!(".diffclip-write-check-{}-{nanos}", std::process::id()));
    std::fs::OpenOptions::new().write(true).create_new(true).open(&probe)?;
    std::fs::remove_file(&probe)
}

/// The folder a file at `path` lands in (`.` for a bare file name).
fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Why `dir` cannot hold a new file, if it cannot: the error's kind and its words.
fn folder_problem(dir: &Path) -> Option<(std::io::ErrorKind, String)> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => writable(dir).err().map(|e| (e.kind(), format!("cannot be written: {e}"))),
        Ok(_) => Some((std::io::ErrorKind::NotADirectory, "is not a folder".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some((e.kind(), "does not exist".into())),
        Err(e) => Some((e.kind(), format!("cannot be read: {e}"))),
    }
}

/// Prefix of the temporary files [`write_atomic`] creates beside `path`.
fn tmp_prefix(path: &Path) -> std::ffi::OsString {
    let mut s = path.file_name().unwrap_or_default().to_owned();
    s.push(".tmp");
    s
}

/// Writes `bytes` to `path` so that a crash, a kill or a power loss leaves either the old file or
/// the new one, never a torn one: a temporary file in the same folder is written and fsynced,
/// renamed over the target, and the folder is fsynced. A symlink is written through to its
/// target; a device, FIFO or folder is refused. New files get the umask's permissions; an
/// existing file keeps its own.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("out.bin");
/// diffclip_clip::files::write_atomic(&path, b"hello").unwrap();
/// assert_eq!(std::fs::read(&path).unwrap(), b"hello");
/// ```
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    write_atomic_with(path, |tmp| {
        let mut file = OpenOptions::new().write(true).open(tmp).map_err(|e| io(tmp, e))?;
        file.write_all(bytes).map_err(|e| io(tmp, e))
    })
}

/// [`write_atomic`] for a writer that needs a path: `write` fills the (already created, empty)
/// temporary file, which is then fsynced and renamed over `path`.
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&Path) -> Result<(), FileError>) -> Result<(), FileError> {
    use std::os::unix::fs::PermissionsExt;
    let target = resolve_output(path)?;
    check_output(&target, &[])?;
    let dir = folder_of(&target);
    let mut tmp_name = tmp_prefix(&target);
    tmp_name.push(std::process::id().to_string());
    let tmp = dir.join(tmp_name);
    let existing_mode = std::fs::metadata(&target).ok().map(|m| m.permissions().mode());
    let result = (|| {
        // create + truncate: a leftover of a killed run with our PID is replaced.
        // Named by the target, not the temporary name the caller never gave.
        let file = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp).map_err(|e| match folder_problem(&dir) {
            Some((_, why)) => io(&target, std::io::Error::new(e.kind(), format!("its folder {} {why}", dir.display()))),
            None => io(&target, e),
        })?;
        if let Some(mode) = existing_mode {
            file.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(|e| io(&tmp, e))?;
        }
        drop(file);
        write(&tmp)?;
        File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &target).map_err(|e| io(&target, e))?;
        // The rename itself must reach the disk before we report success.
        File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| io(&dir, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Removes the temporary files that [`write_atomic`] calls on `path` left behind when their
/// process was killed (`<name>.tmp<PID>` whose process no longer runs). Returns how many.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("ckpt.safetensors");
/// std::fs::write(dir.path().join("ckpt.safetensors.tmp999999999"), b"torn").unwrap();
/// assert_eq!(diffclip_clip::files::remove_stale_temps(&path).unwrap(), 1);
/// ```
pub fn remove_stale_temps(path: &Path) -> Result<usize, FileError> {
    let target = resolve_output(path)?;
    let dir = folder_of(&target);
    let prefix = tmp_prefix(&target);
    let prefix = prefix.to_string_lossy();
    let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(0) };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some(pid) = name.strip_prefix(prefix.as_ref()).and_then(|p| p.parse::<u32>().ok()) else { continue };
        let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if !alive && entry.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::remove_file(entry.path()).map_err(|e| io(&entry.path(), e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The safetensors header's key for string metadata; no tensor may take this name.
pub const METADATA_KEY: &str = "__metadata__";

/// One named f32 tensor for [`write_safetensors`].
#[derive(Debug, Clone)]
pub struct F32Tensor<'a> {
    /// Name in the file.
    pub name: String,
    /// Shape (`[]` for a scalar).
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: &'a [f32],
}

/// One entry of a safetensors header, its fields in sorted order whatever serde_json's
/// features: equal contents give equal bytes.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum HeaderEntry {
    Tensor { data_offsets: [usize; 2], dtype: &'static str, shape: Vec<usize> },
    Metadata(std::collections::BTreeMap<String, String>),
}

/// Writes f32 tensors and string metadata as one safetensors file, atomically
/// ([`write_atomic`]). Every f32 safetensors file the project writes goes through here, and
/// each gets the checksums of its tensors and of its other metadata ([`crate::checksum`]).
///
/// ```
/// use diffclip_clip::files::{write_safetensors, F32Tensor};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("x.safetensors");
/// let t = F32Tensor { name: "x".into(), shape: vec![2], data: &[1.0, 2.0] };
/// write_safetensors(&path, &[t], Default::default()).unwrap();
/// let bytes = std::fs::read(&path).unwrap();
/// assert_eq!(safetensors::SafeTensors::deserialize(&bytes).unwrap().tensor("x").unwrap().shape(), &[2]);
/// // A tensor named like the metadata key would make the header unreadable.
/// let bad = F32Tensor { name: "__metadata__".into(), shape: vec![2], data: &[1.0, 2.0] };
/// assert!(write_safetensors(&path, &[bad], Default::default()).is_err());
/// // Equal contents give equal bytes: the header's keys are sorted, metadata included.
/// let meta = |order: &[usize]| order.iter().map(|i| (format!("k{i}"), format!("v{i}"))).collect();
/// let again = dir.path().join("y.safetensors");
/// let (a, b) = (F32Tensor { name: "a".into(), shape: vec![1], data: &[0.5] }, F32Tensor { name: "b".into(), shape: vec![], data: &[1.0] });
/// write_safetensors(&path, &[a.clone(), b.clone()], meta(&[0, 1, 2, 3, 4, 5, 6, 7])).unwrap();
/// write_safetensors(&again, &[b, a], meta(&[7, 6, 5, 4, 3, 2, 1, 0])).unwrap();
/// assert_eq!(std::fs::read(&path).unwrap(), std::fs::read(&again).unwrap());
/// ```
pub fn write_safetensors(path: &Path, tensors: &[F32Tensor<'_>], metadata: HashMap<String, String>) -> Result<(), FileError> {
    let ser = |message: String| FileError::Serialize { path: path.display().to_string(), message };
    // The header is one JSON object: a tensor named like its metadata key, or two tensors of one
    // name, would write a file no reader accepts.
    let mut names = std::collections::HashSet::new();
    for t in tensors {
        if t.name == METADATA_KEY {
            return Err(ser(format!("a tensor may not be named {METADATA_KEY:?} (the header's metadata key)")));
        }
        if !names.insert(t.name.as_str()) {
            return Err(ser(format!("two tensors are named {:?}", t.name)));
        }
    }
    if metadata.contains_key(CHECKSUM_KEY) {
        return Err(ser(format!("the metadata key {CHECKSUM_KEY:?} is the writer's own (the tensors' checksums)")));
    }
    // The header is written here, keys sorted (safetensors' own writer uses `HashMap` order,
    // so equal contents gave different bytes), and the data streamed after it in name order:
    // no copy of the tensors is held, however large they are.
    let mut sorted: Vec<&F32Tensor<'_>> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut header = std::collections::BTreeMap::new();
    let mut offset = 0usize;
    for t in &sorted {
        let values = t.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if values != Some(t.data.len()) {
            return Err(ser(format!("tensor {:?}: shape {:?} does not hold its {} values", t.name, t.shape, t.data.len())));
        }
        let end = offset + 4 * t.data.len();
        header.insert(t.name.clone(), HeaderEntry::Tensor { data_offsets: [offset, end], dtype: "F32", shape: t.shape.clone() });
        offset = end;
    }
    // Readers check each tensor against these, so damage on disk is an error, not new weights.
    let mut metadata: std::collections::BTreeMap<String, String> = metadata.into_iter().collect();
    let sums = Checksums::of(sorted.iter().map(|t| (t.name.as_str(), t.data))).with_metadata(&metadata);
    metadata.insert(CHECKSUM_KEY.to_string(), sums.to_metadata());
    header.insert(METADATA_KEY.to_string(), HeaderEntry::Metadata(metadata));
    let mut json = serde_json::to_vec(&header).map_err(|e| ser(e.to_string()))?;
    // The data must start 8-byte aligned, padded with spaces as safetensors does.
    json.resize(json.len().next_multiple_of(8), b' ');
    write_atomic_with(path, |tmp| {
        let file = OpenOptions::new().write(true).open(tmp).map_err(|e| io(tmp, e))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut put = |bytes: &[u8]| out.write_all(bytes).map_err(|e| io(tmp, e));
        put(&(json.len() as u64).to_le_bytes())?;
        put(&json)?;
        let mut chunk = Vec::with_capacity(1 << 16);
        for t in &sorted {
            for values in t.data.chunks(1 << 14) {
                chunk.clear();
                chunk.extend(values.iter().flat_map(|v| v.to_le_bytes()));
                put(&chunk)?;
            }
        }
        out.flush().map_err(|e| io(tmp, e))
    })
}
