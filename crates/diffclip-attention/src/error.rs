use thiserror::Error;

/// Invalid attention configuration, reported by `init` before any tensor is built.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum AttentionError {
    /// Differential attention pairs heads, so the baseline head count must be even.
    #[error("differential attention needs an even number of heads, got {num_heads}")]
    OddHeads {
        /// The configured head count.
        num_heads: usize,
    },
    /// The width must split evenly into heads.
    #[error("width {d_model} is not divisible by {num_heads} heads")]
    WidthNotDivisible {
        /// The model width `D`.
        d_model: usize,
        /// The configured head count.
        num_heads: usize,
    },
    /// Zero width or zero heads.
    #[error("width and head count must be positive (width {d_model}, heads {num_heads})")]
    Empty {
        /// The model width `D`.
        d_model: usize,
        /// The configured head count.
        num_heads: usize,
    },
    /// Dropout probabilities must lie in [0, 1).
    #[error("dropout probability {prob} is outside [0, 1)")]
    Dropout {
        /// The rejected probability.
        prob: f64,
    },
    /// `lambda_init` must be a finite number.
    #[error("lambda_init must be finite, got {value}")]
    LambdaInit {
        /// The rejected value.
        value: f64,
    },
    /// `lambda_std` (the spread of the λ vectors' initial values) must be finite and not
    /// negative.
    #[error("lambda_std must be finite and not negative, got {value}")]
    LambdaStd {
        /// The rejected value.
        value: f64,
    },
}

pub(crate) fn check_dims(d_model: usize, num_heads: usize) -> Result<usize, AttentionError> {
    if d_model == 0 || num_heads == 0 {
        return Err(AttentionError::Empty { d_model, num_heads });
    }
    if !d_model.is_multiple_of(num_heads) {
        return Err(AttentionError::WidthNotDivisible { d_model, num_heads });
    }
    Ok(d_model / num_heads)
}

pub(crate) fn check_dropout(prob: f64) -> Result<(), AttentionError> {
    // NaN fails `contains` too.
    if !(0.0..1.0).contains(&prob) {
        return Err(AttentionError::Dropout { prob });
    }
    Ok(())
}
