//! Test helpers shared by the diffclip crates and the root package's tests: fixture paths
//! (`../shared/fixtures` beside the repository), the list of compiled-in backends, safetensors
//! fixture arrays and tensor comparison. Dev-only; never published.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::tensor::{Device, Int, Tensor, TensorData};

/// The shared fixtures folder, `../shared/fixtures` beside the repository; panics (never skips)
/// when absent.
pub fn fixtures_dir() -> PathBuf {
    // crates/diffclip-testkit -> repository root -> its parent.
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures");
    assert!(p.is_dir(), "fixtures {} are missing: the tests need ../shared beside the repository", p.display());
    p
}

/// `../shared/fixtures/<rel>` beside the repository; panics (never skips) when absent.
pub fn fixture(rel: &str) -> PathBuf {
    let p = fixtures_dir().join(rel);
    assert!(p.exists(), "fixture {} is missing: the tests need ../shared beside the repository", p.display());
    p
}

/// The seed [`serial`] gives every compiled device's random generator.
pub const DEVICE_SEED: u64 = 20_261_205;

/// Every backend compiled in (this crate's `flex`, `ndarray`, `wgpu` features): the same
/// fixtures run on each. flex comes first.
pub fn devices() -> Vec<(&'static str, Device)> {
    let v = compiled_devices();
    assert!(!v.is_empty(), "no backend feature enabled");
    v
}

#[allow(clippy::vec_init_then_push)] // each push is behind its backend's feature
fn compiled_devices() -> Vec<(&'static str, Device)> {
    let mut v = Vec::new();
    #[cfg(feature = "flex")]
    v.push(("flex", Device::flex()));
    // ndarray is deprecated upstream in favour of flex; tested when a build enables it.
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)]
    v.push(("ndarray", Device::ndarray()));
    #[cfg(feature = "wgpu")]
    v.push(("wgpu", Device::wgpu(Default::default())));
    v
}

/// The first compiled backend other than flex (wgpu in CI): for tests that need a second,
/// *different* device or one without flex's kernels and bf16. Panics when only flex is built.
pub fn other_device() -> (&'static str, Device) {
    devices()
        .into_iter()
        .find(|(name, _)| *name != "flex")
        .expect("this test needs a second backend besides flex (the `wgpu` or `ndarray` feature)")
}

/// A safetensors file's tensors as f32 or i64 arrays.
pub struct Arrays {
    pub f32: HashMap<String, (Vec<usize>, Vec<f32>)>,
    pub i64: HashMap<String, (Vec<usize>, Vec<i64>)>,
}

/// The f32 and i64 tensors of fixture `rel` (any other dtype panics).
pub fn read_arrays(rel: &str) -> Arrays {
    let path = fixture(rel);
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out = Arrays { f32: HashMap::new(), i64: HashMap::new() };
    for (name, view) in st.tensors() {
        let shape = view.shape().to_vec();
        match view.dtype() {
            safetensors::Dtype::F32 => {
                let v = view.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
                out.f32.insert(name, (shape, v));
            }
            safetensors::Dtype::I64 => {
                let v = view.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect();
                out.i64.insert(name, (shape, v));
            }
            d => panic!("{rel}: {name} has unexpected dtype {d:?}"),
        }
    }
    out
}

impl Arrays {
    pub fn get(&self, name: &str) -> &(Vec<usize>, Vec<f32>) {
        self.f32.get(name).unwrap_or_else(|| panic!("fixture tensor '{name}' missing"))
    }

    pub fn float<const D: usize>(&self, name: &str, device: &Device) -> Tensor<D> {
        let (shape, v) = self.get(name);
        Tensor::from_data(TensorData::new(v.clone(), shape.clone()), device)
    }

    pub fn int<const D: usize>(&self, name: &str, device: &Device) -> Tensor<D, Int> {
        let (shape, v) = self.i64.get(name).unwrap_or_else(|| panic!("fixture tensor '{name}' missing"));
        Tensor::from_data(TensorData::new(v.clone(), shape.clone()), device)
    }
}

/// Max absolute difference between a tensor and reference values; panics on shape mismatch.
pub fn max_abs_diff<const D: usize>(got: Tensor<D>, want: &(Vec<usize>, Vec<f32>)) -> f32 {
    assert_eq!(got.dims().to_vec(), want.0, "shape");
    let g = got.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    // NaN anywhere counts as an infinite difference (f32::max would silently skip it).
    g.iter().zip(&want.1).map(|(a, b)| (a - b).abs()).fold(0.0, |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) })
}

/// Assert `got` matches `want` within `tol`, naming the tensor.
pub fn assert_close<const D: usize>(what: &str, got: Tensor<D>, want: &(Vec<usize>, Vec<f32>), tol: f32) {
    let d = max_abs_diff(got, want);
    assert!(d <= tol, "{what}: max abs diff {d:e} > {tol:e}");
}

/// A fresh path `diffclip-<pid>-<n>-<name>` in the system's temporary folder; the file (not
/// created here) is removed when the path is dropped, also when the test panics.
///
/// ```
/// let path = diffclip_testkit::temp_path("a.safetensors");
/// std::fs::write(&path, "a").unwrap();
/// let kept = path.to_path_buf();
/// drop(path);
/// assert!(!kept.exists());
/// ```
pub fn temp_path(name: &str) -> tempfile::TempPath {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("diffclip-{}-{n}-{name}", std::process::id()));
    tempfile::TempPath::try_from_path(path).expect("an absolute temporary path")
}

/// The test binary's lock, for tests that run one at a time: the device RNG is global (a test
/// that seeds and then draws must not interleave with another's draws), and f16 autodiff on
/// wgpu fails inside Burn's fusion while other threads use the device. A panicked holder does
/// not poison it for the rest.
///
/// Taking it seeds every compiled device's generator with [`DEVICE_SEED`], so a test holding
/// it draws the same inputs and weights on every run (a tolerance that fails, fails again).
/// A test that draws without the lock may be re-seeded when another takes it, as by any
/// holder's own `seed`: tests whose draws matter hold it.
///
/// ```
/// use burn::tensor::{Device, Distribution, Tensor};
/// let draw = || {
///     let _serial = diffclip_testkit::serial();
///     Tensor::<1>::random([4], Distribution::Default, &Device::flex()).into_data()
/// };
/// assert_eq!(draw(), draw());
/// let _serial = diffclip_testkit::serial();
/// Device::flex().seed(3); // no other holder draws until dropped
/// ```
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    for (_, device) in compiled_devices() {
        device.seed(DEVICE_SEED);
    }
    guard
}

/// A fresh temporary folder, removed with everything in it when dropped (also when the test
/// panics), so test runs leave nothing behind. Dereferences to its [`Path`].
///
/// ```
/// let dir = diffclip_testkit::TestDir::new("doc");
/// std::fs::write(dir.join("a.txt"), "a").unwrap();
/// let kept = dir.to_path_buf();
/// drop(dir);
/// assert!(!kept.exists());
/// ```
pub struct TestDir(tempfile::TempDir);

impl TestDir {
    /// `diffclip-<name>-XXXXXX` in the system's temporary folder.
    pub fn new(name: &str) -> Self {
        Self::new_in(&std::env::temp_dir(), name)
    }

    /// `diffclip-<name>-XXXXXX` in `base` (created if missing).
    pub fn new_in(base: &Path, name: &str) -> Self {
        std::fs::create_dir_all(base).unwrap_or_else(|e| panic!("cannot create {}: {e}", base.display()));
        let dir = tempfile::Builder::new().prefix(&format!("diffclip-{name}-")).tempdir_in(base);
        Self(dir.unwrap_or_else(|e| panic!("cannot create a temporary folder in {}: {e}", base.display())))
    }
}

impl std::ops::Deref for TestDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<OsStr> for TestDir {
    fn as_ref(&self) -> &OsStr {
        self.0.path().as_os_str()
    }
}
