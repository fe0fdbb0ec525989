//! Pillow's resampling (`libImaging/Resample.c`, `Geometry.c`), reimplemented bit-exactly.
//!
//! Separable convolution in two passes. The kernel's support is scaled by the
//! downscale factor (so shrinking is antialiased), output pixel centres sit at
//! `(dst + 0.5) * scale`, and for 8-bit images the normalised weights are turned
//! into 22-bit fixed point and every pass rounds and clamps to `u8`, exactly like
//! Pillow. 16-bit grey (`I;16`) uses double weights and Pillow's byte-wise
//! clipping. Nearest-neighbour follows `ImagingScaleAffine` (accumulated
//! coordinates). The pass order follows [`PassOrder`].
//!
//! Only a window of the output is computed: every output pixel depends on its own
//! coordinates alone, so a window equals the same crop of the full resize, which
//! keeps `1000x10 -> 22400x224 -> crop 224` cheap.

use super::filter::{Filter, Resampling};

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// The part of the output to compute: columns `x..x+width`, rows `y..y+height`.
///
/// ```
/// use diffclip_data::preprocess::Window;
/// let w = Window::full(4, 3);
/// assert_eq!((w.x, w.y, w.width, w.height), (0, 0, 4, 3));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First output column.
    pub x: usize,
    /// First output row.
    pub y: usize,
    /// Number of output columns.
    pub width: usize,
    /// Number of output rows.
    pub height: usize,
}

impl Window {
    /// The whole `width x height` output.
    pub fn full(width: usize, height: usize) -> Self {
        Self {
            x: 0,
            y: 0,
            width,
            height,
        }
    }
}

/// A borrowed row-major interleaved image.
///
/// ```
/// use diffclip_data::preprocess::Plane;
/// let p = Plane { data: &[1u8, 2, 3, 4], width: 2, height: 2, channels: 1 };
/// assert_eq!(p.data.len(), p.width * p.height * p.channels);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Plane<'a, T> {
    /// Samples, `width * height * channels`.
    pub data: &'a [T],
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Samples per pixel (1..=4).
    pub channels: usize,
}

/// Per-output-pixel source span and weights (Pillow's `precompute_coeffs`) for
/// outputs `start..start+count` of a resize from `in_size` to `out_size`.
struct Coeffs {
    ksize: usize,
    /// (first source index, number of taps) per output.
    bounds: Vec<(usize, usize)>,
    weights: Vec<f64>,
}

impl Coeffs {
    fn new(in_size: usize, out_size: usize, filter: Filter, start: usize, count: usize) -> Self {
        // Pillow keeps the box as float: exact for any size below 2^24.
        let scale = (in_size as f32 as f64) / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filter.support() * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let mut bounds = Vec::with_capacity(count);
        let mut weights = vec![0.0; count * ksize];
        for (i, xx) in (start..start + count).enumerate() {
            let center = (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let n = xmax.saturating_sub(xmin);
            let k = &mut weights[i * ksize..i * ksize + n];
            let mut ww = 0.0;
            for (x, w) in k.iter_mut().enumerate() {
                *w = filter.weight(((x + xmin) as f64 - center + 0.5) * ss);
                ww += *w;
            }
            if ww != 0.0 {
                k.iter_mut().for_each(|w| *w /= ww);
            }
            bounds.push((xmin, n));
        }
        Self {
            ksize,
            bounds,
            weights,
        }
    }

    /// Pillow's `normalize_coeffs_8bpc`: weights in 22-bit fixed point.
    fn fixed(&self) -> Vec<i32> {
        let one = f64::from(1u32 << PRECISION_BITS);
        self.weights
            .iter()
            .map(|&k| {
                if k < 0.0 {
                    (-0.5 + k * one) as i32
                } else {
                    (0.5 + k * one) as i32
                }
            })
            .collect()
    }

    /// Source span `[first, last)` used by all outputs.
    fn span(&self) -> (usize, usize) {
        let first = self.bounds.iter().map(|b| b.0).min().unwrap_or(0);
        let last = self.bounds.iter().map(|b| b.0 + b.1).max().unwrap_or(first);
        (first, last.max(first))
    }
}

fn clip8(ss: i32) -> u8 {
    (ss >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes an 8-bit image to `out_w x out_h` exactly as Pillow does, computing only `win`.
///
/// ```
/// use diffclip_data::preprocess::{resample_u8, Filter, Plane, Window};
/// let src = Plane { data: &[0u8, 100, 200, 250], width: 4, height: 1, channels: 1 };
/// let out = resample_u8(src, 2, 1, Filter::Bilinear.into(), Window::full(2, 1));
/// assert_eq!(out.len(), 2);
/// assert!(out[0] < out[1]);
/// ```
///
/// # Panics
/// When `src.data` holds fewer than `width × height × channels` values, `channels` is not 1 to
/// 4, a size is 0, or `win` is not inside the output.
pub fn resample_u8(
    src: Plane<'_, u8>,
    out_w: usize,
    out_h: usize,
    how: Resampling,
    win: Window,
) -> Vec<u8> {
    if how.filter == Filter::Nearest {
        return nearest(src, out_w, out_h, win, true);
    }
    let ch = src.channels;
    let ops = Ops {
        init: [1i32 << (PRECISION_BITS - 1); 4],
        weights: |c: &Coeffs| c.fixed(),
        kernel: move |sum: &mut [i32; 4], v: &[u8], k: i32| {
            for c in 0..ch {
                sum[c] += i32::from(v[c]) * k;
            }
        },
        store: move |sum: &[i32; 4], out: &mut Vec<u8>| {
            out.extend(sum[..ch].iter().map(|&s| clip8(s)))
        },
    };
    two_pass(src, out_w, out_h, how, win, &ops)
}

/// Like [`resample_u8`] for one-channel 16-bit images (Pillow's `I;16` path:
/// double weights, `ROUND_UP`, each output byte clipped separately).
///
/// ```
/// use diffclip_data::preprocess::{resample_u16, Filter, Plane, Window};
/// let src = Plane { data: &[1000u16, 3000], width: 2, height: 1, channels: 1 };
/// assert_eq!(resample_u16(src, 1, 1, Filter::Bilinear.into(), Window::full(1, 1)), vec![2000]);
/// ```
///
/// # Panics
/// As [`resample_u8`], and when `channels` is not 1 (16-bit images are single-channel).
pub fn resample_u16(
    src: Plane<'_, u16>,
    out_w: usize,
    out_h: usize,
    how: Resampling,
    win: Window,
) -> Vec<u16> {
    assert_eq!(
        src.channels, 1,
        "16-bit resampling is single-channel (I;16)"
    );
    if how.filter == Filter::Nearest {
        // Pillow sends I;16 through ImagingGenericTransform: direct, not accumulated, coordinates.
        return nearest(src, out_w, out_h, win, false);
    }
    let ops = Ops {
        init: 0.0f64,
        weights: |c: &Coeffs| c.weights.clone(),
        kernel: |sum: &mut f64, v: &[u16], k: f64| *sum += f64::from(v[0]) * k,
        store: |&f: &f64, out: &mut Vec<u16>| {
            let s = (if f >= 0.0 {
                (f + 0.5).floor()
            } else {
                -(f.abs() + 0.5).floor()
            }) as i32;
            let lo = (s % 256).clamp(0, 255) as u16;
            let hi = (s >> 8).clamp(0, 255) as u16;
            out.push(hi << 8 | lo);
        },
    };
    two_pass(src, out_w, out_h, how, win, &ops)
}

/// The arithmetic of one sample type: accumulator start, weights, multiply-add, store.
struct Ops<A, W, M, S> {
    init: A,
    weights: W,
    kernel: M,
    store: S,
}

/// One convolution pass over `src` (`src_w` pixels wide, `ch` channels).
/// Horizontal: outputs `c.bounds` for each row in `lines`; source columns are
/// shifted by `offset`. Vertical: for each `c.bounds` entry, the columns `lines`;
/// source rows are shifted by `offset`.
#[allow(clippy::too_many_arguments)]
fn pass<T: Copy, K: Copy, A: Copy>(
    src: &[T],
    src_w: usize,
    ch: usize,
    horizontal: bool,
    lines: std::ops::Range<usize>,
    offset: usize,
    c: &Coeffs,
    kk: &[K],
    ops: &Ops<A, impl Fn(&Coeffs) -> Vec<K>, impl Fn(&mut A, &[T], K), impl Fn(&A, &mut Vec<T>)>,
) -> Vec<T> {
    let mut out = Vec::with_capacity(lines.len() * c.bounds.len() * ch);
    let tap = |sum: &mut A, x: usize, y: usize, k: K| {
        let at = (y * src_w + x) * ch;
        (ops.kernel)(sum, &src[at..at + ch], k);
    };
    if horizontal {
        for y in lines {
            for (i, &(min, n)) in c.bounds.iter().enumerate() {
                let mut sum = ops.init;
                for (t, &k) in kk[i * c.ksize..i * c.ksize + n].iter().enumerate() {
                    tap(&mut sum, min + t - offset, y, k);
                }
                (ops.store)(&sum, &mut out);
            }
        }
    } else {
        for (i, &(min, n)) in c.bounds.iter().enumerate() {
            for x in lines.clone() {
                let mut sum = ops.init;
                for (t, &k) in kk[i * c.ksize..i * c.ksize + n].iter().enumerate() {
                    tap(&mut sum, x, min + t - offset, k);
                }
                (ops.store)(&sum, &mut out);
            }
        }
    }
    out
}

/// Pillow's `ImagingResampleInner` for the output window `win`.
fn two_pass<T: Copy, K: Copy, A: Copy>(
    src: Plane<'_, T>,
    out_w: usize,
    out_h: usize,
    how: Resampling,
    win: Window,
    ops: &Ops<A, impl Fn(&Coeffs) -> Vec<K>, impl Fn(&mut A, &[T], K), impl Fn(&A, &mut Vec<T>)>,
) -> Vec<T> {
    let (w, h, ch) = (src.width, src.height, src.channels);
    assert!(
        win.x + win.width <= out_w && win.y + win.height <= out_h,
        "window outside output"
    );
    let (need_h, need_v) = (out_w != w, out_h != h);
    let cols = win.x..win.x + win.width;
    let rows = win.y..win.y + win.height;
    match (need_h, need_v) {
        (false, false) => window_copy(src, win),
        (true, false) => {
            let hor = Coeffs::new(w, out_w, how.filter, win.x, win.width);
            pass(
                src.data,
                w,
                ch,
                true,
                rows,
                0,
                &hor,
                &(ops.weights)(&hor),
                ops,
            )
        }
        (false, true) => {
            let ver = Coeffs::new(h, out_h, how.filter, win.y, win.height);
            pass(
                src.data,
                w,
                ch,
                false,
                cols,
                0,
                &ver,
                &(ops.weights)(&ver),
                ops,
            )
        }
        (true, true) => {
            let hor = Coeffs::new(w, out_w, how.filter, win.x, win.width);
            let ver = Coeffs::new(h, out_h, how.filter, win.y, win.height);
            let (kh, kv) = ((ops.weights)(&hor), (ops.weights)(&ver));
            if how.order.vertical_first(w, h, out_w, out_h) {
                // Vertical pass on the source columns the window needs, then horizontal.
                let (c0, c1) = hor.span();
                let tmp = pass(src.data, w, ch, false, c0..c1, 0, &ver, &kv, ops);
                pass(&tmp, c1 - c0, ch, true, 0..win.height, c0, &hor, &kh, ops)
            } else {
                // Horizontal pass on the source rows the window needs, then vertical.
                let (r0, r1) = ver.span();
                let tmp = pass(src.data, w, ch, true, r0..r1, 0, &hor, &kh, ops);
                pass(&tmp, win.width, ch, false, 0..win.width, r0, &ver, &kv, ops)
            }
        }
    }
}

fn window_copy<T: Copy>(src: Plane<'_, T>, win: Window) -> Vec<T> {
    let ch = src.channels;
    let mut out = Vec::with_capacity(win.width * win.height * ch);
    for y in win.y..win.y + win.height {
        let s = (y * src.width + win.x) * ch;
        out.extend_from_slice(&src.data[s..s + win.width * ch]);
    }
    out
}

/// Source index of each output `start..start+count` for nearest neighbour. Pillow's
/// `ImagingScaleAffine` (8-bit modes) accumulates `pos += scale` from `scale / 2`;
/// its generic transform (`I;16`) computes `(i + 0.5) * scale` directly.
fn nearest_table(
    in_size: usize,
    out_size: usize,
    start: usize,
    count: usize,
    accumulate: bool,
) -> Vec<usize> {
    let a = (in_size as f32 as f64) / out_size as f64;
    let clamp = |pos: f64| (if pos < 0.0 { 0 } else { pos as usize }).min(in_size - 1);
    if !accumulate {
        return (start..start + count)
            .map(|i| clamp((i as f64 + 0.5) * a))
            .collect();
    }
    let mut pos = a * 0.5;
    let mut table = Vec::with_capacity(count);
    for i in 0..start + count {
        if i >= start {
            table.push(clamp(pos));
        }
        pos += a;
    }
    table
}

fn nearest<T: Copy>(
    src: Plane<'_, T>,
    out_w: usize,
    out_h: usize,
    win: Window,
    accumulate: bool,
) -> Vec<T> {
    assert!(
        win.x + win.width <= out_w && win.y + win.height <= out_h,
        "window outside output"
    );
    if out_w == src.width && out_h == src.height {
        return window_copy(src, win);
    }
    let ch = src.channels;
    let xs = nearest_table(src.width, out_w, win.x, win.width, accumulate);
    let ys = nearest_table(src.height, out_h, win.y, win.height, accumulate);
    let mut out = Vec::with_capacity(win.width * win.height * ch);
    for &y in &ys {
        for &x in &xs {
            let at = (y * src.width + x) * ch;
            out.extend_from_slice(&src.data[at..at + ch]);
        }
    }
    out
}
