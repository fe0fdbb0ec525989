//! The data flags a run stores in its checkpoint (`TrainConfig::data`). On `--resume` a flag
//! not given takes the stopped run's value (the data, its order and its augmentation are then
//! those of the run that stopped), and one given with another value is used with a warning.

use std::collections::BTreeMap;
use std::ffi::OsString;

use clap::ArgMatches;
use clap::parser::ValueSource;

/// The flags (clap ids) that say what the run reads and how.
const DATA_FLAGS: &[&str] = &[
    "data", "preprocess", "shuffle_buffer", "train_num_samples", "templates", "truncate", "csv_image_column",
    "csv_caption_column", "csv_separator", "csv_image_root",
];

/// `--shuffle-buffer` from `shuffle_buffer`.
fn flag(id: &str) -> String {
    format!("--{}", id.replace('_', "-"))
}

/// The value of `id` as given or defaulted (`None`: neither), its paths made absolute against
/// the current folder: a run resumed from another folder reads the same files.
fn raw(matches: &ArgMatches, id: &str) -> Option<String> {
    matches.get_raw(id).map(|v| absolute(id, v.map(|s| s.to_string_lossy().into_owned()).collect::<Vec<_>>().join(",")))
}

/// `value` of flag `id` with its path made absolute against the current folder (unchanged when
/// that folder's path is not UTF-8: it could not be stored as it is).
fn absolute(id: &str, value: String) -> String {
    let Some(here) = std::env::current_dir().ok().filter(|h| h.to_str().is_some()) else { return value };
    match id {
        "data" => value.parse::<diffclip::data::datasets::DataSpec>().map_or(value, |spec| spec.absolute(&here).describe()),
        "csv_image_root" => here.join(&value).to_string_lossy().into_owned(),
        // A template file, not one of the named sets (`simple`, ...).
        "templates" if std::path::Path::new(&value).is_file() => here.join(&value).to_string_lossy().into_owned(),
        _ => value,
    }
}

/// The data flags of this command line, to store in the checkpoint.
pub fn current(matches: &ArgMatches) -> BTreeMap<String, String> {
    DATA_FLAGS.iter().filter_map(|id| raw(matches, id).map(|v| (id.to_string(), v))).collect()
}

/// The command line `argv` of a resumed run with the stopped run's data flags (`stored`) added
/// where this one does not give them, and a warning for each it gives differently.
pub fn resumed_argv(argv: Vec<OsString>, matches: &ArgMatches, stored: &BTreeMap<String, String>) -> (Vec<OsString>, Vec<String>) {
    let (mut argv, mut warnings) = (argv, Vec::new());
    for id in DATA_FLAGS {
        let given = matches.value_source(id) == Some(ValueSource::CommandLine);
        match (given, stored.get(*id), raw(matches, id)) {
            (false, Some(was), _) => argv.push(format!("{}={was}", flag(id)).into()),
            // A relative path stored by an older version compares as if given here.
            (true, Some(was), Some(now)) if absolute(id, was.clone()) != now => {
                warnings.push(format!("{} {now} differs from the stopped run's {was}: the resumed run reads its data differently", flag(id)))
            }
            (true, None, Some(now)) if !stored.is_empty() => {
                warnings.push(format!("{} {now} was not given to the stopped run: the resumed run reads its data differently", flag(id)))
            }
            _ => {}
        }
    }
    (argv, warnings)
}
