//! Seeded, reproducible sampling: stratified validation splits and k-shot support sets.

/// SplitMix64: a tiny deterministic generator (no dependence on `rand`'s versioned streams).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), by rejection (no modulo bias).
    pub fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let v = self.next_u64();
            if v < zone {
                return (v % n) as usize;
            }
        }
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// Indices of each class `0..n_classes`, in order.
pub fn indices_by_class(labels: &[usize], n_classes: usize) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); n_classes];
    for (i, &y) in labels.iter().enumerate() {
        if y < n_classes {
            out[y].push(i);
        }
    }
    out
}

/// A stratified split `(train, val)`: from each class, `round(fraction * count)` random samples
/// go to validation, but at least one stays in training. Both lists are sorted.
///
/// ```
/// use diffclip_eval::probe::stratified_split;
/// let (train, val) = stratified_split(&[0, 0, 0, 0, 1, 1, 1, 1, 2], 3, 0.25, 7);
/// assert_eq!((train.len(), val.len()), (7, 2));
/// ```
pub fn stratified_split(
    labels: &[usize],
    n_classes: usize,
    fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let mut rng = SplitMix64::new(seed);
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for mut idx in indices_by_class(labels, n_classes) {
        rng.shuffle(&mut idx);
        let n_val =
            ((fraction * idx.len() as f64).round() as usize).min(idx.len().saturating_sub(1));
        val.extend_from_slice(&idx[..n_val]);
        train.extend_from_slice(&idx[n_val..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    (train, val)
}

/// A k-shot support set: `k` random samples of every class (all of a class with fewer),
/// drawn with `seed`; class-major order.
///
/// ```
/// use diffclip_eval::probe::sample_shots;
/// let s = sample_shots(&[0, 1, 0, 1, 0, 1], 2, 2, 3);
/// assert_eq!(s.len(), 4);
/// assert_eq!(s, sample_shots(&[0, 1, 0, 1, 0, 1], 2, 2, 3));
/// ```
pub fn sample_shots(labels: &[usize], n_classes: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut rng = SplitMix64::new(seed ^ 0xD1FF_C11F);
    let mut out = Vec::new();
    for mut idx in indices_by_class(labels, n_classes) {
        rng.shuffle(&mut idx);
        idx.truncate(k);
        idx.sort_unstable();
        out.extend(idx);
    }
    out
}
