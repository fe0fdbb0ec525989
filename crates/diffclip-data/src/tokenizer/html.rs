//! HTML entity decoding: Python's `html.unescape` and ftfy's stricter `unescape_html`.

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::{Captures, Regex};

use super::cp1252;

/// The HTML5 named character references, `name<TAB>hex code points` per line.
const ENTITIES_TXT: &str = include_str!("../../assets/html5_entities.txt");

/// Named references keyed without the leading `&` (`"amp;"`, and legacy `"amp"`).
fn html5() -> &'static HashMap<&'static str, String> {
    static TABLE: OnceLock<HashMap<&'static str, String>> = OnceLock::new();
    TABLE.get_or_init(|| {
        ENTITIES_TXT
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|line| {
                let (name, cps) = line.split_once('\t').expect("entity line has a tab");
                let value = cps
                    .split(' ')
                    .map(|h| u32::from_str_radix(h, 16).ok().and_then(char::from_u32))
                    .collect::<Option<String>>()
                    .expect("entity value is valid hex code points");
                (name, value)
            })
            .collect()
    })
}

/// Decodes a numeric character reference the way Python's `html.unescape` does.
fn numeric_ref(digits: &str, radix: u32) -> String {
    let num = digits.chars().fold(0u64, |acc, d| {
        let v = d.to_digit(radix).unwrap_or(0) as u64;
        acc.saturating_mul(radix as u64).saturating_add(v)
    });
    match num {
        0x00 => "\u{FFFD}".into(),
        0x0D => "\r".into(),
        0x80..=0x9F => cp1252::decode_byte(num as u8).to_string(),
        0xD800..=0xDFFF => "\u{FFFD}".into(),
        n if n > 0x10FFFF => "\u{FFFD}".into(),
        0x01..=0x08 | 0x0B | 0x0E..=0x1F | 0x7F | 0xFDD0..=0xFDEF => String::new(),
        n if n & 0xFFFE == 0xFFFE => String::new(),
        n => char::from_u32(n as u32)
            .map(String::from)
            .unwrap_or_default(),
    }
}

/// Python's `html.unescape`: numeric references (with or without `;`), named references, and
/// the longest legacy name that prefixes an unknown name (`&ampx` -> `&x`).
///
/// ```
/// # use diffclip_data::tokenizer::html_unescape;
/// assert_eq!(html_unescape("fish &amp; chips &#x263A; &notit;"), "fish & chips \u{263A} \u{AC}it;");
/// ```
pub fn html_unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\x0C <&#;]{1,32};?)").expect("regex")
    });
    re.replace_all(text, |caps: &Captures| {
        let s = &caps[1];
        if let Some(num) = s.strip_prefix('#') {
            let num = num.trim_end_matches(';');
            return match num.strip_prefix(['x', 'X']) {
                Some(hex) => numeric_ref(hex, 16),
                None => numeric_ref(num, 10),
            };
        }
        let table = html5();
        if let Some(v) = table.get(s) {
            return v.clone();
        }
        // Longest prefix (at least 2 characters, shorter than the whole) that is a legacy name.
        let bounds: Vec<usize> = s.char_indices().map(|(i, _)| i).skip(2).collect();
        for &end in bounds.iter().rev() {
            if let Some(v) = table.get(&s[..end]) {
                return format!("{v}{}", &s[end..]);
            }
        }
        format!("&{s}")
    })
    .into_owned()
}

/// ftfy's entity table: names ending in `;` (keyed with `&`) plus all-caps forms of the
/// lower-case names (`&EACUTE;` -> `É`) whose caps form is not itself decodable.
fn ftfy_entities() -> &'static HashMap<String, String> {
    static TABLE: OnceLock<HashMap<String, String>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut map = HashMap::new();
        for (name, value) in html5().iter().filter(|(n, _)| n.ends_with(';')) {
            map.insert(format!("&{name}"), value.clone());
            if *name == name.to_lowercase() {
                let upper = format!("&{}", name.to_uppercase());
                if html_unescape(&upper) == upper {
                    map.insert(upper, value.to_uppercase());
                }
            }
        }
        map
    })
}

/// ftfy's `unescape_html`: only `&name;` / `&#num;` forms that end in a semicolon.
pub(crate) fn ftfy_unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"&#?[0-9A-Za-z]{1,24};").expect("regex"));
    re.replace_all(text, |caps: &Captures| {
        let m = &caps[0];
        if let Some(v) = ftfy_entities().get(m) {
            return v.clone();
        }
        if m.starts_with("&#") {
            let decoded = html_unescape(m);
            if !decoded.contains(';') {
                return decoded;
            }
        }
        m.to_owned()
    })
    .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_unescape() {
        assert_eq!(html_unescape("&lt;b&gt;"), "<b>");
        assert_eq!(html_unescape("&amp"), "&");
        assert_eq!(html_unescape("&ampfoo"), "&foo");
        assert_eq!(html_unescape("&unknown; &"), "&unknown; &");
        assert_eq!(
            html_unescape("&#65;&#x42&#0;&#128;&#x110000;&#1;"),
            "AB\u{FFFD}\u{20AC}\u{FFFD}"
        );
        assert_eq!(html_unescape("&#99999999999999999999999;"), "\u{FFFD}");
        assert_eq!(html_unescape("&NotEqualTilde;"), "\u{2242}\u{338}");
    }

    #[test]
    fn ftfy_variant() {
        assert_eq!(
            ftfy_unescape("P&EACUTE;REZ &amp &#65; &#59;"),
            "P\u{C9}REZ &amp A &#59;"
        );
        assert_eq!(ftfy_unescape("BUNDESSTRA&SZLIG;E"), "BUNDESSTRASSE");
        assert_eq!(
            ftfy_unescape("&ntilde; &Ntilde; &NTILDE; &nTILDE;"),
            "ñ Ñ Ñ &nTILDE;"
        );
    }
}
