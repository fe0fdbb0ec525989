//! Rasterising a [`Scene`] into RGB bytes (signed-distance coverage, so edges are anti-aliased).

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::scene::{Background, Distractor, Object, Scene};
use super::vocab::{BackgroundKind, Shape};

type Px = [f32; 3];

/// Renders `scene` at `size x size`: row-major HWC RGB bytes (`3 * size * size`).
///
/// ```
/// use diffclip_data::synthetic::{render, SyntheticConfig, SyntheticDataset, Split};
/// let ds = SyntheticDataset::new(SyntheticConfig::default(), Split::Train).unwrap();
/// let rgb = render(&ds.scene(0), 64);
/// assert_eq!(rgb.len(), 3 * 64 * 64);
/// assert_eq!(rgb, ds.image_rgb(0));
/// ```
pub fn render(scene: &Scene, size: usize) -> Vec<u8> {
    let s = size as f32;
    let mut buf: Vec<Px> = Vec::with_capacity(size * size);
    for y in 0..size {
        for x in 0..size {
            buf.push(background(
                &scene.background,
                (x as f32 + 0.5) / s,
                (y as f32 + 0.5) / s,
            ));
        }
    }
    for d in &scene.distractors {
        draw_distractor(&mut buf, size, d);
    }
    for o in &scene.objects {
        draw_object(&mut buf, size, o);
    }
    let mut rng = StdRng::seed_from_u64(scene.noise_seed);
    let amp = scene.noise;
    let mut out = Vec::with_capacity(3 * size * size);
    for px in buf {
        for c in px {
            let n = if amp > 0.0 {
                rng.random_range(-amp..=amp)
            } else {
                0.0
            };
            out.push((c + n).round().clamp(0.0, 255.0) as u8);
        }
    }
    out
}

fn lerp(a: [u8; 3], b: [u8; 3], t: f32) -> Px {
    [0, 1, 2].map(|k| a[k] as f32 + (b[k] as f32 - a[k] as f32) * t)
}

fn background(bg: &Background, x: f32, y: f32) -> Px {
    let (sin, cos) = bg.angle.sin_cos();
    let proj = (x - 0.5) * cos + (y - 0.5) * sin;
    match bg.kind {
        BackgroundKind::Noise => bg.colors[0].map(f32::from),
        BackgroundKind::Gradient => lerp(
            bg.colors[0],
            bg.colors[1],
            (proj / 1.42 + 0.5).clamp(0.0, 1.0),
        ),
        BackgroundKind::Stripes => {
            let w = (std::f32::consts::TAU * (proj / bg.scale + bg.phase)).sin();
            lerp(bg.colors[0], bg.colors[1], (0.5 + 1.5 * w).clamp(0.0, 1.0))
        }
        BackgroundKind::Checker => {
            let (u, v) = (
                (x / bg.scale + bg.phase).floor() as i64,
                (y / bg.scale).floor() as i64,
            );
            lerp(bg.colors[0], bg.colors[1], ((u + v).rem_euclid(2)) as f32)
        }
        BackgroundKind::Blotches => {
            let g = bg.scale as usize;
            let (gx, gy) = (x * g as f32, y * g as f32);
            let (i, j) = ((gx as usize).min(g - 1), (gy as usize).min(g - 1));
            let (tx, ty) = (gx - i as f32, gy - j as f32);
            let at = |r: usize, c: usize| bg.colors[r * (g + 1) + c];
            let top = lerp(at(j, i), at(j, i + 1), tx);
            let bottom = lerp(at(j + 1, i), at(j + 1, i + 1), tx);
            lerp_px(top, bottom, ty)
        }
    }
}

fn lerp_px(a: Px, b: Px, t: f32) -> Px {
    [0, 1, 2].map(|k| a[k] + (b[k] - a[k]) * t)
}

/// Blends `rgb` into the pixels of the box around `(cx, cy)` (pixels) of half-side `reach`, with
/// coverage from the signed distance `sdf(dx, dy)` (pixels; negative inside).
fn fill(
    buf: &mut [Px],
    size: usize,
    (cx, cy): (f32, f32),
    reach: f32,
    color: impl Fn(f32, f32) -> Px,
    sdf: impl Fn(f32, f32) -> f32,
) {
    let lo = |c: f32| ((c - reach - 1.0).floor().max(0.0)) as usize;
    let hi = |c: f32| ((c + reach + 1.0).ceil().max(0.0) as usize).min(size);
    for y in lo(cy)..hi(cy) {
        for x in lo(cx)..hi(cx) {
            let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            let cov = (0.5 - sdf(dx, dy)).clamp(0.0, 1.0);
            if cov > 0.0 {
                let px = &mut buf[y * size + x];
                *px = lerp_px(*px, color(dx, dy), cov);
            }
        }
    }
}

fn draw_distractor(buf: &mut [Px], size: usize, d: &Distractor) {
    let s = size as f32;
    let color = |_, _| d.rgb.map(|c| c as f32);
    if d.line {
        let (ax, ay, bx, by) = (d.a[0] * s, d.a[1] * s, d.b[0] * s, d.b[1] * s);
        let (cx, cy) = ((ax + bx) / 2.0, (ay + by) / 2.0);
        let reach = ((bx - ax).abs().max((by - ay).abs())) / 2.0 + 1.0;
        let (ex, ey) = (bx - ax, by - ay);
        let len2 = (ex * ex + ey * ey).max(1e-6);
        fill(buf, size, (cx, cy), reach, color, |dx, dy| {
            let (px, py) = (cx + dx - ax, cy + dy - ay);
            let t = ((px * ex + py * ey) / len2).clamp(0.0, 1.0);
            let (qx, qy) = (px - t * ex, py - t * ey);
            (qx * qx + qy * qy).sqrt() - 0.6
        });
    } else {
        let (rx, ry) = ((d.b[0] * s).max(0.6), (d.b[1] * s).max(0.6));
        fill(
            buf,
            size,
            (d.a[0] * s, d.a[1] * s),
            rx.max(ry),
            color,
            |dx, dy| {
                let k = ((dx / rx).powi(2) + (dy / ry).powi(2)).sqrt();
                (k - 1.0) * rx.min(ry)
            },
        );
    }
}

fn draw_object(buf: &mut [Px], size: usize, o: &Object) {
    let s = size as f32;
    let r = o.radius * s;
    let (sin, cos) = o.rotation.sin_cos();
    let base = o.rgb.map(|c| c as f32);
    let color = |_: f32, dy: f32| base.map(|c| (c * (1.0 - o.shade * dy / r)).clamp(0.0, 255.0));
    let local = move |dx: f32, dy: f32| (dx * cos + dy * sin, -dx * sin + dy * cos);
    let center = (o.center[0] * s, o.center[1] * s);
    match o.shape {
        Shape::Circle => fill(buf, size, center, r, color, |dx, dy| {
            (dx * dx + dy * dy).sqrt() - r
        }),
        Shape::Square => fill(buf, size, center, r, color, |dx, dy| {
            let (x, y) = local(dx, dy);
            sd_box(x, y, 0.8 * r, 0.8 * r)
        }),
        Shape::Cross => fill(buf, size, center, r, color, |dx, dy| {
            let (x, y) = local(dx, dy);
            sd_box(x, y, 0.95 * r, 0.32 * r).min(sd_box(x, y, 0.32 * r, 0.95 * r))
        }),
        Shape::Triangle | Shape::Star | Shape::Diamond => {
            let poly = polygon(o.shape, r);
            fill(buf, size, center, r * 1.1, color, |dx, dy| {
                let (x, y) = local(dx, dy);
                sd_polygon(&poly, x, y)
            })
        }
    }
}

/// Vertices (pixels, centred, y down) of the polygonal shapes.
fn polygon(shape: Shape, r: f32) -> Vec<(f32, f32)> {
    let ring = |n: usize, radius: &dyn Fn(usize) -> f32, start: f32| -> Vec<(f32, f32)> {
        (0..n)
            .map(|k| {
                let a = start + std::f32::consts::TAU * k as f32 / n as f32;
                (radius(k) * a.cos(), radius(k) * a.sin())
            })
            .collect()
    };
    let up = -std::f32::consts::FRAC_PI_2;
    match shape {
        // Centroid at the centre; circumradius r * 1.1 so its area is not too small.
        Shape::Triangle => ring(3, &|_| 1.1 * r, up)
            .into_iter()
            .map(|(x, y)| (x, y + 0.12 * r))
            .collect(),
        Shape::Star => ring(10, &|k| if k % 2 == 0 { 1.05 * r } else { 0.45 * r }, up),
        _ => ring(4, &|_| r, up),
    }
}

fn sd_box(x: f32, y: f32, hx: f32, hy: f32) -> f32 {
    let (qx, qy) = (x.abs() - hx, y.abs() - hy);
    let outside = (qx.max(0.0).powi(2) + qy.max(0.0).powi(2)).sqrt();
    outside + qx.max(qy).min(0.0)
}

/// Exact signed distance to a simple polygon (negative inside).
fn sd_polygon(v: &[(f32, f32)], px: f32, py: f32) -> f32 {
    let mut d = (px - v[0].0).powi(2) + (py - v[0].1).powi(2);
    let mut sign = 1.0f32;
    let n = v.len();
    for i in 0..n {
        let j = (i + n - 1) % n;
        let (ex, ey) = (v[j].0 - v[i].0, v[j].1 - v[i].1);
        let (wx, wy) = (px - v[i].0, py - v[i].1);
        let t = ((wx * ex + wy * ey) / (ex * ex + ey * ey)).clamp(0.0, 1.0);
        let (bx, by) = (wx - ex * t, wy - ey * t);
        d = d.min(bx * bx + by * by);
        let c = [py >= v[i].1, py < v[j].1, ex * wy > ey * wx];
        if c.iter().all(|&b| b) || c.iter().all(|&b| !b) {
            sign = -sign;
        }
    }
    sign * d.sqrt()
}
