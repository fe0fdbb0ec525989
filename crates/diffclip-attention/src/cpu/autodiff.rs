//! The attention kernel as one differentiable op on `Autodiff<Flex>` (training on flex).
//!
//! Registered with Burn's autodiff like its built-in ops (`Backward`, `prepare`, `OpsKind`):
//! the forward runs the kernel, the backward runs `backward.rs`. Inputs are kept (q, k, v: the
//! `[B, N, D]` projections, already alive for their own matmul backward); the maps are
//! recomputed, so training memory is linear in N as well.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::tensor::FloatTensor;
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{DType, Tensor, TensorData};

use super::attention::{Combine, Dims, attention};
use super::backward::attention_backward;

type Ad = Autodiff<Flex>;

/// What the backward needs besides the output gradient.
#[derive(Debug, Clone)]
struct Saved {
    q: FlexTensor,
    k: FlexTensor,
    v: FlexTensor,
    dims: Dims,
    scale: f32,
    causal: bool,
    lambda: Option<f32>,
}

/// Standard attention (parents q, k, v).
#[derive(Debug)]
struct StandardBackward;

/// Differential attention (parents q, k, v, λ).
#[derive(Debug)]
struct DiffBackward;

fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.layout().is_contiguous() && t.layout().start_offset() == 0 { t } else { t.to_contiguous() }
}

fn f32s(t: &FlexTensor, len: usize) -> &[f32] {
    &t.storage::<f32>()[..len]
}

fn flex(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
}

/// Gradients of q, k, v and λ as flex tensors.
fn grads_of(s: &Saved, d_out: FlexTensor) -> [FlexTensor; 4] {
    let len = s.dims.batch * s.dims.n * s.dims.width;
    let d_out = contiguous(d_out);
    let g = attention_backward(
        f32s(&s.q, len),
        f32s(&s.k, len),
        f32s(&s.v, len),
        f32s(&d_out, len),
        s.dims,
        s.scale,
        s.causal,
        s.lambda,
    );
    let shape = [s.dims.batch, s.dims.n, s.dims.width];
    [flex(g.dq, &shape), flex(g.dk, &shape), flex(g.dv, &shape), flex(vec![g.dlambda], &[1])]
}

impl Backward<Flex, 3> for StandardBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let d_out = grads.consume::<Flex>(&ops.node);
        let [dq, dk, dv, _] = grads_of(&ops.state, d_out);
        for (parent, grad) in ops.parents.into_iter().zip([dq, dk, dv]) {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

impl Backward<Flex, 4> for DiffBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let d_out = grads.consume::<Flex>(&ops.node);
        let grads_in = grads_of(&ops.state, d_out);
        for (parent, grad) in ops.parents.into_iter().zip(grads_in) {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

fn autodiff_of<const D: usize>(t: &Tensor<D>) -> Option<FloatTensor<Ad>> {
    let p = t.clone().try_into_primitive::<Ad>().ok()?;
    (p.primitive().dtype() == DType::F32).then_some(p)
}

/// `(A1 − λ·A2)·V` (with `lambda`) or `A·V` of `[B, N, D]` projections on an autodiff flex
/// device, differentiable; `None` when the tensors are not there.
pub(crate) fn attention_tracked(
    q: &Tensor<3>,
    k: &Tensor<3>,
    v: &Tensor<3>,
    lambda: Option<&Tensor<1>>,
    heads: usize,
    scale: f32,
    causal: bool,
) -> Option<Tensor<3>> {
    if !super::enabled() {
        return None;
    }
    let [batch, n, width] = q.dims();
    let (q, k, v) = (autodiff_of(q)?, autodiff_of(k)?, autodiff_of(v)?);
    let lambda = match lambda {
        Some(l) => Some(autodiff_of(l)?),
        None => None,
    };
    let dims = Dims { batch, n, width, heads };
    let len = batch * n * width;
    let lambda_value = lambda.as_ref().map(|l| contiguous(l.primitive().clone()).storage::<f32>()[0]);
    let saved = Saved {
        q: contiguous(q.primitive().clone()),
        k: contiguous(k.primitive().clone()),
        v: contiguous(v.primitive().clone()),
        dims,
        scale,
        causal,
        lambda: lambda_value,
    };
    let combine = match lambda_value {
        Some(lambda) => Combine::Diff { lambda, norm: None },
        None => Combine::Single,
    };
    let out = attention(f32s(&saved.q, len), f32s(&saved.k, len), f32s(&saved.v, len), dims, scale, causal, &combine, &[]);
    let out = flex(out, &[batch, n, width]);
    let result: FloatTensor<Ad> = match lambda {
        None => match StandardBackward.prepare::<NoCheckpointing>([q.node(), k.node(), v.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(saved, out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        },
        Some(l) => match DiffBackward.prepare::<NoCheckpointing>([q.node(), k.node(), v.node(), l.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(saved, out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        },
    };
    Some(Tensor::from_primitive::<Ad>(result))
}
