//! The cube's shared tile, what makes the kernels read each key (or query) row from global
//! memory once per cube instead of once per unit: a cube of `CUBE_ROWS` units owns
//! `CUBE_ROWS` consecutive rows of one batch and group, one row per unit; it walks the other
//! side's rows in tiles that its units copy into shared memory together (consecutive units
//! read consecutive columns), and every unit then reads the tile's rows from there. A unit's
//! own row is read once into local memory.

use cubecl::prelude::*;

use super::kernels::at;

/// Units per cube, one row each: one NVIDIA warp, so a cube's barriers stay within a warp.
pub(super) const CUBE_ROWS: usize = 32;

/// Rows per shared tile when each takes `floats` f32 values: 16, or fewer where 16 would not
/// fit 16 KiB (WebGPU's guaranteed workgroup storage), so the kernels need no adapter limit.
/// Also the online softmax's block: a unit keeps a tile's scores in local memory.
pub(super) fn tile_rows(floats: usize) -> usize {
    (4096 / floats).clamp(1, 16)
}

/// Where this unit's row lies: `(bg, i, live)`: its batch·group `b·G + g` (past the last
/// one only in cubes the grid's rounding adds, which the kernels end at once, whole cubes so
/// no barrier is left waiting), its row in it (clamped to the last of `n` rows, so that every
/// read stays in bounds) and whether that row exists.
#[cube]
#[allow(clippy::manual_div_ceil)] // cube code: CubeCL expands arithmetic, not `div_ceil`
pub(super) fn place(n: usize) -> (usize, usize, bool) {
    let tiles = (n + CUBE_ROWS - 1) / CUBE_ROWS;
    let bg = CUBE_POS / tiles;
    let i = (CUBE_POS % tiles) * CUBE_ROWS + UNIT_POS as usize;
    let live = i < n;
    let clamped = if live { i } else { n - 1 };
    (bg, clamped, live)
}

/// The first row of this unit's cube (its rows are `first..first + CUBE_ROWS`).
#[cube]
pub(super) fn cube_first(i: usize) -> usize {
    i - i % CUBE_ROWS
}

/// The ends of query row `i`'s keys and of its cube's (the most any unit of the cube attends
/// to), among `n`: `(i + 1, the cube's last row + 1)` with `causal`, else `(n, n)`.
#[cube]
pub(super) fn key_ends(i: usize, n: usize, #[comptime] causal: bool) -> (usize, usize) {
    let mut end = n;
    let mut cube_end = n;
    if causal {
        end = i + 1;
        cube_end = min(cube_first(i) + CUBE_ROWS, n);
    }
    (end, cube_end)
}

/// Copies rows `first..first + rows` of `t`'s `vd` columns from offset `base` (row stride
/// `width`) to `tile[into..]` as f32, rows at or past `limit` as zeros; every unit copies a
/// share, consecutive units consecutive columns. Callers put a `sync_cube` before (the tile's
/// last readers are done) and after (the tile is whole).
#[cube]
#[allow(clippy::too_many_arguments)]
pub(super) fn load<E: Float>(t: &Tensor<E>, tile: &mut Shared<[f32]>, into: usize, base: usize, width: usize, first: usize, limit: usize, #[comptime] rows: usize, #[comptime] vd: usize) {
    let len = comptime!(rows * vd);
    let mut e = UNIT_POS as usize;
    while e < len {
        let r = first + e / vd;
        let mut x = f32::new(0.0);
        if r < limit {
            x = at(t, base + r * width + e % vd);
        }
        tile[into + e] = x;
        e += CUBE_ROWS;
    }
}

/// The tile of K (and with `values` V after it) at key `first` for units that attend to keys
/// `0..end`, barriers included: gives how many of its `rows` keys this unit uses.
#[cube]
#[allow(clippy::too_many_arguments)]
pub(super) fn key_tile<E: Float>(k: &Tensor<E>, v: &Tensor<E>, tile: &mut Shared<[f32]>, base: usize, width: usize, first: usize, n: usize, end: usize, #[comptime] rows: usize, #[comptime] vd: usize, #[comptime] values: bool) -> usize {
    sync_cube();
    load(k, tile, 0, base, width, first, n, rows, vd);
    if values {
        load(v, tile, comptime!(rows * vd), base, width, first, n, rows, vd);
    }
    sync_cube();
    let (_, count) = span(first, 0, end, rows);
    count
}

/// Row `qo..qo + len` of `t` in local memory, times `factor`.
#[cube]
pub(super) fn own_row<E: Float>(t: &Tensor<E>, qo: usize, factor: f32, #[comptime] len: usize) -> Array<f32> {
    let mut row = Array::<f32>::new(len);
    for c in 0..len {
        row[c] = at(t, qo + c) * factor;
    }
    row
}

/// `(a1·b1, a2·b2)`: the dot products of the unit's row `a` with the tile's row at `bo`, over
/// the first head's `hd` columns and (with `pair`, else 0) the second's.
#[cube]
pub(super) fn head_dots(a: &Array<f32>, tile: &Shared<[f32]>, bo: usize, #[comptime] hd: usize, #[comptime] pair: bool) -> (f32, f32) {
    let mut d1 = f32::new(0.0);
    let mut d2 = f32::new(0.0);
    for t in 0..hd {
        d1 += a[t] * tile[bo + t];
    }
    if pair {
        for t in 0..hd {
            d2 += a[hd + t] * tile[bo + hd + t];
        }
    }
    (d1, d2)
}

/// The dot product of the unit's row `a` with the tile's row at `bo`, over `len` columns.
#[cube]
pub(super) fn dot(a: &Array<f32>, tile: &Shared<[f32]>, bo: usize, #[comptime] len: usize) -> f32 {
    let mut d = f32::new(0.0);
    for c in 0..len {
        d += a[c] * tile[bo + c];
    }
    d
}

/// How many of the tile's rows `first..first + rows` lie in `start..end` and from which one:
/// `(from, to)` within the tile (`from = to` when none).
#[cube]
pub(super) fn span(first: usize, start: usize, end: usize, #[comptime] rows: usize) -> (usize, usize) {
    let mut to = 0;
    if end > first {
        to = min(end - first, rows);
    }
    let mut from = 0;
    if start > first {
        from = min(start - first, to);
    }
    (from, to)
}
