//! Zeroed buffers that start on a cache line: a 64-byte tile row read from one then spans one
//! line, not two (the allocator aligns large buffers to 16 bytes).

use std::marker::PhantomData;

/// One cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// Element types for which all-zero bytes are a value and any bytes are one.
pub(super) trait Plain: Copy {}
impl Plain for u16 {}
impl Plain for u32 {}

/// `len` zeroed `T`s on whole cache lines.
pub(super) struct Aligned<T: Plain> {
    lines: Vec<Line>,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: Plain> Aligned<T> {
    pub(super) fn zeroed(len: usize) -> Self {
        let lines = vec![Line([0; 64]); (len * size_of::<T>()).div_ceil(64)];
        Aligned { lines, len, _t: PhantomData }
    }
}

impl<T: Plain> std::ops::Deref for Aligned<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the lines hold at least len·size_of::<T>() initialised bytes, aligned for
        // any T of alignment ≤ 64, and every byte pattern is a T (Plain).
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast(), self.len) }
    }
}

impl<T: Plain> std::ops::DerefMut for Aligned<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as for deref, borrowed mutably through self.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast(), self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_start_on_a_cache_line_and_hold_zeros() {
        for len in [0, 1, 31, 32, 33, 100_003] {
            let mut a = Aligned::<u16>::zeroed(len);
            assert_eq!((a.as_ptr() as usize % 64, a.len()), (0, len));
            assert!(a.iter().all(|&v| v == 0));
            a.iter_mut().for_each(|v| *v = 7);
            assert!(Aligned::<u32>::zeroed(len).iter().all(|&v| v == 0));
        }
    }
}
