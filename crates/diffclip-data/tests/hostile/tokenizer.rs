//! The tokenizer on huge text.

use super::*;

#[test]
fn context_length_is_bounded() {
    for n in [MAX_CONTEXT_LENGTH + 1, 100_000_000_000, usize::MAX] {
        let err = ClipTokenizer::with_config(TokenizerConfig {
            context_length: n,
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(err, TokenizerError::ContextLength(m) if m == n));
        assert!(
            err.to_string().contains(&MAX_CONTEXT_LENGTH.to_string()),
            "{err}"
        );
    }
    let tok = ClipTokenizer::with_config(TokenizerConfig {
        context_length: MAX_CONTEXT_LENGTH,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(tok.tokenize("a photo").len(), MAX_CONTEXT_LENGTH);
}

#[test]
fn a_megabyte_caption_tokenizes_quickly() {
    let text = "a photo of a cat on the mat, éé 東京 🐱 &amp; ".repeat(25_000);
    let ids = within(60, "tokenize 1 MB", move || {
        ClipTokenizer::new().tokenize(&text)
    });
    assert_eq!(ids.len(), 77);
    assert_eq!(ids[76], EOT_ID);
}
