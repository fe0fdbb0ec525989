//! One job writes a folder at a time: an advisory `flock` on the folder itself, which a thread
//! already holding it may take again (a program holds its output around a library call that
//! holds it too).

use std::cell::RefCell;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::path::Path;

/// A folder this thread holds: its locked handle, how many holds are live, and whether shared.
struct Held {
    _file: std::fs::File,
    holds: usize,
    shared: bool,
}

thread_local! {
    /// Folders this thread holds, by device and inode.
    static HELD: RefCell<HashMap<(u64, u64), Held>> = RefCell::new(HashMap::new());
}

/// A folder held by [`hold_folder`] until dropped; the lock goes with the last of a thread's
/// holds on it, in whatever order they are dropped. Dropped on the thread that took it (it is
/// not `Send`): a thread's holds are counted on that thread.
#[derive(Debug)]
pub struct FolderHold {
    key: (u64, u64),
    _not_send: PhantomData<*const ()>,
}

impl Drop for FolderHold {
    fn drop(&mut self) {
        // At thread exit the registry may be gone already, and its files with it (unlocked).
        let _ = HELD.try_with(|held| {
            let mut held = held.borrow_mut();
            if let Some(entry) = held.get_mut(&self.key) {
                entry.holds -= 1;
                if entry.holds == 0 {
                    held.remove(&self.key);
                }
            }
        });
    }
}

/// Holds the folder `dir` for one job while the returned guard lives (an advisory `flock` on
/// the folder itself, released when the last hold is dropped or the process ends): exclusively,
/// or `shared` with other holders that share. A thread holding `dir` already gets it again (it
/// is that job), except exclusively where it holds it shared. `Ok(None)` where folders cannot be
/// opened as files (Windows, a folder one may write but not read) or the file system has no
/// locks: written unheld. An error of kind `WouldBlock` means another job (another process, or
/// another thread of this one) holds it, or that this thread holds it shared and asked for it
/// exclusively.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let held = diffclip_clip::files::hold_folder(dir.path(), false).unwrap();
/// assert!(held.is_some());
/// // The thread holding it may hold it again; another thread may not.
/// let again = diffclip_clip::files::hold_folder(dir.path(), false).unwrap();
/// assert!(again.is_some());
/// let path = dir.path().to_path_buf();
/// let other = std::thread::spawn(move || diffclip_clip::files::hold_folder(&path, false).map(|h| h.is_some()));
/// assert_eq!(other.join().unwrap().unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
/// // The lock stays until the last hold goes, whichever is dropped first.
/// drop(held);
/// let path = dir.path().to_path_buf();
/// let other = std::thread::spawn(move || diffclip_clip::files::hold_folder(&path, true).map(|h| h.is_some()));
/// assert!(other.join().unwrap().is_err());
/// drop(again);
/// let shared = diffclip_clip::files::hold_folder(dir.path(), true).unwrap();
/// assert!(shared.is_some());
/// // Held shared, not had exclusively: the folder's other sharers may be writing.
/// assert!(diffclip_clip::files::hold_folder(dir.path(), false).is_err());
/// assert!(diffclip_clip::files::hold_folder(dir.path(), true).unwrap().is_some());
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
    let nested = HELD.with(|held| match held.borrow_mut().get_mut(&key) {
        // Held shared, it cannot be had exclusively: other jobs may share it.
        Some(entry) if entry.shared && !shared => Some(Err(std::io::Error::new(std::io::ErrorKind::WouldBlock, "this job holds the folder shared, not exclusively"))),
        Some(entry) => {
            entry.holds += 1;
            Some(Ok(Some(FolderHold { key, _not_send: PhantomData })))
        }
        None => None,
    });
    if let Some(nested) = nested {
        return nested;
    }
    let locked = if shared { folder.try_lock_shared() } else { folder.try_lock() };
    match locked {
        Ok(()) => {
            HELD.with(|held| held.borrow_mut().insert(key, Held { _file: folder, holds: 1, shared }));
            Ok(Some(FolderHold { key, _not_send: PhantomData }))
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
