//! Tiles of rows in shared memory, for the attention kernels: a cube is `tile` rows of one
//! head group (one unit per row), and stages `tile` rows of the other side (keys and values
//! for a query row, queries and output gradients for a key row) at a time, so each is read
//! from global memory once per cube rather than once per unit.

use cubecl::prelude::*;
use cubecl::{CubeDim, calculate_cube_count_elemwise};

use burn_cubecl::tensor::CubeTensor;

/// A launch of cubes of `tile` units over `groups` (batch × head group) of `rows` rows each.
pub(super) struct Tiles {
    /// Cubes that hold rows; any beyond (the grid rounds up) leave at once.
    pub(super) cubes: usize,
    pub(super) tile: usize,
    pub(super) count: CubeCount,
    pub(super) dim: CubeDim,
}

/// Up to 32 rows per cube, fewer while `staged` f32 values per row would pass the device's
/// shared memory (32 rows of 2 × 128 values take 32 KB).
pub(super) fn tiles(like: &CubeTensor, groups: usize, rows: usize, staged: usize) -> Tiles {
    let shared_bytes = like.client.properties().hardware.max_shared_memory_size;
    let mut tile = 32;
    while tile > 1 && tile * staged * 4 > shared_bytes {
        tile /= 2;
    }
    let cubes = groups * rows.div_ceil(tile);
    let dim = CubeDim::new_1d(tile as u32);
    let count = calculate_cube_count_elemwise(&like.client, cubes * tile, dim);
    Tiles { cubes, tile, count, dim }
}

/// This unit's group and row (`rows` rows per group; the row may lie past the last).
#[cube]
pub(super) fn tile_row(rows: usize, #[comptime] tile: usize) -> (usize, usize) {
    let tiles = (rows + tile - 1) / tile;
    (CUBE_POS / tiles, (CUBE_POS % tiles) * tile + UNIT_POS_X as usize)
}

/// Row `j`'s `gw` values (from `base + j·width`) times `scale`, f32; zeros past row `n`.
#[cube]
pub(super) fn load_row<E: Float>(t: &Tensor<E>, base: usize, j: usize, n: usize, width: usize, scale: f32, #[comptime] gw: usize) -> Array<f32> {
    let mut row = Array::<f32>::new(gw);
    for c in 0..gw {
        row[c] = 0.0_f32;
        if j < n {
            row[c] = f32::cast_from(t[base + j * width + c]) * scale;
        }
    }
    row
}

/// Copies row `j`'s `stride` values (from `base + j·width`) into `staged[at_..]`, zeros past
/// row `n`.
#[cube]
pub(super) fn stage<E: Float>(t: &Tensor<E>, staged: &mut Shared<[f32]>, base: usize, j: usize, n: usize, width: usize, at_: usize, #[comptime] stride: usize) {
    for c in 0..stride {
        staged[at_ + c] = 0.0_f32;
        if j < n {
            staged[at_ + c] = f32::cast_from(t[base + j * width + c]);
        }
    }
}

/// Both maps' dot products of `row` (query or key, 2hd values with `pair`) with the staged row
/// at `at_` (the second 0 without `pair`).
#[cube]
pub(super) fn staged_scores(row: &Array<f32>, staged: &Shared<[f32]>, at_: usize, #[comptime] hd: usize, #[comptime] pair: bool) -> (f32, f32) {
    let mut d1 = f32::new(0.0);
    let mut d2 = f32::new(0.0);
    for t in 0..hd {
        d1 += row[t] * staged[at_ + t];
    }
    if pair {
        for t in 0..hd {
            d2 += row[hd + t] * staged[at_ + hd + t];
        }
    }
    (d1, d2)
}

/// `row · staged[at_..at_ + len]`.
#[cube]
pub(super) fn staged_dot(row: &Array<f32>, staged: &Shared<[f32]>, at_: usize, #[comptime] len: usize) -> f32 {
    let mut d = f32::new(0.0);
    for c in 0..len {
        d += row[c] * staged[at_ + c];
    }
    d
}
