//! How a kernel launches: its sizes and grid (one unit per row, or cubes of rows sharing a
//! tile), and the tensors it allocates.

use burn::backend::TensorMetadata;
use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::{DType, Shape};
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;
use cubecl::{CubeDim, calculate_cube_count_elemwise};

use super::tile::CUBE_ROWS;

/// One launch over the rows: sizes, grid, address type and element type.
pub(super) struct Plan {
    pub(super) rows: usize,
    pub(super) n: usize,
    pub(super) groups: usize,
    pub(super) hd: usize,
    pub(super) pair: bool,
    pub(super) count: CubeCount,
    pub(super) dim: CubeDim,
    pub(super) address: AddressType,
    pub(super) elem: ElemType,
}

/// The plan for `[B, N, W]` inputs with `heads` heads, paired or not, addressing all of
/// `tensors`.
pub(super) fn plan(q: &CubeTensor, heads: usize, pair: bool, tensors: &[&CubeTensor]) -> Plan {
    let dims = q.shape();
    let (b, n, w) = (dims[0], dims[1], dims[2]);
    let groups = if pair { heads / 2 } else { heads };
    let rows = b * groups * n;
    let dim = CubeDim::new(&q.client, rows);
    let count = calculate_cube_count_elemwise(&q.client, rows, dim);
    let address = tensors.iter().map(|t| t.required_address_type()).max().unwrap_or_default();
    Plan { rows, n, groups, hd: w / heads, pair, count, dim, address, elem: dtype_to_storage_type(q.dtype) }
}

/// The plan of a tiled kernel (`tile.rs`): `CUBE_ROWS` units per cube, `⌈N / CUBE_ROWS⌉`
/// cubes per batch and group.
pub(super) fn tiled_plan(q: &CubeTensor, heads: usize, pair: bool, tensors: &[&CubeTensor]) -> Plan {
    let mut p = plan(q, heads, pair, tensors);
    let cubes = (p.rows / p.n) * p.n.div_ceil(CUBE_ROWS);
    p.dim = CubeDim::new_1d(CUBE_ROWS as u32);
    p.count = calculate_cube_count_elemwise(&q.client, cubes * CUBE_ROWS, p.dim);
    p
}

/// Two `[B, N, W]` tensors' shape stacked along the batch.
pub(super) fn stacked(mut shape: Shape) -> Shape {
    shape[0] *= 2;
    shape
}

/// An uninitialised contiguous tensor of `dtype` on `like`'s device.
pub(super) fn empty(like: &CubeTensor, shape: Shape, dtype: DType) -> CubeTensor {
    empty_device_contiguous_dtype(like.client.clone(), like.device.clone(), shape, dtype)
}
