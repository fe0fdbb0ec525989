//! Seeded, reproducible sampling: stratified validation splits and k-shot support sets.

use crate::stats::SplitMix64;

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
