//! Picking a compiled-in Burn backend by name at run time.

use burn::tensor::Device;

/// The backends compiled into this build, in preference order.
pub fn available() -> Vec<&'static str> {
    let mut v = Vec::new();
    if cfg!(feature = "flex") {
        v.push("flex");
    }
    if cfg!(feature = "ndarray") {
        v.push("ndarray");
    }
    if cfg!(feature = "wgpu") {
        v.push("wgpu");
    }
    if cfg!(feature = "cuda") {
        v.push("cuda");
    }
    v
}

/// A device of the named backend (`flex`, `ndarray`, `wgpu`, `cuda`), or a message naming
/// the backends this build has.
///
/// ```
/// let device = diffclip::backend::device("flex").unwrap();
/// assert!(diffclip::backend::device("tpu").is_err());
/// ```
pub fn device(name: &str) -> Result<Device, String> {
    match name {
        #[cfg(feature = "flex")]
        "flex" => Ok(Device::flex()),
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        "ndarray" => Ok(Device::ndarray()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(Default::default())),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(0usize)),
        _ => Err(format!("backend '{name}' is not compiled in; this build has: {}", available().join(", "))),
    }
}

/// The first compiled-in backend's device.
pub fn default_device() -> Device {
    device(available().first().expect("at least one backend feature")).expect("compiled backend")
}
