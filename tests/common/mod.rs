//! Shared helpers for the integration tests: fixture paths, devices, tensor comparison.
//! They live in `crates/diffclip-testkit` (shared with the crates' own tests); its backend
//! features follow this package's `flex`, `ndarray` and `wgpu`.
#![allow(dead_code, unused_imports)]

pub use diffclip_testkit::*;

use std::path::PathBuf;

/// The example binary `name`, built by cargo before the integration tests run.
pub fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/<test> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().unwrap().parent().unwrap().join("examples").join(name);
    assert!(p.exists(), "example binary {} not built (cargo build --release --example {name})", p.display());
    p
}

/// A fresh, empty temporary folder `diffclip-<test>-<pid>-<name>`.
pub fn tmpdir(test: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("diffclip-{test}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
