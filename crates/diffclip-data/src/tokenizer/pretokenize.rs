//! The CLIP pre-tokenizer: splits cleaned text into words, numbers' digits and symbol runs.

use std::sync::OnceLock;

use regex::Regex;

/// The reference pattern, compiled to behave as Python `regex` with `IGNORECASE` does:
/// case-insensitive special tokens and contractions (`'ſ` counts as `'s`), plain letter and
/// digit classes, and `U+0345` (which case-folds to a letter without being one) matched by no
/// branch, so it is dropped like the reference drops it.
const PATTERN: &str = r"(?i:<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d)|\p{L}+|\p{N}|[^\s\p{L}\p{N}\x{345}]+";

fn regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(PATTERN).expect("pre-tokenizer regex"))
}

/// The pre-tokens of (already cleaned) text, in order.
pub(crate) fn pretokens(text: &str) -> impl Iterator<Item = &str> {
    regex().find_iter(text).map(|m| m.as_str())
}

#[cfg(test)]
mod tests {
    use super::pretokens;

    #[test]
    fn splits() {
        let got: Vec<&str> = pretokens("it's 2024, y'all!! <|endoftext|>a\u{345}b").collect();
        assert_eq!(
            got,
            [
                "it",
                "'s",
                "2",
                "0",
                "2",
                "4",
                ",",
                "y",
                "'",
                "all",
                "!!",
                "<|endoftext|>",
                "a",
                "b"
            ]
        );
    }
}
