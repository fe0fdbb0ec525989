//! Caption cleaning, as the reference `whitespace_clean(basic_clean(text)).lower()`.

use super::ftfy::fix_text;
use super::html::html_unescape;

/// Cleans text exactly as CLIP's tokenizers do before splitting it.
///
/// ftfy-style fixing ([`fix_text`]), HTML unescaping twice, whitespace runs collapsed to one
/// space, leading/trailing whitespace stripped, then lower-casing.
///
/// ```
/// # use diffclip_data::tokenizer::clean_text;
/// assert_eq!(clean_text("  A \u{201C}Caf&eacute;\u{201D}\n&amp;amp;  ﬁsh "), "a \"café\" & fish");
/// ```
pub fn clean_text(text: &str) -> String {
    let fixed = fix_text(text);
    let unescaped = html_unescape(&html_unescape(&fixed));
    let mut out = String::with_capacity(unescaped.len());
    for word in unescaped.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out.to_lowercase()
}

/// Whether `text` holds nothing a tokenizer would keep: only white space and control
/// characters, once cleaned ([`clean_text`] is empty). Such a caption or query embeds as every
/// other blank one, meaninglessly, so readers treat it as a blank line.
///
/// ```
/// use diffclip_data::tokenizer::is_blank;
/// assert!(is_blank("  \t") && is_blank("\u{0}\u{1}") && is_blank("&#32;"));
/// assert!(!is_blank("a dog") && !is_blank("&amp;") && !is_blank("猫"));
/// // Exactly as cleaning says, mis-decoded text included.
/// for text in ["\u{e2}\u{20ac}\u{192}", "\u{1b}[0m", "\u{93}", "\u{c2}\u{a0}"] {
///     assert_eq!(is_blank(text), diffclip_data::tokenizer::clean_text(text).is_empty(), "{text:?}");
/// }
/// ```
pub fn is_blank(text: &str) -> bool {
    // Decided without cleaning where cleaning cannot change the answer: white space and ASCII
    // controls stay nothing (C1 controls may be mis-decoded quotes, which ftfy repairs), and an
    // ASCII letter or digit, or a letter past Latin-1's mojibake (U+02FF), stays something,
    // unless an entity or a terminal escape could take it away.
    if text.chars().all(|c| c.is_whitespace() || c.is_ascii_control()) {
        return true;
    }
    let kept = |c: char| c.is_ascii_alphanumeric() || (c > '\u{2ff}' && c.is_alphanumeric());
    if !text.contains(['&', '\u{1b}']) && text.chars().any(kept) {
        return false;
    }
    clean_text(text).is_empty()
}

/// The positions `(first, again)` of the first two of `texts` the CLIP tokenizer reads alike
/// (equal once cleaned: case, spacing, HTML entities, mis-decoded characters), if two are. Class
/// names or labels read alike get the same prompts, so zero-shot cannot tell them apart.
///
/// ```
/// use diffclip_data::tokenizer::first_read_alike;
/// assert_eq!(first_read_alike(&["cat", "dog", "  CAT "]), Some((0, 2)));
/// assert_eq!(first_read_alike(&["fish &amp; chips", "fish & chips"]), Some((0, 1)));
/// assert_eq!(first_read_alike(&["cat", "dog"]), None);
/// ```
pub fn first_read_alike<S: AsRef<str>>(texts: &[S]) -> Option<(usize, usize)> {
    let mut seen = std::collections::HashMap::with_capacity(texts.len());
    texts.iter().enumerate().find_map(|(i, t)| seen.insert(clean_text(t.as_ref()), i).map(|first| (first, i)))
}
