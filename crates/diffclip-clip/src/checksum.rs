//! CRC-32 checksums of each tensor, and one of the rest of the metadata, written into the
//! metadata of every safetensors file diffclip writes, so that a file damaged on disk or in a
//! copy (a flipped bit, a block of zeros) is refused, naming the tensor or the metadata, instead
//! of loading as slightly different weights or settings.
//!
//! ```
//! use diffclip_clip::checksum::Checksums;
//! let sums = Checksums::of([("w", &[1.0f32, 2.0][..])]);
//! let meta = [(diffclip_clip::checksum::CHECKSUM_KEY.to_string(), sums.to_metadata())].into();
//! let read = Checksums::from_metadata(Some(&meta)).unwrap().unwrap();
//! let bytes: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
//! assert!(read.check("w", &bytes).is_ok());
//! let mut flipped = bytes.clone();
//! flipped[5] ^= 0x10;
//! assert!(read.check("w", &flipped).unwrap_err().contains("do not match"));
//! ```

use std::collections::{BTreeMap, HashMap};

// The metadata's own checksum is listed under the header's metadata key, which no tensor takes.
use crate::files::METADATA_KEY;

/// The metadata key holding the checksums: a JSON object of tensor name to CRC-32 (8 hex digits)
/// of the tensor's stored bytes, and under `__metadata__` the CRC-32 of the other metadata.
pub const CHECKSUM_KEY: &str = "diffclip_crc32";

/// The CRC-32 of metadata entries in key order, each key and value after its length.
fn metadata_crc<'a>(entries: impl Iterator<Item = (&'a String, &'a String)>) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    for (k, v) in entries {
        for part in [k, v] {
            crc.update(&(part.len() as u64).to_le_bytes());
            crc.update(part.as_bytes());
        }
    }
    crc.finalize()
}

/// Values hashed per conversion to little-endian bytes: the writer's chunk size.
const CHUNK: usize = 1 << 14;

/// The CRC-32 of each tensor of one file, by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checksums(BTreeMap<String, u32>);

impl Checksums {
    /// The checksums of f32 tensors as a safetensors file stores them (little-endian bytes).
    pub fn of<'a>(tensors: impl IntoIterator<Item = (&'a str, &'a [f32])>) -> Self {
        let mut bytes = Vec::with_capacity(4 * CHUNK);
        Self(
            tensors
                .into_iter()
                .map(|(name, data)| {
                    let mut crc = crc32fast::Hasher::new();
                    for values in data.chunks(CHUNK) {
                        bytes.clear();
                        bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
                        crc.update(&bytes);
                    }
                    (name.to_string(), crc.finalize())
                })
                .collect(),
        )
    }

    /// These and the checksum of the file's other metadata (`metadata`, without
    /// [`CHECKSUM_KEY`]), under the name [`METADATA_KEY`] (no tensor may have it).
    pub fn with_metadata(mut self, metadata: &BTreeMap<String, String>) -> Self {
        self.0.insert(METADATA_KEY.to_string(), metadata_crc(metadata.iter().filter(|(k, _)| k.as_str() != CHECKSUM_KEY)));
        self
    }

    /// The value stored under [`CHECKSUM_KEY`].
    pub fn to_metadata(&self) -> String {
        let hex: BTreeMap<&str, String> = self.0.iter().map(|(k, v)| (k.as_str(), format!("{v:08x}"))).collect();
        serde_json::to_string(&hex).expect("a map of strings serialises")
    }

    /// The checksums a file's metadata holds; `Ok(None)` for a file written without them (by
    /// another program, or by diffclip before they existed), an error for a value that does
    /// not read or for metadata that differs from its checksum.
    pub fn from_metadata(metadata: Option<&HashMap<String, String>>) -> Result<Option<Self>, String> {
        let Some(json) = metadata.and_then(|m| m.get(CHECKSUM_KEY)) else { return Ok(None) };
        let bad = |m: String| format!("its {CHECKSUM_KEY} metadata does not read: {m}");
        let hex: BTreeMap<String, String> = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        let sums = hex
            .into_iter()
            .map(|(k, v)| match u32::from_str_radix(&v, 16) {
                Ok(crc) if v.len() == 8 => Ok((k, crc)),
                _ => Err(bad(format!("tensor '{k}' has {v:?}, not 8 hex digits"))),
            })
            .collect::<Result<_, _>>()?;
        let sums = Self(sums);
        // The settings beside the tensors (a model's config, a run's step and data position)
        // are checked as a whole; files summed before their metadata was have no such entry.
        if let (Some(&stored), Some(metadata)) = (sums.0.get(METADATA_KEY), metadata) {
            let read = metadata_crc(metadata.iter().filter(|(k, _)| k.as_str() != CHECKSUM_KEY).collect::<BTreeMap<_, _>>().into_iter());
            if read != stored {
                return Err(format!("its metadata (settings beside the tensors) does not match the checksum written with it (CRC-32 {read:08x}, written {stored:08x}): the file is damaged, restore it from a good copy"));
            }
        }
        Ok(Some(sums))
    }

    /// Checks that the file's tensors are exactly the ones summed: a tensor without a checksum
    /// was added to the header after writing, a checksum without its tensor means one was removed.
    pub fn check_names<'a>(&self, tensors: impl IntoIterator<Item = &'a str>) -> Result<(), String> {
        let mut listed: std::collections::BTreeSet<&str> = self.0.keys().map(String::as_str).filter(|k| *k != METADATA_KEY).collect();
        for name in tensors {
            if !listed.remove(name) {
                return Err(format!("tensor '{name}' has no checksum in {CHECKSUM_KEY}: the file was changed after it was written"));
            }
        }
        match listed.first() {
            Some(name) => Err(format!("{CHECKSUM_KEY} lists tensor '{name}', which the file does not hold: the file was changed after it was written")),
            None => Ok(()),
        }
    }

    /// Checks one tensor's stored bytes against its checksum. A tensor the checksums do not
    /// list passes here: [`check_names`](Self::check_names) refuses it.
    pub fn check(&self, name: &str, bytes: &[u8]) -> Result<(), String> {
        let Some(&stored) = self.0.get(name) else { return Ok(()) };
        let read = crc32fast::hash(bytes);
        if read == stored {
            return Ok(());
        }
        Err(format!("tensor '{name}': its bytes do not match the checksum written with them (CRC-32 {read:08x}, written {stored:08x}): the file is damaged, restore it from a good copy"))
    }

    /// Checks a whole file held in memory (`st`, with its header's `metadata`) where it has
    /// checksums: its tensor names, and the bytes of each tensor `select` keeps.
    pub fn check_file(metadata: Option<&HashMap<String, String>>, st: &safetensors::SafeTensors<'_>, select: impl Fn(&str) -> bool) -> Result<(), String> {
        let Some(sums) = Self::from_metadata(metadata)? else { return Ok(()) };
        sums.check_names(st.names())?;
        st.iter().filter(|(name, _)| select(name)).try_for_each(|(name, view)| sums.check(name, view.data()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(sums: &Checksums) -> HashMap<String, String> {
        [(CHECKSUM_KEY.to_string(), sums.to_metadata())].into()
    }

    #[test]
    fn sums_survive_the_metadata_and_catch_each_damage() {
        let long: Vec<f32> = (0..40_000).map(|i| i as f32 * 0.25).collect();
        let sums = Checksums::of([("a", &[0.5f32][..]), ("long", &long[..])]);
        let read = Checksums::from_metadata(Some(&meta(&sums))).unwrap().unwrap();
        assert_eq!(read, sums);
        let bytes: Vec<u8> = long.iter().flat_map(|v| v.to_le_bytes()).collect();
        // Chunked hashing equals hashing the whole tensor at once.
        read.check("long", &bytes).unwrap();
        for at in [0, 77_777, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 1;
            let err = read.check("long", &bad).unwrap_err();
            assert!(err.contains("tensor 'long'") && err.contains("damaged"), "{err}");
        }
        let zeroed = vec![0u8; bytes.len()];
        assert!(read.check("long", &zeroed).is_err());
        read.check_names(["long", "a"]).unwrap();
        assert!(read.check_names(["a"]).unwrap_err().contains("lists tensor 'long'"));
        assert!(read.check_names(["a", "long", "new"]).unwrap_err().contains("'new' has no checksum"));
    }

    #[test]
    fn metadata_is_summed_as_a_whole() {
        let settings: BTreeMap<String, String> = [("step".to_string(), "1200".to_string()), ("config".to_string(), "{}".to_string())].into();
        let sums = Checksums::of([("w", &[1.0f32][..])]).with_metadata(&settings);
        let mut meta: HashMap<String, String> = settings.clone().into_iter().collect();
        meta.insert(CHECKSUM_KEY.into(), sums.to_metadata());
        let read = Checksums::from_metadata(Some(&meta)).unwrap().unwrap();
        read.check_names(["w"]).unwrap();
        meta.insert("step".into(), "1300".into());
        assert!(Checksums::from_metadata(Some(&meta)).unwrap_err().contains("its metadata"));
        meta.insert("step".into(), "1200".into());
        meta.insert("added".into(), String::new());
        assert!(Checksums::from_metadata(Some(&meta)).is_err(), "an entry added");
    }

    #[test]
    fn files_without_sums_pass_and_bad_sums_are_errors() {
        assert_eq!(Checksums::from_metadata(None).unwrap(), None);
        assert_eq!(Checksums::from_metadata(Some(&HashMap::new())).unwrap(), None);
        for bad in ["[1]", r#"{"a":"12"}"#, r#"{"a":"zzzzzzzz"}"#, r#"{"a":7}"#] {
            let m = [(CHECKSUM_KEY.to_string(), bad.to_string())].into();
            let err = Checksums::from_metadata(Some(&m)).unwrap_err();
            assert!(err.contains(CHECKSUM_KEY), "{bad}: {err}");
        }
    }
}
