//! Byte-level BPE of one pre-token, with a per-word cache.

use std::collections::HashMap;
use std::sync::RwLock;

use super::vocab::Vocab;

/// Cached words above this count clear the cache (bounds memory on unbounded text streams).
const CACHE_CAPACITY: usize = 1 << 20;
/// Words longer than this (in bytes) are not cached.
const MAX_CACHED_WORD: usize = 64;

/// The CLIP merge procedure on byte symbols, plus a thread-safe cache of finished words.
pub(crate) struct Bpe {
    vocab: Vocab,
    cache: RwLock<HashMap<String, Vec<u32>>>,
}

impl std::fmt::Debug for Bpe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cached = self.cache.read().map_or(0, |c| c.len());
        f.debug_struct("Bpe")
            .field("merges", &self.vocab.ranks.len())
            .field("cached_words", &cached)
            .finish()
    }
}

impl Bpe {
    pub fn new(vocab: Vocab) -> Self {
        Self {
            vocab,
            cache: RwLock::new(HashMap::new()),
        }
    }

    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// Appends the ids of `word` (one pre-token; it gets the `</w>` suffix) to `out`.
    pub fn encode_word(&self, word: &str, out: &mut Vec<u32>) {
        if word.is_empty() {
            return;
        }
        let cacheable = word.len() <= MAX_CACHED_WORD;
        if cacheable {
            let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
            if let Some(ids) = cache.get(word) {
                out.extend_from_slice(ids);
                return;
            }
        }
        let ids = self.merge(word.as_bytes());
        out.extend_from_slice(&ids);
        if cacheable {
            let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(word.to_owned(), ids);
        }
    }

    /// Runs the merges on the byte symbols of one word.
    ///
    /// Same procedure as the reference `bpe()`: repeatedly take the adjacent pair with the
    /// lowest merge rank and merge all its non-overlapping occurrences from left to right.
    fn merge(&self, bytes: &[u8]) -> Vec<u32> {
        let mut word: Vec<u32> = bytes
            .iter()
            .map(|&b| self.vocab.byte_ids[b as usize])
            .collect();
        if let Some(last) = word.last_mut() {
            *last = Vocab::end_of_word(*last);
        }
        let ranks = &self.vocab.ranks;
        while word.len() > 1 {
            let best = word
                .windows(2)
                .filter_map(|p| ranks.get(&(p[0], p[1])).map(|&r| (r, p[0], p[1])))
                .min();
            let Some((rank, first, second)) = best else {
                break;
            };
            let merged = Vocab::merged_id(rank);
            let mut next = Vec::with_capacity(word.len());
            let mut i = 0;
            while i < word.len() {
                if word[i] == first && i + 1 < word.len() && word[i + 1] == second {
                    next.push(merged);
                    i += 2;
                } else {
                    next.push(word[i]);
                    i += 1;
                }
            }
            word = next;
        }
        word
    }
}
