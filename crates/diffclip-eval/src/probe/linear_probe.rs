//! Linear probe: logistic regression on frozen, L2-normalised features, with `C` chosen on a
//! validation split and a final fit on train + validation (the CLIP paper's protocol).

use serde::{Deserialize, Serialize};

use super::logreg::{LogRegOptions, LogisticRegression, count_correct};
use super::sampling::stratified_split;
use crate::{EvalError, Matrix};

/// Sweep settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)] // a misspelt key is an error, not a default
pub struct LinearProbeConfig {
    /// Coarse grid of `C` values (fitted in ascending order, each warm-started from the last).
    pub c_grid: Vec<f64>,
    /// Refinement rounds around the best `C`: round `r` tries `best * 10^(±s / 2^(r+1))`, `s`
    /// being the grid's log10 step.
    pub refine_steps: usize,
    /// Fraction of each training class held out for validation when no validation set is given.
    pub val_fraction: f64,
    /// Seed of that split.
    pub seed: u64,
    /// L-BFGS iterations per fit.
    pub max_iter: usize,
    /// Gradient tolerance per fit.
    pub tol: f64,
}

impl Default for LinearProbeConfig {
    /// `C` in `10^-6 ..= 10^6` (13 points), 3 refinement rounds, 20% validation, seed 0.
    fn default() -> Self {
        Self {
            c_grid: (-6..=6).map(|e| 10f64.powi(e)).collect(),
            refine_steps: 3,
            val_fraction: 0.2,
            seed: 0,
            max_iter: 1000,
            tol: 1e-7,
        }
    }
}

/// One point of the sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// Inverse regularisation strength.
    pub c: f64,
    /// Validation accuracy.
    pub val_accuracy: f64,
}

/// Result of a probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearProbeResult {
    /// The chosen `C` (highest validation accuracy; ties: smallest `C`).
    pub best_c: f64,
    /// Its validation accuracy.
    pub val_accuracy: f64,
    /// Test accuracy of the final fit.
    pub test_accuracy: f64,
    /// Correct test predictions.
    pub test_correct: usize,
    /// Test samples.
    pub n_test: usize,
    /// Training samples of the final fit (train + validation).
    pub n_train: usize,
    /// Validation samples `C` was chosen on.
    pub n_val: usize,
    /// Classes among them: fewer than all, and the choice of `C` saw only some (every `C` may
    /// tie, and the smallest, a near-constant model, is taken).
    pub val_classes: usize,
    /// Every `C` tried, in order.
    pub sweep: Vec<SweepPoint>,
}

/// A labelled feature set.
#[derive(Debug, Clone, Copy)]
pub struct Split<'a> {
    /// `[n, d]` features (normalised by the probe).
    pub features: &'a Matrix,
    /// `n` labels.
    pub labels: &'a [usize],
}

impl Split<'_> {
    /// One label per feature row, each below `n_classes`, and at least one row: a label out of
    /// range would otherwise be dropped from sampling or counted as a miss without a word.
    ///
    /// ```
    /// use diffclip_eval::{Matrix, probe::Split};
    /// let x = Matrix::new(2, 1, vec![1.0, 2.0]).unwrap();
    /// assert!(Split { features: &x, labels: &[0, 1] }.check("train", 2).is_ok());
    /// assert!(Split { features: &x, labels: &[0, 2] }.check("train", 2).is_err());
    /// assert!(Split { features: &x, labels: &[0] }.check("train", 2).is_err());
    /// let nan = Matrix::new(2, 1, vec![1.0, f32::NAN]).unwrap();
    /// assert!(Split { features: &nan, labels: &[0, 1] }.check("test", 2).is_err());
    /// ```
    pub fn check(&self, what: &'static str, n_classes: usize) -> Result<(), EvalError> {
        if self.labels.len() != self.features.rows() || self.labels.is_empty() {
            return Err(EvalError::Shape(format!("{what}: {} feature rows and {} labels (need as many, at least one)", self.features.rows(), self.labels.len())));
        }
        EvalError::check_labels(self.labels, n_classes)?;
        // A NaN row predicts class 0 through argmax and would count as a hit for label 0.
        self.features.check_finite(what)
    }
}

/// Checks every split of a probe (see [`Split::check`]).
pub(crate) fn check_splits(train: &Split<'_>, val: Option<&Split<'_>>, test: &Split<'_>, n_classes: usize) -> Result<(), EvalError> {
    train.check("train", n_classes)?;
    // One class would score 100 % by predicting it everywhere: no measure of the features.
    let classes = train.labels.iter().collect::<std::collections::BTreeSet<_>>().len();
    if classes < 2 {
        return Err(EvalError::Invalid(format!("a probe needs training samples of at least 2 classes, found {classes}")));
    }
    if let Some(v) = val {
        v.check("validation", n_classes)?;
    }
    test.check("test", n_classes)
}

/// Choose `C` by validation accuracy: the grid, then refinement; returns the best `C`, its
/// validation accuracy and the sweep.
pub fn sweep_c(
    train: Split<'_>,
    val: Split<'_>,
    n_classes: usize,
    cfg: &LinearProbeConfig,
) -> Result<(f64, f64, Vec<SweepPoint>), EvalError> {
    if cfg.c_grid.is_empty() {
        return Err(EvalError::Invalid("an empty C grid".into()));
    }
    let mut grid = cfg.c_grid.clone();
    grid.sort_by(f64::total_cmp);
    let mut sweep = Vec::new();
    let mut warm: Option<LogisticRegression> = None;
    let try_c = |c: f64, warm: &mut Option<LogisticRegression>, sweep: &mut Vec<SweepPoint>| {
        let opts = LogRegOptions {
            c,
            max_iter: cfg.max_iter,
            tol: cfg.tol,
        };
        let model = LogisticRegression::fit(
            train.features,
            train.labels,
            n_classes,
            &opts,
            warm.as_ref(),
        )?;
        let acc = accuracy(&model, val)?;
        sweep.push(SweepPoint {
            c,
            val_accuracy: acc,
        });
        *warm = Some(model);
        Ok::<f64, EvalError>(acc)
    };
    for &c in &grid {
        try_c(c, &mut warm, &mut sweep)?;
    }
    let best = |sweep: &[SweepPoint]| {
        let mut b = &sweep[0];
        for p in sweep {
            if p.val_accuracy > b.val_accuracy || (p.val_accuracy == b.val_accuracy && p.c < b.c) {
                b = p;
            }
        }
        b.clone()
    };
    let log_step = if grid.len() > 1 {
        (grid[1] / grid[0]).log10().abs()
    } else {
        1.0
    };
    for r in 0..cfg.refine_steps {
        let b = best(&sweep);
        let step = log_step / 2f64.powi(r as i32 + 1);
        for c in [b.c * 10f64.powf(-step), b.c * 10f64.powf(step)] {
            let mut w = None;
            try_c(c, &mut w, &mut sweep)?;
        }
    }
    let b = best(&sweep);
    Ok((b.c, b.val_accuracy, sweep))
}

/// The full probe. Features are L2-normalised here. Without `val`, a stratified
/// `cfg.val_fraction` of `train` is held out (seed `cfg.seed`) to choose `C`; the final model is
/// fitted on train + validation with that `C` and scored on `test`.
///
/// ```
/// use diffclip_eval::Matrix;
/// use diffclip_eval::probe::{LinearProbeConfig, Split, linear_probe};
/// let x = Matrix::new(6, 2, vec![1.0, 0.1, 0.9, 0.2, 1.0, 0.0, 0.1, 1.0, 0.2, 0.9, 0.0, 1.0]).unwrap();
/// let y = [0, 0, 0, 1, 1, 1];
/// let cfg = LinearProbeConfig { c_grid: vec![0.1, 1.0, 10.0], refine_steps: 0, val_fraction: 0.34, ..Default::default() };
/// let r = linear_probe(Split { features: &x, labels: &y }, None, Split { features: &x, labels: &y }, 2, &cfg).unwrap();
/// assert_eq!(r.test_accuracy, 1.0);
/// ```
pub fn linear_probe(
    train: Split<'_>,
    val: Option<Split<'_>>,
    test: Split<'_>,
    n_classes: usize,
    cfg: &LinearProbeConfig,
) -> Result<LinearProbeResult, EvalError> {
    check_splits(&train, val.as_ref(), &test, n_classes)?;
    let train_x = train.features.l2_normalized();
    let test_x = test.features.l2_normalized();
    let test = Split {
        features: &test_x,
        labels: test.labels,
    };
    let (fit_x, fit_y, val_x, val_y) = match val {
        Some(v) => (
            train_x,
            train.labels.to_vec(),
            v.features.l2_normalized(),
            v.labels.to_vec(),
        ),
        None => {
            let (tr, va) = stratified_split(train.labels, n_classes, cfg.val_fraction, cfg.seed);
            if va.is_empty() {
                return Err(EvalError::Invalid(
                    "no validation samples: give a validation set or more training samples per class".into(),
                ));
            }
            let pick = |idx: &[usize]| idx.iter().map(|&i| train.labels[i]).collect::<Vec<_>>();
            (
                train_x.select_rows(&tr)?,
                pick(&tr),
                train_x.select_rows(&va)?,
                pick(&va),
            )
        }
    };
    let (best_c, val_accuracy, sweep) = sweep_c(
        Split {
            features: &fit_x,
            labels: &fit_y,
        },
        Split {
            features: &val_x,
            labels: &val_y,
        },
        n_classes,
        cfg,
    )?;
    let all_x = Matrix::vstack(&[&fit_x, &val_x])?;
    let all_y: Vec<usize> = fit_y.iter().chain(&val_y).copied().collect();
    let opts = LogRegOptions {
        c: best_c,
        max_iter: cfg.max_iter,
        tol: cfg.tol,
    };
    let model = LogisticRegression::fit(&all_x, &all_y, n_classes, &opts, None)?;
    let test_correct = count_correct(&model.predict(test.features)?, test.labels);
    Ok(LinearProbeResult {
        best_c,
        val_accuracy,
        test_accuracy: test_correct as f64 / test.labels.len().max(1) as f64,
        test_correct,
        n_test: test.labels.len(),
        n_train: all_y.len(),
        n_val: val_y.len(),
        val_classes: val_y.iter().collect::<std::collections::BTreeSet<_>>().len(),
        sweep,
    })
}

/// Accuracy of `model` on `split`.
pub fn accuracy(model: &LogisticRegression, split: Split<'_>) -> Result<f64, EvalError> {
    if split.labels.len() != split.features.rows() {
        return Err(EvalError::Shape(format!(
            "{} feature rows but {} labels",
            split.features.rows(),
            split.labels.len()
        )));
    }
    let correct = count_correct(&model.predict(split.features)?, split.labels);
    Ok(correct as f64 / split.labels.len().max(1) as f64)
}
