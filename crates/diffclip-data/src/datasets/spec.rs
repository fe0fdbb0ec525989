//! Naming a data source in one string, as `--data` and `--eval` take it.

use std::path::PathBuf;
use std::str::FromStr;

use super::error::DataError;

/// Where samples come from: `csv:PATH`, `wds:PATTERN`, `folder:PATH` or `synthetic`.
///
/// ```
/// use diffclip_data::datasets::DataSpec;
/// let s: DataSpec = "wds:cc3m/{00000..00331}.tar".parse().unwrap();
/// assert_eq!(s, DataSpec::WebDataset("cc3m/{00000..00331}.tar".into()));
/// assert_eq!("synthetic".parse::<DataSpec>().unwrap(), DataSpec::Synthetic);
/// assert!("parquet:x".parse::<DataSpec>().unwrap_err().to_string().contains("csv:PATH"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSpec {
    /// An image–caption CSV/TSV (image paths relative to its folder).
    Csv(PathBuf),
    /// WebDataset tar shards, a brace pattern (`{00000..00331}`).
    WebDataset(String),
    /// An image folder `PATH/CLASS/*.jpg`, captioned from class templates.
    Folder(PathBuf),
    /// The built-in synthetic set.
    Synthetic,
}

impl DataSpec {
    /// The same source with a relative path made absolute against `base` (a run's folder), so
    /// that it names the same files from anywhere.
    ///
    /// ```
    /// use diffclip_data::datasets::DataSpec;
    /// let s: DataSpec = "csv:data/train.csv".parse().unwrap();
    /// assert_eq!(s.absolute("/runs".as_ref()).describe(), "csv:/runs/data/train.csv");
    /// assert_eq!("wds:/d/{0..9}.tar".parse::<DataSpec>().unwrap().absolute("/runs".as_ref()).describe(), "wds:/d/{0..9}.tar");
    /// // Each of several patterns; a first brace group with an absolute alternative is left as it is.
    /// let wds: DataSpec = "wds:a/{0..1}.tar::/b/x.tar::{00..02}.tar::{c,/d}.tar".parse().unwrap();
    /// assert_eq!(wds.absolute("/runs".as_ref()).describe(), "wds:/runs/a/{0..1}.tar::/b/x.tar::/runs/{00..02}.tar::{c,/d}.tar");
    /// ```
    pub fn absolute(&self, base: &std::path::Path) -> Self {
        match self {
            Self::Csv(p) => Self::Csv(base.join(p)),
            Self::WebDataset(p) => {
                // `{a,/b}x`: one alternative is absolute already, and joining would break it.
                let absolute_alternative = |part: &str| {
                    let group = part.strip_prefix('{').and_then(|rest| rest.split_once('}')).map_or("", |(group, _)| group);
                    group.split(',').any(|alternative| alternative.starts_with('/'))
                };
                let part = |part: &str| match part.is_empty() || part.starts_with('/') || absolute_alternative(part) {
                    true => part.to_string(),
                    false => base.join(part).to_string_lossy().into_owned(),
                };
                Self::WebDataset(p.split("::").map(part).collect::<Vec<_>>().join("::"))
            }
            Self::Folder(p) => Self::Folder(base.join(p)),
            Self::Synthetic => Self::Synthetic,
        }
    }

    /// The spec as written (`csv:PATH`, ...), for messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Csv(p) => format!("csv:{}", p.display()),
            Self::WebDataset(p) => format!("wds:{p}"),
            Self::Folder(p) => format!("folder:{}", p.display()),
            Self::Synthetic => "synthetic".into(),
        }
    }
}

impl FromStr for DataSpec {
    type Err = DataError;

    fn from_str(spec: &str) -> Result<Self, DataError> {
        let (kind, rest) = spec.split_once(':').unwrap_or((spec, ""));
        let need_path = |what: &str| DataError::Config(format!("'{spec}': {what} needs a path after the colon"));
        Ok(match kind {
            "csv" if rest.is_empty() => return Err(need_path("csv:")),
            "csv" => Self::Csv(rest.into()),
            "wds" if rest.is_empty() => return Err(need_path("wds:")),
            "wds" => Self::WebDataset(rest.into()),
            "folder" if rest.is_empty() => return Err(need_path("folder:")),
            "folder" => Self::Folder(rest.into()),
            "synthetic" if rest.is_empty() => Self::Synthetic,
            _ => return Err(DataError::Config(format!("'{spec}': expected csv:PATH, wds:PATTERN, folder:PATH or synthetic"))),
        })
    }
}
