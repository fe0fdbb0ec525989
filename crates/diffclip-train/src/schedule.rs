//! Learning-rate schedules.

use serde::{Deserialize, Serialize};

/// Learning rate as a function of the optimizer step.
///
/// ```
/// use diffclip_train::LrSchedule;
/// let s = LrSchedule::WarmupCosine { base: 5e-4, warmup: 10, total: 100, min: 0.0 };
/// assert!((s.lr(0) - 5e-5).abs() < 1e-12); // linear warm-up from base/warmup
/// assert!((s.lr(9) - 5e-4).abs() < 1e-12);
/// assert!(s.lr(99) < 1e-6);             // cosine decay to `min`
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    /// The same rate at every step.
    Constant {
        /// The learning rate.
        base: f64,
    },
    /// Linear warm-up over `warmup` steps, then cosine decay to `min` at `total` steps.
    WarmupCosine {
        /// Peak learning rate, reached at the end of the warm-up.
        base: f64,
        /// Warm-up steps; step `s < warmup` uses `base * (s + 1) / warmup`.
        warmup: u64,
        /// Step at which the decay reaches `min` (and stays there).
        total: u64,
        /// Final learning rate.
        min: f64,
    },
    /// Linear warm-up, then constant.
    WarmupConstant {
        /// Learning rate after the warm-up.
        base: f64,
        /// Warm-up steps; step `s < warmup` uses `base * (s + 1) / warmup`.
        warmup: u64,
    },
}

impl LrSchedule {
    /// The learning rate of 0-based step `step`.
    pub fn lr(&self, step: u64) -> f64 {
        match *self {
            Self::Constant { base } => base,
            Self::WarmupConstant { base, warmup } => warm(base, warmup, step).unwrap_or(base),
            Self::WarmupCosine { base, warmup, total, min } => warm(base, warmup, step).unwrap_or_else(|| {
                let span = total.saturating_sub(warmup).max(1) as f64;
                let progress = ((step - warmup) as f64 / span).min(1.0);
                min + 0.5 * (base - min) * (1.0 + (std::f64::consts::PI * progress).cos())
            }),
        }
    }
}

fn warm(base: f64, warmup: u64, step: u64) -> Option<f64> {
    (step < warmup).then(|| base * (step + 1) as f64 / warmup as f64)
}
