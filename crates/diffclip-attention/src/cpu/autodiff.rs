//! The attention kernel (and the activations and linear layers) as differentiable ops on
//! `Autodiff<Flex>` (training on flex).
//!
//! Registered with Burn's autodiff like its built-in ops (`Backward`, `prepare`, `OpsKind`):
//! the forward runs the kernel, the backward runs `backward.rs`. Inputs are kept (q, k, v: the
//! `[B, N, D]` projections, already alive for their own matmul backward); the maps are
//! recomputed, so training memory is linear in N as well.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, NodeGuard, Ops, OpsKind};
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::tensor::FloatTensor;
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use super::attention::{Combine, Dims, Inputs, attention};
use super::backward::{NormInput, attention_backward};
use super::{contiguous, copy_into, written};
use crate::Activation;
use super::linear::{self, LinearDims};

pub(super) type Ad = Autodiff<Flex>;

/// `impl Backward<Flex, N>` for each listed parent count `N`, every one running `$register`
/// (ops with an optional parent, such as a bias, have two counts).
macro_rules! backward_for_parents {
    ($op:ty, $state:ty, $register:path, [$($n:literal),+]) => {
        $(
            impl Backward<Flex, $n> for $op {
                type State = $state;

                fn backward(self, ops: Ops<$state, $n>, grads: &mut Gradients, _: &mut Checkpointer) {
                    $register(ops, grads);
                }
            }
        )+
    };
}
pub(super) use backward_for_parents;

/// Record `out` as the result of `op` on `parents`, keeping `state` for its backward when a
/// parent is tracked: the same registration for every kernel op here.
pub(super) fn record<T, const N: usize>(op: T, parents: [NodeGuard; N], state: T::State, out: FlexTensor) -> FloatTensor<Ad>
where
    T: Backward<Flex, N>,
    T::State: Clone + Send + std::fmt::Debug + 'static,
{
    match op.prepare::<NoCheckpointing>(parents).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(state, out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

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
    /// The differential RMSNorm: gain, its input (pre-norm output), eps, output scale.
    norm: Option<(FlexTensor, FlexTensor, f32, f32)>,
}

/// The attention op's backward: parents q, k, v (standard) or q, k, v, λ, γ (differential).
#[derive(Debug)]
struct AttentionBackward;

pub(super) fn f32s(t: &FlexTensor, len: usize) -> &[f32] {
    &t.storage::<f32>()[..len]
}

pub(super) fn flex(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
}

/// Gradients of q, k, v, λ and γ as flex tensors.
fn grads_of(s: &Saved, d_out: FlexTensor) -> [FlexTensor; 5] {
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
        s.norm.as_ref().map(|(gamma, pre, eps, out_scale)| NormInput {
            prenorm: f32s(pre, len),
            gamma: gamma.storage::<f32>(),
            eps: *eps,
            out_scale: *out_scale,
        }),
    );
    let shape = [s.dims.batch, s.dims.n, s.dims.width];
    let dgamma_len = g.dgamma.len();
    [
        flex(g.dq, &shape),
        flex(g.dk, &shape),
        flex(g.dv, &shape),
        flex(vec![g.dlambda], &[1]),
        flex(g.dgamma, &[dgamma_len]),
    ]
}

/// Run the kernel backward and register the gradient of each tracked parent, in order.
fn register_grads<const N: usize>(ops: Ops<Saved, N>, grads: &mut Gradients) {
    let d_out = grads.consume::<Flex>(&ops.node);
    for (parent, grad) in ops.parents.into_iter().zip(grads_of(&ops.state, d_out)) {
        if let Some(node) = parent {
            grads.register::<Flex>(node.id, grad);
        }
    }
}

backward_for_parents!(AttentionBackward, Saved, register_grads, [3, 5]);

/// Elements per parallel task of the activations.
const CHUNK: usize = 1 << 14;

/// An activation's backward (parent: its input, kept as state).
#[derive(Debug)]
struct ActivationBackward(Activation);

impl Backward<Flex, 1> for ActivationBackward {
    type State = FlexTensor;

    fn backward(self, ops: Ops<FlexTensor, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let [parent] = ops.parents;
        let Some(node) = parent else { return };
        let x = &ops.state;
        let len = x.layout().num_elements();
        let (xs, dys) = (f32s(x, len), f32s(&dy, len));
        let backward = match self.0 {
            Activation::Gelu => super::simd::gelu_backward,
            Activation::QuickGelu => super::simd::quick_gelu_backward,
        };
        let dx = written(len, |dx| {
            dx.par_chunks_mut(CHUNK).enumerate().for_each(|(i, d)| {
                let r = i * CHUNK..i * CHUNK + d.len();
                backward(&xs[r.clone()], &dys[r], d);
            })
        });
        grads.register::<Flex>(node.id, flex(dx, x.layout().shape()));
    }
}

/// GELU / QuickGELU of an autodiff flex tensor, differentiable; `None` elsewhere.
pub(crate) fn activation_tracked<const D: usize>(x: &Tensor<D>, kind: Activation) -> Option<Tensor<D>> {
    if !super::enabled() {
        return None;
    }
    let x = autodiff_of(x)?;
    let input = contiguous(x.primitive().clone());
    let len = input.layout().num_elements();
    let xs = f32s(&input, len);
    let forward = super::simd::in_place(kind);
    // Each chunk is copied and transformed while it is in cache: one pass over memory.
    let y = written(len, |y| {
        y.par_chunks_mut(CHUNK).enumerate().for_each(|(i, c)| forward(copy_into(c, &xs[i * CHUNK..][..c.len()])))
    });
    let y = flex(y, input.layout().shape());
    Some(Tensor::from_primitive::<Ad>(record(ActivationBackward(kind), [x.node()], input, y)))
}

pub(crate) fn is_autodiff_flex<const D: usize>(t: &Tensor<D>) -> bool {
    t.clone().try_into_primitive::<Ad>().is_ok()
}

pub(super) fn autodiff_of<const D: usize>(t: &Tensor<D>) -> Option<FloatTensor<Ad>> {
    let p = t.clone().try_into_primitive::<Ad>().ok()?;
    (p.primitive().dtype() == DType::F32).then_some(p)
}

/// The differential part of [`attention_tracked`]: λ, and the RMSNorm's gain, eps and scale.
pub(crate) struct DiffArgs<'a> {
    pub lambda: &'a Tensor<1>,
    pub gamma: &'a Tensor<1>,
    pub eps: f32,
    pub out_scale: f32,
}

/// `RMSNorm((A1 − λ·A2)·V)·out_scale` (with `diff`) or `A·V` of `[B, N, D]` projections on an
/// autodiff flex device, differentiable; `None` when the tensors are not there or q, k and v
/// differ in shape (the backward is written for self-attention).
pub(crate) fn attention_tracked(
    q: &Tensor<3>,
    k: &Tensor<3>,
    v: &Tensor<3>,
    diff: Option<DiffArgs<'_>>,
    heads: usize,
    scale: f32,
    causal: bool,
) -> Option<Tensor<3>> {
    let [batch, n, width] = q.dims();
    if !super::enabled() || q.dims() != k.dims() || v.dims() != q.dims() || !crate::heads_fit(width, heads, diff.is_some()) {
        return None;
    }
    let (q, k, v) = (autodiff_of(q)?, autodiff_of(k)?, autodiff_of(v)?);
    let diff = match diff {
        Some(d) => Some((autodiff_of(d.lambda)?, autodiff_of(d.gamma)?, d.eps, d.out_scale)),
        None => None,
    };
    let dims = Dims { batch, n, width, heads };
    let len = batch * n * width;
    let lambda_value = diff.as_ref().map(|d| contiguous(d.0.primitive().clone()).storage::<f32>()[0]);
    let gamma = diff.as_ref().map(|d| contiguous(d.1.primitive().clone()));
    let mut saved = Saved {
        q: contiguous(q.primitive().clone()),
        k: contiguous(k.primitive().clone()),
        v: contiguous(v.primitive().clone()),
        dims,
        scale,
        causal,
        lambda: lambda_value,
        norm: None,
    };
    let combine = match (lambda_value, &diff) {
        (Some(lambda), Some(d)) => Combine::Diff { lambda, norm: Some((d.2, d.3)) },
        _ => Combine::Single,
    };
    let g: &[f32] = gamma.as_ref().map(|g| g.storage::<f32>()).unwrap_or(&[]);
    let (q_values, k_values, v_values) = (f32s(&saved.q, len), f32s(&saved.k, len), f32s(&saved.v, len));
    let inputs = Inputs { q: q_values, k: k_values, v: v_values, dims, scale, causal, combine: &combine, gamma: g };
    let (out, prenorm) = attention(inputs, true, None);
    if let (Some(gamma), Some(d)) = (gamma.clone(), &diff) {
        saved.norm = Some((gamma, flex(prenorm, &[batch, n, width]), d.2, d.3));
    }
    let out = flex(out, &[batch, n, width]);
    let result = match diff {
        None => record(AttentionBackward, [q.node(), k.node(), v.node()], saved, out),
        Some((l, gm, _, _)) => record(AttentionBackward, [q.node(), k.node(), v.node(), l.node(), gm.node()], saved, out),
    };
    Some(Tensor::from_primitive::<Ad>(result))
}

/// What a linear layer's backward needs: its input and weight (both alive anyway), sizes, and
/// the products' precision its forward ran with.
#[derive(Debug, Clone)]
struct LinearSaved {
    x: FlexTensor,
    w: FlexTensor,
    dims: LinearDims,
    products: crate::MatmulPrecision,
}

/// A linear layer's backward: parents x, W (and b).
#[derive(Debug)]
struct LinearBackward;

/// Compute the gradient of each tracked parent (x, W, b in that order) and register it.
fn register_linear_grads<const N: usize>(ops: Ops<LinearSaved, N>, grads: &mut Gradients) {
    let dy = contiguous(grads.consume::<Flex>(&ops.node));
    let s = &ops.state;
    let d = s.dims;
    let dy = f32s(&dy, d.rows * d.n);
    // The backward multiplies as its forward did, wherever `backward()` is called from (as
    // PyTorch's autocast records each op's type): a model computing in bf16 scopes only its
    // forward.
    crate::with_matmul_precision(s.products, || {
        for (i, parent) in ops.parents.into_iter().enumerate() {
            let Some(node) = parent else { continue };
            let grad = match i {
                0 => flex(linear::backward_input(dy, f32s(&s.w, d.k * d.n), d), s.x.layout().shape()),
                1 => flex(linear::backward_weight(f32s(&s.x, d.rows * d.k), dy, d), &[d.k, d.n]),
                _ => flex(linear::backward_bias(dy, d), &[d.n]),
            };
            grads.register::<Flex>(node.id, grad);
        }
    })
}

backward_for_parents!(LinearBackward, LinearSaved, register_linear_grads, [2, 3]);

/// `x·W + b` of autodiff flex tensors (`x`: `[.., k]`, W: `[k, n]`), differentiable; `None`
/// when they are not there.
pub(crate) fn linear_tracked<const D: usize>(x: &Tensor<D>, w: &Tensor<2>, b: Option<&Tensor<1>>, dims: LinearDims) -> Option<Tensor<D>> {
    if !super::enabled() {
        return None;
    }
    let (xa, wa) = (autodiff_of(x)?, autodiff_of(w)?);
    let ba = match b {
        Some(b) => Some(autodiff_of(b)?),
        None => None,
    };
    let products = crate::matmul_precision();
    let saved = LinearSaved { x: contiguous(xa.primitive().clone()), w: contiguous(wa.primitive().clone()), dims, products };
    let bias = ba.as_ref().map(|b| contiguous(b.primitive().clone()));
    let out = linear::forward(
        f32s(&saved.x, dims.rows * dims.k),
        f32s(&saved.w, dims.k * dims.n),
        bias.as_ref().map(|b| f32s(b, dims.n)),
        dims,
    );
    let mut shape = x.dims();
    shape[D - 1] = dims.n;
    let y = flex(out, &shape);
    let result = match ba {
        None => record(LinearBackward, [xa.node(), wa.node()], saved, y),
        Some(ba) => record(LinearBackward, [xa.node(), wa.node(), ba.node()], saved, y),
    };
    Some(Tensor::from_primitive::<Ad>(result))
}
