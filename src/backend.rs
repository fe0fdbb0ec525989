//! Picking a compiled-in Burn backend by name at run time.

use burn::tensor::Device;
use thiserror::Error;

/// A backend name this build cannot run.
///
/// ```
/// let err = diffclip::backend::device("tpu").unwrap_err();
/// assert_eq!(err.name, "tpu");
/// assert!(err.to_string().contains("this build has: flex"), "{err}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("backend '{name}' is not compiled in; this build has: {}", available.join(", "))]
pub struct UnknownBackend {
    /// The name asked for.
    pub name: String,
    /// The backends this build has ([`available`]).
    pub available: Vec<&'static str>,
}

/// The backends compiled into this build, in preference order.
pub fn available() -> Vec<&'static str> {
    let mut v = Vec::new();
    if cfg!(feature = "flex") {
        v.push("flex");
    }
    if cfg!(feature = "ndarray") {
        v.push("ndarray");
    }
    if cfg!(feature = "wgpu-untuned") {
        v.push("wgpu");
    }
    if cfg!(feature = "cuda") {
        v.push("cuda");
    }
    v
}

/// A device of the named backend (`flex`, `ndarray`, `wgpu`, `cuda`), or an error naming the
/// backends this build has.
///
/// ```
/// let device = diffclip::backend::device("flex").unwrap();
/// assert!(diffclip::backend::device("tpu").is_err());
/// ```
pub fn device(name: &str) -> Result<Device, UnknownBackend> {
    match name {
        #[cfg(feature = "flex")]
        "flex" => Ok(Device::flex()),
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        "ndarray" => Ok(Device::ndarray()),
        #[cfg(feature = "wgpu-untuned")]
        "wgpu" => Ok(Device::wgpu(Default::default())),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(0usize)),
        _ => Err(UnknownBackend {
            name: name.to_owned(),
            available: available(),
        }),
    }
}

/// The first compiled-in backend's device.
pub fn default_device() -> Device {
    device(available().first().expect("at least one backend feature")).expect("compiled backend")
}

/// `n` autodiff devices for data-parallel training on `backend` (GPUs `0..n` on `wgpu`/`cuda`),
/// and a note when the backend has one device the replicas must share (flex, ndarray: this
/// exercises the data-parallel path, it is not faster).
///
/// ```
/// let (devices, note) = diffclip::backend::replica_devices("flex", &diffclip::backend::device("flex").unwrap(), 2);
/// assert_eq!(devices.len(), 2);
/// assert!(note.is_some());
/// ```
pub fn replica_devices(backend: &str, device: &Device, n: usize) -> (Vec<Device>, Option<String>) {
    let (devices, note): (Vec<Device>, _) = match backend {
        #[cfg(feature = "cuda")]
        "cuda" => ((0..n).map(|i| Device::cuda(i)).collect(), None),
        #[cfg(feature = "wgpu-untuned")]
        "wgpu" => ((0..n).map(|i| Device::wgpu(burn::tensor::DeviceKind::DiscreteGpu(i))).collect(), None),
        _ => (
            vec![device.clone(); n],
            Some(format!("{backend} has a single device: the {n} replicas share it (this exercises the data-parallel path, it is not faster)")),
        ),
    };
    (devices.into_iter().map(|d| d.autodiff()).collect(), note)
}
