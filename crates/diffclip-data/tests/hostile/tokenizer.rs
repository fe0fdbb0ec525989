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

#[test]
fn a_megabyte_word_tokenizes_quickly() {
    // One pre-token of a million letters: the merge loop must not be quadratic in it.
    let mut x: u32 = 12345;
    let word: String = (0..1_000_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            char::from(b'a' + ((x >> 16) % 26) as u8)
        })
        .collect();
    let ids = within(60, "tokenize a 1 MB word", move || {
        ClipTokenizer::new().tokenize(&word)
    });
    assert_eq!(ids.len(), 77);
    assert_eq!(ids[76], EOT_ID);
}
