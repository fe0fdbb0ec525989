//! Multinomial logistic regression with an L2 penalty, fitted by L-BFGS in f64 on the CPU.
//!
//! Objective (scikit-learn's `LogisticRegression(C)`, lbfgs, multinomial, intercept not
//! penalised; divided by `n`, which leaves the minimiser unchanged):
//! `(1/n) Σ_i CE(softmax(W x_i + b), y_i) + ||W||²_F / (2 C n)`.
//! Each objective evaluation costs `O(n · d · k)`, parallelised over samples with rayon.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::lbfgs::{LbfgsOptions, lbfgs};
use crate::{EvalError, Matrix};

/// Hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)] // a misspelt key is an error, not a default
pub struct LogRegOptions {
    /// Inverse regularisation strength (scikit-learn's `C`).
    pub c: f64,
    /// L-BFGS iterations at most.
    pub max_iter: usize,
    /// Gradient tolerance (max-abs of the gradient of the `1/n`-scaled objective).
    pub tol: f64,
}

impl Default for LogRegOptions {
    fn default() -> Self {
        Self {
            c: 1.0,
            max_iter: 1000,
            tol: 1e-7,
        }
    }
}

/// A fitted model: `k` weight rows of length `d` and `k` intercepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticRegression {
    /// Number of classes `k`.
    pub n_classes: usize,
    /// Feature dimension `d`.
    pub dim: usize,
    /// `[k, d]` row-major.
    pub weights: Vec<f64>,
    /// `[k]`.
    pub bias: Vec<f64>,
    /// L-BFGS iterations used.
    pub iterations: usize,
    /// Whether L-BFGS met its tolerance.
    pub converged: bool,
}

impl LogisticRegression {
    /// Fit on `x [n, d]` with labels in `0..n_classes`; `warm` starts from another fit of the
    /// same shape (used by the regularisation sweep).
    ///
    /// ```
    /// use diffclip_eval::{Matrix, probe::{LogRegOptions, LogisticRegression}};
    /// let x = Matrix::new(4, 2, vec![1.0, 0.0, 0.9, 0.1, 0.0, 1.0, 0.1, 0.9]).unwrap();
    /// let m = LogisticRegression::fit(&x, &[0, 0, 1, 1], 2, &LogRegOptions::default(), None).unwrap();
    /// assert_eq!(m.predict(&x).unwrap(), vec![0, 0, 1, 1]);
    /// ```
    pub fn fit(
        x: &Matrix,
        y: &[usize],
        n_classes: usize,
        opts: &LogRegOptions,
        warm: Option<&LogisticRegression>,
    ) -> Result<Self, EvalError> {
        let (n, d, k) = (x.rows(), x.cols(), n_classes);
        if y.len() != n {
            return Err(EvalError::Shape(format!(
                "{n} feature rows but {} labels",
                y.len()
            )));
        }
        if n == 0 || k == 0 || d == 0 {
            return Err(EvalError::Invalid(format!(
                "logistic regression on {n} samples of {d} features, {k} classes"
            )));
        }
        if !(opts.c > 0.0 && opts.c.is_finite()) {
            return Err(EvalError::Invalid(format!(
                "C must be positive and finite, got {}",
                opts.c
            )));
        }
        EvalError::check_labels(y, k)?;
        x.check_finite("features")?;
        let xs: Vec<f64> = x.data().iter().map(|&v| f64::from(v)).collect();
        let penalty = 1.0 / (opts.c * n as f64);
        let x0 = match warm {
            Some(w) if w.n_classes == k && w.dim == d && w.check().is_ok() => {
                [w.weights.clone(), w.bias.clone()].concat()
            }
            _ => vec![0.0; k * d + k],
        };
        let objective = |theta: &[f64], grad: &mut [f64]| -> f64 {
            let (w, b) = theta.split_at(k * d);
            // At most 32 partial sums, added in order: the same result whatever the thread count
            // or work stealing (rayon's reduce associates as the threads happen to split).
            let chunk = 256.max(n.div_ceil(32));
            let partials: Vec<(f64, Vec<f64>)> = xs
                .par_chunks(chunk * d.max(1))
                .zip(y.par_chunks(chunk))
                .map(|(xc, yc)| {
                    let mut g = vec![0.0; k * d + k];
                    let mut loss = 0.0;
                    let mut z = vec![0.0; k];
                    for (xi, &yi) in xc.chunks_exact(d.max(1)).zip(yc) {
                        logits(w, b, xi, &mut z);
                        let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                        let sum: f64 = z.iter().map(|v| (v - m).exp()).sum();
                        loss += m + sum.ln() - z[yi];
                        for c in 0..k {
                            let p = (z[c] - m).exp() / sum - if c == yi { 1.0 } else { 0.0 };
                            for (gj, xj) in g[c * d..(c + 1) * d].iter_mut().zip(xi) {
                                *gj += p * xj;
                            }
                            g[k * d + c] += p;
                        }
                    }
                    (loss, g)
                })
                .collect();
            let (loss, g) =
                partials
                    .into_iter()
                    .fold((0.0, vec![0.0; k * d + k]), |(la, mut ga), (lb, gb)| {
                        ga.iter_mut().zip(&gb).for_each(|(a, b)| *a += b);
                        (la + lb, ga)
                    });
            let inv_n = 1.0 / n as f64;
            for (o, gi) in grad.iter_mut().zip(&g) {
                *o = gi * inv_n;
            }
            let mut reg = 0.0;
            for (o, wi) in grad[..k * d].iter_mut().zip(w) {
                *o += penalty * wi;
                reg += wi * wi;
            }
            loss * inv_n + 0.5 * penalty * reg
        };
        let lb = LbfgsOptions {
            max_iter: opts.max_iter,
            gtol: opts.tol,
            ..LbfgsOptions::default()
        };
        let r = lbfgs(objective, x0, &lb);
        let (w, b) = r.x.split_at(k * d);
        Ok(Self {
            n_classes: k,
            dim: d,
            weights: w.to_vec(),
            bias: b.to_vec(),
            iterations: r.iterations,
            converged: r.converged,
        })
    }

    /// Checks that the fields agree (a model built by hand or read from a file): at least one
    /// class, `k × d` weights and `k` intercepts.
    ///
    /// ```
    /// use diffclip_eval::probe::LogisticRegression;
    /// let m = LogisticRegression { n_classes: 2, dim: 1, weights: vec![1.0], bias: vec![0.0, 0.0], iterations: 0, converged: true };
    /// assert!(m.check().unwrap_err().to_string().contains("1 weights for 2 classes of 1 features"));
    /// ```
    pub fn check(&self) -> Result<(), EvalError> {
        let (k, d) = (self.n_classes, self.dim);
        if k == 0 || k.checked_mul(d) != Some(self.weights.len()) || self.bias.len() != k {
            return Err(EvalError::Shape(format!("a logistic regression of {} weights for {k} classes of {d} features and {} intercepts", self.weights.len(), self.bias.len())));
        }
        Ok(())
    }

    /// Logits `W x + b` for each row of `x` (`[n, k]`, f64 row-major).
    pub fn decision_function(&self, x: &Matrix) -> Result<Vec<f64>, EvalError> {
        self.check()?;
        if x.cols() != self.dim {
            return Err(EvalError::Shape(format!(
                "{}-dim features for a {}-dim model",
                x.cols(),
                self.dim
            )));
        }
        let mut out = vec![0.0; x.rows() * self.n_classes];
        let xs: Vec<f64> = x.data().iter().map(|&v| f64::from(v)).collect();
        for (i, zi) in out.chunks_exact_mut(self.n_classes).enumerate() {
            logits(
                &self.weights,
                &self.bias,
                &xs[i * self.dim..(i + 1) * self.dim],
                zi,
            );
        }
        Ok(out)
    }

    /// Predicted class of each row (first maximal logit on ties).
    pub fn predict(&self, x: &Matrix) -> Result<Vec<usize>, EvalError> {
        let z = self.decision_function(x)?;
        Ok(z.chunks_exact(self.n_classes).map(argmax_f64).collect())
    }
}

fn logits(w: &[f64], b: &[f64], x: &[f64], z: &mut [f64]) {
    let d = x.len();
    for (c, zc) in z.iter_mut().enumerate() {
        *zc = b[c]
            + w[c * d..(c + 1) * d]
                .iter()
                .zip(x)
                .map(|(a, v)| a * v)
                .sum::<f64>();
    }
}

/// First index of the maximum.
pub(crate) fn argmax_f64(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Number of `predictions` equal to `labels`.
pub(crate) fn count_correct(predictions: &[usize], labels: &[usize]) -> usize {
    predictions
        .iter()
        .zip(labels)
        .filter(|(p, y)| p == y)
        .count()
}
