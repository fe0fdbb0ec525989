//! The attribute vocabulary of synthetic scenes: shapes, colours, sizes, backgrounds.

use serde::{Deserialize, Serialize};

/// An object's shape; its index is the class of [`ClassTask::Shape`](super::ClassTask::Shape).
///
/// ```
/// use diffclip_data::synthetic::Shape;
/// assert_eq!(Shape::ALL.len(), 6);
/// assert_eq!(Shape::Star.name(), "star");
/// assert_eq!(Shape::ALL[Shape::Star.index()], Shape::Star);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// A disc.
    Circle,
    /// An axis-aligned square (slightly rotated at most).
    Square,
    /// An equilateral triangle pointing up (rotated up to 20°).
    Triangle,
    /// A five-pointed star.
    Star,
    /// A plus-shaped cross.
    Cross,
    /// A square standing on a corner.
    Diamond,
}

impl Shape {
    /// Every shape, by class index.
    pub const ALL: [Shape; 6] = [
        Shape::Circle,
        Shape::Square,
        Shape::Triangle,
        Shape::Star,
        Shape::Cross,
        Shape::Diamond,
    ];

    /// The word used in captions and class names.
    pub fn name(self) -> &'static str {
        ["circle", "square", "triangle", "star", "cross", "diamond"][self.index()]
    }

    /// The class index.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// An object's colour; its index is the class of [`ClassTask::Color`](super::ClassTask::Color).
///
/// ```
/// use diffclip_data::synthetic::Color;
/// assert_eq!(Color::ALL.len(), 8);
/// assert_eq!(Color::Red.name(), "red");
/// assert_eq!(Color::Red.rgb(), [220, 40, 40]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    /// Red.
    Red,
    /// Orange.
    Orange,
    /// Yellow.
    Yellow,
    /// Green.
    Green,
    /// Cyan.
    Cyan,
    /// Blue.
    Blue,
    /// Purple.
    Purple,
    /// Pink.
    Pink,
}

impl Color {
    /// Every colour, by class index.
    pub const ALL: [Color; 8] = [
        Color::Red,
        Color::Orange,
        Color::Yellow,
        Color::Green,
        Color::Cyan,
        Color::Blue,
        Color::Purple,
        Color::Pink,
    ];

    /// The word used in captions and class names.
    pub fn name(self) -> &'static str {
        [
            "red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink",
        ][self.index()]
    }

    /// The class index.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The nominal sRGB value (objects are drawn within ±16 of it per channel).
    pub fn rgb(self) -> [u8; 3] {
        [
            [220, 40, 40],
            [245, 140, 25],
            [240, 220, 40],
            [40, 175, 60],
            [40, 210, 220],
            [40, 70, 220],
            [145, 55, 200],
            [250, 140, 190],
        ][self.index()]
    }
}

/// An object's size class: the salient object is large, the others small.
///
/// ```
/// use diffclip_data::synthetic::SizeClass;
/// assert_eq!(SizeClass::Large.name(), "large");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SizeClass {
    /// Radius 10–14% of the image side.
    Small,
    /// Radius 20–27% of the image side.
    Large,
}

impl SizeClass {
    /// The word used in captions.
    pub fn name(self) -> &'static str {
        match self {
            SizeClass::Small => "small",
            SizeClass::Large => "large",
        }
    }

    /// Radius range as a fraction of the image side.
    pub fn radius_range(self) -> (f32, f32) {
        match self {
            SizeClass::Small => (0.10, 0.14),
            SizeClass::Large => (0.20, 0.27),
        }
    }
}

/// The kind of a background, with the adjective captions use for it.
///
/// ```
/// use diffclip_data::synthetic::BackgroundKind;
/// assert_eq!(BackgroundKind::Stripes.adjective(), "striped");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackgroundKind {
    /// A flat colour with strong pixel noise.
    Noise,
    /// A linear gradient between two colours.
    Gradient,
    /// Soft stripes at an angle.
    Stripes,
    /// A checkerboard.
    Checker,
    /// Smooth blotches (bilinear value noise).
    Blotches,
}

impl BackgroundKind {
    /// Every kind.
    pub const ALL: [BackgroundKind; 5] = [
        BackgroundKind::Noise,
        BackgroundKind::Gradient,
        BackgroundKind::Stripes,
        BackgroundKind::Checker,
        BackgroundKind::Blotches,
    ];

    /// The adjective used in captions (`"a striped background"`).
    pub fn adjective(self) -> &'static str {
        match self {
            BackgroundKind::Noise => "noisy",
            BackgroundKind::Gradient => "gradient",
            BackgroundKind::Stripes => "striped",
            BackgroundKind::Checker => "checkered",
            BackgroundKind::Blotches => "mottled",
        }
    }
}
