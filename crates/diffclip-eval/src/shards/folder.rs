//! Whether a folder's shards make one collection: one model and settings, each row once.

use std::path::Path;

use super::stamp::{KEY, Stamp};

/// What is wrong with the shards of `dir` as one collection, one line each (empty: nothing):
/// shards embedded by another model or with other settings than the first, rows held by two
/// shards (parts of jobs with other `--rows-per-shard`, or leftovers of an earlier job), shards
/// of jobs over other inputs, and, with `missing`, rows no shard holds yet (a job not finished).
/// Only the headers are read; shards without a job record are not judged.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// assert!(diffclip_eval::shards::folder_problems(dir.path(), true).is_empty());
/// ```
pub fn folder_problems(dir: &Path, missing: bool) -> Vec<String> {
    let stamps: Vec<(String, Stamp)> = super::list_shards(dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|path| {
            let header = diffclip_clip::checkpoint::safetensors_header(path).ok()??;
            let stamp = serde_json::from_str::<Stamp>(header.get("__metadata__")?.get(KEY)?.as_str()?).ok()?;
            Some((path.file_name()?.to_string_lossy().into_owned(), stamp))
        })
        .collect();
    let Some((first_name, first)) = stamps.first() else { return Vec::new() };
    let mut problems = Vec::new();
    for (name, stamp) in &stamps[1..] {
        let what = if stamp.source != first.source || (stamp.model_key.is_some() && first.model_key.is_some() && stamp.model_key != first.model_key) {
            format!("another model ({}; {first_name}: {})", stamp.source, first.source)
        } else if stamp.tensors != first.tensors || stamp.normalize != first.normalize {
            format!("other settings (tensors {}, normalize {}; {first_name}: {}, {})", stamp.tensors.join("+"), stamp.normalize, first.tensors.join("+"), first.normalize)
        } else {
            continue;
        };
        problems.push(format!("{name} was embedded by {what}"));
    }
    // Row ranges of the jobs over listed rows (a tar shard is its own input).
    let mut ranges: Vec<(usize, usize, usize, &str)> = stamps.iter().filter_map(|(name, s)| rows_of(&s.input).map(|(a, b, n)| (a, b, n, name.as_str()))).collect();
    let totals: std::collections::BTreeSet<usize> = ranges.iter().map(|r| r.2).collect();
    if totals.len() > 1 {
        let list = totals.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        problems.push(format!("the shards come from jobs over different inputs (of {list} rows): some are left from an earlier job"));
        return problems;
    }
    ranges.sort();
    let mut next = 0;
    let mut holder = "";
    for &(a, b, n, name) in &ranges {
        if a < next {
            problems.push(format!("rows {a}..{} are in both {holder} and {name}: shards of jobs with other --rows-per-shard, or left from an earlier job", next.min(b)));
        } else if a > next && missing {
            problems.push(format!("rows {next}..{a} of {n} are in no shard: a job not finished"));
        }
        if b > next {
            (next, holder) = (b, name);
        }
    }
    if let Some(&(_, _, n, _)) = ranges.first()
        && missing
        && next < n
    {
        problems.push(format!("rows {next}..{n} of {n} are in no shard: a job not finished"));
    }
    problems
}

/// `(start, end, total)` of a stamp's `rows A..B of N, ...` input.
fn rows_of(input: &str) -> Option<(usize, usize, usize)> {
    let rest = input.strip_prefix("rows ")?;
    let (range, rest) = rest.split_once(" of ")?;
    let (a, b) = range.split_once("..")?;
    let total = rest.split(',').next()?;
    Some((a.parse().ok()?, b.parse().ok()?, total.parse().ok()?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_row_input_gives_its_range() {
        assert_eq!(super::rows_of("rows 4..8 of 10, ids abc, content def"), Some((4, 8, 10)));
        assert_eq!(super::rows_of("tar a.tar, content 1 bytes at 2"), None);
    }
}
