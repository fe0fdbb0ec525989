//! The graph's distance: cosine distance of unit rows.

use hnsw_rs::prelude::Distance;

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

/// Dot product in eight lanes (the compiler vectorises it; a plain `sum` stays serial).
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (ca, ra) = a.as_chunks::<8>();
    let (cb, rb) = b.as_chunks::<8>();
    let mut acc = [0f32; 8];
    for (x, y) in ca.iter().zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + ra.iter().zip(rb).map(|(x, y)| x * y).sum::<f32>()
}

/// `row / ‖row‖` (a zero row stays zero), as exact search scores rows.
pub(crate) fn normalized(row: &[f32]) -> Vec<f32> {
    let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    row.iter().map(|v| v / norm).collect()
}
