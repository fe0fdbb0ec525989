//! The differential-attention kernel on CubeCL devices (wgpu, CUDA) under autodiff (feature
//! `cube`): `(A1 − λ·A2)·V` per head pair as one op with its own backward, registered through
//! Burn's backend-extension mechanism (a lazy custom op under fusion) and autodiff.
//!
//! Burn 0.22.1's attention under autodiff is `attention_fallback`: it materialises and keeps
//! the `[B, h, N, N]` maps for the backward. Here only q, k, v, λ and two log-sum-exps per
//! row are kept; the backward recomputes the scores, so training memory is linear in N.
//! Inference keeps Burn's own (flash) attention.

mod kernels;

use std::cell::Cell;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::fusion::custom::TensorSpec;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend, Dispatch, DispatchDevice, backend_extension};
use burn::tensor::{DType, Shape, Slice, Tensor};
use burn_cubecl::CubeBackend;

thread_local! {
    /// Forward calls of the kernel made from this thread (tests, which run in parallel
    /// threads, check the kernel ran rather than a fallback).
    static CALLS: Cell<usize> = const { Cell::new(0) };
}

/// How many times this thread has called the CubeCL attention kernel's forward.
pub fn kernel_calls() -> usize {
    CALLS.get()
}

fn forward_meta(q: &TensorSpec, _k: &TensorSpec, _v: &TensorSpec, _l: &TensorSpec, heads: &usize, _s: &f32, _c: &bool) -> (TensorSpec, TensorSpec) {
    (q.clone(), TensorSpec::new(Shape::new([rows(&q.shape, *heads), 2]), DType::F32))
}

#[allow(clippy::too_many_arguments)]
fn stats_meta(q: &TensorSpec, _k: &TensorSpec, _v: &TensorSpec, _o: &TensorSpec, _l: &TensorSpec, heads: &usize, _s: &f32, _c: &bool) -> TensorSpec {
    TensorSpec::new(Shape::new([rows(&q.shape, *heads), 4]), DType::F32)
}

#[allow(clippy::too_many_arguments)]
fn dkv_meta(q: &TensorSpec, _k: &TensorSpec, _v: &TensorSpec, _l: &TensorSpec, _o: &TensorSpec, _st: &TensorSpec, _h: &usize, _s: &f32, _c: &bool) -> TensorSpec {
    let mut shape = q.shape.clone();
    shape[0] *= 2;
    TensorSpec::new(shape, q.dtype)
}

/// Rows of the per-row statistics: `B · h/2 · N`.
fn rows(shape: &Shape, heads: usize) -> usize {
    shape[0] * (heads / 2) * shape[1]
}

/// The kernel's ops; `q`, `k`, `v` are `[B, N, W]`, `lambda` is `[1]`.
#[backend_extension(Cube, Fusion, Autodiff)]
pub trait DiffAttentionOps: Backend {
    /// `(A1 − λ·A2)·V` and the per-row log-sum-exps.
    #[fusion(meta = forward_meta)]
    fn diff_attention(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, lambda: FloatTensor<Self>, heads: usize, scale: f32, causal: bool) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// The backward's per-row statistics.
    #[allow(clippy::too_many_arguments)]
    #[fusion(meta = stats_meta)]
    fn diff_attention_stats(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, dout: FloatTensor<Self>, lse: FloatTensor<Self>, heads: usize, scale: f32, causal: bool) -> FloatTensor<Self>;

    /// dQ.
    #[allow(clippy::too_many_arguments)]
    #[fusion(dtype = q, shape = q)]
    fn diff_attention_dq(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, lambda: FloatTensor<Self>, dout: FloatTensor<Self>, stats: FloatTensor<Self>, heads: usize, scale: f32, causal: bool) -> FloatTensor<Self>;

    /// dK and dV stacked along the batch.
    #[allow(clippy::too_many_arguments)]
    #[fusion(meta = dkv_meta)]
    fn diff_attention_dkv(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, lambda: FloatTensor<Self>, dout: FloatTensor<Self>, stats: FloatTensor<Self>, heads: usize, scale: f32, causal: bool) -> FloatTensor<Self>;
}

impl DiffAttentionOps for CubeBackend {
    fn diff_attention(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, lambda: FloatTensor<Self>, heads: usize, scale: f32, causal: bool) -> (FloatTensor<Self>, FloatTensor<Self>) {
        kernels::forward(q, k, v, lambda, heads, scale, causal)
    }

    fn diff_attention_stats(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, dout: FloatTensor<Self>, lse: FloatTensor<Self>, heads: usize, scale: f32, causal: bool) -> FloatTensor<Self> {
        kernels::stats(q, k, v, dout, lse, heads, scale, causal)
    }

    fn diff_attention_dq(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, lambda: FloatTensor<Self>, dout: FloatTensor<Self>, stats: FloatTensor<Self>, heads: usize, scale: f32, causal: bool) -> FloatTensor<Self> {
        kernels::dq(q, k, v, lambda, dout, stats, heads, scale, causal)
    }

    fn diff_attention_dkv(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, lambda: FloatTensor<Self>, dout: FloatTensor<Self>, stats: FloatTensor<Self>, heads: usize, scale: f32, causal: bool) -> FloatTensor<Self> {
        kernels::dkv(q, k, v, lambda, dout, stats, heads, scale, causal)
    }
}

/// What the backward keeps: the inputs, the log-sum-exps and the call's settings.
type Saved<B> = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, usize, f32, bool);

#[derive(Debug)]
struct DiffAttentionBackward;

impl<B: Backend + DiffAttentionOps> Backward<B, 4> for DiffAttentionBackward {
    type State = Saved<B>;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dout = grads.consume::<B>(&ops.node);
        let (q, k, v, lambda, lse, heads, scale, causal) = ops.state;
        let [node_q, node_k, node_v, node_l] = ops.parents;
        let stats = B::diff_attention_stats(q.clone(), k.clone(), v.clone(), dout.clone(), lse, heads, scale, causal);
        if let Some(node) = node_l {
            // dλ = −Σ_rows Σ_j A2·dP, the statistics' last column.
            let rows = B::float_slice(stats.clone(), &[Slice::from(..), Slice::from(3..4)]);
            grads.register::<B>(node.id, B::float_neg(B::float_sum(rows)));
        }
        if let Some(node) = node_q {
            let dq = B::diff_attention_dq(q.clone(), k.clone(), v.clone(), lambda.clone(), dout.clone(), stats.clone(), heads, scale, causal);
            grads.register::<B>(node.id, dq);
        }
        if node_k.is_some() || node_v.is_some() {
            let shape = burn::backend::TensorMetadata::shape(&q);
            let b = shape[0];
            let dkv = B::diff_attention_dkv(q, k, v, lambda, dout, stats, heads, scale, causal);
            let half = |at: usize| B::float_slice(dkv.clone(), &[Slice::from(at..at + b), Slice::from(..), Slice::from(..)]);
            if let Some(node) = node_k {
                grads.register::<B>(node.id, half(0));
            }
            if let Some(node) = node_v {
                grads.register::<B>(node.id, half(b));
            }
        }
    }
}

/// The backward's own ops are not differentiated again: they run on the inner tensors.
impl<B: Backend + DiffAttentionOps, C: CheckpointStrategy> DiffAttentionOps for Autodiff<B, C> {
    fn diff_attention(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, lambda: FloatTensor<Self>, heads: usize, scale: f32, causal: bool) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let parents = [q.node(), k.node(), v.node(), lambda.node()];
        let (q, k, v, lambda) = (q.into_primitive(), k.into_primitive(), v.into_primitive(), lambda.into_primitive());
        let (out, lse) = B::diff_attention(q.clone(), k.clone(), v.clone(), lambda.clone(), heads, scale, causal);
        let out = match DiffAttentionBackward.prepare::<C>(parents).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((q, k, v, lambda, lse.clone(), heads, scale, causal), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        };
        (out, <Self as AutodiffBackend>::from_inner(lse))
    }

    fn diff_attention_stats(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, dout: FloatTensor<Self>, lse: FloatTensor<Self>, heads: usize, scale: f32, causal: bool) -> FloatTensor<Self> {
        let stats = B::diff_attention_stats(q.into_primitive(), k.into_primitive(), v.into_primitive(), dout.into_primitive(), lse.into_primitive(), heads, scale, causal);
        <Self as AutodiffBackend>::from_inner(stats)
    }

    fn diff_attention_dq(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, lambda: FloatTensor<Self>, dout: FloatTensor<Self>, stats: FloatTensor<Self>, heads: usize, scale: f32, causal: bool) -> FloatTensor<Self> {
        let (q, k, v, lambda, dout, stats) = (q.into_primitive(), k.into_primitive(), v.into_primitive(), lambda.into_primitive(), dout.into_primitive(), stats.into_primitive());
        <Self as AutodiffBackend>::from_inner(B::diff_attention_dq(q, k, v, lambda, dout, stats, heads, scale, causal))
    }

    fn diff_attention_dkv(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, lambda: FloatTensor<Self>, dout: FloatTensor<Self>, stats: FloatTensor<Self>, heads: usize, scale: f32, causal: bool) -> FloatTensor<Self> {
        let (q, k, v, lambda, dout, stats) = (q.into_primitive(), k.into_primitive(), v.into_primitive(), lambda.into_primitive(), dout.into_primitive(), stats.into_primitive());
        <Self as AutodiffBackend>::from_inner(B::diff_attention_dkv(q, k, v, lambda, dout, stats, heads, scale, causal))
    }
}

/// Whether `t` is an f32 tensor on an autodiff CubeCL device (where the kernel runs).
fn on_autodiff_cube(t: &Tensor<3>) -> bool {
    let device = t.device();
    t.dtype() == DType::F32 && device.is_autodiff() && matches!(device.inner().as_dispatch(), DispatchDevice::Cube(_))
}

/// `(A1 − λ·A2)·V` of `[B, N, W]` projections (before the RMSNorm) on an autodiff CubeCL
/// device, differentiable; `None` elsewhere, or when `q` holds fewer positions than `k`.
pub(crate) fn diff_attention_tracked(q: &Tensor<3>, k: &Tensor<3>, v: &Tensor<3>, lambda: &Tensor<1>, heads: usize, scale: f32, causal: bool) -> Option<Tensor<3>> {
    if !on_autodiff_cube(q) || q.dims() != k.dims() || k.dims() != v.dims() {
        return None;
    }
    CALLS.set(CALLS.get() + 1);
    let (q, k, v, l) = (q.clone().into_dispatch(), k.clone().into_dispatch(), v.clone().into_dispatch(), lambda.clone().into_dispatch());
    let (out, _lse) = <Dispatch as DiffAttentionOps>::diff_attention(q, k, v, l, heads, scale, causal);
    Some(Tensor::from_dispatch(out))
}
