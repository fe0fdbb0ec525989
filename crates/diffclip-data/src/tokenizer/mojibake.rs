//! Repair of UTF-8 text that was decoded as Windows-1252 / Latin-1 ("mojibake", `cafÃ©`).
//!
//! A heuristic in the spirit of ftfy's `fix_encoding`, limited to the Windows-1252 / Latin-1
//! family, which covers the bulk of real-world caption mojibake (`doesnâ€™t`, `Ã  la carte`,
//! `ðŸ˜€`). It does not handle the rarer Windows-1250/1251/1253/1254/1257, ISO-8859-2, MacRoman
//! or CP437 mix-ups, nor CESU-8. It is not ftfy's badness heuristic, so on rare inputs it
//! repairs what ftfy leaves alone or the reverse (e.g. ftfy keeps a lone `â„¢`, so does this).
//!
//! Rules:
//! 1. A *sequence* is a run of characters whose Windows-1252 bytes form one well-formed UTF-8
//!    multi-byte sequence decoding to a [`plausible`] character (or a C1 control, the middle
//!    state of double mojibake). `ß“` (German closing quote) decodes to an NKo letter: not one.
//! 2. Adjacent sequences form a *run*. A run is *convincing* when it has two or more
//!    sequences, one containing a C1 control, or one that decodes to a character mojibake
//!    usually hides ([`common`]: Latin-1, Latin extended-A and -additional, Greek, Cyrillic,
//!    Hebrew letters, general punctuation, `€`, arrows/symbols, ligatures, emoji) and does not
//!    end in `’`, `”` or `…`. A lone `é”…` (-> a CJK character) or `Ñ”` is not convincing.
//! 3. `Ã` / `Â` before a space also count as a convincing sequence (`à` / no-break space whose
//!    `0xA0` byte became a space: `Ã la carte`; see `a0_seq`). Text without a convincing run
//!    is left unchanged.
//! 4. If the whole text is Windows-1252-encodable and its bytes decode as UTF-8 to plausible
//!    characters only (after putting back `0xA0` bytes that became spaces, and marking bytes
//!    lost to `U+FFFD`), the whole text is decoded; otherwise each convincing run is.
//! 5. Repeat while the text changes (double mojibake).

use std::sync::OnceLock;

use regex::bytes::{Captures, Regex};

use super::cp1252;

/// Whether `c` is a character that mojibake repair may produce.
fn plausible(c: char) -> bool {
    matches!(c as u32,
        0xA0..=0x24F          // Latin-1 supplement, Latin extended-A/B
        | 0x2B0..=0x6FF       // modifiers, combining marks, Greek, Cyrillic, Armenian, Hebrew, Arabic
        | 0x900..=0x1FFF      // Indic, Thai, ..., Latin extended additional, Greek extended
        | 0x2000..=0xDFFF     // punctuation, symbols, CJK, Hangul (surrogates cannot occur)
        | 0xF900..=0xFDCF | 0xFDF0..=0xFFFD
        | 0x10000..=0x3FFFF   // emoji, math alphanumerics, CJK extensions
        | 0xE0000..=0xE007F   // tags (flag emoji)
    )
}

/// Length of a UTF-8 sequence starting with `lead` (0 for a non-lead byte).
fn seq_len(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 0,
    }
}

/// Decodes one well-formed UTF-8 sequence that is exactly `bytes`.
fn decode_one(bytes: &[u8]) -> Option<char> {
    let s = std::str::from_utf8(bytes).ok()?;
    let mut chars = s.chars();
    let c = chars.next()?;
    chars.next().is_none().then_some(c)
}

/// Puts back `0xA0` bytes that a Windows-1252 tool turned into spaces inside UTF-8 sequences.
fn restore_byte_a0(bytes: &[u8]) -> Vec<u8> {
    static A_GRAVE: OnceLock<Regex> = OnceLock::new();
    static ALTERED: OnceLock<Regex> = OnceLock::new();
    // "Ã " as a word is almost always "à " (but not Portuguese "às", "àquele", ...).
    let a_grave =
        A_GRAVE.get_or_init(|| Regex::new(r"(?-u)\xC3 ( |quele|quela|quilo|s )?").expect("regex"));
    let bytes = a_grave.replace_all(bytes, |c: &Captures| {
        if c.get(1).is_some() {
            c[0].to_vec()
        } else {
            b"\xC3\xA0 ".to_vec()
        }
    });
    let cont = r"[\x80-\x84\x86-\x9F\xA1-\xBF]";
    let altered = ALTERED.get_or_init(|| {
        let pattern = format!(
            r"(?-u)[\xC2\xC3] |[\xE2\xE3] {cont}|[\xE0-\xE3]{cont} |\xF0 [\x80-\xBF]{{2}}|\xF0[\x80-\xBF] [\x80-\xBF]|\xF0[\x80-\xBF]{{2}} "
        );
        Regex::new(&pattern).expect("regex")
    });
    altered
        .replace_all(&bytes, |c: &Captures| {
            c[0].iter()
                .map(|&b| if b == b' ' { 0xA0 } else { b })
                .collect::<Vec<u8>>()
        })
        .into_owned()
}

/// Replaces UTF-8 sequences damaged by a lossy decoder (bytes marked `0x1A`, or one `?`) by
/// the encoding of `U+FFFD`.
fn replace_lossy(bytes: &[u8]) -> Vec<u8> {
    static LOSSY: OnceLock<Regex> = OnceLock::new();
    let lossy = LOSSY.get_or_init(|| {
        let (c, l, cl) = (r"[\x80-\xBF\x1A]", r"[\x1A?]", r"[\x1A\x80-\xBF]");
        let pattern = format!(
            r"(?-u)[\xC2-\xDF]\x1A|[\xC2\xC3]\?|[\xE0-\xEF]{l}{cl}|[\xE0-\xEF]{cl}{l}|[\xF0-\xF4]{l}{c}{c}|[\xF0-\xF4]{cl}{l}{cl}|[\xF0-\xF4]{cl}{cl}{l}|\x1A"
        );
        Regex::new(&pattern).expect("regex")
    });
    lossy.replace_all(bytes, &b"\xEF\xBF\xBD"[..]).into_owned()
}

/// Characters that a single mojibake sequence convincingly stands for.
fn common(c: char) -> bool {
    matches!(c as u32,
        0x80..=0x17F | 0x370..=0x4FF | 0x5D0..=0x5EA | 0x1E00..=0x1EFF | 0x2000..=0x20CF | 0x2190..=0x23FF | 0x2500..=0x27BF
        | 0xFB00..=0xFB4F | 0xFE0F | 0xFFFD | 0x1F000..=0x1FAFF)
}

/// One decodable sequence: `len` characters from `start` stand for `ch`.
#[derive(Clone, Copy)]
struct Seq {
    start: usize,
    len: usize,
    ch: char,
    /// Some of the `len` characters is a C1 control: Latin-1 mojibake, not real text.
    has_c1: bool,
}

/// The decodable sequences, found greedily from the left.
fn find_seqs(chars: &[char], bytes: &[Option<u8>]) -> Vec<Seq> {
    let mut seqs = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if let Some(seq) = a0_seq(chars, i) {
            seqs.push(seq);
            i += seq.len;
            continue;
        }
        let len = bytes[i].map_or(0, seq_len);
        if len > 0 && i + len <= chars.len() {
            let seq: Option<Vec<u8>> = bytes[i..i + len].iter().copied().collect();
            let ch = seq.as_deref().and_then(decode_one);
            if let Some(ch) = ch.filter(|&c| plausible(c) || ('\u{80}'..='\u{9F}').contains(&c)) {
                let has_c1 = chars[i..i + len]
                    .iter()
                    .any(|c| ('\u{80}'..='\u{9F}').contains(c));
                seqs.push(Seq {
                    start: i,
                    len,
                    ch,
                    has_c1,
                });
                i += len;
                continue;
            }
        }
        i += 1;
    }
    seqs
}

/// A two-character sequence ending in `’`, `”` or `…`: as likely a letter followed by
/// punctuation (`NIÑO”`) as mojibake, so it does not convince on its own.
fn ends_ambiguous(seq: Seq, chars: &[char]) -> bool {
    seq.len == 2 && matches!(chars[seq.start + 1], '\u{2019}' | '\u{201D}' | '\u{2026}')
}

/// Groups adjacent sequences and keeps the convincing runs.
fn convincing_runs<'a>(seqs: &'a [Seq], chars: &[char]) -> Vec<&'a [Seq]> {
    let mut runs = Vec::new();
    let mut from = 0;
    for i in 1..=seqs.len() {
        if i == seqs.len() || seqs[i].start != seqs[i - 1].start + seqs[i - 1].len {
            let run = &seqs[from..i];
            if run.len() >= 2
                || run[0].has_c1
                || (common(run[0].ch) && !ends_ambiguous(run[0], chars))
            {
                runs.push(run);
            }
            from = i;
        }
    }
    runs
}

/// Decodes the given runs in place.
fn fix_runs(chars: &[char], runs: &[&[Seq]]) -> String {
    let mut out = String::with_capacity(chars.len());
    let mut i = 0;
    for seq in runs.iter().flat_map(|r| r.iter()) {
        out.extend(&chars[i..seq.start]);
        out.push(seq.ch);
        i = seq.start + seq.len;
    }
    out.extend(&chars[i..]);
    out
}

/// Decodes the whole text if it is consistently UTF-8 read as Windows-1252.
fn fix_whole(text: &str, bytes: &[Option<u8>]) -> Option<String> {
    let has_sub = text.contains('\u{1A}');
    let encoded: Vec<u8> = text
        .chars()
        .zip(bytes)
        .map(|(c, b)| match (c, b) {
            (_, Some(b)) => Some(*b),
            ('\u{FFFD}', None) if !has_sub => Some(0x1A),
            _ => None,
        })
        .collect::<Option<Vec<u8>>>()?;
    let encoded = replace_lossy(&restore_byte_a0(&encoded));
    let decoded = String::from_utf8(encoded).ok()?;
    let ok = decoded
        .chars()
        .all(|c| c.is_ascii() || plausible(c) || ('\u{80}'..='\u{9F}').contains(&c));
    (ok && decoded != text).then_some(decoded)
}

/// `Ã` or `Â` then a space at `i`, not after an upper-case letter (`IRMÃ ` is Portuguese):
/// the trace of `à` / a no-break space whose `0xA0` byte became a space (`Ã la carte`).
/// Returns the sequence it stands for.
fn a0_seq(chars: &[char], i: usize) -> Option<Seq> {
    let lead = *chars.get(i)?;
    if !matches!(lead, 'Ã' | 'Â') || chars.get(i + 1) != Some(&' ') {
        return None;
    }
    if i > 0 && chars[i - 1].is_uppercase() {
        return None;
    }
    let seq = |len, ch| Seq {
        start: i,
        len,
        ch,
        has_c1: false,
    };
    if lead == 'Â' {
        return Some(seq(2, '\u{A0}'));
    }
    // "Ã " is "à " (the word), except in Portuguese "às", "àquele", ... where the space is
    // the lost 0xA0 itself.
    let rest: String = chars[i + 2..].iter().take(6).collect();
    let glued = ["quele", "quela", "quilo", "s "]
        .iter()
        .any(|p| rest.starts_with(p))
        || rest.starts_with(' ');
    Some(seq(if glued { 2 } else { 1 }, 'à'))
}

/// One round of repair; returns `None` when nothing changes.
fn fix_once(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let bytes: Vec<Option<u8>> = chars.iter().map(|&c| cp1252::encode_char(c)).collect();
    let seqs = find_seqs(&chars, &bytes);
    let runs = convincing_runs(&seqs, &chars);
    if runs.is_empty() {
        return None;
    }
    Some(fix_whole(text, &bytes).unwrap_or_else(|| fix_runs(&chars, &runs)))
}

/// Repairs Windows-1252 / Latin-1 mojibake (see the module docs for the rules).
pub(crate) fn fix_mojibake(text: &str) -> String {
    let mut text = text.to_owned();
    for _ in 0..16 {
        if text.is_ascii() {
            break;
        }
        match fix_once(&text) {
            Some(fixed) if fixed != text => text = fixed,
            _ => break,
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::fix_mojibake as fix;

    #[test]
    fn repairs() {
        assert_eq!(fix("cafÃ©"), "café");
        assert_eq!(fix("doesnâ€™t"), "doesn\u{2019}t");
        assert_eq!(
            fix("donâ€™t â€œquoteâ€\u{9d}"),
            "don\u{2019}t \u{201C}quote\u{201D}"
        );
        assert_eq!(fix("Ã\u{a0} la carte"), "à la carte");
        assert_eq!(fix("Ã la carte"), "à la carte");
        assert_eq!(fix("東京 Ã la carte, Ã s 5"), "東京 à la carte, às 5");
        assert_eq!(fix("ðŸ˜€ smile"), "\u{1F600} smile");
        assert_eq!(fix("â€œlossyâ€\u{FFFD}"), "\u{201C}lossy\u{FFFD}");
        // Mixed: a real non-1252 character next to mojibake.
        assert_eq!(fix("日本 cafÃ©"), "日本 café");
        // Double mojibake.
        assert_eq!(fix("cafÃƒÂ©"), "café");
    }

    #[test]
    fn leaves_legit_text() {
        for s in [
            "café naïve",
            "„Fuß“",
            "Zürich",
            "São Paulo",
            "Ñandú…",
            "½ × 2",
            "日本語",
            "¿Qué?",
        ] {
            assert_eq!(fix(s), s);
        }
    }
}
