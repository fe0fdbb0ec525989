//! The graph's distance: cosine distance of unit rows.

use hnsw_rs::prelude::Distance;

// The same dot product and normalisation as exact search.
pub(crate) use crate::shards::{dot, normalized};

/// `1 − a·b` of two L2-normalised rows, clamped at 0. `hnsw_rs`'s own `DistDot` asserts the
/// distance is non-negative, which rounding breaks for a row and itself (`a·a` = 1.0000001);
/// clamping keeps the graph's order and never panics. A zero row is at distance 1 from all.
/// Its type name is written in the graph file and checked on reload.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct UnitCosine;

impl Distance<f32> for UnitCosine {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).max(0.0)
    }
}
