//! What made a shard, stored in its metadata (`job`), so that a re-run of `embed` keeps a
//! finished shard only when it would write the same rows again: another model, preprocessing,
//! `--normalize`, `--rows-per-shard` or input list is an error, not a folder of mixed rows; the
//! same rows whose files changed since (size or modification time) are embedded again.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::EvalError;

/// The metadata key holding the stamp.
pub(crate) const KEY: &str = "job";

/// One shard's stamp. Fields compare one by one, so the error names what changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Stamp {
    /// The caller's description of the encoder (checkpoint, preprocessing, truncation).
    pub source: String,
    /// The encoder's model key ([`crate::shards::ShardJob::model_key`]); absent in shards
    /// written before it was stored, and then not compared (`source` names the key's start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_key: Option<String>,
    /// The tensors written (`image_embed`, `text_embed`).
    pub tensors: Vec<String>,
    /// Rows L2-normalised.
    pub normalize: bool,
    /// Which rows and what they read: `rows A..B of N, ids HASH, content HASH`, or
    /// `tar PATH, content SIZE-AND-TIME`.
    pub input: String,
}

impl Stamp {
    /// The stamp stored in the shard at `path` (its header alone is read), if it has a readable one.
    pub fn of(path: &Path) -> Option<Self> {
        let header = diffclip_clip::checkpoint::safetensors_header(path).ok()??;
        serde_json::from_str(header.get("__metadata__")?.get(KEY)?.as_str()?).ok()
    }

    /// The stamp as stored.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("strings serialise")
    }

    /// Keep (`Ok(true)`), write (`Ok(false)`: nothing there) or refuse the shard at `path`. A
    /// finished shard has a header listing its rows; writes are atomic, so a torn one cannot
    /// exist, and any other file of that name is not this program's to replace: refused. Only
    /// the header is read.
    pub fn check(&self, path: &Path) -> Result<bool, EvalError> {
        let refuse = |what: String| EvalError::Shard {
            path: path.display().to_string(),
            message: format!("{what}; embed into a new --output folder, or delete the shard to rewrite it"),
        };
        if std::fs::symlink_metadata(path).is_err() {
            return Ok(false);
        }
        // A shard that cannot be read (permissions, a disk error) is said as such.
        let header = diffclip_clip::checkpoint::safetensors_header(path).map_err(|e| refuse(format!("cannot be read ({e})")))?;
        let Some(meta) = header.as_ref().and_then(|h| h.get("__metadata__")).filter(|m| m.get("paths").is_some()) else {
            return Err(refuse("is there but is no shard embed wrote (no list of its rows), so it is not replaced".into()));
        };
        let old: Stamp = match meta.get(KEY).and_then(|v| v.as_str()) {
            None => return Err(refuse("was written without a job record (an older diffclip), so it cannot be checked against this job".into())),
            Some(s) => serde_json::from_str(s).map_err(|e| refuse(format!("has an unreadable job record ({e})")))?,
        };
        let differs = |field: &str, was: String, now: String| refuse(format!("was written by another job: {field} was {was}, now {now}"));
        if old.source != self.source {
            return Err(differs("the model", old.source, self.source.clone()));
        }
        if let (Some(was), Some(now)) = (&old.model_key, &self.model_key)
            && was != now
        {
            return Err(differs("the model key", was.clone(), now.clone()));
        }
        if old.tensors != self.tensors {
            return Err(differs("the embedded tensors", old.tensors.join("+"), self.tensors.join("+")));
        }
        if old.normalize != self.normalize {
            return Err(differs("--normalize", old.normalize.to_string(), self.normalize.to_string()));
        }
        // The same rows (a stamp written before contents were recorded has no ", content "):
        // kept when their contents are the same too, else written again, since files changed or
        // were copied since (a new modification time) are no mistake of the job's.
        let rows = |input: &str| input.rsplit_once(CONTENT).map_or(input, |(rows, _)| rows).to_string();
        if rows(&old.input) != rows(&self.input) {
            return Err(differs("the input", old.input, self.input.clone()));
        }
        Ok(old.input == self.input || !old.input.contains(CONTENT))
    }
}

/// What separates an input's rows from a hash of their contents.
const CONTENT: &str = ", content ";

/// `rows A..B of N, ids HASH, content HASH`: the rows a shard holds, with a hash of their ids,
/// so that another `--rows-per-shard` or another input list changes it, and of what each row's
/// embedding reads (`contents`: its image file's size and modification time, its caption), so
/// that a file changed since does too.
pub(crate) fn rows_input(range: std::ops::Range<usize>, total: usize, ids: impl Iterator<Item = impl AsRef<str>>, contents: impl Iterator<Item = String>) -> String {
    let key = crate::cache::data_key("shard rows", ids.map(|id| id.as_ref().as_bytes().to_vec()));
    let content = crate::cache::data_key("shard contents", contents.map(String::into_bytes));
    format!("rows {}..{} of {total}, ids {}{CONTENT}{}", range.start, range.end, &key[..16], &content[..16])
}

/// What a file's embedding depends on besides its path: its size and modification time (in
/// nanoseconds since 1970).
pub(crate) fn file_content(path: &Path) -> String {
    let modified = |m: &std::fs::Metadata| m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    std::fs::metadata(path).map_or_else(|e| format!("unreadable: {e}"), |m| format!("{} bytes at {}", m.len(), modified(&m)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_row_input_changes_with_the_ids_the_range_and_the_contents() {
        let input = |range, total, ids: [&str; 2], contents: [&str; 2]| rows_input(range, total, ids.iter(), contents.map(String::from).into_iter());
        let a = input(0..2, 4, ["x", "y"], ["1", "2"]);
        assert_eq!(a, input(0..2, 4, ["x", "y"], ["1", "2"]));
        assert_ne!(a, input(0..2, 4, ["x", "z"], ["1", "2"]));
        assert_ne!(a, input(0..2, 4, ["xy", ""], ["1", "2"]), "ids are separated");
        assert_ne!(a, input(0..2, 5, ["x", "y"], ["1", "2"]));
        let b = input(0..2, 4, ["x", "y"], ["1", "3"]);
        assert_ne!(a, b);
        assert_eq!(a.split(CONTENT).next(), b.split(CONTENT).next(), "the same rows, another content");
    }

    #[test]
    fn changed_contents_are_written_again_and_older_stamps_still_match() {
        let dir = tempfile::tempdir().unwrap();
        let shard = dir.path().join("embeddings-00000.safetensors");
        let stamp = |input: &str| Stamp { source: "m".into(), model_key: None, tensors: vec!["text_embed".into()], normalize: false, input: input.into() };
        let write = |input: &str| {
            let meta = std::collections::HashMap::from([("paths".to_string(), "[]".to_string()), (KEY.to_string(), stamp(input).to_json())]);
            let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![0, 2], &[]).unwrap();
            safetensors::serialize_to_file([("text_embed", view)], Some(meta), &shard).unwrap();
        };
        write("rows 0..2 of 2, ids abc, content 111");
        assert!(stamp("rows 0..2 of 2, ids abc, content 111").check(&shard).unwrap());
        assert!(!stamp("rows 0..2 of 2, ids abc, content 222").check(&shard).unwrap(), "changed contents: written again");
        let err = stamp("rows 0..3 of 3, ids abd, content 111").check(&shard).unwrap_err().to_string();
        assert!(err.contains("the input was rows 0..2"), "{err}");
        // Written before contents were stamped: the rows alone are compared.
        write("rows 0..2 of 2, ids abc");
        assert!(stamp("rows 0..2 of 2, ids abc, content 222").check(&shard).unwrap());
        assert!(stamp("rows 0..2 of 2, ids abd, content 222").check(&shard).is_err());
    }
}
