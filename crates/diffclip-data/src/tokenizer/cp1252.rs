//! Windows-1252 ("sloppy" variant: the five unassigned bytes map to the C1 controls).

/// What bytes `0x80 ..= 0x9F` decode to; bytes `0xA0 ..= 0xFF` are Latin-1.
const HIGH: [char; 32] = [
    '\u{20AC}', '\u{81}', '\u{201A}', '\u{192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{2C6}', '\u{2030}', '\u{160}', '\u{2039}', '\u{152}', '\u{8D}', '\u{17D}', '\u{8F}',
    '\u{90}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{2DC}', '\u{2122}', '\u{161}', '\u{203A}', '\u{153}', '\u{9D}', '\u{17E}', '\u{178}',
];

/// Decodes one byte as sloppy Windows-1252.
pub(crate) fn decode_byte(b: u8) -> char {
    match b {
        0x80..=0x9F => HIGH[(b - 0x80) as usize],
        _ => char::from(b),
    }
}

/// Encodes one character as a byte of sloppy Windows-1252 or Latin-1 (C1 controls map to
/// themselves, as in Latin-1), or `None` when neither encoding has it.
pub(crate) fn encode_char(c: char) -> Option<u8> {
    let cp = c as u32;
    if cp < 0x100 {
        return Some(cp as u8);
    }
    HIGH.iter().position(|&h| h == c).map(|i| 0x80 + i as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for b in 0..=255u8 {
            assert_eq!(encode_char(decode_byte(b)), Some(b));
        }
        assert_eq!(encode_char('\u{2019}'), Some(0x92));
        assert_eq!(encode_char('\u{3042}'), None);
    }
}
