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
