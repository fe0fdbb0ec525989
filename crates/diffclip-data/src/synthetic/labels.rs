//! Classification labels of synthetic samples, and the zero-shot tasks built on them.

use serde::{Deserialize, Serialize};

use super::scene::Scene;
use super::vocab::{Color, Shape};

/// The class labels of one sample, all about the salient (largest) object except `count`.
///
/// ```
/// use diffclip_data::synthetic::{ClassTask, SyntheticConfig, SyntheticDataset, Split};
/// let ds = SyntheticDataset::new(SyntheticConfig::default(), Split::Test).unwrap();
/// let l = ds.labels(0);
/// assert_eq!(l.get(ClassTask::Shape), l.shape);
/// assert_eq!(l.get(ClassTask::Count), l.count - 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyntheticLabels {
    /// Shape class of the salient object ([`Shape::index`]).
    pub shape: usize,
    /// Colour class of the salient object ([`Color::index`]).
    pub color: usize,
    /// Number of shapes in the image (1 or more).
    pub count: usize,
}

impl SyntheticLabels {
    /// The labels of `scene`.
    pub fn of(scene: &Scene) -> Self {
        let main = scene.salient();
        Self {
            shape: main.shape.index(),
            color: main.color.index(),
            count: scene.objects.len(),
        }
    }

    /// The class of `task`.
    pub fn get(&self, task: ClassTask) -> usize {
        match task {
            ClassTask::Shape => self.shape,
            ClassTask::Color => self.color,
            ClassTask::Count => self.count - 1,
        }
    }
}

/// A zero-shot classification task over synthetic images.
///
/// ```
/// use diffclip_data::synthetic::ClassTask;
/// assert_eq!(ClassTask::Shape.class_names(3)[0], "circle");
/// assert_eq!(ClassTask::Color.class_names(3).len(), 8);
/// assert_eq!(ClassTask::Count.class_names(3), ["one shape", "two shapes", "three shapes"]);
/// assert_eq!(ClassTask::Shape.templates()[0], "a photo of a {c}.");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassTask {
    /// The shape of the largest object (6 classes).
    Shape,
    /// The colour of the largest object (8 classes).
    Color,
    /// How many shapes there are (`max_objects` classes).
    Count,
}

impl ClassTask {
    /// Every task.
    pub const ALL: [ClassTask; 3] = [ClassTask::Shape, ClassTask::Color, ClassTask::Count];

    /// Class names, by class index (`max_objects` sets the number of count classes).
    pub fn class_names(self, max_objects: usize) -> Vec<String> {
        match self {
            ClassTask::Shape => Shape::ALL.iter().map(|s| s.name().to_string()).collect(),
            ClassTask::Color => Color::ALL.iter().map(|c| c.name().to_string()).collect(),
            ClassTask::Count => ["one shape", "two shapes", "three shapes", "four shapes"]
                .iter()
                .take(max_objects.clamp(1, 4))
                .map(|s| s.to_string())
                .collect(),
        }
    }

    /// Prompt templates; `{c}` stands for the class name.
    pub fn templates(self) -> Vec<String> {
        let t: &[&str] = match self {
            ClassTask::Shape => &[
                "a photo of a {c}.",
                "a picture of a {c}.",
                "the largest shape is a {c}.",
                "a large {c}.",
            ],
            ClassTask::Color => &[
                "a photo of a shape colored {c}.",
                "the largest shape is {c}.",
                "a large {c} shape.",
            ],
            ClassTask::Count => &["a photo of {c}.", "{c}.", "a picture with {c}."],
        };
        t.iter().map(|s| s.to_string()).collect()
    }
}
