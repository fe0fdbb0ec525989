//! Class-name files: a JSON list, a JSON object keyed by class folder, or one name per line.

use std::path::Path;

use super::error::DataError;

/// Class names from a file: a JSON list of strings (in folder order, or by number for numbered
/// folders: see [`names_for_folders`]), a JSON object mapping each of `folders` to its name, or
/// else one name per line ([`crate::files::read_lines`]: trimmed, blank lines skipped). The
/// count is not checked here. A byte-order mark is dropped; text that starts like JSON must be
/// JSON, and a JSON name must not be blank. Errors name the file.
///
/// ```
/// use diffclip_data::datasets::read_class_names;
/// let dir = tempfile::tempdir().unwrap();
/// let p = dir.path().join("names");
/// let folders = ["n01".to_string(), "n02".to_string()];
/// std::fs::write(&p, r#"{"n02": "goldfish", "n01": "tench"}"#).unwrap();
/// assert_eq!(read_class_names(&p, &folders).unwrap(), ["tench", "goldfish"]);
/// std::fs::write(&p, r#"["tench", "goldfish"]"#).unwrap();
/// assert_eq!(read_class_names(&p, &[]).unwrap(), ["tench", "goldfish"]);
/// std::fs::write(&p, "tench\n\ngoldfish\n").unwrap();
/// assert_eq!(read_class_names(&p, &[]).unwrap(), ["tench", "goldfish"]);
/// std::fs::write(&p, r#"["tench", " "]"#).unwrap();
/// assert!(read_class_names(&p, &[]).unwrap_err().to_string().contains("class name 2 is blank"));
/// std::fs::write(&p, r#"["tench", "goldfish"] and more"#).unwrap();
/// assert!(read_class_names(&p, &[]).unwrap_err().to_string().contains("trailing characters"));
/// ```
pub fn read_class_names(
    path: impl AsRef<Path>,
    folders: &[String],
) -> Result<Vec<String>, DataError> {
    let path = path.as_ref();
    let text = crate::files::read_to_string(path, crate::files::MAX_LINE_BYTES).map_err(|e| DataError::io(path, e))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let json_err = |m: String| DataError::Json {
        path: path.to_path_buf(),
        message: m,
    };
    // A name of white space or control characters alone would make prompts like "a photo of a ."
    let named = |what: String, name: &str| match crate::tokenizer::is_blank(name) {
        true => Err(json_err(format!("{what} is blank"))),
        false => Ok(name.to_string()),
    };
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| v.as_str().ok_or_else(|| json_err("class names must be strings".into())).and_then(|n| named(format!("class name {}", i + 1), n)))
            .collect::<Result<Vec<_>, _>>()
            .map(|names| names_for_folders(names, folders)),
        Ok(serde_json::Value::Object(_)) if folders.is_empty() => Err(json_err(
            "a JSON object maps class folder names to class names, which only an image folder's \
             classnames.txt can use: give a JSON list, or one name per line"
                .into(),
        )),
        Ok(serde_json::Value::Object(map)) => folders
            .iter()
            .map(|f| {
                map.get(f)
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| json_err(format!("no class name for folder {f:?}")))
                    .and_then(|n| named(format!("the class name of folder {f:?}"), n))
            })
            .collect(),
        // Text that starts like JSON is meant as JSON: its error, not a count of odd lines.
        Err(e) if text.trim_start_matches([' ', '\t', '\r', '\n']).starts_with(['[', '{']) => {
            Err(json_err(format!("{e} (a file that starts with [ or {{ is read as JSON)")))
        }
        _ => Ok(names_for_folders(crate::files::TextLines::new(text.as_bytes(), path).collect::<Result<_, _>>()?, folders)),
    }
}

/// The names of the class `folders` (sorted as text) from `names`, a list in class-index
/// order. Numbered folders (`0`..`999`, ImageNet-V2's layout) take the name at their number,
/// since as text `10` sorts before `2`; any other folders take the names in order. Without
/// folders, `names` as given.
///
/// ```
/// use diffclip_data::datasets::names_for_folders;
/// let names: Vec<String> = (0..11).map(|i| format!("class {i}")).collect();
/// let folders = ["0", "1", "10", "2"].map(String::from);
/// assert_eq!(names_for_folders(names.clone(), &folders), ["class 0", "class 1", "class 10", "class 2"]);
/// let named = ["cat", "dog"].map(String::from);
/// assert_eq!(names_for_folders(names[..2].to_vec(), &named), ["class 0", "class 1"]);
/// ```
pub fn names_for_folders(names: Vec<String>, folders: &[String]) -> Vec<String> {
    let numbers: Option<Vec<usize>> = folders
        .iter()
        .map(|f| f.parse::<usize>().ok().filter(|&n| n < names.len()))
        .collect();
    match numbers {
        Some(numbers) if !folders.is_empty() => numbers.iter().map(|&n| names[n].clone()).collect(),
        _ => names,
    }
}
