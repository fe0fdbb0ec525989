//! Byte-level BPE of one pre-token, with a per-word cache.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::RwLock;

use super::vocab::Vocab;

/// Cached words above this count clear the cache (bounds memory on unbounded text streams).
const CACHE_CAPACITY: usize = 1 << 20;
/// Words longer than this (in symbols) are merged with a heap instead of rescans.
const LONG_WORD: usize = 256;
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
        if word.len() > LONG_WORD {
            self.merge_long(word)
        } else {
            self.merge_rescan(word)
        }
    }

    /// The reference loop: rescan the word for its lowest-ranked pair after every merge.
    fn merge_rescan(&self, mut word: Vec<u32>) -> Vec<u32> {
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

    /// [`Self::merge_rescan`] in O(n log n) for long words (its rescans are O(n) per merge, so a
    /// megabyte of letters took minutes): symbols in a linked list, candidate pairs in a heap
    /// by (rank, position). Each round takes every pair of the lowest rank left to right and
    /// only then adds the pairs its merges made, exactly as the rescanning loop does.
    fn merge_long(&self, mut word: Vec<u32>) -> Vec<u32> {
        const NONE: usize = usize::MAX;
        let ranks = &self.vocab.ranks;
        let n = word.len();
        let mut next: Vec<usize> = (1..=n).map(|j| if j == n { NONE } else { j }).collect();
        let mut prev: Vec<usize> = (0..n).map(|i| i.checked_sub(1).unwrap_or(NONE)).collect();
        let rank = |word: &[u32], i: usize, j: usize| ranks.get(&(word[i], word[j])).copied();
        let mut heap: BinaryHeap<Reverse<(u32, usize)>> = (0..n - 1)
            .filter_map(|i| rank(&word, i, i + 1).map(|r| Reverse((r, i))))
            .collect();
        let mut made = Vec::new();
        while let Some(&Reverse((round, _))) = heap.peek() {
            while let Some(&Reverse((r, i))) = heap.peek() {
                if r != round {
                    break;
                }
                heap.pop();
                // Stale when a merge consumed or changed either side since it was pushed.
                let j = next[i];
                if j == NONE || rank(&word, i, j) != Some(r) {
                    continue;
                }
                word[i] = Vocab::merged_id(r);
                let k = next[j];
                next[i] = k;
                next[j] = NONE;
                prev[j] = NONE;
                if k != NONE {
                    prev[k] = i;
                    made.extend(rank(&word, i, k).map(|r| Reverse((r, i))));
                }
                if prev[i] != NONE {
                    made.extend(rank(&word, prev[i], i).map(|r| Reverse((r, prev[i]))));
                }
            }
            heap.extend(made.drain(..));
        }
        let mut out = Vec::new();
        let mut i = 0;
        while i != NONE {
            out.push(word[i]);
            i = next[i];
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The heap merge equals the reference loop on long words of every shape: random letters,
    /// runs of one letter (overlapping pairs) and multi-byte text.
    #[test]
    fn the_heap_merge_equals_the_reference_loop() {
        let bpe = Bpe::new(Vocab::load().unwrap());
        let alphabets: [&[char]; 4] = [
            &['a', 'b', 'c', 'd', 'e', 'i', 'n', 'o', 'r', 's', 't'],
            &['a', 'a', 'a', 'b'],
            &['é', 'ß', '東', '京', 'e'],
            &['l', 'o', 'w', 'e', 'r', 'n', 'w', 'i', 'd', 's', 't', 'h', 'g'],
        ];
        let mut x: u64 = 7;
        for round in 0..200 {
            let alphabet = alphabets[round % alphabets.len()];
            let len = 2 + round * 3;
            let word: String = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                    alphabet[(x >> 33) as usize % alphabet.len()]
                })
                .collect();
            let symbols: Vec<u32> = {
                let mut w: Vec<u32> = word.bytes().map(|b| bpe.vocab.byte_ids[b as usize]).collect();
                let last = w.len() - 1;
                w[last] = Vocab::end_of_word(w[last]);
                w
            };
            assert_eq!(bpe.merge_long(symbols.clone()), bpe.merge_rescan(symbols), "{word}");
        }
    }
}
