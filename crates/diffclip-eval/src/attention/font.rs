//! Text for the overlays' titles, drawn with the embedded DejaVu Sans (no system fonts).

use image::RgbImage;

/// Text drawn with the embedded DejaVu Sans (no system fonts needed).
pub(super) struct Font(ab_glyph::FontRef<'static>);

impl Font {
    pub(super) fn new() -> Self {
        Self(
            ab_glyph::FontRef::try_from_slice(dejavu::sans::regular())
                .expect("the embedded DejaVu Sans parses"),
        )
    }

    /// A two-line title centred over a panel `width` pixels wide at `(x0, y0)`.
    pub(super) fn title(&self, out: &mut RgbImage, x0: usize, y0: usize, width: usize, lines: &[String; 2]) {
        for (i, (line, px, color)) in [
            (&lines[0], 15.0, [0u8, 0, 0]),
            (&lines[1], 12.5, [80, 80, 80]),
        ]
        .into_iter()
        .enumerate()
        {
            let w = self.width(line, px).min(width as f32) as usize;
            self.text(
                out,
                x0 + (width - w) / 2,
                y0 + 3 + i * 19,
                px,
                line,
                color,
                width,
            );
        }
    }

    fn width(&self, text: &str, px: f32) -> f32 {
        use ab_glyph::{Font as _, ScaleFont};
        let f = self.0.as_scaled(px);
        text.chars().map(|c| f.h_advance(f.glyph_id(c))).sum()
    }

    /// `text` with its top-left corner at `(x, y)`, `px` pixels high, clipped to `max_width`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn text(
        &self,
        out: &mut RgbImage,
        x: usize,
        y: usize,
        px: f32,
        text: &str,
        color: [u8; 3],
        max_width: usize,
    ) {
        use ab_glyph::{Font as _, ScaleFont, point};
        let f = self.0.as_scaled(px);
        let mut caret = x as f32;
        let baseline = y as f32 + f.ascent();
        let (w, h) = (out.width() as i64, out.height() as i64);
        for c in text.chars() {
            let id = f.glyph_id(c);
            let advance = f.h_advance(id);
            if caret + advance > (x + max_width) as f32 {
                break;
            }
            let glyph = id.with_scale_and_position(px, point(caret, baseline));
            if let Some(outline) = self.0.outline_glyph(glyph) {
                let b = outline.px_bounds();
                outline.draw(|gx, gy, cov| {
                    let (px_, py_) = (b.min.x as i64 + gx as i64, b.min.y as i64 + gy as i64);
                    if px_ < 0 || py_ < 0 || px_ >= w || py_ >= h {
                        return;
                    }
                    let p = out.get_pixel_mut(px_ as u32, py_ as u32);
                    for (dst, &src) in p.0.iter_mut().zip(&color) {
                        *dst = (*dst as f32 * (1.0 - cov) + src as f32 * cov).round() as u8;
                    }
                });
            }
            caret += advance;
        }
    }
}
