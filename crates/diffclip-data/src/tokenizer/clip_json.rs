//! The HuggingFace `tokenizer.json` of OpenAI's CLIP, built from the embedded merges file
//! (feature `hf-tokenizer`).

use serde_json::{Map, Value, json};

use super::TokenizerError;
use super::vocab::{EOT_ID, EOT_TEXT, SOT_ID, SOT_TEXT, VOCAB_SIZE, base_tokens, merge_pairs};

/// The pre-tokenizer pattern of the hub's CLIP `tokenizer.json` (special tokens, contractions,
/// letter runs, single digits, symbol runs; whitespace dropped).
const SPLIT_PATTERN: &str = r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

/// The `tokenizer.json` that Transformers writes for `CLIPTokenizerFast` (the file in the
/// `openai/clip-vit-*` hub repositories), with the 49,408-token vocabulary and 48,894 merges
/// of the merges file embedded in this crate: normalizer NFC → `\s+` to one space →
/// lower-case; pre-tokenizer [`SPLIT_PATTERN`] split then byte-level; BPE with the `</w>`
/// end-of-word suffix and `<|endoftext|>` as unknown token; `<|startoftext|>` … `<|endoftext|>`
/// added by a RoBERTa post-processor; no truncation or padding. About 1.6 MB of JSON.
///
/// Write it to a file to use CLIP through [`HfTokenizer`](super::HfTokenizer) (or through
/// Python's `tokenizers`) where the hub's copy is not at hand.
///
/// ```
/// let json: serde_json::Value = serde_json::from_str(&diffclip_data::tokenizer::clip_tokenizer_json().unwrap()).unwrap();
/// assert_eq!(json["model"]["vocab"]["<|endoftext|>"], 49407);
/// assert_eq!(json["model"]["merges"][0], "i n");
/// ```
pub fn clip_tokenizer_json() -> Result<String, TokenizerError> {
    let merges = merge_pairs()?;
    let mut tokens = base_tokens();
    tokens.extend(merges.iter().map(|(a, b)| format!("{a}{b}")));
    tokens.push(SOT_TEXT.to_owned());
    tokens.push(EOT_TEXT.to_owned());
    if tokens.len() != VOCAB_SIZE {
        return Err(TokenizerError::Vocab(format!(
            "{} tokens, expected {VOCAB_SIZE}",
            tokens.len()
        )));
    }
    let vocab: Map<String, Value> = tokens
        .into_iter()
        .enumerate()
        .map(|(id, t)| (t, Value::from(id)))
        .collect();
    if vocab.len() != VOCAB_SIZE {
        return Err(TokenizerError::Vocab("duplicate tokens in the merges file".into()));
    }
    let merges: Vec<String> = merges.iter().map(|(a, b)| format!("{a} {b}")).collect();
    let special = |id: u32, content: &str| {
        json!({"id": id, "content": content, "single_word": false, "lstrip": false,
               "rstrip": false, "normalized": true, "special": true})
    };
    let file = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [special(SOT_ID, SOT_TEXT), special(EOT_ID, EOT_TEXT)],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFC"},
            {"type": "Replace", "pattern": {"Regex": r"\s+"}, "content": " "},
            {"type": "Lowercase"},
        ]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": SPLIT_PATTERN}, "behavior": "Removed", "invert": true},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        ]},
        "post_processor": {"type": "RobertaProcessing", "sep": [EOT_TEXT, EOT_ID],
            "cls": [SOT_TEXT, SOT_ID], "trim_offsets": false, "add_prefix_space": false},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": EOT_TEXT,
            "continuing_subword_prefix": "", "end_of_word_suffix": "</w>", "fuse_unk": false,
            "byte_fallback": false, "vocab": vocab, "merges": merges},
    });
    Ok(file.to_string())
}
