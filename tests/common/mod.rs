//! Shared helpers for the integration tests: fixture paths, devices, tensor comparison.
//! They live in `crates/diffclip-testkit` (shared with the crates' own tests); its backend
//! features follow this package's `flex`, `ndarray` and `wgpu`.
#![allow(dead_code, unused_imports)]

pub use diffclip_testkit::*;
