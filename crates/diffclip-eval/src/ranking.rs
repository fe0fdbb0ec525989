//! Ranking with one documented tie rule, and numpy's summation order for bit-exact means.
//!
//! **Tie rule.** Scores are ranked in descending order; equal scores are ordered by lower index
//! first (a stable sort). So the rank of item `t` is `#{j : s_j > s_t} + #{j < t : s_j == s_t}`
//! and `t` is in the top-k iff its rank is `< k`. This equals `torch.argmax` (first maximal
//! index) for top-1. `torch.topk`, which CLIP_benchmark uses, leaves the order of ties
//! unspecified, so on exact ties results may differ from CLIP_benchmark's; without ties they
//! are identical.

/// Rank (0 = best) of `scores[target]` under the tie rule above.
///
/// ```
/// use diffclip_eval::ranking::rank_of;
/// assert_eq!(rank_of(&[1.0, 3.0, 3.0, 2.0], 2), 1); // tied with index 1, which comes first
/// assert_eq!(rank_of(&[1.0, 3.0, 3.0, 2.0], 1), 0);
/// assert_eq!(rank_of(&[f32::NAN, 1.0], 0), 2); // a NaN score is never a hit
/// ```
///
/// # Panics
/// When `target` is not an index of `scores`.
pub fn rank_of(scores: &[f32], target: usize) -> usize {
    let s = scores[target];
    // A NaN score is no match (every comparison with it is false, which would rank it first).
    if s.is_nan() {
        return scores.len();
    }
    scores
        .iter()
        .enumerate()
        .filter(|&(j, &v)| v > s || (v == s && j < target))
        .count()
}

/// Index of the first maximal score (`torch.argmax`); `None` for an empty slice.
///
/// ```
/// assert_eq!(diffclip_eval::ranking::argmax(&[0.0, 2.0, 2.0]), Some(1));
/// ```
pub fn argmax(scores: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in scores.iter().enumerate() {
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

/// The indices of the `k` best scores, best first, under the tie rule: the item at position `p`
/// has [`rank_of`] `p`, so `-0.0` ties with `0.0` and NaN scores come last.
///
/// ```
/// use diffclip_eval::ranking::top_k;
/// assert_eq!(top_k(&[1.0, 3.0, 3.0, 2.0, 3.0, 0.0], 2), vec![1, 2]);
/// assert_eq!(top_k(&[f32::NAN, 0.0, -0.0, 1.0], 4), vec![3, 1, 2, 0]);
/// ```
pub fn top_k(scores: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    // Stable sort by descending score keeps lower indices first among equals.
    idx.sort_by(|&a, &b| descending(scores[a], scores[b]));
    idx.truncate(k);
    idx
}

/// Descending order with NaN last and `-0.0 == 0.0`, the order [`rank_of`] counts in.
fn descending(a: f32, b: f32) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => b.partial_cmp(&a).unwrap_or(Ordering::Equal),
    }
}

/// Sum in numpy's pairwise order (`np.add.reduce` on a contiguous f64 array), so that means
/// agree with numpy/scikit-learn to the last bit.
pub fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &v in a {
            res += v;
        }
        res
    } else if n <= 128 {
        let mut r = [0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - n % 8 {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &a[i..] {
            res += v;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&a[..n2]) + pairwise_sum(&a[n2..])
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_positions_are_ranks() {
        let scores = [
            0.5,
            -0.0,
            f32::NAN,
            0.0,
            2.0,
            0.5,
            f32::NEG_INFINITY,
            f32::NAN,
            2.0,
        ];
        let order = top_k(&scores, scores.len());
        for (p, &i) in order.iter().enumerate() {
            if !scores[i].is_nan() {
                assert_eq!(rank_of(&scores, i), p, "index {i}");
            }
        }
        assert_eq!(order, vec![4, 8, 0, 5, 1, 3, 6, 2, 7]);
    }
}
