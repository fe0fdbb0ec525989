//! `HfTokenizer` on hostile input: bad files are errors naming them, huge texts finish.
#![cfg(feature = "hf-tokenizer")]

#[path = "datasets/fixtures.rs"]
mod fixtures;

use std::sync::OnceLock;

use fixtures::within;

use diffclip_data::tokenizer::{
    EOT_ID, HfTokenizer, MAX_TOKENIZER_FILE_BYTES, SOT_ID, TextTokenizer, TokenizerConfig,
    TokenizerError, Truncation, clip_tokenizer_json,
};
use proptest::prelude::*;

fn clip() -> HfTokenizer {
    static TOK: OnceLock<HfTokenizer> = OnceLock::new();
    let json = || clip_tokenizer_json().unwrap();
    TOK.get_or_init(|| HfTokenizer::from_bytes(json().as_bytes(), TokenizerConfig::default()).unwrap())
        .clone()
}

/// Loads `bytes` written to a file named `tokenizer.json`; the error's text.
fn load_error(bytes: &[u8]) -> (TokenizerError, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, bytes).unwrap();
    let err = HfTokenizer::from_file(&path, TokenizerConfig::default()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "error does not name the file: {text}");
    (err, text)
}

#[test]
fn invalid_files_are_errors_naming_the_file() {
    let (err, text) = load_error(b"{\n  \"version\": \"1.0\",\n  \"model\": ");
    assert!(matches!(err, TokenizerError::Invalid { .. }));
    assert!(text.contains("line 3"), "{text}");
    for bytes in [
        &b""[..],
        b"[]",
        b"\xff\xfe{}",
        br#"{"model": {"type": "NoSuchModel"}}"#,
        br#"{"version": "1.0", "model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}"#,
    ] {
        let (err, text) = load_error(bytes);
        assert!(matches!(err, TokenizerError::Invalid { .. }), "{:?}: {text}", String::from_utf8_lossy(bytes));
    }
}

#[test]
fn unreadable_and_oversized_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let err = HfTokenizer::from_file(&missing, TokenizerConfig::default()).unwrap_err();
    assert!(matches!(err, TokenizerError::Read { .. }) && err.to_string().contains("missing.json"));
    let err = HfTokenizer::from_file(dir.path(), TokenizerConfig::default()).unwrap_err();
    assert!(err.to_string().contains("directory"), "{err}");
    #[cfg(unix)]
    {
        let err = within(60, "/dev/zero", || {
            HfTokenizer::from_file("/dev/zero", TokenizerConfig::default()).unwrap_err()
        });
        assert!(err.to_string().contains("device"), "{err}");
    }
    let big = dir.path().join("big.json");
    let file = std::fs::File::create(&big).unwrap();
    file.set_len(MAX_TOKENIZER_FILE_BYTES + 1).unwrap();
    let err = HfTokenizer::from_file(&big, TokenizerConfig::default()).unwrap_err();
    assert!(matches!(err, TokenizerError::TooLarge { .. }) && err.to_string().contains("big.json"), "{err}");
    let bad = TokenizerConfig { context_length: 1, ..Default::default() };
    let json = clip_tokenizer_json().unwrap();
    assert!(matches!(HfTokenizer::from_bytes(json.as_bytes(), bad), Err(TokenizerError::ContextLength(1))));
}

#[test]
fn megabyte_texts_tokenize_quickly() {
    let tok = clip();
    for text in [
        "a photo of a cat on the mat, éé 東京 🐱 &amp; ".repeat(25_000),
        "a".repeat(1 << 20),
        "\u{0}\u{7f}<|endoftext|>".repeat(50_000),
    ] {
        let tok = tok.clone();
        let ids = within(60, "tokenize 1 MB", move || TextTokenizer::tokenize(&tok, &text).unwrap());
        assert_eq!((ids.len(), ids[0], ids[76]), (77, SOT_ID, EOT_ID));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_text_gives_context_ids(text in any::<String>(), repeat in 1usize..50, context_length in 2usize..100, drop in any::<bool>()) {
        let truncation = if drop { Truncation::DropEot } else { Truncation::KeepEot };
        let tok = clip().reconfigured(TokenizerConfig { context_length, truncation }).unwrap();
        let ids = tok.tokenize(&text.repeat(repeat)).unwrap();
        prop_assert_eq!(ids.len(), context_length);
        prop_assert_eq!(ids[0], SOT_ID);
        prop_assert!(ids.iter().all(|&i| i <= EOT_ID));
    }
}
