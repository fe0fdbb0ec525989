//! Streaming samples out of WebDataset tar shards (img2dataset layout) on a reader thread.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use super::error::DataError;

/// Largest tar member read into memory (a guard against corrupt size fields).
pub const MAX_MEMBER_BYTES: u64 = 256 << 20;

/// One sample of a shard: the members sharing a key (`KEY.jpg`, `KEY.txt`, `KEY.json`).
///
/// ```
/// use diffclip_data::datasets::WdsSample;
/// let s = WdsSample { shard: "00000.tar".into(), key: "000001".into(), image_member: "000001.jpg".into(),
///                     image: vec![], caption: "a dog".into(), json: None };
/// assert_eq!(s.image_name(), "00000.tar:000001.jpg");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct WdsSample {
    /// The shard it came from.
    pub shard: PathBuf,
    /// The key (member path up to the first dot of its file name).
    pub key: String,
    /// The image member's path inside the shard.
    pub image_member: String,
    /// The encoded image.
    pub image: Vec<u8>,
    /// The caption (trimmed).
    pub caption: String,
    /// The `KEY.json` metadata, if present.
    pub json: Option<String>,
}

impl WdsSample {
    /// `SHARD:MEMBER`, the name decoding errors carry.
    pub fn image_name(&self) -> String {
        format!("{}:{}", self.shard.display(), self.image_member)
    }
}

/// Which members make a sample.
#[derive(Debug, Clone)]
pub(crate) struct MemberSpec {
    /// Image extensions in order of preference, lower case.
    pub image_exts: Vec<String>,
    /// Caption extension, lower case.
    pub caption_ext: String,
    /// A sample without an image member is an error (else its `image` is empty).
    pub require_image: bool,
    /// A sample without a caption member is an error (else its `caption` is empty).
    pub require_caption: bool,
}

/// The raw samples of a list of shards, read in order on a background thread (so reading
/// overlaps decoding). Shard and member errors are yielded as `Err` and reading goes on with the
/// next sample, or the next shard when the archive itself is broken. Dropping it stops the thread.
///
/// ```no_run
/// use diffclip_data::datasets::{ImageLoader, WebDataset, WebDatasetConfig};
/// use diffclip_data::preprocess::Pipeline;
/// let loader = ImageLoader::new(Pipeline::from_name("openai", 224)?);
/// let wds = WebDataset::new("cc3m/{00000..00331}.tar", WebDatasetConfig::default(), loader)?;
/// for sample in wds.raw_samples().take(3) {
///     let s = sample?;
///     println!("{} {} bytes: {}", s.key, s.image.len(), s.caption);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RawSamples {
    rx: Receiver<Result<WdsSample, DataError>>,
    _thread: Option<JoinHandle<()>>,
}

impl RawSamples {
    pub(crate) fn spawn(shards: Vec<PathBuf>, spec: MemberSpec, capacity: usize) -> Self {
        let (tx, rx) = sync_channel(capacity.max(1));
        let thread = std::thread::Builder::new()
            .name("wds-reader".into())
            .spawn(move || {
                for shard in &shards {
                    if !read_shard(shard, &spec, &tx) {
                        return;
                    }
                }
            })
            .ok();
        Self {
            rx,
            _thread: thread,
        }
    }
}

impl Iterator for RawSamples {
    type Item = Result<WdsSample, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.rx.recv().ok()
    }
}

/// The members of the sample being assembled.
struct Group {
    key: String,
    members: Vec<(String, String, Vec<u8>)>, // (member path, lower-case extension, bytes)
}

/// `dir/KEY.ext.ext2` -> (`dir/KEY`, `ext.ext2`), as webdataset's `base_plus_ext`.
fn split_key(name: &str) -> Option<(&str, &str)> {
    let base_start = name.rfind('/').map_or(0, |i| i + 1);
    let dot = name[base_start..].find('.')? + base_start;
    (dot > base_start).then(|| (&name[..dot], &name[dot + 1..]))
}

fn finish(group: Group, shard: &Path, spec: &MemberSpec) -> Result<WdsSample, DataError> {
    let err = |message: String| DataError::Member {
        shard: shard.to_path_buf(),
        member: group.key.clone(),
        message,
    };
    // Two members of one kind that is read (a tar written twice into, say): which one is meant
    // is unknown. Members nothing reads may repeat.
    let read = |ext: &str| spec.image_exts.iter().any(|e| e == ext) || ext == spec.caption_ext || ext == "json";
    let repeated = group.members.iter().enumerate().filter(|(_, m)| read(&m.1)).find_map(|(i, m)| group.members[..i].iter().find(|o| o.1 == m.1).map(|first| (first, m)));
    if let Some((first, second)) = repeated {
        return Err(err(format!("sample {:?} has two .{} members ({} and {}): which one is meant is unknown", group.key, second.1, first.0, second.0)));
    }
    let find = |ext: &str| group.members.iter().find(|m| m.1 == ext);
    let image = spec.image_exts.iter().find_map(|e| find(e));
    if image.is_none() && spec.require_image {
        return Err(err(format!(
            "sample {:?} has no image member (.{})",
            group.key,
            spec.image_exts.join(", .")
        )));
    }
    let caption = match find(&spec.caption_ext) {
        Some(c) => {
            let text = std::str::from_utf8(&c.2).map_err(|e| err(format!("caption {} is not UTF-8: {e}", c.0)))?.trim();
            // A blank caption teaches nothing: as bad a sample as a missing one.
            if crate::tokenizer::is_blank(text) && spec.require_caption {
                return Err(err(format!("caption {} is empty", c.0)));
            }
            text.to_string()
        }
        None if spec.require_caption => {
            return Err(err(format!(
                "sample {:?} has no caption member (.{})",
                group.key, spec.caption_ext
            )));
        }
        None => String::new(),
    };
    let json = find("json").map(|j| String::from_utf8_lossy(&j.2).into_owned());
    Ok(WdsSample {
        shard: shard.to_path_buf(),
        key: group.key.clone(),
        image_member: image.map(|m| m.0.clone()).unwrap_or_default(),
        image: image.map(|m| m.2.clone()).unwrap_or_default(),
        caption,
        json,
    })
}

/// Streams one shard into `tx`; false when the receiver is gone.
fn read_shard(
    shard: &Path,
    spec: &MemberSpec,
    tx: &SyncSender<Result<WdsSample, DataError>>,
) -> bool {
    let shard_err = |message: String| DataError::Shard {
        shard: shard.to_path_buf(),
        message,
    };
    let file = match crate::files::open_regular(shard) {
        Ok(f) => f,
        Err(e) => return tx.send(Err(DataError::io(shard, e))).is_ok(),
    };
    let mut archive = tar::Archive::new(BufReader::new(file));
    let entries = match archive.entries() {
        Ok(e) => e,
        Err(e) => return tx.send(Err(shard_err(e.to_string()))).is_ok(),
    };
    let mut group: Option<Group> = None;
    let mut last_member = String::from("(start of archive)");
    let mut members = 0usize;
    let mut skipped_key: Option<String> = None;
    // Keys of the samples begun so far: one met again later (a tar appended to, or unsorted) is
    // no new sample.
    let mut seen = std::collections::HashSet::new();
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) => {
                // The members read so far are whole: hand over the pending sample first.
                if let Some(g) = group.take()
                    && tx.send(finish(g, shard, spec)).is_err()
                {
                    return false;
                }
                let msg = format!("corrupt or truncated archive after member {last_member}: {}", tar_reason(&e));
                return tx.send(Err(shard_err(msg))).is_ok();
            }
        };
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some((key, ext)) = split_key(&name) else {
            continue;
        };
        let (key, ext) = (key.to_string(), ext.to_ascii_lowercase());
        if group.as_ref().is_some_and(|g| g.key != key) {
            let done = group.take().map(|g| finish(g, shard, spec));
            if let Some(sample) = done
                && tx.send(sample).is_err()
            {
                return false;
            }
        }
        let member_err = |message: String| DataError::Member {
            shard: shard.to_path_buf(),
            member: name.clone(),
            message,
        };
        if skipped_key.as_deref() == Some(key.as_str()) {
            continue; // the rest of a sample already reported as bad
        }
        let size = entry.size();
        // Samples left out whole (the tar reader steps over their bytes), reading on after them.
        let left_out = if group.is_none() && !seen.insert(key.clone()) {
            Some(format!("sample {key:?} appears again after other samples: a sample's members must be adjacent (a tar appended to, or written without --sort=name?); this later part is left out"))
        } else {
            (size > MAX_MEMBER_BYTES).then(|| format!("{size} bytes, above the {MAX_MEMBER_BYTES}-byte limit"))
        };
        if let Some(msg) = left_out {
            group = None;
            skipped_key = Some(key);
            members += 1;
            last_member = name.clone();
            if tx.send(Err(member_err(msg))).is_err() {
                return false;
            }
            continue;
        }
        // The header's size is only a hint: a corrupt one must not force a big allocation.
        let mut data = Vec::with_capacity(size.min(1 << 20) as usize);
        match entry.read_to_end(&mut data) {
            Ok(n) if n as u64 == size => {}
            Ok(n) => {
                let msg =
                    format!("truncated member: {n} of {size} bytes before the end of the archive");
                return tx.send(Err(member_err(msg))).is_ok();
            }
            Err(e) => {
                return tx
                    .send(Err(member_err(format!(
                        "truncated or unreadable member: {e}"
                    ))))
                    .is_ok();
            }
        }
        members += 1;
        last_member = name.clone();
        group
            .get_or_insert_with(|| Group {
                key,
                members: Vec::new(),
            })
            .members
            .push((name, ext, data));
    }
    match group {
        Some(g) => tx.send(finish(g, shard, spec)).is_ok(),
        None if members == 0 => tx
            .send(Err(shard_err(
                "no samples (empty or not a tar archive)".into(),
            )))
            .is_ok(),
        None => true,
    }
}

/// The tar crate's reason for a bad header without the raw header bytes it quotes after its
/// first `: ` (a garbage file would print noise): "numeric field was not a number".
fn tar_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    let reason = text.split(": ").next().unwrap_or_default();
    reason.chars().filter(|c| !c.is_control()).take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::{split_key, tar_reason};

    #[test]
    fn tar_reasons_leave_out_the_header_bytes() {
        let e = std::io::Error::other("numeric field was not a number: t a tar  when getting cksum for hello");
        assert_eq!(tar_reason(&e), "numeric field was not a number");
        assert_eq!(tar_reason(&std::io::Error::other("unexpected end of file")), "unexpected end of file");
    }

    #[test]
    fn keys_split_at_the_first_dot_of_the_file_name() {
        assert_eq!(split_key("000001.jpg"), Some(("000001", "jpg")));
        assert_eq!(
            split_key("dir.x/000001.seg.png"),
            Some(("dir.x/000001", "seg.png"))
        );
        assert_eq!(split_key(".hidden"), None);
        assert_eq!(split_key("noext"), None);
    }
}
