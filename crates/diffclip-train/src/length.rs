//! How long a run is and how long it warms up, in steps or epochs.

use crate::TrainError;

/// A run's length and warm-up as the user gave them (steps or epochs), turned into steps once
/// the epoch size and the samples per step are known.
///
/// ```
/// use diffclip_train::RunLength;
/// let l = RunLength { epochs: Some(2.0), ..RunLength::default() };
/// // 1000 samples per epoch, 100 per step: 20 steps; warm-up defaults to one epoch.
/// assert_eq!(l.steps(Some(1000), 100).unwrap(), Some(20));
/// assert_eq!(l.warmup(Some(1000), 100, 20).unwrap(), 10);
/// assert!(l.steps(None, 100).is_err()); // epochs need the epoch size
/// let huge = RunLength { epochs: Some(1e30), ..RunLength::default() };
/// assert!(huge.steps(Some(1000), 100).is_err()); // not 2^64 - 1 steps, silently
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RunLength {
    /// Optimizer steps (wins over `epochs`).
    pub steps: Option<u64>,
    /// Epochs, fractions allowed.
    pub epochs: Option<f64>,
    /// Warm-up steps (wins over `warmup_epochs`).
    pub warmup_steps: Option<u64>,
    /// Warm-up in epochs.
    pub warmup_epochs: Option<f64>,
}

impl RunLength {
    /// Refuses what is wrong whatever the data: `--steps 0`, and epochs that are not a positive
    /// number (checked again, with the epoch size, when turned into steps).
    ///
    /// ```
    /// use diffclip_train::RunLength;
    /// assert!(RunLength { steps: Some(0), ..RunLength::default() }.check().is_err());
    /// assert!(RunLength { warmup_epochs: Some(f64::NAN), ..RunLength::default() }.check().is_err());
    /// assert!(RunLength { steps: Some(10), warmup_steps: Some(0), ..RunLength::default() }.check().is_ok());
    /// ```
    pub fn check(&self) -> Result<(), TrainError> {
        if self.steps == Some(0) {
            return Err(TrainError::Config("--steps must be at least 1".into()));
        }
        for (flag, epochs) in [("--epochs", self.epochs), ("--warmup-epochs", self.warmup_epochs)] {
            if let Some(e) = epochs.filter(|e| !(e.is_finite() && *e > 0.0)) {
                return Err(TrainError::Config(format!("{flag} must be a positive number, got {e}")));
            }
        }
        Ok(())
    }

    /// Steps of the run; `None` when neither steps nor epochs were given.
    pub fn steps(&self, epoch_len: Option<usize>, per_step: usize) -> Result<Option<u64>, TrainError> {
        match (self.steps, self.epochs) {
            (Some(s), _) => Ok(Some(s)),
            (None, Some(e)) => epochs_to_steps(e, epoch_len, per_step, "--epochs").map(Some),
            (None, None) => Ok(None),
        }
    }

    /// Warm-up steps of a run of `total` steps: as given, else one epoch as in the paper (at most
    /// half the run), else a fortieth of the run when the epoch size is unknown.
    pub fn warmup(&self, epoch_len: Option<usize>, per_step: usize, total: u64) -> Result<u64, TrainError> {
        Ok(match (self.warmup_steps, self.warmup_epochs) {
            (Some(s), _) => s,
            (None, Some(e)) => epochs_to_steps(e, epoch_len, per_step, "--warmup-epochs")?,
            (None, None) => match epoch_len {
                Some(n) => (n.div_ceil(per_step.max(1)) as u64).min(total / 2),
                None => total / 40,
            },
        })
    }
}

fn epochs_to_steps(epochs: f64, epoch_len: Option<usize>, per_step: usize, flag: &str) -> Result<u64, TrainError> {
    if !(epochs.is_finite() && epochs > 0.0) {
        return Err(TrainError::Config(format!("{flag} must be a positive number, got {epochs}")));
    }
    let n = epoch_len.ok_or_else(|| TrainError::Config(format!("{flag} needs the epoch size: give --train-num-samples (the shards' *_stats.json files give no usable count: missing, unreadable, or 0 in all)")))?;
    let steps = (epochs * n as f64 / per_step.max(1) as f64).ceil().max(1.0);
    // Past 2^53 the count is no longer exact (and `as u64` would saturate silently).
    if steps > (1u64 << 53) as f64 {
        return Err(TrainError::Config(format!("{flag} {epochs} is {steps:.3e} steps of {per_step} samples: too many")));
    }
    Ok(steps as u64)
}
