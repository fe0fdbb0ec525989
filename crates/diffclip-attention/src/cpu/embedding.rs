//! Embedding lookup as one differentiable op on `Autodiff<Flex>` (training on flex).
//!
//! Burn 0.22.1's flex `embedding_backward` zero-fills a `[vocab, width]` gradient and then
//! copies it whole to realign it (`FlexTensor::empty`) before adding the rows: for CLIP's
//! 49 408-token table that is two 25 MB passes per step for a few thousand rows. Here the
//! gradient is allocated zeroed once and the rows are added in token order (deterministic).

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::tensor::{Int, Tensor};
use rayon::prelude::*;

use super::autodiff::{Ad, autodiff_of, backward_for_parents, f32s, flex, record};
use super::{contiguous, copy_into, written};

/// What the backward needs: the row of every token, and the table's shape.
#[derive(Debug, Clone)]
struct Saved {
    ids: Vec<usize>,
    vocab: usize,
    width: usize,
}

/// The lookup's backward: parent the table.
#[derive(Debug)]
struct EmbeddingBackward;

fn register<const N: usize>(ops: Ops<Saved, N>, grads: &mut Gradients) {
    let s = &ops.state;
    let dy = contiguous(grads.consume::<Flex>(&ops.node));
    let dy = f32s(&dy, s.ids.len() * s.width);
    let mut dw = vec![0.0f32; s.vocab * s.width];
    for (&id, g) in s.ids.iter().zip(dy.chunks_exact(s.width)) {
        for (d, &v) in dw[id * s.width..][..s.width].iter_mut().zip(g) {
            *d += v;
        }
    }
    if let Some(node) = ops.parents.into_iter().flatten().next() {
        grads.register::<Flex>(node.id, flex(dw, &[s.vocab, s.width]));
    }
}

backward_for_parents!(EmbeddingBackward, Saved, register, [1]);

/// Rows `ids` of an autodiff flex `weight` (`[vocab, width]`), `[B, L, width]`, differentiable;
/// `None` when the table is not there (or the kernels are off, or an id is out of range: Burn's
/// path then reports it).
pub(crate) fn embedding_tracked(weight: &Tensor<2>, ids: &Tensor<2, Int>) -> Option<Tensor<3>> {
    if !super::enabled() {
        return None;
    }
    let [vocab, width] = weight.dims();
    let [batch, len] = ids.dims();
    if width == 0 || batch * len == 0 {
        return None;
    }
    let wa = autodiff_of(weight)?;
    let data = ids.clone().into_data().convert::<i64>();
    let ids: Vec<usize> = data.as_slice::<i64>().ok()?.iter().map(|&i| usize::try_from(i).ok().filter(|&i| i < vocab)).collect::<Option<_>>()?;
    let table = contiguous(wa.primitive().clone());
    let rows = f32s(&table, vocab * width);
    let out = written(ids.len() * width, |out| {
        out.par_chunks_mut(width).zip(ids.par_iter()).for_each(|(o, &id)| {
            copy_into(o, &rows[id * width..][..width]);
        })
    });
    let out = flex(out, &[batch, len, width]);
    let saved = Saved { ids, vocab, width };
    Some(Tensor::from_primitive::<Ad>(record(EmbeddingBackward, [wa.node()], saved, out)))
}
