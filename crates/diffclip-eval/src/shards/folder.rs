//! Whether a folder's shards make one collection: one model and settings, each row once.

use std::path::Path;

use super::stamp::Stamp;

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
    let listed = super::list_shards(dir).unwrap_or_default();
    let stamps: Vec<(String, Stamp)> = listed
        .iter()
        .filter_map(|path| Some((path.file_name()?.to_string_lossy().into_owned(), Stamp::of(path)?)))
        .collect();
    let Some((first_name, first)) = stamps.first() else { return Vec::new() };
    // Odd shards grouped by what differs, a few named each: a folder of thousands says it once.
    let mut odd: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
    for (name, stamp) in &stamps[1..] {
        if let Some(what) = differs(stamp, first) {
            odd.entry(what).or_default().push(name);
        }
    }
    let mut problems: Vec<String> = odd
        .into_iter()
        .map(|(what, names)| format!("{} embedded with {what} than {first_name}", a_few(&names, ", ")))
        .collect();
    // Row ranges of the jobs over listed rows (a tar shard is its own input).
    let mut ranges: Vec<(usize, usize, usize, &str)> = stamps.iter().filter_map(|(name, s)| rows_of(&s.input).map(|(a, b, n)| (a, b, n, name.as_str()))).collect();
    let totals: std::collections::BTreeSet<usize> = ranges.iter().map(|r| r.2).collect();
    if totals.len() > 1 {
        let list = totals.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        problems.push(format!("the shards come from jobs over different inputs (of {list} rows): some are left from an earlier job"));
        return problems;
    }
    // Rows of shards without a record (older versions) cannot be placed: none is called missing.
    let missing = missing && stamps.len() == listed.len();
    ranges.sort();
    let (mut next, mut holder, mut overlaps) = (0, "", Vec::new());
    for &(a, b, n, name) in &ranges {
        if a < next {
            overlaps.push(format!("rows {a}..{} are in both {holder} and {name}", next.min(b)));
        } else if a > next && missing {
            problems.push(format!("rows {next}..{a} of {n} are in no shard: a job not finished"));
        }
        if b > next {
            (next, holder) = (b, name);
        }
    }
    if !overlaps.is_empty() {
        problems.push(format!("{}: shards of jobs with other --rows-per-shard, or left from an earlier job", a_few(&overlaps, "; ")));
    }
    if let Some(&(_, _, n, _)) = ranges.first()
        && missing
        && next < n
    {
        problems.push(format!("rows {next}..{n} of {n} are in no shard: a job not finished"));
    }
    problems
}

/// The first three of `items` joined by `sep`, and how many more there are.
fn a_few<S: AsRef<str>>(items: &[S], sep: &str) -> String {
    let shown: Vec<&str> = items.iter().take(3).map(AsRef::as_ref).collect();
    let more = if items.len() > 3 { format!(" and {} more", items.len() - 3) } else { String::new() };
    format!("{}{more}", shown.join(sep))
}

/// How `stamp`'s encoder differs from `first`'s, if it does. With both model keys the key
/// decides the model (it hashes the checkpoint's path, size and time: the parts of a split job
/// must read one checkpoint file) and the settings after it in the description count besides;
/// without keys, the whole description.
fn differs(stamp: &Stamp, first: &Stamp) -> Option<String> {
    let settings = |s: &Stamp| s.source.rsplit_once("(model key ").and_then(|(_, r)| r.split_once(')')).map_or(String::new(), |(_, rest)| rest.trim_start_matches([',', ' ']).to_string());
    let other = match (&stamp.model_key, &first.model_key) {
        (Some(a), Some(b)) if a != b => "another model".to_string(),
        (Some(_), Some(_)) if settings(stamp) != settings(first) => format!("other settings ({})", settings(stamp)),
        (Some(_), Some(_)) => String::new(),
        _ if stamp.source != first.source => format!("another model or settings ({})", stamp.source),
        _ => String::new(),
    };
    let other = match (other.is_empty(), stamp.tensors != first.tensors || stamp.normalize != first.normalize) {
        (true, false) => return None,
        (true, true) => format!("other tensors ({}, normalize {})", stamp.tensors.join("+"), stamp.normalize),
        (false, _) => other,
    };
    Some(other)
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
    use super::*;

    #[test]
    fn the_model_key_decides_the_model_and_settings_count_besides() {
        let stamp = |source: &str, key: &str| Stamp { source: source.into(), model_key: Some(key.into()), tensors: vec!["image_embed".into()], normalize: false, input: String::new() };
        let a = stamp("/m/a.pt (model key 0123), dtype F32, preprocess slip", "0123");
        assert_eq!(differs(&stamp("/other/a.pt (model key 0123), dtype F32, preprocess slip", "0123"), &a), None);
        assert_eq!(differs(&stamp("/m/a.pt (model key 0123), dtype F32, preprocess openai", "0123"), &a).unwrap(), "other settings (dtype F32, preprocess openai)");
        assert_eq!(differs(&stamp("/m/b.pt (model key 4567), dtype F32, preprocess slip", "4567"), &a).unwrap(), "another model");
    }

    #[test]
    fn a_row_input_gives_its_range() {
        assert_eq!(super::rows_of("rows 4..8 of 10, ids abc, content def"), Some((4, 8, 10)));
        assert_eq!(super::rows_of("tar a.tar, content 1 bytes at 2"), None);
    }
}
