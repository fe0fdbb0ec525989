//! PNG overlays of heat maps on the image (as in the DiffCLIP paper's Figure 2).

use std::path::Path;

use image::{Rgb, RgbImage};

use super::AttentionHeatmaps;
use crate::EvalError;

/// The panels of [`save_overlay_png`], left to right, and their names.
pub fn panel_names(maps: &AttentionHeatmaps) -> Vec<&'static str> {
    let mut names = vec!["image", "first"];
    if maps.second.is_some() {
        names.extend(["second", "effective"]);
    }
    if maps.text_relevance.is_some() {
        names.push("text_relevance");
    }
    names
}

/// Render `rgb` (`size × size` HWC bytes, the model's view of the image) and each map of
/// `maps` as an overlay, side by side (order: [`panel_names`]). Small images are enlarged so each
/// panel is at least 224 px wide. Each map is min–max scaled and coloured with a jet colour map.
pub fn render_overlay(
    rgb: &[u8],
    size: usize,
    maps: &AttentionHeatmaps,
) -> Result<RgbImage, EvalError> {
    if rgb.len() != size * size * 3 || size == 0 {
        return Err(EvalError::Shape(format!(
            "{} RGB bytes for a {size}x{size} image",
            rgb.len()
        )));
    }
    let g = maps.grid;
    let mut panels: Vec<&[f32]> = vec![&maps.first];
    if let Some(s) = &maps.second {
        panels.extend([s.as_slice(), maps.effective.as_slice()]);
    }
    if let Some(t) = &maps.text_relevance {
        panels.push(t);
    }
    if let Some(p) = panels.iter().find(|p| p.len() != g * g) {
        return Err(EvalError::Shape(format!(
            "a map of {} values for a {g}x{g} grid",
            p.len()
        )));
    }
    let scale = 224usize.div_ceil(size).max(1);
    let side = size * scale;
    let gap = 4;
    let width = (side + gap) * (panels.len() + 1) - gap;
    let mut out = RgbImage::from_pixel(width as u32, side as u32, Rgb([255, 255, 255]));
    let pixel = |x: usize, y: usize| {
        let i = ((y / scale) * size + x / scale) * 3;
        [rgb[i], rgb[i + 1], rgb[i + 2]]
    };
    for y in 0..side {
        for x in 0..side {
            out.put_pixel(x as u32, y as u32, Rgb(pixel(x, y)));
        }
    }
    for (k, map) in panels.iter().enumerate() {
        let (lo, hi) = map
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let span = if hi > lo { hi - lo } else { 1.0 };
        let x0 = (k + 1) * (side + gap);
        for y in 0..side {
            for x in 0..side {
                let v = (bilinear(
                    map,
                    g,
                    (x as f32 + 0.5) / side as f32,
                    (y as f32 + 0.5) / side as f32,
                ) - lo)
                    / span;
                let c = jet(v);
                let p = pixel(x, y);
                let mix =
                    |i: usize| (0.45 * p[i] as f32 + 0.55 * c[i]).round().clamp(0.0, 255.0) as u8;
                out.put_pixel((x0 + x) as u32, y as u32, Rgb([mix(0), mix(1), mix(2)]));
            }
        }
    }
    Ok(out)
}

/// [`render_overlay`] written to `path` as PNG.
pub fn save_overlay_png(
    path: &Path,
    rgb: &[u8],
    size: usize,
    maps: &AttentionHeatmaps,
) -> Result<(), EvalError> {
    let img = render_overlay(rgb, size, maps)?;
    img.save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| EvalError::Image {
            path: path.display().to_string(),
            message: e.to_string(),
        })
}

/// Bilinear sample of a `g × g` map at `(u, v)` in `[0, 1]²` (pixel centres, edges clamped).
fn bilinear(map: &[f32], g: usize, u: f32, v: f32) -> f32 {
    let fx = (u * g as f32 - 0.5).clamp(0.0, (g - 1) as f32);
    let fy = (v * g as f32 - 0.5).clamp(0.0, (g - 1) as f32);
    let (x0, y0) = (fx.floor() as usize, fy.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(g - 1), (y0 + 1).min(g - 1));
    let (tx, ty) = (fx - x0 as f32, fy - y0 as f32);
    let at = |x: usize, y: usize| map[y * g + x];
    let top = at(x0, y0) * (1.0 - tx) + at(x1, y0) * tx;
    let bottom = at(x0, y1) * (1.0 - tx) + at(x1, y1) * tx;
    top * (1.0 - ty) + bottom * ty
}

/// Jet colour map of `t` in `[0, 1]` as 0..255 floats.
fn jet(t: f32) -> [f32; 3] {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let f = |c: f32| (1.5 - (4.0 * t - c).abs()).clamp(0.0, 1.0) * 255.0;
    [f(3.0), f(2.0), f(1.0)]
}
