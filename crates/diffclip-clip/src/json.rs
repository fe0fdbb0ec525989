//! Reading JSON into serde types without serde's one surprise: a list taken as a struct.

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

/// Deserialize `json` as `T`, refusing a JSON list wherever `T` holds a struct: serde would read
/// the list as the struct's fields in order, so `[1]` would silently become `{"embed_dim": 1}`.
/// The error names the place (`the config`, `` `vision` ``, `` `train.adamw` ``).
///
/// ```
/// use diffclip_clip::{ClipConfig, json::from_json_objects};
/// assert!(from_json_objects::<ClipConfig>(r#"{"vision": {"layers": 2}}"#).is_ok());
/// let err = from_json_objects::<ClipConfig>(r#"{"text": [512, 12]}"#).unwrap_err();
/// assert!(err.to_string().contains("`text` must be a JSON object"), "{err}");
/// let wrapped = format!("[{}]", serde_json::to_string(&ClipConfig::diffclip_tiny()).unwrap());
/// let err = from_json_objects::<ClipConfig>(&wrapped).unwrap_err();
/// assert!(err.to_string().contains("the config must be a JSON object"), "{err}");
/// ```
pub fn from_json_objects<T: DeserializeOwned + Serialize>(json: &str) -> Result<T, serde_json::Error> {
    // Read from the text first: its errors give the line and column.
    let value: T = match serde_json::from_str(json) {
        Ok(value) => value,
        // A list that does not even read as the struct's fields (`[{...}]`, a config wrapped in
        // a list): said as what it is, not as the first field's type error.
        Err(e) if json.trim_start().starts_with('[') && reads_from_an_object::<T>() => {
            return Err(serde::de::Error::custom(format!("the config must be a JSON object (\"field\": value, ...), not a list ({e})")));
        }
        Err(e) => return Err(e),
    };
    let given: Value = serde_json::from_str(json)?;
    if let Some(place) = list_for_struct(&given, &serde_json::to_value(&value)?, "") {
        return Err(serde::de::Error::custom(format!("{place} must be a JSON object (\"field\": value, ...), not a list")));
    }
    Ok(value)
}

/// Whether `T` reads from a JSON object (a struct or map): `{}` reads, or fails on a field.
fn reads_from_an_object<T: DeserializeOwned>() -> bool {
    match serde_json::from_str::<T>("{}") {
        Ok(_) => true,
        Err(e) => e.to_string().contains("missing field"),
    }
}

/// The first place where `given` has a list and the value read from it serialises as an object.
fn list_for_struct(given: &Value, typed: &Value, path: &str) -> Option<String> {
    match (given, typed) {
        (Value::Array(_), Value::Object(_)) => Some(if path.is_empty() { "the config".to_string() } else { format!("`{path}`") }),
        (Value::Object(g), Value::Object(t)) => g.iter().find_map(|(k, gv)| {
            let inner = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
            t.get(k).and_then(|tv| list_for_struct(gv, tv, &inner))
        }),
        (Value::Array(g), Value::Array(t)) => g.iter().zip(t).enumerate().find_map(|(i, (gv, tv))| list_for_struct(gv, tv, &format!("{path}[{i}]"))),
        _ => None,
    }
}
