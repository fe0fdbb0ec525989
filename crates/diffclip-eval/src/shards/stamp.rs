//! What made a shard, stored in its metadata (`job`), so that a re-run of `embed` keeps a
//! finished shard only when it would write the same rows again: another model, preprocessing,
//! `--normalize`, `--rows-per-shard` or input list is an error, not a folder of mixed rows.

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
    /// Which rows: `rows A..B of N, ids HASH`, or `tar PATH`.
    pub input: String,
}

impl Stamp {
    /// The stamp as stored.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("strings serialise")
    }

    /// Keep (`Ok(true)`), write (`Ok(false)`: no finished shard there) or refuse the shard at
    /// `path`. A finished shard has a header listing its rows (writes are atomic, so a torn one
    /// cannot exist; a foreign file of that name is rewritten). Only the header is read.
    pub fn check(&self, path: &Path) -> Result<bool, EvalError> {
        let header = diffclip_clip::checkpoint::safetensors_header(path).ok().flatten();
        let Some(meta) = header.as_ref().and_then(|h| h.get("__metadata__")).filter(|m| m.get("paths").is_some()) else {
            return Ok(false);
        };
        let refuse = |what: String| EvalError::Shard {
            path: path.display().to_string(),
            message: format!("{what}; embed into a new --output folder, or delete the shard to rewrite it"),
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
        if old.input != self.input {
            return Err(differs("the input", old.input, self.input.clone()));
        }
        Ok(true)
    }
}

/// `rows A..B of N, ids HASH`: the rows a shard holds, with a hash of their ids, so that another
/// `--rows-per-shard` or another input list changes it.
pub(crate) fn rows_input(range: std::ops::Range<usize>, total: usize, ids: impl Iterator<Item = impl AsRef<str>>) -> String {
    let key = crate::cache::data_key("shard rows", ids.map(|id| id.as_ref().as_bytes().to_vec()));
    format!("rows {}..{} of {total}, ids {}", range.start, range.end, &key[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_row_input_changes_with_the_ids_and_the_range() {
        let a = rows_input(0..2, 4, ["x", "y"].iter());
        assert_eq!(a, rows_input(0..2, 4, ["x", "y"].iter()));
        assert_ne!(a, rows_input(0..2, 4, ["x", "z"].iter()));
        assert_ne!(a, rows_input(0..2, 4, ["xy", ""].iter()), "ids are separated");
        assert_ne!(a, rows_input(0..2, 5, ["x", "y"].iter()));
    }
}
