//! Released checkpoints by name: which repository and file hold each, and the config preset,
//! preprocessing and caption truncation it was evaluated with. Files are found in the Hugging
//! Face hub cache (`HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`); nothing
//! is downloaded (`huggingface-cli download REPO FILE` fills the cache where a network exists).

use std::path::PathBuf;

use diffclip_clip::ClipConfig;
use thiserror::Error;

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
}

/// Every released model diffclip knows. DiffCLIP's were evaluated with SLIP's preprocessing and
/// the authors' tokenizer; OpenAI's and open_clip's with open_clip's. OpenAI's weights use
/// QuickGELU and open_clip's LAION-2B models exact GELU: their presets differ for that reason.
/// The DiffCLIP authors' standard-CLIP baseline is not listed: its repository name is not
/// published.
pub const PRETRAINED: &[Pretrained] = &[
    Pretrained { name: "diffclip-vit-b16-cc3m", repo: "hammh0a/DiffCLIP_ViTB16_CC3M", file: "checkpoint_best.pt", preset: "diffclip_vit_b16", preprocess: "slip", truncate: "drop-eot" },
    Pretrained { name: "diffclip-vit-b16-cc12m", repo: "hammh0a/DiffCLIP_ViTB16_CC12M", file: "checkpoint_best.pt", preset: "diffclip_vit_b16", preprocess: "slip", truncate: "drop-eot" },
    Pretrained { name: "openai-vit-b32", repo: "openai/clip-vit-base-patch32", file: "model.safetensors", preset: "openai_vit_b32", preprocess: "openai", truncate: "keep-eot" },
    Pretrained { name: "openai-vit-b16", repo: "openai/clip-vit-base-patch16", file: "model.safetensors", preset: "openai_vit_b16", preprocess: "openai", truncate: "keep-eot" },
    Pretrained { name: "openai-vit-l14", repo: "openai/clip-vit-large-patch14", file: "model.safetensors", preset: "openai_vit_l14", preprocess: "openai", truncate: "keep-eot" },
    Pretrained { name: "openclip-vit-b32-laion2b", repo: "laion/CLIP-ViT-B-32-laion2B-s34B-b79K", file: "open_clip_pytorch_model.bin", preset: "openclip_vit_b32", preprocess: "openai", truncate: "keep-eot" },
    Pretrained { name: "openclip-vit-b16-laion2b", repo: "laion/CLIP-ViT-B-16-laion2B-s34B-b88K", file: "open_clip_pytorch_model.bin", preset: "openclip_vit_b16", preprocess: "openai", truncate: "keep-eot" },
    Pretrained { name: "openclip-vit-l14-laion2b", repo: "laion/CLIP-ViT-L-14-laion2B-s32B-b82K", file: "open_clip_pytorch_model.bin", preset: "openclip_vit_l14", preprocess: "openai", truncate: "keep-eot" },
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
    /// ```
    pub fn checkpoint_in(&self, cache: &std::path::Path) -> Result<PathBuf, PretrainedError> {
        let cache = cache.to_path_buf();
        hf_hub::Cache::new(cache.clone()).model(self.repo.to_string()).get(self.file).ok_or_else(|| PretrainedError::NotCached {
            repo: self.repo.into(),
            file: self.file.into(),
            cache: cache.display().to_string(),
            folder: self.repo.replace('/', "--"),
        })
    }
}

/// The hub cache folder: `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("HF_HUB_CACHE") {
        Some(dir) => dir.into(),
        None => hf_hub::Cache::from_env().path().clone(),
    }
}
