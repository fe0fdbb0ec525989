//! `Matrix`: a dense row-major f32 matrix, the Burn-free exchange format of the metric functions.

use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

use crate::EvalError;

/// A dense row-major `rows × cols` f32 matrix (embeddings, logits, features).
///
/// ```
/// use diffclip_eval::Matrix;
/// let m = Matrix::new(2, 2, vec![3.0, 4.0, 1.0, 0.0]).unwrap();
/// assert_eq!(m.l2_normalized().row(0), &[0.6, 0.8]);
/// assert!(Matrix::new(2, 2, vec![1.0]).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

impl Matrix {
    /// A matrix from row-major `data` (`data.len()` must be `rows * cols`).
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Result<Self, EvalError> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(EvalError::Shape(format!(
                "{rows} x {cols} matrix from {} values",
                data.len()
            )));
        }
        Ok(Self { rows, cols, data })
    }

    /// A matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// Read a `[rows, cols]` tensor back from its device.
    pub fn from_tensor(t: Tensor<2>) -> Result<Self, EvalError> {
        let [rows, cols] = t.dims();
        let data = t
            .try_to_vec_as::<f32>()
            .map_err(|e| EvalError::TensorRead(format!("{e:?}")))?;
        Self::new(rows, cols, data)
    }

    /// The matrix as a tensor on `device`.
    pub fn to_tensor(&self, device: &Device) -> Tensor<2> {
        Tensor::from_data(
            TensorData::new(self.data.clone(), [self.rows, self.cols]),
            device,
        )
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row-major values.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The row-major values, by value.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// Row `i` (panics when `i >= rows`, like slice indexing).
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Iterator over the rows.
    pub fn row_iter(&self) -> impl Iterator<Item = &[f32]> {
        // `chunks_exact(0)` panics; a 0-column matrix has empty rows.
        (0..self.rows).map(move |i| &self.data[i * self.cols..(i + 1) * self.cols])
    }

    /// Each row divided by its L2 norm (norms below 1e-12 are clamped, as `F.normalize`).
    pub fn l2_normalized(&self) -> Matrix {
        let mut data = self.data.clone();
        if self.cols > 0 {
            for row in data.chunks_exact_mut(self.cols) {
                let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                row.iter_mut().for_each(|v| *v /= norm);
            }
        }
        Matrix {
            rows: self.rows,
            cols: self.cols,
            data,
        }
    }

    /// `Err(NonFinite)` naming the first row holding NaN or ±inf.
    pub fn check_finite(&self, what: &'static str) -> Result<(), EvalError> {
        match self.data.iter().position(|v| !v.is_finite()) {
            Some(i) => Err(EvalError::NonFinite {
                what,
                row: i / self.cols.max(1),
            }),
            None => Ok(()),
        }
    }

    /// The rows at `indices`, in that order.
    pub fn select_rows(&self, indices: &[usize]) -> Result<Matrix, EvalError> {
        let mut data = Vec::with_capacity(indices.len() * self.cols);
        for &i in indices {
            if i >= self.rows {
                return Err(EvalError::Shape(format!(
                    "row {i} of a {}-row matrix",
                    self.rows
                )));
            }
            data.extend_from_slice(self.row(i));
        }
        Ok(Matrix {
            rows: indices.len(),
            cols: self.cols,
            data,
        })
    }

    /// The rows of `parts` stacked (all must have the same number of columns).
    pub fn vstack(parts: &[&Matrix]) -> Result<Matrix, EvalError> {
        let cols = parts.first().map_or(0, |m| m.cols);
        if let Some(m) = parts.iter().find(|m| m.cols != cols) {
            return Err(EvalError::Shape(format!(
                "stacking {cols}- and {}-column matrices",
                m.cols
            )));
        }
        let data: Vec<f32> = parts.iter().flat_map(|m| m.data.iter().copied()).collect();
        Ok(Matrix {
            rows: parts.iter().map(|m| m.rows).sum(),
            cols,
            data,
        })
    }

    /// `self · otherᵀ` (`[r1, c] x [r2, c] -> [r1, r2]`), rows in parallel, f32 accumulation.
    pub fn matmul_t(&self, other: &Matrix) -> Result<Matrix, EvalError> {
        if self.cols != other.cols {
            return Err(EvalError::Shape(format!(
                "[{}, {}] x [{}, {}]^T",
                self.rows, self.cols, other.rows, other.cols
            )));
        }
        let mut data = vec![0f32; self.rows * other.rows];
        if other.rows > 0 {
            data.par_chunks_mut(other.rows)
                .enumerate()
                .for_each(|(i, out)| {
                    let a = self.row(i);
                    for (j, o) in out.iter_mut().enumerate() {
                        *o = dot(a, other.row(j));
                    }
                });
        }
        Ok(Matrix {
            rows: self.rows,
            cols: other.rows,
            data,
        })
    }
}

/// Dot product in f32, accumulated left to right.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
