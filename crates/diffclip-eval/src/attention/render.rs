//! PNG overlays of heat maps on the image (as in the DiffCLIP paper's Figure 2).

use std::path::Path;

use image::{Rgb, RgbImage};

use super::AttentionHeatmaps;
use super::font::Font;
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

/// Height of the title strip above each panel (two lines of text).
pub const TITLE_HEIGHT: usize = 40;

/// Two-line titles of the panels of [`render_overlay`], in [`panel_names`] order: what each map
/// is (first / subtracted / effective map of a differential layer, with λ; or the one map of a
/// standard layer) and, on the second line, the layer or λ.
pub fn panel_titles(maps: &AttentionHeatmaps) -> Vec<[String; 2]> {
    let layer = format!("layer {}, class token, mean of heads", maps.layer);
    let lambda = maps
        .lambda
        .map_or("λ = ?".to_string(), |l| format!("λ = {l:.3}"));
    let mut t = vec![["image".to_string(), "as the model sees it".to_string()]];
    if maps.second.is_some() {
        t.push(["A1: first map".into(), layer]);
        t.push(["A2: subtracted map".into(), format!("weighted by {lambda}")]);
        t.push(["A1 − λ·A2: effective".into(), lambda]);
    } else {
        t.push(["A: attention (standard)".into(), layer]);
    }
    if maps.text_relevance.is_some() {
        let sim = maps
            .similarity
            .map_or(String::new(), |s| format!("cos(image, text) = {s:.3}"));
        t.push(["patch–text relevance".into(), sim]);
    }
    t
}

/// Render `rgb` (`size × size` HWC bytes, the model's view of the image) and each map of
/// `maps` as an overlay, side by side (order: [`panel_names`]), each under a two-line title
/// ([`panel_titles`]: which map it is, the layer and λ). Small images are enlarged so each panel
/// is at least 224 px wide. Each map is min–max scaled and coloured with a jet colour map
/// (blue low, red high). The image is `TITLE_HEIGHT + side` pixels high.
pub fn render_overlay(
    rgb: &[u8],
    size: usize,
    maps: &AttentionHeatmaps,
) -> Result<RgbImage, EvalError> {
    check_rgb(rgb, size)?;
    let panels = panel_maps(maps)?;
    let side = panel_side(size);
    let gap = 4;
    let width = (side + gap) * panels.len() - gap;
    let mut out = RgbImage::from_pixel(width as u32, (TITLE_HEIGHT + side) as u32, WHITE);
    let font = Font::new();
    for (k, (map, title)) in panels.iter().zip(panel_titles(maps)).enumerate() {
        let x0 = k * (side + gap);
        font.title(&mut out, x0, 0, side, &title);
        draw_panel(&mut out, x0, TITLE_HEIGHT, side, rgb, size, *map, maps.grid);
    }
    Ok(out)
}

/// Several models' maps of the same image in one figure: one row per `(name, maps)`, each under
/// a header naming the model, with aligned columns: the image, the first map (a standard
/// layer's only map), the subtracted map (empty for standard attention), the effective map (what
/// the layer uses; for standard attention the same map again) and, when every row has one, the
/// patch–text relevance. `caption` (e.g. the text query) goes on top.
pub fn render_comparison(
    rgb: &[u8],
    size: usize,
    rows: &[(&str, &AttentionHeatmaps)],
    caption: Option<&str>,
) -> Result<RgbImage, EvalError> {
    check_rgb(rgb, size)?;
    if rows.is_empty() {
        return Err(EvalError::Invalid(
            "a comparison figure of no models".into(),
        ));
    }
    let relevance = rows.iter().all(|(_, m)| m.text_relevance.is_some());
    let cols = if relevance { 5 } else { 4 };
    let side = panel_side(size);
    let (gap, header, top) = (4, 26, if caption.is_some() { 48 } else { 24 });
    let row_h = header + TITLE_HEIGHT + side + 10;
    let width = (side + gap) * cols - gap;
    let mut out = RgbImage::from_pixel(width as u32, (top + row_h * rows.len()) as u32, WHITE);
    let font = Font::new();
    if let Some(c) = caption {
        font.text(&mut out, 4, 6, 16.0, c, [0, 0, 0], width - 8);
    }
    let legend = "each map min–max scaled on its own: blue = low, red = high";
    font.text(&mut out, 4, top - 20, 12.5, legend, [80, 80, 80], width - 8);
    for (r, (name, maps)) in rows.iter().enumerate() {
        panel_maps(maps)?;
        let y0 = top + r * row_h;
        let kind = match maps.lambda {
            Some(l) => format!("differential attention, λ = {l:.3}"),
            None => "standard attention".to_string(),
        };
        font.text(
            &mut out,
            4,
            y0 + 4,
            16.0,
            &format!("{name}: {kind} (layer {})", maps.layer),
            [0, 0, 0],
            width - 8,
        );
        let y = y0 + header;
        let titles = panel_titles(maps);
        let layer = titles[1][1].clone();
        let (first_title, second, effective_title) = match &maps.second {
            Some(s) => (titles[1].clone(), Some(s.as_slice()), titles[3].clone()),
            None => (
                ["A: attention map".into(), layer.clone()],
                None,
                ["effective = A".into(), "(no subtraction)".into()],
            ),
        };
        let mut cells: Vec<(Option<&[f32]>, [String; 2])> = vec![
            (None, titles[0].clone()),
            (Some(&maps.first), first_title),
            (
                second,
                if second.is_some() {
                    titles[2].clone()
                } else {
                    ["A2: none".into(), "standard attention".into()]
                },
            ),
            (Some(&maps.effective), effective_title),
        ];
        if relevance {
            cells.push((
                maps.text_relevance.as_deref(),
                titles.last().cloned().unwrap_or_default(),
            ));
        }
        for (k, (map, title)) in cells.into_iter().enumerate() {
            let x0 = k * (side + gap);
            font.title(&mut out, x0, y, side, &title);
            if k == 0 || map.is_some() {
                draw_panel(
                    &mut out,
                    x0,
                    y + TITLE_HEIGHT,
                    side,
                    rgb,
                    size,
                    map,
                    maps.grid,
                );
            } else {
                fill(&mut out, x0, y + TITLE_HEIGHT, side, side, [235, 235, 235]);
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
    save_png(path, &render_overlay(rgb, size, maps)?)
}

/// [`render_comparison`] written to `path` as PNG.
pub fn save_comparison_png(
    path: &Path,
    rgb: &[u8],
    size: usize,
    rows: &[(&str, &AttentionHeatmaps)],
    caption: Option<&str>,
) -> Result<(), EvalError> {
    save_png(path, &render_comparison(rgb, size, rows, caption)?)
}

fn save_png(path: &Path, img: &RgbImage) -> Result<(), EvalError> {
    save_rgb_png(path, img.as_raw(), img.width(), img.height())
}

/// Writes `rgb` (`width`×`height` pixels, 3 bytes each, row by row) to `path` as PNG.
///
/// Written atomically ([`diffclip_clip::files::write_atomic`]): a device, FIFO or folder is
/// refused, and a kill leaves the old file or the new one.
///
/// ```
/// let path = std::env::temp_dir().join(format!("diffclip-doc-{}.png", std::process::id()));
/// diffclip_eval::attention::save_rgb_png(&path, &[255, 0, 0, 0, 0, 255], 2, 1).unwrap();
/// assert_eq!(&std::fs::read(&path).unwrap()[1..4], b"PNG");
/// // A buffer of the wrong length is refused, naming both sizes.
/// assert!(diffclip_eval::attention::save_rgb_png(&path, &[0; 5], 2, 1).is_err());
/// std::fs::remove_file(&path).unwrap();
/// ```
pub fn save_rgb_png(path: &Path, rgb: &[u8], width: u32, height: u32) -> Result<(), EvalError> {
    let image_error = |message: String| EvalError::Image { path: path.display().to_string(), message };
    let img = RgbImage::from_raw(width, height, rgb.to_vec()).ok_or_else(|| {
        image_error(format!("{} RGB bytes for a {width}x{height} image", rgb.len()))
    })?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| image_error(e.to_string()))?;
    diffclip_clip::files::write_atomic(path, &png).map_err(|e| image_error(e.to_string()))
}

const WHITE: Rgb<u8> = Rgb([255, 255, 255]);

fn check_rgb(rgb: &[u8], size: usize) -> Result<(), EvalError> {
    if rgb.len() != size * size * 3 || size == 0 {
        return Err(EvalError::Shape(format!(
            "{} RGB bytes for a {size}x{size} image",
            rgb.len()
        )));
    }
    Ok(())
}

/// Panel side in pixels: the image enlarged by an integer factor to at least 224 px.
fn panel_side(size: usize) -> usize {
    size * 224usize.div_ceil(size).max(1)
}

/// The panels of [`render_overlay`]: `None` for the image itself, then each map (checked against
/// the grid).
fn panel_maps(maps: &AttentionHeatmaps) -> Result<Vec<Option<&[f32]>>, EvalError> {
    let g = maps.grid;
    let mut panels: Vec<Option<&[f32]>> = vec![None, Some(&maps.first)];
    if let Some(s) = &maps.second {
        panels.extend([Some(s.as_slice()), Some(maps.effective.as_slice())]);
    }
    if let Some(t) = &maps.text_relevance {
        panels.push(Some(t));
    }
    if maps.effective.len() != g * g {
        return Err(EvalError::Shape(format!(
            "a map of {} values for a {g}x{g} grid",
            maps.effective.len()
        )));
    }
    if let Some(p) = panels.iter().flatten().find(|p| p.len() != g * g) {
        return Err(EvalError::Shape(format!(
            "a map of {} values for a {g}x{g} grid",
            p.len()
        )));
    }
    Ok(panels)
}

/// The image (`map = None`) or the image overlaid with `map`, at `(x0, y0)`, `side` pixels wide.
#[allow(clippy::too_many_arguments)]
fn draw_panel(
    out: &mut RgbImage,
    x0: usize,
    y0: usize,
    side: usize,
    rgb: &[u8],
    size: usize,
    map: Option<&[f32]>,
    g: usize,
) {
    let scale = side / size;
    let pixel = |x: usize, y: usize| {
        let i = ((y / scale) * size + x / scale) * 3;
        [rgb[i], rgb[i + 1], rgb[i + 2]]
    };
    let Some(map) = map else {
        for y in 0..side {
            for x in 0..side {
                out.put_pixel((x0 + x) as u32, (y0 + y) as u32, Rgb(pixel(x, y)));
            }
        }
        return;
    };
    let (lo, hi) = map
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
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
            let mix = |i: usize| (0.45 * p[i] as f32 + 0.55 * c[i]).round().clamp(0.0, 255.0) as u8;
            out.put_pixel(
                (x0 + x) as u32,
                (y0 + y) as u32,
                Rgb([mix(0), mix(1), mix(2)]),
            );
        }
    }
}

fn fill(out: &mut RgbImage, x0: usize, y0: usize, w: usize, h: usize, c: [u8; 3]) {
    for y in y0..y0 + h {
        for x in x0..x0 + w {
            out.put_pixel(x as u32, y as u32, Rgb(c));
        }
    }
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
