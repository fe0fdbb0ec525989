//! Process-level memory settings that matter for CPU throughput.

/// Keep freed large buffers inside the process instead of handing them back to the kernel
/// (glibc only; returns whether the settings were applied).
///
/// Burn allocates a fresh buffer for every intermediate tensor. With glibc's defaults, buffers
/// of a few MB and more are `mmap`ed and `munmap`ed each time (or trimmed off the heap), so every
/// page of every activation is faulted in and zeroed again: on 2 cores this cost ViT-B/16
/// `encode_image` about a third of its time. This sets `M_MMAP_THRESHOLD` to 32 MiB (glibc's
/// maximum) and `M_TRIM_THRESHOLD` to 2 GiB. Peak memory is unchanged; the process simply keeps
/// its peak resident instead of returning freed pages. Same effect from outside:
/// `GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=2147483647`.
/// Call it once at the start of `main`, before the model is built.
///
/// ```
/// let applied = diffclip::allocator::keep_freed_memory();
/// assert_eq!(applied, cfg!(all(target_os = "linux", target_env = "gnu")));
/// ```
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_THRESHOLD: i32 = -3;
        // SAFETY: mallopt only changes allocator tunables; both values are within glibc's ranges.
        unsafe { mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, i32::MAX) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
