//! The registry's hub `tokenizer.json` (feature `hf-tokenizer`): read from a hub cache, it
//! tokenizes as the built-in CLIP tokenizer and drives an `Encoder`; and models loaded with
//! their tokenizer and preprocessing (`Pretrained::load_in`, `LoadedModel::load`).
#![cfg(feature = "hf-tokenizer")]

use std::path::Path;
use std::sync::Arc;

use diffclip::burn::tensor::Device;
use diffclip::clip::ClipConfig;
use diffclip::data::tokenizer::{HfTokenizer, clip_tokenizer_json};
use diffclip::data::{ClipTokenizer, TextTokenizer, TokenizerConfig, Truncation};
use diffclip::eval::Encoder;
use diffclip::pretrained::{PRETRAINED, Pretrained, PretrainedError, TokenizerSource};
use diffclip::{LoadError, LoadedModel};

/// A hub cache holding `repo`'s `file` with `contents`.
fn cache_with(cache: &Path, repo: &str, file: &str, contents: &str) {
    let dir = cache.join(format!("models--{}", repo.replace('/', "--")));
    std::fs::create_dir_all(dir.join("refs")).unwrap();
    std::fs::create_dir_all(dir.join("snapshots/0123abc")).unwrap();
    std::fs::write(dir.join("refs/main"), "0123abc").unwrap();
    std::fs::write(dir.join("snapshots/0123abc").join(file), contents).unwrap();
}

#[test]
fn registry_names_a_tokenizer_for_every_model() {
    for m in PRETRAINED {
        let want = if m.repo.starts_with("openai/") {
            TokenizerSource::HubFile("tokenizer.json")
        } else {
            TokenizerSource::Clip
        };
        assert_eq!(m.tokenizer, want, "{}", m.name);
    }
}

#[test]
fn hub_tokenizer_json_is_read_from_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let entry = Pretrained::named("openai-vit-b16").unwrap();
    let err = entry.tokenizer_in(cache.path()).unwrap_err();
    assert!(matches!(err, PretrainedError::NotCached { .. }), "{err}");
    assert!(err.to_string().contains("openai/clip-vit-base-patch16/tokenizer.json"), "{err}");

    cache_with(cache.path(), entry.repo, "tokenizer.json", "{ not json");
    let err = entry.tokenizer_in(cache.path()).unwrap_err().to_string();
    assert!(err.contains("tokenizer.json") && err.contains("line 1"), "{err}");

    cache_with(cache.path(), entry.repo, "tokenizer.json", &clip_tokenizer_json().unwrap());
    let tok = entry.tokenizer_in(cache.path()).unwrap();
    assert!(format!("{tok:?}").contains("HfTokenizer"), "{tok:?}");
    assert_eq!(*tok.config(), entry.tokenizer_config());
    let clip = ClipTokenizer::with_config(entry.tokenizer_config()).unwrap();
    let long = "long caption ".repeat(60);
    for text in ["a photo of a dog", "A DIAGRAM of 3 cats; it's 2024!", long.as_str()] {
        assert_eq!(tok.tokenize(text).unwrap(), clip.tokenize(text), "{text:?}");
    }
    // DiffCLIP's entries use the built-in tokenizer whatever the cache holds.
    let diffclip = Pretrained::named("diffclip-vit-b16-cc3m").unwrap().tokenizer_in(cache.path()).unwrap();
    assert_eq!(diffclip.truncation(), Truncation::DropEot);
    assert!(format!("{diffclip:?}").contains("ClipTokenizer"));
}

#[test]
fn encoder_takes_the_hf_tokenizer() {
    let model = ClipConfig::diffclip_tiny().init(&Device::flex()).unwrap();
    let clip = Encoder::new(&model).unwrap().with_progress(false);
    let ctx = clip.tokenizer().context_length();
    let json = clip_tokenizer_json().unwrap();
    let hf = HfTokenizer::from_bytes(json.as_bytes(), TokenizerConfig { context_length: ctx, ..Default::default() }).unwrap();
    let hf: Arc<dyn TextTokenizer> = Arc::new(hf);
    let encoder = Encoder::new(&model).unwrap().with_progress(false).with_tokenizer(hf.clone()).unwrap();
    let texts = ["a photo of a dog", "a red square", ""];
    let (a, b) = (clip.encode_texts(&texts).unwrap(), encoder.encode_texts(&texts).unwrap());
    assert_eq!((a.rows(), a.cols()), (b.rows(), b.cols()));
    assert_eq!(a.data(), b.data());
    // `with_truncation` keeps the file, and a wrong context length is refused.
    let drop = encoder.with_truncation(Truncation::DropEot).unwrap();
    assert!(format!("{:?}", drop.tokenizer()).contains("HfTokenizer"));
    assert_eq!(drop.tokenizer().truncation(), Truncation::DropEot);
    let wrong = hf.reconfigured(TokenizerConfig { context_length: ctx + 1, ..Default::default() }).unwrap();
    let err = Encoder::new(&model).unwrap().with_tokenizer(wrong).unwrap_err().to_string();
    assert!(err.contains("context length"), "{err}");
}

#[test]
fn a_released_model_loads_with_its_tokenizer_or_names_what_is_missing() {
    let device = Device::flex();
    let cache = tempfile::tempdir().unwrap();
    let entry = Pretrained::named("openai-vit-b16").unwrap();
    let err = entry.load_in(cache.path(), &device).unwrap_err();
    assert!(matches!(&err, LoadError::Pretrained(PretrainedError::NotCached { .. })), "{err}");
    assert!(err.to_string().contains("openai/clip-vit-base-patch16/model.safetensors"), "{err}");
    // The tokenizer is looked for before the weights are read: its absence is said first.
    cache_with(cache.path(), entry.repo, entry.file, "not a checkpoint");
    let err = entry.load_in(cache.path(), &device).unwrap_err().to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
    cache_with(cache.path(), entry.repo, "tokenizer.json", &clip_tokenizer_json().unwrap());
    let err = entry.load_in(cache.path(), &device).unwrap_err();
    assert!(matches!(&err, LoadError::Checkpoint(_)) && err.to_string().contains("model.safetensors"), "{err}");
}

#[test]
fn a_loaded_checkpoint_brings_its_preprocessing_and_tokenizer() {
    let device = Device::flex();
    let ckpt = diffclip_testkit::fixture("diffclip_tiny/model.safetensors");
    let loaded = LoadedModel::load(ClipConfig::diffclip_tiny(), &ckpt, &device).unwrap();
    assert_eq!((loaded.preprocess, loaded.truncation()), ("slip", Truncation::KeepEot));
    assert_eq!(loaded.pipeline().unwrap().size(), 32);
    let texts = ["a photo of a dog", "two cats"];
    let by_hand = Encoder::new(&loaded.model).unwrap().with_progress(false).encode_texts(&texts).unwrap();
    assert_eq!(loaded.encoder().unwrap().with_progress(false).encode_texts(&texts).unwrap(), by_hand);
    let err = LoadedModel::load(ClipConfig::openai_tiny(), &ckpt, &device).unwrap_err();
    assert!(matches!(&err, LoadError::Checkpoint(_)) && err.to_string().contains("model.safetensors"), "{err}");
    assert_eq!(diffclip::layout_preprocess(&ClipConfig::openai_tiny()), "openai");
}
