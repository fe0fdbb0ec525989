//! Class-name files: a JSON list, a JSON object keyed by class folder, or one name per line.

use std::path::Path;

use super::error::DataError;

/// Class names from a file: a JSON list of strings (in folder order, or by number for numbered
/// folders: see [`names_for_folders`]), a JSON object mapping each of `folders` to its name, or
/// else one name per line ([`crate::files::read_lines`]: trimmed, blank lines skipped). With
/// `folders`, a list must have one name per folder (numbered folders must be numbered from 0),
/// and an object a name, a string, for each folder and no key for another. A byte-order mark is
/// dropped; text that starts like JSON must be JSON, and a JSON name must not be blank. Errors
/// name the file.
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
/// // With folders: one name each, numbered folders from 0.
/// std::fs::write(&p, "a header\ntench\ngoldfish\n").unwrap();
/// assert!(read_class_names(&p, &folders).unwrap_err().to_string().contains("3 class names for 2 class folders"));
/// std::fs::write(&p, "tench\ngoldfish\n").unwrap();
/// let from_one = ["1".to_string(), "2".to_string()];
/// assert!(read_class_names(&p, &from_one).unwrap_err().to_string().contains("not 0 to 1"));
/// std::fs::write(&p, r#"{"n01": "tench", "n02": 5}"#).unwrap();
/// assert!(read_class_names(&p, &folders).unwrap_err().to_string().contains("is 5, not a string"));
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
    // A list names the folders one each, in order, or by number when they are numbered from 0
    // (ImageNet-V2): a count that differs would shift every name.
    let listed = |names: Vec<String>| -> Result<Vec<String>, DataError> {
        if folders.is_empty() {
            return Ok(names);
        }
        if names.len() != folders.len() {
            return Err(DataError::Config(format!("{}: {} class names for {} class folders (a list names each folder once, in order; name a subset of folders with a JSON object from folder to name)", path.display(), names.len(), folders.len())));
        }
        let numbers: Option<Vec<usize>> = folders.iter().map(|f| f.parse().ok()).collect();
        if numbers.is_some_and(|n| n.iter().any(|&n| n >= names.len())) {
            return Err(json_err(format!(
                "the class folders are numbered, but not 0 to {}: which name goes to which folder cannot be known; \
                 give a JSON object from folder to name (`{{\"{}\": \"...\"}}`)",
                names.len() - 1,
                folders[0]
            )));
        }
        Ok(names_for_folders(names, folders))
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
            .and_then(listed),
        Ok(serde_json::Value::Object(_)) if folders.is_empty() => Err(json_err(
            "a JSON object maps class folder names to class names, which only an image folder's \
             classnames.txt can use: give a JSON list, or one name per line"
                .into(),
        )),
        Ok(serde_json::Value::Object(map)) => {
            // A key for no folder is a class folder missing, or a name misspelt.
            if let Some(stray) = map.keys().find(|k| !folders.contains(k)) {
                return Err(json_err(format!("names folder {stray:?}, which is not one of the {} class folders", folders.len())));
            }
            folders
                .iter()
                .map(|f| match map.get(f) {
                    None => Err(json_err(format!("no class name for folder {f:?}"))),
                    Some(serde_json::Value::String(n)) => named(format!("the class name of folder {f:?}"), n),
                    Some(other) => Err(json_err(format!("the class name of folder {f:?} is {other}, not a string"))),
                })
                .collect()
        }
        // Text that starts like JSON is meant as JSON: its error, not a count of odd lines.
        Err(e) if text.trim_start_matches([' ', '\t', '\r', '\n']).starts_with(['[', '{']) => {
            Err(json_err(format!("{e} (a file that starts with [ or {{ is read as JSON)")))
        }
        _ => listed(crate::files::TextLines::new(text.as_bytes(), path).collect::<Result<_, _>>()?),
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
