//! Plain-text tables of results, for terminals and logs.

use std::fmt;

use crate::pairs::PairMetrics;
use crate::probe::{FewShotPoint, LinearProbeResult};
use crate::robustness::RobustnessReport;
use crate::{RetrievalMetrics, ZeroShotMetrics};

/// A titled table with left-aligned first column and right-aligned others.
///
/// ```
/// let mut t = diffclip_eval::report::Table::new("zero-shot", &["set", "top-1"]);
/// t.row(vec!["pets".into(), "0.812".into()]);
/// assert!(t.to_string().contains("pets  0.812"));
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    title: String,
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table.
    pub fn new(title: &str, headers: &[&str]) -> Self {
        Self {
            title: title.into(),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Append a row (padded or cut to the header's width).
    pub fn row(&mut self, mut cells: Vec<String>) -> &mut Self {
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
        self
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        writeln!(f, "== {} ==", self.title)?;
        let line = |f: &mut fmt::Formatter<'_>, cells: &[String]| -> fmt::Result {
            for (i, c) in cells.iter().enumerate().take(n) {
                let sep = if i + 1 < n { "  " } else { "" };
                if i == 0 {
                    write!(f, "{c:<w$}{sep}", w = widths[i])?;
                } else {
                    write!(f, "{c:>w$}{sep}", w = widths[i])?;
                }
            }
            writeln!(f)
        };
        line(f, &self.headers)?;
        let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
        line(f, &rule)?;
        for r in &self.rows {
            line(f, r)?;
        }
        Ok(())
    }
}

/// A fraction as a percentage with one decimal (`0.8125 -> "81.2"`), `-` for `None`.
pub fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{:.1}", 100.0 * v))
}

/// Zero-shot metrics, one row per named set.
pub fn zero_shot_table(title: &str, rows: &[(String, &ZeroShotMetrics)]) -> Table {
    let mut t = Table::new(
        title,
        &["set", "n", "classes", "top-1", "top-1 95% CI", "top-5", "mean recall"],
    );
    for (name, m) in rows {
        t.row(vec![
            name.clone(),
            m.n_samples.to_string(),
            m.n_classes.to_string(),
            pct(Some(m.top1)),
            // [0, 0] is no interval (its upper end is above 0 for any count): results written before it.
            if m.top1_ci95 == [0.0, 0.0] { "-".into() } else { format!("{}–{}", pct(Some(m.top1_ci95[0])), pct(Some(m.top1_ci95[1]))) },
            pct(m.top5),
            pct(Some(m.mean_per_class_recall)),
        ]);
    }
    t
}

/// Recall@k in both directions (the cut-offs of `r`).
pub fn retrieval_table(title: &str, r: &RetrievalMetrics) -> Table {
    let mut t = Table::new(title, &["direction", "R@1", "R@5", "R@10"]);
    // A cut-off that reaches every candidate is met by any model: shown as `-`, as a zero-shot
    // top-5 of fewer than 5 classes is.
    for (name, v, candidates) in [
        ("image -> text", &r.image_to_text, r.n_texts),
        ("text -> image", &r.text_to_image, r.n_images),
    ] {
        t.row(
            std::iter::once(name.to_string())
                .chain(v.iter().map(|x| pct(Some(x.recall).filter(|_| x.k < candidates))))
                .collect(),
        );
    }
    t
}

/// Every robustness set and the average.
pub fn robustness_table(r: &RobustnessReport) -> Table {
    let rows: Vec<_> = r
        .sets
        .iter()
        .map(|e| (e.name.clone(), &e.metrics))
        .collect();
    let mut t = zero_shot_table("robustness (zero-shot, shared label space)", &rows);
    t.row(vec![
        "average".into(),
        String::new(),
        String::new(),
        pct(Some(r.average_top1)),
        pct(r.average_top5),
        String::new(),
    ]);
    t
}

/// Pair accuracy per category, overall, and the category average.
pub fn pairs_table(m: &PairMetrics) -> Table {
    let mut t = Table::new(
        "fine-grained pairs (MMVP-VLM)",
        &["category", "pairs", "text->image", "image->text"],
    );
    for c in m.categories.iter().chain(std::iter::once(&m.overall)) {
        t.row(vec![
            c.category.clone(),
            c.n_pairs.to_string(),
            pct(Some(c.text_to_image)),
            pct(Some(c.image_to_text)),
        ]);
    }
    t.row(vec![
        "category average".into(),
        String::new(),
        pct(Some(m.average_text_to_image)),
        pct(Some(m.average_image_to_text)),
    ]);
    t
}

/// The linear-probe result.
pub fn linear_probe_table(title: &str, r: &LinearProbeResult) -> Table {
    let mut t = Table::new(
        title,
        &["best C", "val acc", "val n", "test acc", "train n", "test n"],
    );
    t.row(vec![
        format!("{:.3e}", r.best_c),
        pct(Some(r.val_accuracy)),
        r.n_val.to_string(),
        pct(Some(r.test_accuracy)),
        r.n_train.to_string(),
        r.n_test.to_string(),
    ]);
    t
}

/// Few-shot accuracy per k.
pub fn few_shot_table(title: &str, points: &[FewShotPoint]) -> Table {
    let mut t = Table::new(title, &["shots", "mean acc", "std", "seeds"]);
    for p in points {
        t.row(vec![
            match p.fewest_shots.filter(|&f| f < p.shots) {
                Some(fewest) => format!("{} (a class has {fewest})", p.shots),
                None => p.shots.to_string(),
            },
            pct(Some(p.mean_accuracy)),
            pct(Some(p.std_accuracy)),
            p.accuracies.len().to_string(),
        ]);
    }
    t
}
