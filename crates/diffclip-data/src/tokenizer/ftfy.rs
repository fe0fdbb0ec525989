//! The subset of ftfy 6 `fix_text` (default settings) that matters for captions.
//!
//! Per line, repeated until nothing changes: HTML entities (only while no `<` has been seen,
//! as ftfy's `unescape_html="auto"`), mojibake repair ([`super::mojibake`]), C1 controls read
//! as Windows-1252 (`U+0085` -> `…`), Latin ligatures (`ﬁ` -> `fi`, `ǅ` -> `Dž`), full- and
//! half-width forms (NFKC of `U+FF01..U+FFEF`, ideographic space -> space), curly quotes ->
//! ASCII quotes (dashes, primes and `…` are kept, as ftfy keeps them), line breaks, ANSI
//! terminal escapes, unwanted control characters, then NFC. Zero-width characters and bidi
//! controls are kept, as ftfy keeps them.

use std::sync::OnceLock;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

use super::{cp1252, html, mojibake};

/// ftfy's `max_decode_length`: longer lines are fixed in pieces of this many characters.
const MAX_SEGMENT_CHARS: usize = 1_000_000;
/// Upper bound on fix rounds per segment.
const MAX_ROUNDS: usize = 64;

fn ligature(c: char) -> Option<&'static str> {
    Some(match c {
        'Ĳ' => "IJ",
        'ĳ' => "ij",
        'ŉ' => "ʼn",
        'Ǳ' => "DZ",
        'ǲ' => "Dz",
        'ǳ' => "dz",
        'Ǆ' => "DŽ",
        'ǅ' => "Dž",
        'ǆ' => "dž",
        'Ǉ' => "LJ",
        'ǈ' => "Lj",
        'ǉ' => "lj",
        'Ǌ' => "NJ",
        'ǋ' => "Nj",
        'ǌ' => "nj",
        'ﬀ' => "ff",
        'ﬁ' => "fi",
        'ﬂ' => "fl",
        'ﬃ' => "ffi",
        'ﬄ' => "ffl",
        'ﬅ' => "ſt",
        'ﬆ' => "st",
        _ => return None,
    })
}

/// Control characters ftfy removes (tab, LF, FF and CR are kept).
fn is_removed_control(c: char) -> bool {
    matches!(c as u32,
        0x00..=0x08 | 0x0B | 0x0E..=0x1F | 0x7F | 0x206A..=0x206F | 0xFEFF | 0xFFF9..=0xFFFC)
}

/// fix_c1_controls, fix_latin_ligatures, fix_character_width and uncurl_quotes, in ftfy's
/// order (C1 `U+0092` becomes `’` and then `'`; `ŉ` becomes `ʼn` and then `'n`).
fn fix_chars(text: &str) -> String {
    // fix_c1_controls
    let text: String = text
        .chars()
        .map(|c| match c as u32 {
            0x80..=0x9F => cp1252::decode_byte(c as u32 as u8),
            _ => c,
        })
        .collect();
    let mut out = String::with_capacity(text.len());
    // fix_latin_ligatures, fix_character_width and uncurl_quotes are per character and commute.
    for c in text.chars() {
        if let Some(s) = ligature(c) {
            out.push_str(s);
        } else if c == '\u{3000}' {
            out.push(' ');
        } else if ('\u{FF01}'..='\u{FFEF}').contains(&c) {
            out.extend(std::iter::once(c).nfkc());
        } else {
            out.push(c);
        }
    }
    out.chars()
        .map(|c| match c {
            '\u{2BC}' | '\u{2018}'..='\u{201B}' => '\'',
            '\u{201C}'..='\u{201F}' => '"',
            c => c,
        })
        .collect()
}

/// fix_line_breaks, remove_terminal_escapes, remove_control_chars.
fn fix_breaks_and_controls(text: &str) -> String {
    let text = text
        .replace("\r\n", "\n")
        .replace(['\r', '\u{2028}', '\u{2029}', '\u{85}'], "\n");
    let text = if text.contains('\x1B') {
        static ANSI: OnceLock<Regex> = OnceLock::new();
        let re = ANSI.get_or_init(|| Regex::new(r"\x1B\[((?:\d|;)*)([a-zA-Z])").expect("regex"));
        re.replace_all(&text, "").into_owned()
    } else {
        text
    };
    text.chars().filter(|&c| !is_removed_control(c)).collect()
}

/// ftfy's `fix_and_explain` on one segment: all fixes, repeated to a fixed point.
fn fix_segment(segment: &str, unescape_html: bool) -> String {
    let mut text = segment.to_owned();
    // ftfy loops until nothing changes; every fix shortens or settles the text, the cap only
    // guards against a pathological input.
    for _ in 0..MAX_ROUNDS {
        let orig = text.clone();
        if unescape_html {
            text = html::ftfy_unescape(&text);
        }
        text = mojibake::fix_mojibake(&text);
        text = fix_chars(&text);
        text = fix_breaks_and_controls(&text);
        text = text.nfc().collect();
        if text == orig {
            break;
        }
    }
    text
}

/// ftfy `fix_text` with default settings (see the module docs for what is covered).
///
/// ```
/// # use diffclip_data::tokenizer::fix_text;
/// assert_eq!(fix_text("\u{201C}ﬁsh\u{201D} &amp; ｃｈｉｐｓ"), "\"fish\" & chips");
/// ```
pub fn fix_text(text: &str) -> String {
    if text.is_ascii() && !text.contains(['&', '\r', '\x1B']) && !text.contains(is_removed_control)
    {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut unescape_html = true;
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.find('\n').map_or(rest.len(), |i| i + 1);
        if let Some((i, _)) = rest[..end].char_indices().nth(MAX_SEGMENT_CHARS) {
            end = i;
        }
        let (segment, tail) = rest.split_at(end);
        if segment.contains('<') {
            unescape_html = false;
        }
        out.push_str(&fix_segment(segment, unescape_html));
        rest = tail;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::fix_text;

    #[test]
    fn fixes() {
        assert_eq!(fix_text("next\u{85}line"), "next\u{2026}line");
        assert_eq!(fix_text("null\0byte \u{FEFF}bom"), "nullbyte bom");
        assert_eq!(fix_text("\u{1B}[31mred\u{1B}[0m"), "red");
        assert_eq!(fix_text("ﾊﾞ ＡＢＣ"), "バ ABC");
        assert_eq!(fix_text("&lt;b&gt; x"), "<b> x");
        assert_eq!(fix_text("<b> &amp;"), "<b> &amp;");
        assert_eq!(fix_text("a\r\nb"), "a\nb");
        assert_eq!(
            fix_text("zero\u{200B}width \u{202E}x"),
            "zero\u{200B}width \u{202E}x"
        );
        assert_eq!(fix_text("&rsquo;"), "'");
        assert_eq!(fix_text("cafe\u{301}"), "café");
    }
}
