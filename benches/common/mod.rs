//! Shared helpers of the criterion benchmarks (`benches/*.rs` include this with `mod common;`).
//!
//! Environment variables:
//! - `DIFFCLIP_BACKEND=flex|ndarray|wgpu`: the backend (default `flex`; the feature must be on).
//! - `DIFFCLIP_BENCH_QUICK=1`: small sizes for a 2-core machine (each bench says what it cuts).
//! - `DIFFCLIP_DEFAULT_MALLOC=1`: leave glibc's malloc settings alone.
//! - `DIFFCLIP_GENERIC_OPS=1`: Burn's generic ops instead of diffclip's flex CPU kernels.

#![allow(dead_code)]

use std::time::Duration;

use criterion::Criterion;
use diffclip::burn::tensor::{Device, Tensor};

/// The backend's name from `DIFFCLIP_BACKEND` (default `flex`).
pub fn backend_name() -> String {
    std::env::var("DIFFCLIP_BACKEND").unwrap_or_else(|_| "flex".into())
}

/// The device of [`backend_name`]; panics with the list of compiled backends otherwise.
/// Also applies `DIFFCLIP_DEFAULT_MALLOC` and `DIFFCLIP_GENERIC_OPS` (see above).
pub fn device() -> Device {
    if std::env::var("DIFFCLIP_DEFAULT_MALLOC").map_or(true, |v| v != "1") {
        diffclip::allocator::keep_freed_memory();
    }
    diffclip::attention::set_cpu_kernels(std::env::var("DIFFCLIP_GENERIC_OPS").map_or(true, |v| v != "1"));
    let name = backend_name();
    diffclip::backend::device(&name).unwrap_or_else(|e| panic!("DIFFCLIP_BACKEND={name}: {e}"))
}

/// Whether `DIFFCLIP_BENCH_QUICK` is set to something other than `0`/empty.
pub fn quick() -> bool {
    std::env::var("DIFFCLIP_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Wait for `out` to be computed: read one scalar from it and sync the device (wgpu returns
/// from `into_data` before the work has run, so reading alone is not enough there).
pub fn finish<const D: usize>(device: &Device, out: Tensor<D>) -> f32 {
    let v = out.sum().into_scalar::<f32>();
    device.sync().expect("device sync");
    v
}

/// Criterion settings for slow, whole-model measurements: few samples, short warm-up.
pub fn slow_criterion(samples: usize, seconds: u64) -> Criterion {
    Criterion::default()
        .sample_size(samples.max(10))
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(seconds))
        .configure_from_args()
}
