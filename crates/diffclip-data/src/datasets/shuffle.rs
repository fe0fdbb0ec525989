//! A shuffle buffer for streams (webdataset's `shuffle(n)`).

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Approximately shuffles a stream: keeps up to `size` items and yields a uniformly chosen one
/// each time. Deterministic for a given seed; `size` 0 or 1 keeps the order.
///
/// ```
/// use diffclip_data::datasets::ShuffleBuffer;
/// let a: Vec<u32> = ShuffleBuffer::new(0..100, 16, 7).collect();
/// let b: Vec<u32> = ShuffleBuffer::new(0..100, 16, 7).collect();
/// assert_eq!(a, b);
/// assert_ne!(a, (0..100).collect::<Vec<_>>());
/// let mut sorted = a.clone();
/// sorted.sort();
/// assert_eq!(sorted, (0..100).collect::<Vec<_>>());
/// ```
#[derive(Debug)]
pub struct ShuffleBuffer<I: Iterator> {
    inner: I,
    buffer: Vec<I::Item>,
    size: usize,
    rng: StdRng,
    exhausted: bool,
}

impl<I: Iterator> ShuffleBuffer<I> {
    /// Shuffles `inner` with a buffer of `size` items, seeded with `seed`.
    pub fn new(inner: I, size: usize, seed: u64) -> Self {
        Self {
            inner,
            buffer: Vec::with_capacity(size.min(1 << 16)),
            size,
            rng: StdRng::seed_from_u64(seed),
            exhausted: false,
        }
    }
}

impl<I: Iterator> Iterator for ShuffleBuffer<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        while !self.exhausted && self.buffer.len() < self.size.max(1) {
            match self.inner.next() {
                Some(x) => self.buffer.push(x),
                None => self.exhausted = true,
            }
        }
        if self.buffer.is_empty() {
            return None;
        }
        let j = self.rng.random_range(0..self.buffer.len());
        Some(self.buffer.swap_remove(j))
    }
}
