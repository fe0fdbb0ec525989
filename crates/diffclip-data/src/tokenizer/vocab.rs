//! The CLIP vocabulary: byte symbols, merge ranks and the id <-> string tables.
//!
//! Layout of the 49,408 ids (identical in OpenAI CLIP, open_clip and the DiffCLIP authors' code):
//!
//! | ids | content |
//! |---|---|
//! | `0 .. 256` | the 256 byte symbols, in GPT-2 `bytes_to_unicode` order |
//! | `256 .. 512` | the same symbols with the `</w>` end-of-word suffix |
//! | `512 .. 49406` | one token per merge rule, in merge-rank order (id = 512 + rank) |
//! | `49406`, `49407` | `<|startoftext|>`, `<|endoftext|>` |

use std::collections::HashMap;
use std::io::Read;

use super::error::TokenizerError;

/// The gzip-compressed merges file shipped with OpenAI CLIP.
const BPE_VOCAB_GZ: &[u8] = include_bytes!("../../assets/bpe_simple_vocab_16e6.txt.gz");

/// Number of merge rules used (lines `1 ..= 48_894` of the merges file).
pub(crate) const NUM_MERGES: usize = 49_152 - 256 - 2;
/// Id of `<|startoftext|>`.
pub const SOT_ID: u32 = 49_406;
/// Id of `<|endoftext|>`.
pub const EOT_ID: u32 = 49_407;
/// Id used to pad a tokenized text up to the context length.
pub const PAD_ID: u32 = 0;
/// Total vocabulary size.
pub const VOCAB_SIZE: usize = 49_408;

/// Text of the start-of-text special token.
pub const SOT_TEXT: &str = "<|startoftext|>";
/// Text of the end-of-text special token.
pub const EOT_TEXT: &str = "<|endoftext|>";

const END_OF_WORD: &str = "</w>";

/// The bytes in GPT-2 `bytes_to_unicode` order, paired with their printable stand-in characters.
///
/// Printable Latin-1 bytes stand for themselves; the other 68 bytes are mapped to `U+0100 + n`.
fn bytes_to_unicode() -> Vec<(u8, char)> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut table: Vec<(u8, char)> = (0..=255u8)
        .filter(|&b| printable(b))
        .map(|b| (b, char::from(b)))
        .collect();
    let mut n = 0u32;
    for b in 0..=255u8 {
        if !printable(b) {
            let c = char::from_u32(256 + n).expect("valid code point");
            table.push((b, c));
            n += 1;
        }
    }
    table
}

/// Vocabulary tables derived from the embedded merges file.
pub(crate) struct Vocab {
    /// Id of each byte's symbol (without `</w>`), indexed by byte value.
    pub byte_ids: [u32; 256],
    /// Merge rank of each mergeable pair of ids; the merged token's id is `512 + rank`.
    pub ranks: HashMap<(u32, u32), u32>,
    /// The bytes each id decodes to; a trailing `</w>` decodes to one space.
    pub id_bytes: Vec<Vec<u8>>,
}

/// The merge rules of the embedded merges file, as `(left, right)` token strings in rank order.
pub(crate) fn merge_pairs() -> Result<Vec<(String, String)>, TokenizerError> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(BPE_VOCAB_GZ)
        .read_to_string(&mut text)
        .map_err(|e| TokenizerError::Vocab(format!("cannot decompress merges: {e}")))?;
    let lines: Vec<&str> = text.split('\n').skip(1).take(NUM_MERGES).collect();
    if lines.len() != NUM_MERGES {
        return Err(TokenizerError::Vocab(format!(
            "merges file has {} merge lines, expected {NUM_MERGES}",
            lines.len()
        )));
    }
    lines
        .iter()
        .enumerate()
        .map(|(rank, line)| {
            line.split_once(' ')
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .ok_or_else(|| TokenizerError::Vocab(format!("bad merge line {}", rank + 1)))
        })
        .collect()
}

/// The 512 base token strings (ids `0 .. 512`): each byte symbol, then each with `</w>`.
pub(crate) fn base_tokens() -> Vec<String> {
    let table = bytes_to_unicode();
    let plain = table.iter().map(|&(_, c)| c.to_string());
    let eow = table.iter().map(|&(_, c)| format!("{c}{END_OF_WORD}"));
    plain.chain(eow).collect()
}

impl Vocab {
    /// Decompresses and parses the embedded merges file.
    pub fn load() -> Result<Self, TokenizerError> {
        let merges = merge_pairs()?;
        let table = bytes_to_unicode();
        let mut byte_ids = [0u32; 256];
        for (i, &(b, _)) in table.iter().enumerate() {
            byte_ids[b as usize] = i as u32;
        }
        let mut tokens = base_tokens();
        tokens.reserve(VOCAB_SIZE - tokens.len());
        let mut encoder: HashMap<String, u32> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();

        let mut ranks = HashMap::with_capacity(NUM_MERGES);
        for (rank, (a, b)) in merges.iter().enumerate() {
            let id_of = |s: &str| {
                encoder.get(s).copied().ok_or_else(|| {
                    TokenizerError::Vocab(format!(
                        "merge line {} uses unknown token {s:?}",
                        rank + 1
                    ))
                })
            };
            let pair = (id_of(a)?, id_of(b)?);
            let merged = format!("{a}{b}");
            let id = tokens.len() as u32;
            ranks.insert(pair, rank as u32);
            encoder.insert(merged.clone(), id);
            tokens.push(merged);
        }
        tokens.push(SOT_TEXT.to_string());
        tokens.push(EOT_TEXT.to_string());
        debug_assert_eq!(tokens.len(), VOCAB_SIZE);

        let byte_of: HashMap<char, u8> = table.iter().map(|&(b, c)| (c, b)).collect();
        let id_bytes = tokens
            .iter()
            .enumerate()
            .map(|(id, tok)| {
                if id as u32 >= SOT_ID {
                    return tok.as_bytes().to_vec();
                }
                let (body, eow) = match tok.strip_suffix(END_OF_WORD) {
                    Some(body) => (body, true),
                    None => (tok.as_str(), false),
                };
                let mut bytes: Vec<u8> = body.chars().map(|c| byte_of[&c]).collect();
                if eow {
                    bytes.push(b' ');
                }
                bytes
            })
            .collect();

        Ok(Self {
            byte_ids,
            ranks,
            id_bytes,
        })
    }

    /// Id of the `</w>` form of a byte symbol id.
    pub fn end_of_word(id: u32) -> u32 {
        debug_assert!(id < 256);
        id + 256
    }

    /// Id of the token produced by merging the pair of the given rank.
    pub fn merged_id(rank: u32) -> u32 {
        512 + rank
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let v = Vocab::load().unwrap();
        assert_eq!(v.id_bytes.len(), VOCAB_SIZE);
        assert_eq!(v.ranks.len(), NUM_MERGES);
        // '!' is the first printable byte.
        assert_eq!(v.byte_ids[b'!' as usize], 0);
        assert_eq!(v.id_bytes[0], b"!");
        assert_eq!(v.id_bytes[256], b"! ");
        // First merge "i n".
        let i = v.byte_ids[b'i' as usize];
        let n = v.byte_ids[b'n' as usize];
        assert_eq!(v.ranks[&(i, n)], 0);
        assert_eq!(v.id_bytes[Vocab::merged_id(0) as usize], b"in");
        assert_eq!(v.id_bytes[SOT_ID as usize], SOT_TEXT.as_bytes());
    }
}
