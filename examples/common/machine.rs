//! This process's resident memory and the machine it runs on, for benchmark output.

/// A `/proc/self/status` field in MiB (`"VmRSS:"` now, `"VmHWM:"` the peak); `None` off Linux.
#[allow(dead_code)] // not every program that includes this file prints it
pub fn status_mb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}

/// The CPU model and vector extensions (`/proc/cpuinfo`'s `model name` and `flags`) and
/// the threads this process may run, as JSON fields, so that every figure names where it was measured.
#[allow(dead_code)] // not every program that includes this file prints it
pub fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| cpuinfo.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_string());
    let flags = field("flags").unwrap_or_default();
    let isa: Vec<&str> = ["avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "neon", "asimd"].into_iter().filter(|f| flags.split_whitespace().any(|g| g == *f)).collect();
    let threads = std::thread::available_parallelism().map(|n| n.get()).ok();
    serde_json::json!({ "cpu": field("model name"), "isa": isa, "threads": threads })
}

/// The device as it names itself (`"NVIDIA H200"`, or lavapipe's `"llvmpipe (LLVM …)"`), so
/// that a GPU figure cannot silently come from another adapter; null where the backend names none.
#[allow(dead_code)]
pub fn adapter(device: &diffclip::burn::tensor::Device) -> serde_json::Value {
    #[cfg(any(feature = "wgpu-untuned", feature = "cuda"))]
    if let Some(identity) = device.identity() {
        return identity.name.into();
    }
    let _ = device;
    serde_json::Value::Null
}
