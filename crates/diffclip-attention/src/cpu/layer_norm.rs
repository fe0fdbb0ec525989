//! LayerNorm as one differentiable op on `Autodiff<Flex>` (training on flex).
//!
//! Burn 0.22.1's autodiff has no LayerNorm op: it records the normalisation as about ten
//! element-wise ops (mean, centre, square, mean, add, sqrt, divide, scale, shift), each with a
//! whole-tensor output and its own backward. Here the forward is one pass per row and the
//! backward one more (`dx = (g − mean(g) − x̂·mean(g·x̂)) / σ` with `g = dy·γ`), keeping only
//! the input and two numbers per row. Plain flex tensors keep Burn's own fused LayerNorm.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::autodiff::{Ad, autodiff_of, backward_for_parents, f32s, flex, record};
use super::{contiguous, written};

/// Rows per parallel task.
fn row_block(width: usize) -> usize {
    ((1 << 14) / width.max(1)).max(8)
}

/// Each row normalised: `(x − μ) / √(var + eps) · γ + β`, in the order of Burn's generic
/// LayerNorm; also each row's mean and `√(var + eps)`.
fn forward(x: &[f32], gamma: &[f32], beta: Option<&[f32]>, width: usize, eps: f32) -> (Vec<f32>, Vec<[f32; 2]>) {
    let rows = x.len() / width;
    let mut stats = vec![[0.0f32; 2]; rows];
    let block = row_block(width);
    let y = written(x.len(), |y| y.par_chunks_mut(width * block).zip(stats.par_chunks_mut(block)).enumerate().for_each(|(b, (ys, st))| {
        for (r, (yr, s)) in ys.chunks_mut(width).zip(st.iter_mut()).enumerate() {
            let xr = &x[(b * block + r) * width..][..width];
            let mean = xr.iter().sum::<f32>() / width as f32;
            let var = xr.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / width as f32;
            let denom = (var + eps).sqrt();
            for (i, (o, &v)) in yr.iter_mut().zip(xr).enumerate() {
                let n = (v - mean) / denom * gamma[i];
                o.write(match beta {
                    Some(beta) => n + beta[i],
                    None => n,
                });
            }
            *s = [mean, denom];
        }
    }));
    (y, stats)
}

/// The gradients of x, γ and β from `dy`. γ's and β's are summed over fixed row blocks, then
/// the blocks in order: the result does not depend on the thread count.
fn backward(x: &[f32], dy: &[f32], gamma: &[f32], stats: &[[f32; 2]], width: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let block = row_block(width);
    let mut partials: Vec<(Vec<f32>, Vec<f32>)> = Vec::new();
    let dx = written(x.len(), |dx| partials = dx
        .par_chunks_mut(width * block)
        .enumerate()
        .map(|(b, dxs)| {
            let (mut dgamma, mut dbeta) = (vec![0.0f32; width], vec![0.0f32; width]);
            for (r, dxr) in dxs.chunks_mut(width).enumerate() {
                let row = b * block + r;
                let (xr, dyr) = (&x[row * width..][..width], &dy[row * width..][..width]);
                let [mean, denom] = stats[row];
                let (mut sum_g, mut sum_gx) = (0.0f32, 0.0f32);
                for i in 0..width {
                    let xhat = (xr[i] - mean) / denom;
                    let g = dyr[i] * gamma[i];
                    sum_g += g;
                    sum_gx += g * xhat;
                    dgamma[i] += dyr[i] * xhat;
                    dbeta[i] += dyr[i];
                }
                let (mean_g, mean_gx) = (sum_g / width as f32, sum_gx / width as f32);
                for i in 0..width {
                    let xhat = (xr[i] - mean) / denom;
                    dxr[i].write((dyr[i] * gamma[i] - mean_g - xhat * mean_gx) / denom);
                }
            }
            (dgamma, dbeta)
        })
        .collect());
    let (mut dgamma, mut dbeta) = (vec![0.0f32; width], vec![0.0f32; width]);
    for (pg, pb) in partials {
        for i in 0..width {
            dgamma[i] += pg[i];
            dbeta[i] += pb[i];
        }
    }
    (dx, dgamma, dbeta)
}

/// What the backward needs: the input, γ, and each row's mean and `√(var + eps)`.
#[derive(Debug, Clone)]
struct Saved {
    x: FlexTensor,
    gamma: FlexTensor,
    stats: Vec<[f32; 2]>,
    width: usize,
}

/// LayerNorm's backward: parents x, γ (and β).
#[derive(Debug)]
struct LayerNormBackward;

fn register<const N: usize>(ops: Ops<Saved, N>, grads: &mut Gradients) {
    let s = &ops.state;
    let len = s.stats.len() * s.width;
    let dy = contiguous(grads.consume::<Flex>(&ops.node));
    let (dx, dgamma, dbeta) = backward(f32s(&s.x, len), f32s(&dy, len), f32s(&s.gamma, s.width), &s.stats, s.width);
    let mut parts = [Some(flex(dx, s.x.layout().shape())), Some(flex(dgamma, &[s.width])), Some(flex(dbeta, &[s.width]))];
    for (i, parent) in ops.parents.into_iter().enumerate() {
        if let (Some(node), Some(grad)) = (parent, parts[i].take()) {
            grads.register::<Flex>(node.id, grad);
        }
    }
}

backward_for_parents!(LayerNormBackward, Saved, register, [2, 3]);

/// LayerNorm over the last dimension of autodiff flex tensors, differentiable; `None` when
/// they are not there (or the kernels are off).
pub(crate) fn layer_norm_tracked<const D: usize>(x: &Tensor<D>, gamma: &Tensor<1>, beta: Option<&Tensor<1>>, eps: f64) -> Option<Tensor<D>> {
    if !super::enabled() || D == 0 {
        return None;
    }
    let width = x.dims()[D - 1];
    if width == 0 || gamma.dims() != [width] || beta.is_some_and(|b| b.dims() != [width]) {
        return None;
    }
    let (xa, ga) = (autodiff_of(x)?, autodiff_of(gamma)?);
    let ba = match beta {
        Some(b) => Some(autodiff_of(b)?),
        None => None,
    };
    let xs = contiguous(xa.primitive().clone());
    let gs = contiguous(ga.primitive().clone());
    let bs = ba.as_ref().map(|b| contiguous(b.primitive().clone()));
    let len = xs.layout().num_elements();
    let (y, stats) = forward(f32s(&xs, len), f32s(&gs, width), bs.as_ref().map(|b| f32s(b, width)), width, eps as f32);
    let y = flex(y, xs.layout().shape());
    let saved = Saved { x: xs, gamma: gs, stats, width };
    let out = match ba {
        None => record(LayerNormBackward, [xa.node(), ga.node()], saved, y),
        Some(ba) => record(LayerNormBackward, [xa.node(), ga.node(), ba.node()], saved, y),
    };
    Some(Tensor::from_primitive::<Ad>(out))
}
