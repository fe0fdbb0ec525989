//! Mode-aware resize: what Pillow's `Image.resize` does for each mode.
//!
//! * same size: a copy (no resampling at all);
//! * `P` (palette): always nearest neighbour, on the indices;
//! * `RGBA` / `LA` (unless nearest): premultiply (`RGBa`/`La`), resample,
//!   un-premultiply — colour under alpha 0 is lost, partial alpha re-quantised;
//! * `I;16`: 16-bit resampling;
//! * everything else: 8-bit fixed-point resampling.

use super::filter::{Filter, Resampling};
use super::pixels::{DecodedImage, Pixels, muldiv255};
use super::resample::{Plane, Window, resample_u8, resample_u16};

/// Resizes `img` to `out_w x out_h` exactly like Pillow's `img.resize((out_w, out_h),
/// filter)` in the image's own mode, and returns the window `win` of the result (the
/// whole output for `Window::full(out_w, out_h)`).
///
/// ```
/// use diffclip_data::preprocess::{resize_window, DecodedImage, Filter, Pixels, Window};
/// let img = DecodedImage::new(2, 2, Pixels::Rgb(vec![200; 12])).unwrap();
/// let out = resize_window(&img, 5, 3, Filter::Bicubic.into(), Window::full(5, 3));
/// assert_eq!((out.width(), out.height()), (5, 3));
/// assert_eq!(out.to_rgb_bytes(), vec![200; 45]);
/// ```
///
/// # Panics
/// When `out_w` or `out_h` is 0, or `win` is not inside the `out_w × out_h` output. The
/// [`Pipeline`](crate::Pipeline) computes both from checked sizes; check your own first.
pub fn resize_window(
    img: &DecodedImage,
    out_w: u32,
    out_h: u32,
    how: Resampling,
    win: Window,
) -> DecodedImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (ow, oh) = (out_w as usize, out_h as usize);
    assert!(ow > 0 && oh > 0, "resize to an empty image");
    if (ow, oh) == (w, h) {
        return img.crop(
            win.x as u32,
            win.y as u32,
            win.width as u32,
            win.height as u32,
        );
    }
    let filter = how.filter;
    let rs = |data: &[u8], channels: usize, filter: Filter| {
        let plane = Plane {
            data,
            width: w,
            height: h,
            channels,
        };
        resample_u8(plane, ow, oh, Resampling { filter, ..how }, win)
    };
    let pixels = match img.pixels() {
        Pixels::Palette { indices, palette } => Pixels::Palette {
            indices: rs(indices, 1, Filter::Nearest),
            palette: palette.clone(),
        },
        Pixels::Rgba(v) if filter != Filter::Nearest => {
            Pixels::Rgba(unpremultiply(&rs(&premultiply(v, 4), 4, filter), 4))
        }
        Pixels::La(v) if filter != Filter::Nearest => {
            Pixels::La(unpremultiply(&rs(&premultiply(v, 2), 2, filter), 2))
        }
        Pixels::I16(v) => {
            let plane = Plane {
                data: v.as_slice(),
                width: w,
                height: h,
                channels: 1,
            };
            Pixels::I16(resample_u16(plane, ow, oh, how, win))
        }
        Pixels::L(v) => Pixels::L(rs(v, 1, filter)),
        Pixels::La(v) => Pixels::La(rs(v, 2, filter)),
        Pixels::Rgb(v) => Pixels::Rgb(rs(v, 3, filter)),
        Pixels::Rgba(v) => Pixels::Rgba(rs(v, 4, filter)),
        Pixels::Cmyk(v) => Pixels::Cmyk(rs(v, 4, filter)),
    };
    DecodedImage::from_parts(win.width as u32, win.height as u32, pixels)
}

/// Pillow's `RGBA -> RGBa` / `LA -> La`: colour channels times alpha / 255, rounded.
fn premultiply(v: &[u8], ch: usize) -> Vec<u8> {
    let mut out = v.to_vec();
    for px in out.chunks_exact_mut(ch) {
        let a = px[ch - 1];
        for c in &mut px[..ch - 1] {
            *c = muldiv255(*c, a);
        }
    }
    out
}

/// Pillow's `RGBa -> RGBA` / `La -> LA`: `clip(255 * c / alpha)` in integers, colour
/// kept as is where alpha is 0 or 255.
fn unpremultiply(v: &[u8], ch: usize) -> Vec<u8> {
    let mut out = v.to_vec();
    for px in out.chunks_exact_mut(ch) {
        let a = u32::from(px[ch - 1]);
        if a == 0 || a == 255 {
            continue;
        }
        for c in &mut px[..ch - 1] {
            *c = (255 * u32::from(*c) / a).min(255) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::PassOrder;

    #[test]
    fn premultiplied_resize_loses_hidden_colour() {
        // Two pixels: transparent magenta, opaque green. Bilinear 2 -> 1.
        let img =
            DecodedImage::new(2, 1, Pixels::Rgba(vec![255, 0, 255, 0, 0, 255, 0, 255])).unwrap();
        let out = resize_window(&img, 1, 1, Filter::Bilinear.into(), Window::full(1, 1));
        // alpha averages to 128; colour is green only (magenta had no weight).
        assert_eq!(out.pixels(), &Pixels::Rgba(vec![0, 255, 0, 128]));
    }

    #[test]
    fn palette_uses_nearest() {
        let pal = vec![[0, 0, 0], [255, 255, 255]];
        let img = DecodedImage::new(
            2,
            1,
            Pixels::Palette {
                indices: vec![0, 1],
                palette: pal,
            },
        )
        .unwrap();
        let out = resize_window(&img, 4, 1, Filter::Bicubic.into(), Window::full(4, 1));
        assert_eq!(
            out.to_rgb_bytes(),
            [0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255].to_vec()
        );
    }

    #[test]
    fn window_equals_crop_of_full_resize() {
        let data: Vec<u8> = (0..7 * 5 * 3).map(|i| (i * 37 % 251) as u8).collect();
        let img = DecodedImage::new(7, 5, Pixels::Rgb(data)).unwrap();
        let orders = [PassOrder::Pillow13, PassOrder::HorizontalFirst];
        for f in [
            Filter::Bicubic,
            Filter::Bilinear,
            Filter::Lanczos,
            Filter::Nearest,
        ] {
            for order in orders {
                // 7x5 -> 13x3 (horizontal first), 7x5 -> 5x2 (vertical first under Pillow13).
                for (ow, oh, win) in [
                    (
                        13,
                        3,
                        Window {
                            x: 4,
                            y: 1,
                            width: 6,
                            height: 2,
                        },
                    ),
                    (
                        5,
                        2,
                        Window {
                            x: 1,
                            y: 1,
                            width: 3,
                            height: 1,
                        },
                    ),
                ] {
                    let how = Resampling { filter: f, order };
                    let full =
                        resize_window(&img, ow, oh, how, Window::full(ow as usize, oh as usize));
                    let part = resize_window(&img, ow, oh, how, win);
                    let (x, y, cw, chh) = (
                        win.x as u32,
                        win.y as u32,
                        win.width as u32,
                        win.height as u32,
                    );
                    assert_eq!(part, full.crop(x, y, cw, chh), "{f:?} {order:?} {ow}x{oh}");
                }
            }
        }
    }

    #[test]
    fn pass_order_matters_only_when_both_axes_change() {
        let data: Vec<u8> = (0..9 * 30).map(|i| (i * 53 % 256) as u8).collect();
        let img = DecodedImage::new(9, 30, Pixels::L(data)).unwrap();
        let run = |order| {
            let how = Resampling {
                filter: Filter::Bicubic,
                order,
            };
            resize_window(&img, 16, 11, how, Window::full(16, 11))
        };
        assert!(PassOrder::Pillow13.vertical_first(9, 30, 16, 11));
        assert_ne!(run(PassOrder::Pillow13), run(PassOrder::HorizontalFirst));
    }
}
