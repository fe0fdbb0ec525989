//! Brace expansion of shard lists, as webdataset / open_clip read them.

use super::error::DataError;

/// Most names one pattern may expand to (a guard against `{0..999999999}`).
pub const MAX_EXPANSION: usize = 1_000_000;

/// Most bytes the expanded names of one pattern may take together (a guard against a few
/// ranges multiplied over a long prefix, or ranges padded to a huge width).
pub const MAX_EXPANSION_BYTES: usize = 256 << 20;

/// Deepest brace nesting accepted (`{a,{b,{c}}}` is 3 deep).
pub const MAX_BRACE_DEPTH: usize = 32;

/// Most brace groups (`{`) one pattern may contain.
pub const MAX_BRACE_GROUPS: usize = 256;

/// Expands a shard pattern into the list of names, in order.
///
/// Supports numeric ranges `{00000..00099}` (zero padding kept: with a leading zero on either
/// end, every number is padded to the longer end's width) with an optional step
/// `{0..10..5}`, descending ranges, alternatives `{a,b,c}`, nesting and several groups, and
/// several patterns joined by `::` (open_clip's separator). A group that is neither (`{x}`) is
/// kept literally. Unbalanced braces are an error, and so is a pattern nested deeper than
/// [`MAX_BRACE_DEPTH`], with more than [`MAX_BRACE_GROUPS`] groups, or expanding to more than
/// [`MAX_EXPANSION`] names or [`MAX_EXPANSION_BYTES`] bytes (checked before the names are built).
///
/// ```
/// use diffclip_data::datasets::expand_braces;
/// assert_eq!(expand_braces("data/{000..002}.tar").unwrap(),
///            ["data/000.tar", "data/001.tar", "data/002.tar"]);
/// assert_eq!(expand_braces("{a,b}{8..10}").unwrap(), ["a8", "a9", "a10", "b8", "b9", "b10"]);
/// assert_eq!(expand_braces("x.tar::y/{1,2}.tar").unwrap(), ["x.tar", "y/1.tar", "y/2.tar"]);
/// assert!(expand_braces("data/{0..3.tar").is_err());
/// assert!(expand_braces(&"{".repeat(100)).is_err());
/// ```
pub fn expand_braces(pattern: &str) -> Result<Vec<String>, DataError> {
    check_structure(pattern)?;
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for part in pattern.split("::").filter(|p| !p.is_empty()) {
        let names = expand_one(part, pattern)?;
        bytes = bytes.saturating_add(total_len(&names));
        out.extend(names);
        if out.len() > MAX_EXPANSION {
            return Err(too_many(pattern));
        }
        if bytes > MAX_EXPANSION_BYTES {
            return Err(too_long(pattern));
        }
    }
    Ok(out)
}

/// Nesting depth and group count, checked before any (recursive) expansion.
fn check_structure(pattern: &str) -> Result<(), DataError> {
    let (mut depth, mut deepest, mut groups) = (0usize, 0usize, 0usize);
    for c in pattern.chars() {
        match c {
            '{' => {
                depth += 1;
                groups += 1;
                deepest = deepest.max(depth);
            }
            '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > MAX_BRACE_DEPTH {
        return Err(err(
            pattern,
            format!("braces nested {deepest} deep, more than the limit of {MAX_BRACE_DEPTH}"),
        ));
    }
    if groups > MAX_BRACE_GROUPS {
        return Err(err(
            pattern,
            format!("{groups} brace groups, more than the limit of {MAX_BRACE_GROUPS}"),
        ));
    }
    Ok(())
}

fn total_len(names: &[String]) -> usize {
    names.iter().map(String::len).fold(0, usize::saturating_add)
}

fn err(pattern: &str, message: impl Into<String>) -> DataError {
    // A hostile pattern can be megabytes long: quote its start only.
    const SHOWN: usize = 256;
    let pattern = if pattern.len() > SHOWN {
        let mut end = SHOWN;
        while !pattern.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}... ({} bytes)", &pattern[..end], pattern.len())
    } else {
        pattern.to_string()
    };
    DataError::Pattern {
        pattern,
        message: message.into(),
    }
}

fn too_many(pattern: &str) -> DataError {
    err(
        pattern,
        format!("expands to more than {MAX_EXPANSION} names"),
    )
}

fn too_long(pattern: &str) -> DataError {
    err(
        pattern,
        format!("expands to more than {MAX_EXPANSION_BYTES} bytes of names"),
    )
}

/// Byte offset of the `}` matching the `{` at `open`.
fn matching_close(s: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits `s` at commas that are not inside nested braces.
fn split_top_level(s: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn expand_one(s: &str, pattern: &str) -> Result<Vec<String>, DataError> {
    let Some(open) = s.find('{') else {
        if s.contains('}') {
            return Err(err(pattern, "unmatched '}'"));
        }
        return Ok(vec![s.to_string()]);
    };
    let close = matching_close(s, open).ok_or_else(|| err(pattern, "unmatched '{'"))?;
    let (prefix, body, suffix) = (&s[..open], &s[open + 1..close], &s[close + 1..]);
    if prefix.contains('}') {
        return Err(err(pattern, "unmatched '}'"));
    }
    let alternatives = split_top_level(body);
    let middles: Vec<String> = if alternatives.len() > 1 {
        let mut v = Vec::new();
        let mut bytes = 0usize;
        for alt in alternatives {
            let names = expand_one(alt, pattern)?;
            bytes = bytes.saturating_add(total_len(&names));
            v.extend(names);
            if v.len() > MAX_EXPANSION {
                return Err(too_many(pattern));
            }
            if bytes > MAX_EXPANSION_BYTES {
                return Err(too_long(pattern));
            }
        }
        v
    } else if let Some(range) = numeric_range(body, pattern)? {
        range
    } else {
        expand_one(body, pattern)?
            .into_iter()
            .map(|b| format!("{{{b}}}"))
            .collect()
    };
    let tails = expand_one(suffix, pattern)?;
    let (nm, nt) = (middles.len(), tails.len());
    if nm.saturating_mul(nt) > MAX_EXPANSION {
        return Err(too_many(pattern));
    }
    // Bytes of every `prefix + middle + tail`, before building them.
    let bytes = nt
        .saturating_mul(total_len(&middles))
        .saturating_add(nm.saturating_mul(total_len(&tails)))
        .saturating_add(nm.saturating_mul(nt).saturating_mul(prefix.len()));
    if bytes > MAX_EXPANSION_BYTES {
        return Err(too_long(pattern));
    }
    let mut out = Vec::with_capacity(middles.len() * tails.len());
    for m in &middles {
        for t in &tails {
            out.push(format!("{prefix}{m}{t}"));
        }
    }
    Ok(out)
}

/// `a..b` or `a..b..step` with non-negative integers; `None` if `body` is not a range.
fn numeric_range(body: &str, pattern: &str) -> Result<Option<Vec<String>>, DataError> {
    let parts: Vec<&str> = body.split("..").collect();
    if !(parts.len() == 2 || parts.len() == 3)
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Ok(None);
    }
    let num = |p: &str| {
        p.parse::<u64>()
            .map_err(|e| err(pattern, format!("bad number {p:?}: {e}")))
    };
    let (a, b) = (num(parts[0])?, num(parts[1])?);
    let step = if parts.len() == 3 { num(parts[2])? } else { 1 };
    if step == 0 {
        return Err(err(pattern, "range step must be positive"));
    }
    let padded = |p: &str| p.len() > 1 && p.starts_with('0');
    let width = if padded(parts[0]) || padded(parts[1]) {
        parts[0].len().max(parts[1].len())
    } else {
        0
    };
    let count = (a.abs_diff(b) / step).saturating_add(1);
    if count > MAX_EXPANSION as u64 {
        return Err(too_many(pattern));
    }
    let count = count as usize;
    if count.saturating_mul(width.max(20)) > MAX_EXPANSION_BYTES {
        return Err(too_long(pattern));
    }
    let values = (0..count as u64).map(|k| if a <= b { a + k * step } else { a - k * step });
    Ok(Some(values.map(|v| format!("{v:0width$}")).collect()))
}
