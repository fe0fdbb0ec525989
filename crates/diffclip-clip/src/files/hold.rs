//! One job writes a folder at a time: an advisory `flock` on the folder itself, which a thread
//! already holding it may take again (a program holds its output around a library call that
//! holds it too).

use std::cell::RefCell;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::path::Path;

thread_local! {
    /// Folders this thread holds, by device and inode, with how many holds are live.
    static HELD: RefCell<HashMap<(u64, u64), usize>> = RefCell::new(HashMap::new());
}

/// A folder held by [`hold_folder`] until dropped. Dropped on the thread that took it (it is not
/// `Send`): the holds a thread has are counted on that thread.
#[derive(Debug)]
pub struct FolderHold {
    key: (u64, u64),
    /// The locked folder, for the outermost hold of this thread; `None` for one nested in it.
    _file: Option<std::fs::File>,
    _not_send: PhantomData<*const ()>,
}

impl Drop for FolderHold {
    fn drop(&mut self) {
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            if let Some(n) = held.get_mut(&self.key) {
                *n -= 1;
                if *n == 0 {
                    held.remove(&self.key);
                }
            }
        });
    }
}

/// Holds the folder `dir` for one job while the returned guard lives (an advisory `flock` on
/// the folder itself, released when the last hold is dropped or the process ends): exclusively,
/// or `shared` with other holders that share. A thread holding `dir` already gets it again,
/// whatever it asks (it is that job). `Ok(None)` where folders cannot be opened as files
/// (Windows, a folder one may write but not read) or the file system has no locks: written
/// unheld. An error of kind `WouldBlock` means another job (another process, or another thread
/// of this one) holds it.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let held = diffclip_clip::files::hold_folder(dir.path(), false).unwrap();
/// assert!(held.is_some());
/// // The thread holding it may hold it again; another thread may not.
/// assert!(diffclip_clip::files::hold_folder(dir.path(), false).unwrap().is_some());
/// let path = dir.path().to_path_buf();
/// let other = std::thread::spawn(move || diffclip_clip::files::hold_folder(&path, false).map(|h| h.is_some()));
/// assert_eq!(other.join().unwrap().unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
/// drop(held);
/// assert!(diffclip_clip::files::hold_folder(dir.path(), true).is_ok());
/// ```
pub fn hold_folder(dir: &Path, shared: bool) -> std::io::Result<Option<FolderHold>> {
    // Windows opens no folder as a file, and a folder may be writable but not readable.
    if cfg!(not(unix)) {
        return Ok(None);
    }
    let folder = match std::fs::File::open(dir) {
        Ok(folder) => folder,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Ok(None),
        Err(e) => return Err(e),
    };
    let key = identity(&folder)?;
    let nested = HELD.with(|held| held.borrow_mut().get_mut(&key).map(|n| *n += 1).is_some());
    if nested {
        return Ok(Some(FolderHold { key, _file: None, _not_send: PhantomData }));
    }
    let locked = if shared { folder.try_lock_shared() } else { folder.try_lock() };
    match locked {
        Ok(()) => {
            HELD.with(|held| held.borrow_mut().insert(key, 1));
            Ok(Some(FolderHold { key, _file: Some(folder), _not_send: PhantomData }))
        }
        Err(std::fs::TryLockError::WouldBlock) => Err(std::io::Error::new(std::io::ErrorKind::WouldBlock, "another job holds this folder")),
        Err(std::fs::TryLockError::Error(_)) => Ok(None),
    }
}

/// The folder's device and inode: the same folder under any path.
#[cfg(unix)]
fn identity(folder: &std::fs::File) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = folder.metadata()?;
    Ok((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn identity(_folder: &std::fs::File) -> std::io::Result<(u64, u64)> {
    Err(std::io::Error::other("folders are not held on this system"))
}
