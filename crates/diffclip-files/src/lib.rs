//! Opening input files safely, for every diffclip crate that reads one (checkpoints and model
//! configs in `diffclip-clip`; images, CSVs, tar shards and text lists in `diffclip-data`):
//! a FIFO, a device such as `/dev/zero`, a socket or a folder given where a file is expected is
//! refused at once with an error saying what it is, instead of blocking forever or reading
//! without end.

use std::fs::File;
use std::io;
use std::path::Path;

/// What a file that is not a regular one is, in words with their article (`"a named pipe
/// (FIFO)"`, `"a character device"`, `"a directory"`); `None` for a regular file.
///
/// ```
/// let dir = std::fs::metadata(std::env::temp_dir()).unwrap();
/// assert_eq!(diffclip_files::file_kind(dir.file_type()), Some("a directory"));
/// ```
pub fn file_kind(ft: std::fs::FileType) -> Option<&'static str> {
    if ft.is_file() {
        return None;
    }
    if ft.is_dir() {
        return Some("a directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return Some("a named pipe (FIFO)");
        }
        if ft.is_char_device() {
            return Some("a character device");
        }
        if ft.is_block_device() {
            return Some("a block device");
        }
        if ft.is_socket() {
            return Some("a socket");
        }
    }
    Some("a special file")
}

fn not_regular(kind: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("not a regular file (it is {kind})"))
}

/// Opens `path` for reading if it is a regular file (symlinks are followed).
///
/// FIFOs, devices, sockets and directories are refused with an [`io::ErrorKind::InvalidInput`]
/// error saying what the path is ([`file_kind`]). On Unix the file is opened non-blocking and
/// checked through the opened handle, so opening a FIFO never waits for a writer and a file
/// swapped after a check is still caught.
///
/// ```
/// use diffclip_files::open_regular;
/// let err = open_regular(std::env::temp_dir()).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
/// assert!(err.to_string().contains("directory"));
/// # #[cfg(unix)]
/// assert!(open_regular("/dev/zero").unwrap_err().to_string().contains("character device"));
/// ```
pub fn open_regular(path: impl AsRef<Path>) -> io::Result<File> {
    let path = path.as_ref();
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    #[cfg(not(unix))]
    if let Some(kind) = file_kind(std::fs::metadata(path)?.file_type()) {
        return Err(not_regular(kind));
    }
    let file = options.open(path)?;
    match file_kind(file.metadata()?.file_type()) {
        None => Ok(file),
        Some(kind) => Err(not_regular(kind)),
    }
}

/// The whole of the regular file `path` ([`open_regular`]).
///
/// ```
/// let dir = std::env::temp_dir();
/// assert!(diffclip_files::read_regular(&dir).is_err());
/// ```
pub fn read_regular(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut open_regular(path)?, &mut bytes)?;
    Ok(bytes)
}

/// The whole of the regular file `path` ([`open_regular`]), refused (`InvalidData`) when it is
/// longer than `max_bytes`: at most `max_bytes + 1` bytes are read, whatever size it claims.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("read-capped-{}", std::process::id()));
/// std::fs::write(&dir, b"0123456789").unwrap();
/// assert_eq!(diffclip_files::read_regular_capped(&dir, 10).unwrap().len(), 10);
/// let err = diffclip_files::read_regular_capped(&dir, 9).unwrap_err();
/// assert!(err.to_string().contains("longer than 9 bytes"), "{err}");
/// std::fs::remove_file(&dir).unwrap();
/// ```
pub fn read_regular_capped(path: impl AsRef<Path>, max_bytes: u64) -> io::Result<Vec<u8>> {
    read_capped(path, max_bytes)?.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("longer than {max_bytes} bytes")))
}

/// Reads a whole regular file, refusing one longer than `max_bytes`.
///
/// At most `max_bytes + 1` bytes are ever read, whatever size the file claims, so a file that
/// grows while it is read cannot exhaust memory. `Ok(None)` means the file is longer than
/// `max_bytes`.
///
/// ```
/// use diffclip_files::read_capped;
/// let p = std::env::temp_dir().join(format!("read-capped-none-{}", std::process::id()));
/// std::fs::write(&p, [1u8; 10]).unwrap();
/// assert_eq!(read_capped(&p, 10).unwrap().unwrap().len(), 10);
/// assert!(read_capped(&p, 9).unwrap().is_none());
/// std::fs::remove_file(&p).unwrap();
/// ```
pub fn read_capped(path: impl AsRef<Path>, max_bytes: u64) -> io::Result<Option<Vec<u8>>> {
    let file = open_regular(path)?;
    let claimed = file.metadata().map(|m| m.len()).unwrap_or(0);
    // Too long already by its size: refused without reading (a file can still grow past the
    // cap while read, which the `take` below stops).
    if claimed > max_bytes {
        return Ok(None);
    }
    // The claimed size is only a hint (capped, so a lying size cannot force a huge allocation).
    let hint = claimed.min(max_bytes).min(64 << 20) as usize;
    let mut bytes = Vec::with_capacity(hint);
    io::Read::read_to_end(&mut io::Read::take(file, max_bytes.saturating_add(1)), &mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Ok(None);
    }
    Ok(Some(bytes))
}

