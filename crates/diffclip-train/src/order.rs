//! Deterministic data order: a seeded permutation per epoch, so a resumed run sees exactly the
//! samples an uninterrupted one would.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// The sample order of `epoch` for a dataset of `len` items.
///
/// ```
/// let a = diffclip_train::epoch_order(10, 7, 0);
/// assert_eq!(a, diffclip_train::epoch_order(10, 7, 0));
/// assert_ne!(a, diffclip_train::epoch_order(10, 7, 1));
/// ```
pub fn epoch_order(len: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..len).collect();
    let mut rng = StdRng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    v.shuffle(&mut rng);
    v
}
