//! Buffers that start on a cache line: a 64-byte tile row read from one then spans one line,
//! not two (the allocator aligns large buffers to 16 bytes).

use std::marker::PhantomData;
use std::mem::MaybeUninit;

use rayon::prelude::*;

/// One cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// Element types for which any bytes, zeros included, are a value, aligned to at most a line.
///
/// # Safety
/// Implement only for such types.
pub(super) unsafe trait Plain: Copy + Send + Sync {
    /// Checked where a buffer is made: a line aligns it.
    const FITS_A_LINE: () = assert!(align_of::<Self>() <= 64);
}
// SAFETY: integers: every bit pattern is a value; alignment 2 and 4.
unsafe impl Plain for u16 {}
// SAFETY: as above.
unsafe impl Plain for u32 {}

/// Lines holding `len` values of `T`; panics on an overflowing size.
fn lines_for<T: Plain>(len: usize) -> usize {
    let () = T::FITS_A_LINE;
    len.checked_mul(size_of::<T>()).expect("buffer size overflows usize").div_ceil(64)
}

/// `len` values of `T` on whole cache lines.
pub(super) struct Aligned<T: Plain> {
    /// The first `len · size_of::<T>()` bytes are initialised.
    lines: Vec<MaybeUninit<Line>>,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: Plain> Aligned<T> {
    /// `len` zeros.
    pub(super) fn zeroed(len: usize) -> Self {
        let lines = vec![MaybeUninit::new(Line([0; 64])); lines_for::<T>(len)];
        Aligned { lines, len, _t: PhantomData }
    }

    /// `len` values, all written by `fill` (in any order, on any threads), not zeroed first.
    ///
    /// SAFETY: `fill` writes every element.
    pub(super) unsafe fn written(len: usize, fill: impl FnOnce(&mut [MaybeUninit<T>])) -> Self {
        let mut lines: Vec<MaybeUninit<Line>> = Vec::with_capacity(lines_for::<T>(len));
        // SAFETY: MaybeUninit needs no initialisation.
        unsafe { lines.set_len(lines.capacity()) };
        // SAFETY: the lines hold len values of T, aligned for it (T's alignment ≤ 64).
        fill(unsafe { std::slice::from_raw_parts_mut(lines.as_mut_ptr().cast::<MaybeUninit<T>>(), len) });
        Aligned { lines, len, _t: PhantomData }
    }

    /// `rows` rows of `row_len` values, row `r` written by `fill(r, row)` (in parallel when
    /// `parallel`), without zeroing them first.
    ///
    /// SAFETY: `fill` writes every element of the row it is given.
    pub(super) unsafe fn from_rows(rows: usize, row_len: usize, parallel: bool, fill: impl Fn(usize, &mut [MaybeUninit<T>]) + Sync) -> Self {
        let len = rows.checked_mul(row_len).expect("buffer size overflows usize");
        // SAFETY: every row is written (the caller's contract), so every element.
        unsafe {
            Self::written(len, |values| {
                if row_len > 0 {
                    let fill = |(r, row): (usize, &mut [MaybeUninit<T>])| fill(r, row);
                    if parallel {
                        values.par_chunks_mut(row_len).enumerate().for_each(fill);
                    } else {
                        values.chunks_mut(row_len).enumerate().for_each(fill);
                    }
                }
            })
        }
    }
}

impl<T: Plain> std::ops::Deref for Aligned<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the lines' first len values are initialised (zeroed, or written by
        // from_rows's caller), aligned for T, and every byte pattern is a T (Plain).
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
    fn buffers_start_on_a_cache_line_and_hold_what_was_written() {
        for len in [0, 1, 31, 32, 33, 100_003] {
            let mut a = Aligned::<u16>::zeroed(len);
            assert_eq!((a.as_ptr() as usize % 64, a.len()), (0, len));
            assert!(a.iter().all(|&v| v == 0));
            a.iter_mut().for_each(|v| *v = 7);
            assert!(Aligned::<u32>::zeroed(len).iter().all(|&v| v == 0));
        }
        for (rows, row_len, parallel) in [(0, 5, false), (3, 0, true), (7, 33, false), (1000, 77, true)] {
            // SAFETY: every element is written.
            let a = unsafe {
                Aligned::<u32>::from_rows(rows, row_len, parallel, |r, row| {
                    row.iter_mut().enumerate().for_each(|(c, v)| {
                        v.write((r * 1000 + c) as u32);
                    })
                })
            };
            assert_eq!((a.as_ptr() as usize % 64, a.len()), (0, rows * row_len));
            assert!(a.iter().enumerate().all(|(i, &v)| v as usize == i / row_len * 1000 + i % row_len));
        }
    }
}
