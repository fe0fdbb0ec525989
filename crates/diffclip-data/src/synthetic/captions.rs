//! Compositional captions of a [`Scene`]: several paraphrase templates, each naming the salient
//! object's colour and shape, plus sizes, positions, counts, relations and the background.

use super::scene::{Object, Scene};

/// Number of caption templates ([`caption`] accepts `0..TEMPLATE_COUNT`).
pub const TEMPLATE_COUNT: usize = 8;

const COUNT_WORDS: [&str; 5] = ["zero", "one", "two", "three", "four"];

fn count_word(n: usize) -> &'static str {
    COUNT_WORDS.get(n).copied().unwrap_or("many")
}

/// Where an object is: `"on the left"`, `"at the top"`, `"in the top right corner"`,
/// `"in the center"`.
///
/// ```
/// use diffclip_data::synthetic::{position_phrase, Color, Object, Shape, SizeClass};
/// let o = Object { shape: Shape::Star, color: Color::Blue, size: SizeClass::Large, center: [0.2, 0.8],
///                  radius: 0.2, rotation: 0.0, rgb: [0, 0, 255], shade: 0.0 };
/// assert_eq!(position_phrase(&o), "in the bottom left corner");
/// ```
pub fn position_phrase(o: &Object) -> String {
    let third = |v: f32| {
        if v < 1.0 / 3.0 {
            0
        } else if v > 2.0 / 3.0 {
            2
        } else {
            1
        }
    };
    let h = ["left", "", "right"][third(o.center[0])];
    let v = ["top", "", "bottom"][third(o.center[1])];
    match (v.is_empty(), h.is_empty()) {
        (true, true) => "in the center".into(),
        (true, false) => format!("on the {h}"),
        (false, true) => format!("at the {v}"),
        (false, false) => format!("in the {v} {h} corner"),
    }
}

/// How `a` lies relative to `b` along the axis where they are further apart:
/// `"left of"`, `"right of"`, `"above"` or `"below"`.
///
/// ```
/// use diffclip_data::synthetic::{relation, Color, Object, Shape, SizeClass};
/// let at = |x, y| Object { shape: Shape::Circle, color: Color::Red, size: SizeClass::Small, center: [x, y],
///                          radius: 0.1, rotation: 0.0, rgb: [0; 3], shade: 0.0 };
/// assert_eq!(relation(&at(0.2, 0.5), &at(0.8, 0.4)), "left of");
/// assert_eq!(relation(&at(0.5, 0.9), &at(0.4, 0.2)), "below");
/// ```
pub fn relation(a: &Object, b: &Object) -> &'static str {
    let (dx, dy) = (b.center[0] - a.center[0], b.center[1] - a.center[1]);
    if dx.abs() >= dy.abs() {
        if dx > 0.0 { "left of" } else { "right of" }
    } else if dy > 0.0 {
        "above"
    } else {
        "below"
    }
}

/// `"a large red circle, a small blue square and a small green star"`.
fn list(objects: &[Object]) -> String {
    let parts: Vec<String> = objects.iter().map(|o| o.describe(true)).collect();
    match parts.len() {
        0 => String::new(),
        1 => parts[0].clone(),
        n => format!("{} and {}", parts[..n - 1].join(", "), parts[n - 1]),
    }
}

/// Caption `template` (`0..TEMPLATE_COUNT`, taken modulo) of `scene`. Every template names the
/// salient object's colour and shape.
///
/// ```
/// use diffclip_data::synthetic::{caption, SyntheticConfig, SyntheticDataset, Split, TEMPLATE_COUNT};
/// let ds = SyntheticDataset::new(SyntheticConfig::default(), Split::Train).unwrap();
/// let scene = ds.scene(0);
/// let main = scene.salient();
/// for t in 0..TEMPLATE_COUNT {
///     let text = caption(&scene, t);
///     assert!(text.contains(main.color.name()) && text.contains(main.shape.name()), "{text}");
/// }
/// ```
///
/// # Panics
/// When the scene has no object ([`Scene::salient`]).
pub fn caption(scene: &Scene, template: usize) -> String {
    let objs = &scene.objects;
    let main = &objs[0];
    let n = objs.len();
    let bg = scene.background.kind.adjective();
    match template % TEMPLATE_COUNT {
        0 => list(objs),
        1 => format!(
            "a picture of {} {}",
            main.describe(false),
            position_phrase(main)
        ),
        2 if n >= 2 => format!(
            "{} {} {}",
            main.describe(false),
            relation(main, &objs[1]),
            objs[1].describe(true)
        ),
        2 => format!("{} on a {bg} background", main.describe(true)),
        3 if n == 1 => format!("one shape: {}", main.describe(true)),
        3 => format!("{} shapes: {}", count_word(n), list(objs)),
        4 if n == 1 => format!("the only shape is {}", main.describe(false)),
        4 => format!("the largest shape is {}", main.describe(false)),
        5 => format!(
            "{} {} on a {bg} background",
            main.describe(true),
            position_phrase(main)
        ),
        6 => format!("a {bg} background with {}", list(objs)),
        _ if n == 1 => format!("a single {} {}", main.color.name(), main.shape.name()),
        _ => {
            let others = if n == 2 {
                "one smaller shape".to_string()
            } else {
                format!("{} smaller shapes", count_word(n - 1))
            };
            format!("{} and {others}", main.describe(false))
        }
    }
}
