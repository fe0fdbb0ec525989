//! Loss and held-out accuracy curves as PNG (plotters): lines (quickstart) and mean ± sd bands
//! over seeds (reproduce, convert).

use std::error::Error;
use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// One line of a chart.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

const COLORS: [RGBColor; 6] = [RGBColor(31, 119, 180), RGBColor(214, 39, 40), RGBColor(44, 160, 44), RGBColor(255, 127, 14), RGBColor(148, 103, 189), RGBColor(140, 86, 75)];

/// Register the embedded DejaVu font once so text renders without system fonts.
pub fn init_fonts() {
    let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
}

/// Chart size in pixels.
const SIZE: (u32, u32) = (900, 540);

/// Runs `draw` on a white canvas and writes it to `path` as PNG, atomically like every output
/// through the heat maps' encoder (plotters' own would need a second `image` crate in the build).
fn draw_png(path: &Path, draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), Box<dyn Error>>) -> Result<(), Box<dyn Error>> {
    let mut rgb = vec![0u8; SIZE.0 as usize * SIZE.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    diffclip::eval::attention::save_rgb_png(path, &rgb, SIZE.0, SIZE.1)?;
    Ok(())
}

/// A chart drawn on a canvas of [`draw_png`].
type Chart<'a, 'b> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Axes titled `title` spanning the finite `points` (y padded by 5 %), their mesh drawn.
fn axes<'a, 'b>(root: &'a DrawingArea<BitMapBackend<'b>, Shift>, title: &str, (x_label, y_label): (&str, &str), points: impl Iterator<Item = (f64, f64)>) -> Result<Chart<'a, 'b>, Box<dyn Error>> {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in points.filter(|(x, y)| x.is_finite() && y.is_finite()) {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        return Err(format!("{title}: nothing to plot").into());
    }
    let pad = ((y1 - y0) * 0.05).max(1e-3);
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1.max(x0 + 1.0), (y0 - pad)..(y1 + pad))?;
    chart.configure_mesh().x_desc(x_label).y_desc(y_label).label_style(("sans-serif", 14)).draw()?;
    Ok(chart)
}

/// Draw `series` as lines into a PNG at `path`.
pub fn line_chart(path: &Path, title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Result<(), Box<dyn Error>> {
    draw_png(path, |root| {
        let mut chart = axes(root, title, (x_label, y_label), series.iter().flat_map(|s| s.points.iter().copied()))?;
        for (i, s) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), color.stroke_width(2)))?
                .label(s.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).label_font(("sans-serif", 14)).draw()?;
        Ok(())
    })
}

/// One variant's curve over seeds: `(x, mean, low, high)` per point.
pub struct Band {
    pub name: String,
    pub points: Vec<(f64, f64, f64, f64)>,
}

/// Draw each band as its mean line over a shaded `[low, high]` area into a PNG at `path`.
pub fn band_chart(path: &Path, title: &str, x_label: &str, y_label: &str, bands: &[Band]) -> Result<(), Box<dyn Error>> {
    draw_png(path, |root| {
        let spans = bands.iter().flat_map(|b| b.points.iter().flat_map(|p| [(p.0, p.2), (p.0, p.3)]));
        let mut chart = axes(root, title, (x_label, y_label), spans)?;
        for (i, b) in bands.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let mut area: Vec<(f64, f64)> = b.points.iter().map(|p| (p.0, p.3)).collect();
            area.extend(b.points.iter().rev().map(|p| (p.0, p.2)));
            chart.draw_series(std::iter::once(Polygon::new(area, color.mix(0.18).filled())))?;
            chart
                .draw_series(LineSeries::new(b.points.iter().map(|p| (p.0, p.1)), color.stroke_width(2)))?
                .label(b.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).label_font(("sans-serif", 14)).draw()?;
        Ok(())
    })
}

/// The mean ± sample sd band over runs of equally long curves `runs[r][i] = (x, y)`.
pub fn band(name: &str, runs: &[Vec<(f64, f64)>]) -> Band {
    let n = runs.iter().map(Vec::len).min().unwrap_or(0);
    let points = (0..n)
        .map(|i| {
            let ys: Vec<f64> = runs.iter().map(|r| r[i].1).collect();
            let (m, sd) = (diffclip::eval::stats::mean(&ys), diffclip::eval::stats::sample_sd(&ys));
            let sd = if sd.is_finite() { sd } else { 0.0 }; // one run: no band
            (runs[0][i].0, m, m - sd, m + sd)
        })
        .collect();
    Band { name: name.to_string(), points }
}

/// Moving average, to make noisy per-step losses readable.
pub fn smooth(values: &[f32], window: usize) -> Vec<(f64, f64)> {
    let w = window.max(1);
    (0..values.len())
        .map(|i| {
            let lo = i.saturating_sub(w - 1);
            let mean = values[lo..=i].iter().map(|&v| v as f64).sum::<f64>() / (i - lo + 1) as f64;
            ((i + 1) as f64, mean)
        })
        .collect()
}
