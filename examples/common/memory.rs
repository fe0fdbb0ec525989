//! This process's resident memory, read from Linux's `/proc/self/status`.

/// A `/proc/self/status` field in MiB (`"VmRSS:"` now, `"VmHWM:"` the peak); `None` off Linux.
pub fn status_mb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}
