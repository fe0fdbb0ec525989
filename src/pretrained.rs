//! Released checkpoints by name: which repository and file hold each, and the config preset,
//! preprocessing and caption truncation it was evaluated with. Files are found in the Hugging
//! Face hub cache (`HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`: see
//! [`cache_dir`]); nothing is downloaded (`huggingface-cli download REPO FILE` fills the cache
//! where a network exists).
//!
//! Each entry also names its tokenizer ([`TokenizerSource`]). With the `hf-tokenizer` feature,
//! [`Pretrained::tokenizer`] reads a [`TokenizerSource::HubFile`] (the `tokenizer.json` of the
//! `openai/clip-vit-*` repositories) from the cache like the checkpoint; without it the built-in
//! CLIP BPE is used for every entry, which gives those models the same ids on ordinary text (it
//! also repairs mojibake, unescapes HTML and folds ligatures and full-width forms, as
//! open_clip does: see `HfTokenizer`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::Device;
use diffclip_clip::ClipConfig;
use diffclip_data::{ClipTokenizer, TextTokenizer, TokenizerConfig, TokenizerError, Truncation};
use thiserror::Error;

use crate::loaded::{LoadError, LoadedModel};

/// Where a released model's tokenizer comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenizerSource {
    /// The built-in CLIP BPE ([`ClipTokenizer`]): DiffCLIP's and open_clip's models.
    Clip,
    /// A `tokenizer.json` in the model's hub repository, read with the `hf-tokenizer` feature
    /// (`HfTokenizer`); without the feature the built-in CLIP BPE stands in for it.
    HubFile(&'static str),
}

/// One released model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pretrained {
    /// The name `--model` takes.
    pub name: &'static str,
    /// The hub repository (`owner/name`).
    pub repo: &'static str,
    /// The checkpoint file in it.
    pub file: &'static str,
    /// The config preset ([`ClipConfig::preset`]) the weights fit.
    pub preset: &'static str,
    /// The preprocessing preset the model was evaluated with (`slip`, `openai`).
    pub preprocess: &'static str,
    /// Caption truncation of its tokenizer (`drop-eot`: the DiffCLIP authors'; `keep-eot`: open_clip's).
    pub truncate: &'static str,
    /// Its tokenizer.
    pub tokenizer: TokenizerSource,
}

/// Every released model diffclip knows. DiffCLIP's were evaluated with SLIP's preprocessing and
/// the authors' tokenizer; OpenAI's and open_clip's with open_clip's. OpenAI's weights use
/// QuickGELU and open_clip's LAION-2B models exact GELU: their presets differ for that reason.
/// The DiffCLIP authors' standard-CLIP baseline is not listed: its repository name is not
/// published.
pub const PRETRAINED: &[Pretrained] = &[
    Pretrained { name: "diffclip-vit-b16-cc3m", repo: "hammh0a/DiffCLIP_ViTB16_CC3M", file: "checkpoint_best.pt", preset: "diffclip_vit_b16", preprocess: "slip", truncate: "drop-eot", tokenizer: TokenizerSource::Clip },
    Pretrained { name: "diffclip-vit-b16-cc12m", repo: "hammh0a/DiffCLIP_ViTB16_CC12M", file: "checkpoint_best.pt", preset: "diffclip_vit_b16", preprocess: "slip", truncate: "drop-eot", tokenizer: TokenizerSource::Clip },
    Pretrained { name: "openai-vit-b32", repo: "openai/clip-vit-base-patch32", file: "model.safetensors", preset: "openai_vit_b32", preprocess: "openai", truncate: "keep-eot", tokenizer: TokenizerSource::HubFile("tokenizer.json") },
    Pretrained { name: "openai-vit-b16", repo: "openai/clip-vit-base-patch16", file: "model.safetensors", preset: "openai_vit_b16", preprocess: "openai", truncate: "keep-eot", tokenizer: TokenizerSource::HubFile("tokenizer.json") },
    Pretrained { name: "openai-vit-l14", repo: "openai/clip-vit-large-patch14", file: "model.safetensors", preset: "openai_vit_l14", preprocess: "openai", truncate: "keep-eot", tokenizer: TokenizerSource::HubFile("tokenizer.json") },
    Pretrained { name: "openclip-vit-b32-laion2b", repo: "laion/CLIP-ViT-B-32-laion2B-s34B-b79K", file: "open_clip_pytorch_model.bin", preset: "openclip_vit_b32", preprocess: "openai", truncate: "keep-eot", tokenizer: TokenizerSource::Clip },
    Pretrained { name: "openclip-vit-b16-laion2b", repo: "laion/CLIP-ViT-B-16-laion2B-s34B-b88K", file: "open_clip_pytorch_model.bin", preset: "openclip_vit_b16", preprocess: "openai", truncate: "keep-eot", tokenizer: TokenizerSource::Clip },
    Pretrained { name: "openclip-vit-l14-laion2b", repo: "laion/CLIP-ViT-L-14-laion2B-s32B-b82K", file: "open_clip_pytorch_model.bin", preset: "openclip_vit_l14", preprocess: "openai", truncate: "keep-eot", tokenizer: TokenizerSource::Clip },
];

/// Why a model name could not be resolved.
#[derive(Debug, Error)]
pub enum PretrainedError {
    /// No such name.
    #[error("unknown model '{name}'; known: {known}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// Every known name.
        known: String,
    },
    /// The file is not in the local cache (and nothing is downloaded).
    #[error("{repo}/{file} is not in the Hugging Face cache {cache} (looked for {cache}/models--{folder}/refs/main and its snapshot); fetch it where a network exists with `huggingface-cli download {repo} {file}` and copy the cache, or point HF_HUB_CACHE / HF_HOME at it")]
    NotCached {
        /// The repository.
        repo: String,
        /// The file.
        file: String,
        /// The cache folder searched.
        cache: String,
        /// The repository's folder name in the cache.
        folder: String,
    },
    /// The repository's cache folder is there but does not lead to the file (a damaged ref, a
    /// snapshot that is not there, a link to a blob an interrupted download never wrote).
    #[error("{repo}/{file}: the Hugging Face cache is damaged: {why}; download it again where a network exists (`huggingface-cli download {repo} {file}`) and copy the cache")]
    DamagedCache {
        /// The repository.
        repo: String,
        /// The file.
        file: String,
        /// What is wrong, naming the path.
        why: String,
    },
    /// The tokenizer could not be built (its file is unreadable or invalid).
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
}

impl Pretrained {
    /// The entry named `name` (`_` and `-` interchangeable, case ignored).
    ///
    /// ```
    /// let m = diffclip::pretrained::Pretrained::named("DiffCLIP_ViT_B16_CC12M").unwrap();
    /// assert_eq!(m.repo, "hammh0a/DiffCLIP_ViTB16_CC12M");
    /// assert!(diffclip::pretrained::Pretrained::named("vit-h").is_err());
    /// ```
    pub fn named(name: &str) -> Result<&'static Pretrained, PretrainedError> {
        let key = name.replace('_', "-").to_lowercase();
        PRETRAINED.iter().find(|m| m.name == key).ok_or_else(|| PretrainedError::Unknown {
            name: name.into(),
            known: PRETRAINED.iter().map(|m| m.name).collect::<Vec<_>>().join(", "),
        })
    }

    /// The model from the hub cache ([`cache_dir`]) on `device`, with the preprocessing and
    /// tokenizer it was evaluated with (see [`LoadedModel`]). Nothing is downloaded.
    pub fn load(&self, device: &Device) -> Result<LoadedModel, LoadError> {
        self.load_in(&cache_dir(), device)
    }

    /// [`load`](Self::load) from the hub cache folder `cache`. The tokenizer is read first, so
    /// that a missing `tokenizer.json` fails before gigabytes of weights are.
    ///
    /// ```
    /// use diffclip::pretrained::{Pretrained, PretrainedError};
    /// let empty = tempfile::tempdir().unwrap();
    /// let device = diffclip::backend::device("flex").unwrap();
    /// let err = Pretrained::named("diffclip-vit-b16-cc3m").unwrap().load_in(empty.path(), &device).unwrap_err();
    /// assert!(matches!(err, diffclip::LoadError::Pretrained(PretrainedError::NotCached { .. })));
    /// assert!(err.to_string().contains("hammh0a/DiffCLIP_ViTB16_CC3M/checkpoint_best.pt"), "{err}");
    /// ```
    pub fn load_in(&self, cache: &Path, device: &Device) -> Result<LoadedModel, LoadError> {
        let checkpoint = self.checkpoint_in(cache)?;
        let tokenizer = self.tokenizer_in(cache)?;
        LoadedModel::with_parts(self.config(), &checkpoint, device, self.preprocess, tokenizer)
    }

    /// Its config preset.
    pub fn config(&self) -> ClipConfig {
        ClipConfig::preset(self.preset).expect("registry presets exist")
    }

    /// The checkpoint's path in the hub cache ([`cache_dir`]).
    pub fn checkpoint(&self) -> Result<PathBuf, PretrainedError> {
        self.checkpoint_in(&cache_dir())
    }

    /// The checkpoint's path in the hub cache folder `cache` (`models--OWNER--NAME/refs/main`
    /// names the snapshot holding the file).
    ///
    /// ```
    /// use diffclip::pretrained::Pretrained;
    /// let cache = tempfile::tempdir().unwrap();
    /// let repo = cache.path().join("models--openai--clip-vit-base-patch16");
    /// std::fs::create_dir_all(repo.join("refs")).unwrap();
    /// std::fs::create_dir_all(repo.join("snapshots/abc123")).unwrap();
    /// std::fs::write(repo.join("refs/main"), "abc123").unwrap();
    /// std::fs::write(repo.join("snapshots/abc123/model.safetensors"), b"...").unwrap();
    /// let m = Pretrained::named("openai-vit-b16").unwrap();
    /// assert_eq!(m.checkpoint_in(cache.path()).unwrap(), repo.join("snapshots/abc123/model.safetensors"));
    /// let err = Pretrained::named("openai-vit-b32").unwrap().checkpoint_in(cache.path()).unwrap_err().to_string();
    /// assert!(err.contains("openai/clip-vit-base-patch32/model.safetensors") && err.contains(&cache.path().display().to_string()));
    /// // A ref ending in a line break is read; one naming no snapshot is said to be damaged.
    /// std::fs::write(repo.join("refs/main"), "abc123\n").unwrap();
    /// assert!(m.checkpoint_in(cache.path()).is_ok());
    /// std::fs::write(repo.join("refs/main"), "def456").unwrap();
    /// let err = m.checkpoint_in(cache.path()).unwrap_err().to_string();
    /// assert!(err.contains("names snapshot \"def456\"") && err.contains("damaged"), "{err}");
    /// ```
    pub fn checkpoint_in(&self, cache: &std::path::Path) -> Result<PathBuf, PretrainedError> {
        self.cached_file(cache, self.file)
    }

    /// `file` of this entry's repository in the hub cache folder `cache`: the snapshot that
    /// `refs/main` names, as `huggingface-cli download` leaves it.
    fn cached_file(&self, cache: &Path, file: &str) -> Result<PathBuf, PretrainedError> {
        let folder = self.repo.replace('/', "--");
        let repo = cache.join(format!("models--{folder}"));
        let not_cached = || PretrainedError::NotCached { repo: self.repo.into(), file: file.into(), cache: cache.display().to_string(), folder: folder.clone() };
        let damaged = |why: String| PretrainedError::DamagedCache { repo: self.repo.into(), file: file.into(), why };
        let refs = repo.join("refs").join("main");
        let bytes = match diffclip_data::files::read_capped(&refs, 4096) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Err(damaged(format!("{} is over 4 KiB, not a commit name", refs.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_cached()),
            Err(e) => return Err(damaged(format!("{}: {e}", refs.display()))),
        };
        // Written by hand or by other tools, a ref may end with a line break.
        let snapshot = String::from_utf8_lossy(&bytes).trim().to_string();
        if snapshot.is_empty() || snapshot.contains(['/', '\\']) || snapshot == "." || snapshot == ".." {
            return Err(damaged(format!("{} names {snapshot:?}, not a snapshot folder", refs.display())));
        }
        let snapshots = repo.join("snapshots");
        let path = snapshots.join(&snapshot).join(file);
        match std::fs::metadata(&path) {
            Ok(_) => Ok(path),
            Err(_) if std::fs::symlink_metadata(&path).is_ok() => Err(damaged(format!("{} is a link to a blob that is not there (an interrupted download?)", path.display()))),
            Err(_) if !snapshots.join(&snapshot).is_dir() => Err(damaged(format!("{} names snapshot {snapshot:?}, which {} lacks", refs.display(), snapshots.display()))),
            Err(_) => Err(not_cached()),
        }
    }

    /// The tokenizer settings the model was evaluated with: its preset's context length and
    /// its truncation.
    ///
    /// ```
    /// use diffclip::data::Truncation;
    /// let c = diffclip::pretrained::Pretrained::named("diffclip-vit-b16-cc3m").unwrap().tokenizer_config();
    /// assert_eq!((c.context_length, c.truncation), (77, Truncation::DropEot));
    /// ```
    pub fn tokenizer_config(&self) -> TokenizerConfig {
        TokenizerConfig {
            context_length: self.config().text.context_length,
            truncation: self.truncate.parse::<Truncation>().expect("registry truncations parse"),
        }
    }

    /// Its tokenizer, files read from the hub cache ([`cache_dir`]); see [`tokenizer_in`](Self::tokenizer_in).
    pub fn tokenizer(&self) -> Result<Arc<dyn TextTokenizer>, PretrainedError> {
        self.tokenizer_in(&cache_dir())
    }

    /// Its tokenizer with [`tokenizer_config`](Self::tokenizer_config): the built-in CLIP BPE for
    /// [`TokenizerSource::Clip`]; for [`TokenizerSource::HubFile`], with the `hf-tokenizer`
    /// feature, the file from the hub cache folder `cache` (missing: [`PretrainedError::NotCached`]
    /// naming it), without the feature the built-in CLIP BPE (nothing is read).
    ///
    /// ```
    /// use diffclip::pretrained::Pretrained;
    /// let empty = tempfile::tempdir().unwrap();
    /// let clip = Pretrained::named("diffclip-vit-b16-cc12m").unwrap().tokenizer_in(empty.path()).unwrap();
    /// assert_eq!(clip.tokenize("a photo").unwrap()[..4], [49406, 320, 1125, 49407]);
    /// let openai = Pretrained::named("openai-vit-b16").unwrap().tokenizer_in(empty.path());
    /// if cfg!(feature = "hf-tokenizer") {
    ///     assert!(openai.unwrap_err().to_string().contains("openai/clip-vit-base-patch16/tokenizer.json"));
    /// } else {
    ///     assert_eq!(openai.unwrap().tokenize("a photo").unwrap()[..4], [49406, 320, 1125, 49407]);
    /// }
    /// ```
    pub fn tokenizer_in(&self, cache: &Path) -> Result<Arc<dyn TextTokenizer>, PretrainedError> {
        let config = self.tokenizer_config();
        match self.tokenizer {
            #[cfg(feature = "hf-tokenizer")]
            TokenizerSource::HubFile(file) => {
                let path = self.cached_file(cache, file)?;
                Ok(Arc::new(diffclip_data::tokenizer::HfTokenizer::from_file(path, config)?))
            }
            #[cfg(not(feature = "hf-tokenizer"))]
            TokenizerSource::HubFile(_) => {
                let _ = cache;
                Ok(Arc::new(ClipTokenizer::with_config(config)?))
            }
            TokenizerSource::Clip => Ok(Arc::new(ClipTokenizer::with_config(config)?)),
        }
    }
}

/// The hub cache folder: `HF_HUB_CACHE`, else `HF_HOME/hub`, else
/// `XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`, as Python's
/// `huggingface_hub` looks for it, a leading `~/` read as the home folder (`~user/` is not
/// expanded). A variable set but empty counts as unset (it would name the current folder without
/// saying so). Without a known home folder the last is relative; a missing file's error names it.
///
/// ```
/// let cache = diffclip::pretrained::cache_dir();
/// assert!(cache.ends_with("hub") || std::env::var_os("HF_HUB_CACHE").is_some_and(|v| !v.is_empty()));
/// ```
pub fn cache_dir() -> PathBuf {
    hub_cache(|name| std::env::var_os(name), std::env::home_dir())
}

/// [`cache_dir`] from the variables `var` gives and the home folder (relative when unknown).
fn hub_cache(var: impl Fn(&str) -> Option<std::ffi::OsString>, home: Option<PathBuf>) -> PathBuf {
    // `~` alone or `~/...`, as a shell would have expanded it had the value not been quoted.
    let expand = |value: PathBuf| match (&home, value.strip_prefix("~")) {
        (Some(home), Ok(rest)) => home.join(rest),
        _ => value,
    };
    let set = |name| var(name).filter(|v| !v.is_empty()).map(PathBuf::from).map(expand);
    set("HF_HUB_CACHE").or_else(|| set("HF_HOME").map(|home| home.join("hub"))).unwrap_or_else(|| {
        let cache = set("XDG_CACHE_HOME").unwrap_or_else(|| home.clone().unwrap_or_default().join(".cache"));
        cache.join("huggingface").join("hub")
    })
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::path::{Path, PathBuf};

    use super::hub_cache;

    fn with(vars: &[(&str, &str)]) -> PathBuf {
        let vars: Vec<(String, OsString)> = vars.iter().map(|(k, v)| (k.to_string(), v.into())).collect();
        hub_cache(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()), Some("/home/u".into()))
    }

    #[test]
    fn the_hub_cache_follows_the_variables_and_empty_ones_count_as_unset() {
        assert_eq!(with(&[]), Path::new("/home/u/.cache/huggingface/hub"));
        assert_eq!(with(&[("HF_HOME", "/data/hf")]), Path::new("/data/hf/hub"));
        assert_eq!(with(&[("HF_HOME", "/data/hf"), ("HF_HUB_CACHE", "/fast/hub")]), Path::new("/fast/hub"));
        assert_eq!(with(&[("HF_HOME", ""), ("HF_HUB_CACHE", "")]), Path::new("/home/u/.cache/huggingface/hub"));
        assert_eq!(with(&[("HF_HOME", "/data/hf"), ("HF_HUB_CACHE", "")]), Path::new("/data/hf/hub"));
        assert_eq!(with(&[("XDG_CACHE_HOME", "/xdg")]), Path::new("/xdg/huggingface/hub"));
        assert_eq!(with(&[("XDG_CACHE_HOME", "/xdg"), ("HF_HOME", "/data/hf")]), Path::new("/data/hf/hub"));
        assert_eq!(with(&[("XDG_CACHE_HOME", "")]), Path::new("/home/u/.cache/huggingface/hub"));
        assert_eq!(hub_cache(|_| None, None), Path::new(".cache/huggingface/hub"), "no home: relative, never a panic");
        assert_eq!(with(&[("HF_HOME", "~/hf")]), Path::new("/home/u/hf/hub"));
        assert_eq!(with(&[("HF_HUB_CACHE", "~")]), Path::new("/home/u"));
        assert_eq!(with(&[("XDG_CACHE_HOME", "~/c")]), Path::new("/home/u/c/huggingface/hub"));
        assert_eq!(with(&[("HF_HOME", "~other/hf")]), Path::new("~other/hf/hub"), "another user's home is not looked up");
        assert_eq!(with(&[("HF_HOME", "/data/~/hf")]), Path::new("/data/~/hf/hub"));
    }
}
