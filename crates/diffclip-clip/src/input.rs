//! Checking model inputs before they reach the model, so bad data is an error, not a panic.

use thiserror::Error;

use crate::ClipConfig;

/// An input batch that does not fit the model.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum InputError {
    #[error("images must be [B, {chans}, {size}, {size}], got {got:?}")]
    ImageShape { chans: usize, size: usize, got: Vec<usize> },
    #[error("token ids must be [B, L] with 1 <= L <= {context}, got {got:?}")]
    TokenShape { context: usize, got: Vec<usize> },
    #[error("token id {id} at row {row}, position {pos} is outside the vocabulary (0..{vocab})")]
    TokenId { id: i64, row: usize, pos: usize, vocab: usize },
    #[error("an empty batch")]
    Empty,
}

impl ClipConfig {
    /// Check an image batch shape `[B, C, H, W]`.
    pub fn check_images(&self, shape: &[usize]) -> Result<(), InputError> {
        let v = &self.vision;
        if shape.first() == Some(&0) {
            return Err(InputError::Empty);
        }
        if shape.len() != 4 || shape[1] != v.in_chans || shape[2] != v.image_size || shape[3] != v.image_size {
            return Err(InputError::ImageShape { chans: v.in_chans, size: v.image_size, got: shape.to_vec() });
        }
        Ok(())
    }

    /// Check a token batch `[B, L]` (row-major ids).
    pub fn check_tokens(&self, shape: &[usize], ids: &[i64]) -> Result<(), InputError> {
        let t = &self.text;
        if shape.first() == Some(&0) {
            return Err(InputError::Empty);
        }
        if shape.len() != 2 || shape[1] == 0 || shape[1] > t.context_length {
            return Err(InputError::TokenShape { context: t.context_length, got: shape.to_vec() });
        }
        if let Some(i) = ids.iter().position(|&id| id < 0 || id as usize >= t.vocab_size) {
            return Err(InputError::TokenId { id: ids[i], row: i / shape[1], pos: i % shape[1], vocab: t.vocab_size });
        }
        Ok(())
    }
}
