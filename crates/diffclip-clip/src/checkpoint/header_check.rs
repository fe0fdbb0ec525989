//! A safetensors header's tensor entries checked one by one, so that an error names the tensor:
//! the safetensors parser says only "invalid shape, data type, or offset for tensor".

use serde_json::Value;

/// Bytes per element of a safetensors dtype; `None` for a name this check does not know (the
/// parser then says what is wrong with it).
fn element_bytes(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "F64" | "I64" | "U64" | "C64" => 8,
        "F32" | "I32" | "U32" => 4,
        "F16" | "BF16" | "I16" | "U16" => 2,
        "I8" | "U8" | "BOOL" | "F8_E4M3" | "F8_E5M2" | "F8_E8M0" => 1,
        _ => return None,
    })
}

/// Why the safetensors file `bytes` (the whole file) cannot be read, naming the tensor at fault
/// where the `safetensors` parser's own error would not; `None` when this check finds nothing
/// (the parser's error then stands). For readers that hand the bytes to `safetensors`.
///
/// ```
/// let header = br#"{"w": {"dtype": "F16", "shape": [2, 2], "data_offsets": [0, 16]}}"#;
/// let file = [&(header.len() as u64).to_le_bytes()[..], header, &[0; 16]].concat();
/// let problem = diffclip_clip::checkpoint::safetensors_problem(&file).unwrap();
/// assert!(problem.contains("tensor 'w': shape [2, 2] of F16 is 8 bytes"), "{problem}");
/// ```
pub fn safetensors_problem(bytes: &[u8]) -> Option<String> {
    let len = usize::try_from(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?)).ok()?;
    check_entries(bytes.get(8..len.checked_add(8)?)?).err().map(|m| format!("header: {m}"))
}

/// The first entry of `header` (the JSON after the length) whose shape, dtype and offsets
/// disagree, or that overlaps or leaves a gap beside another, as a message naming it. A header
/// with an entry this check cannot read is left to the parser.
pub(crate) fn check_entries(header: &[u8]) -> Result<(), String> {
    let Ok(value) = serde_json::from_slice::<Value>(header) else { return Ok(()) };
    let Value::Object(entries) = value else { return Err("JSON but not an object of tensor entries".into()) };
    // A JSON object keeps the last of two same-named entries: which tensor is meant cannot be known.
    if let Ok(KeyList(keys)) = serde_json::from_slice::<KeyList>(header) {
        let mut seen = std::collections::HashSet::new();
        if let Some(repeat) = keys.iter().find(|k| !seen.insert(k.as_str())) {
            let times = keys.iter().filter(|k| *k == repeat).count();
            return Err(format!("'{repeat}' appears {times} times"));
        }
    }
    let mut spans = Vec::new();
    for (name, entry) in entries.iter().filter(|(k, _)| *k != "__metadata__") {
        let dtype = entry.get("dtype").and_then(Value::as_str);
        let shape: Option<Vec<u64>> = entry.get("shape").and_then(Value::as_array).and_then(|a| a.iter().map(Value::as_u64).collect());
        let offsets: Option<Vec<u64>> = entry.get("data_offsets").and_then(Value::as_array).and_then(|a| a.iter().map(Value::as_u64).collect());
        // One entry this check cannot read (a dtype it does not know, say) and the spans cannot
        // be checked either: the parser has the word.
        let (Some(dtype), Some(shape), Some(&[start, end])) = (dtype, shape, offsets.as_deref()) else { return Ok(()) };
        let Some(size) = element_bytes(dtype) else { return Ok(()) };
        if end < start {
            return Err(format!("tensor '{name}': data_offsets [{start}, {end}] end before they start"));
        }
        let bytes = shape.iter().try_fold(size, |a, &d| a.checked_mul(d));
        if bytes != Some(end - start) {
            let need = bytes.map_or("more than 2^64".to_string(), |b| b.to_string());
            return Err(format!("tensor '{name}': shape {shape:?} of {dtype} is {need} bytes, but its data_offsets [{start}, {end}] hold {}", end - start));
        }
        spans.push((start, end, name));
    }
    spans.sort();
    let mut at = (0, "the start of the data");
    for (start, end, name) in spans {
        if start < at.0 {
            return Err(format!("tensor '{name}' (data_offsets [{start}, {end}]) overlaps {} (which ends at byte {})", at.1, at.0));
        }
        if start > at.0 {
            let place = if at.0 == 0 { "at the start of the data".to_string() } else { format!("after tensor '{}'", at.1) };
            return Err(format!("tensor '{name}' (data_offsets [{start}, {end}]) leaves bytes {}..{start} {place} to no tensor", at.0));
        }
        at = (end, name.as_str());
    }
    Ok(())
}

/// An object's keys in file order, repeats kept (a `serde_json::Map` keeps one of each).
struct KeyList(Vec<String>);

impl<'de> serde::Deserialize<'de> for KeyList {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = KeyList;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<KeyList, A::Error> {
                let mut keys = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    keys.push(key);
                }
                Ok(KeyList(keys))
            }
        }
        deserializer.deserialize_map(Keys)
    }
}

#[cfg(test)]
mod tests {
    use super::check_entries;

    #[test]
    fn entries_that_disagree_are_named() {
        let entry = |name: &str, dtype: &str, shape: &str, a: u64, b: u64| format!(r#""{name}": {{"dtype": "{dtype}", "shape": {shape}, "data_offsets": [{a}, {b}]}}"#);
        let header = |entries: &[String]| format!("{{{}}}", entries.join(", "));
        let good = header(&[entry("a", "F32", "[2, 2]", 0, 16), entry("b", "F16", "[3]", 16, 22)]);
        assert_eq!(check_entries(good.as_bytes()), Ok(()));
        assert_eq!(check_entries(b"[1, 2]").unwrap_err(), "JSON but not an object of tensor entries");
        // A dtype this check does not know leaves every span to the parser.
        let unknown = header(&[entry("a", "F4", "[4]", 0, 2), entry("b", "F32", "[2]", 2, 10)]);
        assert_eq!(check_entries(unknown.as_bytes()), Ok(()));
        for (entries, says) in [
            (vec![entry("w", "F16", "[2, 2]", 0, 16)], "tensor 'w': shape [2, 2] of F16 is 8 bytes, but its data_offsets [0, 16] hold 16"),
            (vec![entry("w", "F32", "[2]", 8, 0)], "tensor 'w': data_offsets [8, 0] end before they start"),
            (vec![entry("a", "F32", "[2]", 0, 8), entry("b", "F32", "[2]", 4, 12)], "tensor 'b' (data_offsets [4, 12]) overlaps a (which ends at byte 8)"),
            (vec![entry("a", "F32", "[2]", 4, 12)], "tensor 'a' (data_offsets [4, 12]) leaves bytes 0..4 at the start of the data to no tensor"),
            (vec![entry("a", "F32", "[2]", 0, 8), entry("b", "F32", "[2]", 12, 20)], "tensor 'b' (data_offsets [12, 20]) leaves bytes 8..12 after tensor 'a' to no tensor"),
            (vec![entry("w", "F32", "[4294967296, 4294967296]", 0, 16)], "is more than 2^64 bytes"),
            // The same entry twice reads as one tensor to a JSON object: refused, not merged.
            (vec![entry("a", "F32", "[2]", 0, 8), entry("a", "F32", "[2]", 0, 8)], "'a' appears 2 times"),
            (vec![entry("a", "F32", "[2]", 0, 8), entry("b", "F32", "[2]", 8, 16), entry("a", "F32", "[2]", 16, 24)], "'a' appears 2 times"),
        ] {
            let err = check_entries(header(&entries).as_bytes()).unwrap_err();
            assert!(err.contains(says), "{err}");
        }
    }
}
