//! A synthetic scene: background, clutter and coloured shapes, sampled from an RNG.

use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use super::config::SyntheticConfig;
use super::vocab::{BackgroundKind, Color, Shape, SizeClass};

/// One shape. Coordinates are fractions of the image side (`[0, 1]`, y down).
///
/// ```
/// use diffclip_data::synthetic::{Color, Object, Shape, SizeClass};
/// let o = Object { shape: Shape::Circle, color: Color::Red, size: SizeClass::Large, center: [0.2, 0.5],
///                  radius: 0.22, rotation: 0.0, rgb: [220, 40, 40], shade: 0.0 };
/// assert_eq!(o.describe(true), "a large red circle");
/// assert_eq!(Object { color: Color::Orange, ..o }.describe(false), "an orange circle");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Object {
    /// Shape.
    pub shape: Shape,
    /// Colour name.
    pub color: Color,
    /// Size class.
    pub size: SizeClass,
    /// Centre `[x, y]`.
    pub center: [f32; 2],
    /// Radius of the bounding circle.
    pub radius: f32,
    /// Rotation in radians.
    pub rotation: f32,
    /// The jittered fill colour.
    pub rgb: [u8; 3],
    /// Vertical shading strength (0 = flat; lighter at the top).
    pub shade: f32,
}

impl Object {
    /// `"a [size ]colour shape"` (`"an orange star"`).
    pub fn describe(&self, with_size: bool) -> String {
        let words = if with_size {
            format!(
                "{} {} {}",
                self.size.name(),
                self.color.name(),
                self.shape.name()
            )
        } else {
            format!("{} {}", self.color.name(), self.shape.name())
        };
        let article = if words.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        format!("{article} {words}")
    }
}

/// The background and its colours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Background {
    /// Which pattern.
    pub kind: BackgroundKind,
    /// Pattern colours (two for gradient/stripes/checker, one for noise, a grid for blotches).
    pub colors: Vec<[u8; 3]>,
    /// Direction of gradients and stripes, radians.
    pub angle: f32,
    /// Stripe period / checker cell / blotch grid side, as a fraction of the image side.
    pub scale: f32,
    /// Stripe phase in `[0, 1)`.
    pub phase: f32,
}

/// A small clutter item drawn under the objects: a blob (ellipse) or a thin line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distractor {
    /// Colour.
    pub rgb: [u8; 3],
    /// Start (line) or centre (blob).
    pub a: [f32; 2],
    /// End (line) or radii (blob).
    pub b: [f32; 2],
    /// Whether it is a line.
    pub line: bool,
}

/// Everything drawn in one image. `objects[0]` is the salient (largest) object.
///
/// ```
/// use diffclip_data::synthetic::{SyntheticConfig, SyntheticDataset, Split};
/// let ds = SyntheticDataset::new(SyntheticConfig::default(), Split::Train).unwrap();
/// let scene = ds.scene(0);
/// assert!((1..=3).contains(&scene.objects.len()));
/// assert!(scene.objects.iter().skip(1).all(|o| o.radius < scene.salient().radius));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    /// Background.
    pub background: Background,
    /// Per-pixel noise amplitude (0–255 scale).
    pub noise: f32,
    /// Seed of the pixel noise.
    pub noise_seed: u64,
    /// Clutter, drawn first.
    pub distractors: Vec<Distractor>,
    /// The shapes, salient first.
    pub objects: Vec<Object>,
}

impl Scene {
    /// The largest object (the one classification labels describe).
    ///
    /// # Panics
    /// When the scene has no object (the generator always draws at least one).
    pub fn salient(&self) -> &Object {
        &self.objects[0]
    }

    /// Samples a scene (the draws are part of the dataset's definition: changing their order
    /// changes every image).
    pub fn sample<R: Rng>(rng: &mut R, config: &SyntheticConfig) -> Scene {
        let background = sample_background(rng);
        let noise = match background.kind {
            BackgroundKind::Noise => rng.random_range(14.0..40.0),
            _ => rng.random_range(0.0..22.0),
        };
        let noise_seed = rng.random::<u64>();
        let (lo, hi) = (
            config.distractors[0],
            config.distractors[1].max(config.distractors[0]),
        );
        let n_distractors = rng.random_range(lo..=hi);
        let distractors = (0..n_distractors).map(|_| sample_distractor(rng)).collect();
        let wanted = rng.random_range(1..=config.max_objects.max(1));
        let mut colors = Color::ALL.to_vec();
        let mut objects: Vec<Object> = Vec::with_capacity(wanted);
        for k in 0..wanted {
            let size = if k == 0 {
                SizeClass::Large
            } else {
                SizeClass::Small
            };
            let color = colors.swap_remove(rng.random_range(0..colors.len()));
            let shape = Shape::ALL[rng.random_range(0..Shape::ALL.len())];
            let (rmin, rmax) = size.radius_range();
            let radius = rng.random_range(rmin..rmax);
            let max_rot = match shape {
                Shape::Circle => 0.0,
                Shape::Square | Shape::Diamond => 0.12,
                _ => 0.35,
            };
            let rotation = if max_rot > 0.0 {
                rng.random_range(-max_rot..max_rot)
            } else {
                0.0
            };
            let base = color.rgb();
            let rgb = base.map(|c| (c as i32 + rng.random_range(-16..=16)).clamp(0, 255) as u8);
            let shade = rng.random_range(0.0..0.18);
            let margin = radius + 0.02;
            let mut placed = None;
            for _ in 0..64 {
                let c = [
                    rng.random_range(margin..1.0 - margin),
                    rng.random_range(margin..1.0 - margin),
                ];
                let free = objects.iter().all(|o| {
                    let (dx, dy) = (o.center[0] - c[0], o.center[1] - c[1]);
                    (dx * dx + dy * dy).sqrt() > o.radius + radius + 0.04
                });
                if free {
                    placed = Some(c);
                    break;
                }
            }
            if let Some(center) = placed {
                objects.push(Object {
                    shape,
                    color,
                    size,
                    center,
                    radius,
                    rotation,
                    rgb,
                    shade,
                });
            }
        }
        Scene {
            background,
            noise,
            noise_seed,
            distractors,
            objects,
        }
    }
}

/// A muted colour: a random hue pulled towards grey.
fn muted<R: Rng>(rng: &mut R) -> [u8; 3] {
    let lum: f32 = rng.random_range(45.0..205.0);
    let sat: f32 = rng.random_range(0.08..0.45);
    let hue: [f32; 3] = [
        rng.random_range(0.0..255.0),
        rng.random_range(0.0..255.0),
        rng.random_range(0.0..255.0),
    ];
    hue.map(|h| (lum * (1.0 - sat) + h * sat).round().clamp(0.0, 255.0) as u8)
}

fn sample_background<R: Rng>(rng: &mut R) -> Background {
    let kind = BackgroundKind::ALL[rng.random_range(0..BackgroundKind::ALL.len())];
    let angle = rng.random_range(0.0..std::f32::consts::TAU);
    let phase = rng.random_range(0.0..1.0);
    let (n_colors, scale) = match kind {
        BackgroundKind::Noise => (1, 1.0),
        BackgroundKind::Gradient => (2, 1.0),
        BackgroundKind::Stripes => (2, rng.random_range(0.08..0.25)),
        BackgroundKind::Checker => (2, rng.random_range(0.08..0.2)),
        BackgroundKind::Blotches => {
            let grid = rng.random_range(3..=6usize);
            ((grid + 1) * (grid + 1), grid as f32)
        }
    };
    let colors = (0..n_colors).map(|_| muted(rng)).collect();
    Background {
        kind,
        colors,
        angle,
        scale,
        phase,
    }
}

fn sample_distractor<R: Rng>(rng: &mut R) -> Distractor {
    let rgb = [rng.random::<u8>(), rng.random::<u8>(), rng.random::<u8>()];
    let a = [rng.random_range(0.0..1.0), rng.random_range(0.0..1.0)];
    let line = rng.random_bool(0.3);
    let b = if line {
        let (len, dir) = (
            rng.random_range(0.1..0.3f32),
            rng.random_range(0.0..std::f32::consts::TAU),
        );
        [a[0] + len * dir.cos(), a[1] + len * dir.sin()]
    } else {
        [
            rng.random_range(0.015..0.045),
            rng.random_range(0.015..0.045),
        ]
    };
    Distractor { rgb, a, b, line }
}
