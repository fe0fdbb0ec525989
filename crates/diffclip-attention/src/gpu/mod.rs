//! The attention kernel on CubeCL devices (wgpu, CUDA) under autodiff (feature `cube`):
//! differential attention, `RMSNorm((A1 − λ·A2)·V)·γ·(1 − λ_init)` per head pair, or standard
//! attention, `A·V` per head, as one op with its own backward, registered through Burn's
//! backend-extension mechanism (a lazy custom op under fusion) and autodiff.
//!
//! Burn 0.22.1's attention under autodiff is `attention_fallback`: it materialises and keeps
//! the `[B, h, N, N]` maps for the backward. Here only q, k, v, λ, γ, the pre-norm output (with
//! `A2·V` for differential attention) and three floats per row are kept; the backward recomputes the scores, so training memory is
//! linear in N. Inference keeps Burn's own (flash) attention unless
//! [`crate::set_gpu_inference_kernel`] turns the kernel on for it too (one product with V per
//! head pair instead of Burn's two attention calls; which is faster is measured by
//! `benches/gpu.sh`).

mod backward;
#[cfg(test)]
mod host_check;
mod kernels;
mod plan;
mod tile;

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

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

#[allow(clippy::too_many_arguments)]
fn forward_meta(q: &TensorSpec, _k: &TensorSpec, _v: &TensorSpec, _p: &TensorSpec, heads: &usize, _s: &f32, _c: &bool, pair: &bool, keep: &bool, _e: &f32, _o: &f32) -> (TensorSpec, TensorSpec, TensorSpec) {
    let o = if *pair && *keep { stacked(q) } else { TensorSpec::new(Shape::new([1]), q.dtype) };
    (q.clone(), o, TensorSpec::new(Shape::new([rows(&q.shape, *heads, *pair), 3]), DType::F32))
}

fn norm_backward_meta(dy: &TensorSpec, _o: &TensorSpec, _l: &TensorSpec, _p: &TensorSpec, _h: &usize, _s: &f32) -> TensorSpec {
    stacked(dy)
}

fn stats_meta(_o: &TensorSpec, dout: &TensorSpec, _l: &TensorSpec, _p: &TensorSpec, heads: &usize, pair: &bool) -> TensorSpec {
    TensorSpec::new(Shape::new([rows(&dout.shape, *heads, *pair), 4]), DType::F32)
}

#[allow(clippy::too_many_arguments)]
fn dkv_meta(q: &TensorSpec, _k: &TensorSpec, _v: &TensorSpec, _l: &TensorSpec, _o: &TensorSpec, _st: &TensorSpec, _h: &usize, _s: &f32, _c: &bool, _pair: &bool) -> TensorSpec {
    stacked(q)
}

/// Two `[B, N, W]` results stacked along the batch.
fn stacked(like: &TensorSpec) -> TensorSpec {
    let mut shape = like.shape.clone();
    shape[0] *= 2;
    TensorSpec::new(shape, like.dtype)
}

/// Rows of the per-row statistics: `B · G · N` with `G` groups (`h/2` pairs, or `h` heads).
fn rows(shape: &Shape, heads: usize, pair: bool) -> usize {
    shape[0] * if pair { heads / 2 } else { heads } * shape[1]
}

/// The kernel's ops; `q`, `k`, `v` are `[B, N, W]`, `params` is `[1 + 2hd]`: λ, then γ
/// (read only with `pair`: differential attention; without it standard attention).
#[backend_extension(Cube, Fusion, Autodiff)]
pub trait AttentionKernelOps: Backend {
    /// With `pair`: `y = RMSNorm(O)·γ·out_scale` with `O = (A1 − λ·A2)·V`, O and `A2·V` stacked
    /// along the batch (with `keep`, for the backward; else one unused value), and per row both
    /// log-sum-exps and O's reciprocal RMS; without: `y = A·V`, one unused value, and the rows'
    /// log-sum-exps.
    #[allow(clippy::too_many_arguments)]
    #[fusion(meta = forward_meta)]
    fn fused_attention(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, params: FloatTensor<Self>, heads: usize, scale: f32, causal: bool, pair: bool, keep: bool, eps: f32, out_scale: f32) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// The RMSNorm's backward: dO and the rows' dγ terms, stacked along the batch; `o` is the
    /// forward's stacked `[O; A2·V]`.
    #[fusion(meta = norm_backward_meta)]
    fn fused_attention_norm_backward(dy: FloatTensor<Self>, o: FloatTensor<Self>, lse: FloatTensor<Self>, params: FloatTensor<Self>, heads: usize, out_scale: f32) -> FloatTensor<Self>;

    /// The backward's per-row statistics from the forward's `o` (standard attention's output,
    /// or differential attention's stacked `[O; A2·V]`) and `dout`.
    #[fusion(meta = stats_meta)]
    fn fused_attention_stats(o: FloatTensor<Self>, dout: FloatTensor<Self>, lse: FloatTensor<Self>, params: FloatTensor<Self>, heads: usize, pair: bool) -> FloatTensor<Self>;

    /// dQ.
    #[allow(clippy::too_many_arguments)]
    #[fusion(dtype = q, shape = q)]
    fn fused_attention_dq(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, params: FloatTensor<Self>, dout: FloatTensor<Self>, stats: FloatTensor<Self>, heads: usize, scale: f32, causal: bool, pair: bool) -> FloatTensor<Self>;

    /// dK and dV stacked along the batch.
    #[allow(clippy::too_many_arguments)]
    #[fusion(meta = dkv_meta)]
    fn fused_attention_dkv(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, params: FloatTensor<Self>, dout: FloatTensor<Self>, stats: FloatTensor<Self>, heads: usize, scale: f32, causal: bool, pair: bool) -> FloatTensor<Self>;
}

impl AttentionKernelOps for CubeBackend {
    fn fused_attention(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, params: FloatTensor<Self>, heads: usize, scale: f32, causal: bool, pair: bool, keep: bool, eps: f32, out_scale: f32) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        kernels::forward(q, k, v, params, heads, scale, causal, pair, keep, eps, out_scale)
    }

    fn fused_attention_norm_backward(dy: FloatTensor<Self>, o: FloatTensor<Self>, lse: FloatTensor<Self>, params: FloatTensor<Self>, heads: usize, out_scale: f32) -> FloatTensor<Self> {
        kernels::norm_backward(dy, o, lse, params, heads, out_scale)
    }

    fn fused_attention_stats(o: FloatTensor<Self>, dout: FloatTensor<Self>, lse: FloatTensor<Self>, params: FloatTensor<Self>, heads: usize, pair: bool) -> FloatTensor<Self> {
        backward::stats(o, dout, lse, params, heads, pair)
    }

    fn fused_attention_dq(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, params: FloatTensor<Self>, dout: FloatTensor<Self>, stats: FloatTensor<Self>, heads: usize, scale: f32, causal: bool, pair: bool) -> FloatTensor<Self> {
        backward::dq(q, k, v, params, dout, stats, heads, scale, causal, pair)
    }

    fn fused_attention_dkv(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, params: FloatTensor<Self>, dout: FloatTensor<Self>, stats: FloatTensor<Self>, heads: usize, scale: f32, causal: bool, pair: bool) -> FloatTensor<Self> {
        backward::dkv(q, k, v, params, dout, stats, heads, scale, causal, pair)
    }
}

/// What the backward keeps: the inputs, the output before the norm stacked with `A2·V`
/// (standard attention: the output itself), the per-row values and the call's settings.
struct Saved<B: Backend> {
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    params: FloatTensor<B>,
    o: FloatTensor<B>,
    lse: FloatTensor<B>,
    heads: usize,
    scale: f32,
    causal: bool,
    pair: bool,
    out_scale: f32,
}

impl<B: Backend> Clone for Saved<B> {
    fn clone(&self) -> Self {
        let (q, k, v, params, o, lse) = (self.q.clone(), self.k.clone(), self.v.clone(), self.params.clone(), self.o.clone(), self.lse.clone());
        Self { q, k, v, params, o, lse, ..*self }
    }
}

impl<B: Backend> std::fmt::Debug for Saved<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Saved {{ heads: {}, causal: {}, pair: {} }}", self.heads, self.causal, self.pair)
    }
}

#[derive(Debug)]
struct AttentionKernelBackward;

impl<B: Backend + AttentionKernelOps> Backward<B, 4> for AttentionKernelBackward {
    type State = Saved<B>;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<B>(&ops.node);
        let Saved { q, k, v, params, o, lse, heads, scale, causal, pair, out_scale } = ops.state;
        let [node_q, node_k, node_v, node_p] = ops.parents;
        let shape = burn::backend::TensorMetadata::shape(&q);
        let (b, n, w) = (shape[0], shape[1], shape[2]);
        let batch = |t: &FloatTensor<B>, at: usize| B::float_slice(t.clone(), &[Slice::from(at..at + b), Slice::from(..), Slice::from(..)]);
        // Standard attention has no norm: its output is the attention's.
        let (dout, dnorm) = if pair {
            let dnorm = B::fused_attention_norm_backward(dy, o.clone(), lse.clone(), params.clone(), heads, out_scale);
            (batch(&dnorm, 0), Some(dnorm))
        } else {
            (dy, None)
        };
        let stats = B::fused_attention_stats(o, dout.clone(), lse, params.clone(), heads, pair);
        if let (Some(node), Some(dnorm)) = (node_p, dnorm) {
            // dλ = −Σ_rows Σ_j A2·dP, the statistics' last column.
            let rows = B::float_slice(stats.clone(), &[Slice::from(..), Slice::from(3..4)]);
            let dlambda = B::float_reshape(B::float_neg(B::float_sum(rows)), Shape::new([1]));
            // The statistics are f32; λ's gradient takes the parameters' type.
            let dtype = burn::backend::TensorMetadata::dtype(&params);
            let dlambda = if dtype == DType::F32 { dlambda } else { B::float_cast(dlambda, dtype.into()) };
            // dγ: the rows' terms summed per batch first, then over the batch (no single
            // reduction over every row: lavapipe's long sums are wrong, docs/performance.md).
            let vd = 2 * w / heads;
            let terms = B::float_reshape(batch(&dnorm, b), Shape::new([b, n * w / vd, vd]));
            let per_batch = B::float_reshape(B::float_sum_dim(terms, 1), Shape::new([b, vd]));
            let dgamma = B::float_reshape(B::float_sum_dim(per_batch, 0), Shape::new([vd]));
            grads.register::<B>(node.id, B::float_cat(vec![dlambda, dgamma], 0));
        }
        if let Some(node) = node_q {
            let dq = B::fused_attention_dq(q.clone(), k.clone(), v.clone(), params.clone(), dout.clone(), stats.clone(), heads, scale, causal, pair);
            grads.register::<B>(node.id, dq);
        }
        if node_k.is_some() || node_v.is_some() {
            let dkv = B::fused_attention_dkv(q, k, v, params, dout, stats, heads, scale, causal, pair);
            if let Some(node) = node_k {
                grads.register::<B>(node.id, batch(&dkv, 0));
            }
            if let Some(node) = node_v {
                grads.register::<B>(node.id, batch(&dkv, b));
            }
        }
    }
}

/// The backward's own ops are not differentiated again: they run on the inner tensors.
impl<B: Backend + AttentionKernelOps, C: CheckpointStrategy> AttentionKernelOps for Autodiff<B, C> {
    fn fused_attention(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, params: FloatTensor<Self>, heads: usize, scale: f32, causal: bool, pair: bool, keep: bool, eps: f32, out_scale: f32) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let parents = [q.node(), k.node(), v.node(), params.node()];
        let (q, k, v, params) = (q.into_primitive(), k.into_primitive(), v.into_primitive(), params.into_primitive());
        // The pre-norm output is written only when a backward will read it.
        let (y, o, lse) = match AttentionKernelBackward.prepare::<C>(parents).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (y, o, lse) = B::fused_attention(q.clone(), k.clone(), v.clone(), params.clone(), heads, scale, causal, pair, true, eps, out_scale);
                let kept = if pair { o.clone() } else { y.clone() };
                (prep.finish(Saved { q, k, v, params, o: kept, lse: lse.clone(), heads, scale, causal, pair, out_scale }, y), o, lse)
            }
            OpsKind::UnTracked(prep) => {
                let (y, o, lse) = B::fused_attention(q, k, v, params, heads, scale, causal, pair, keep, eps, out_scale);
                (prep.finish(y), o, lse)
            }
        };
        (y, <Self as AutodiffBackend>::from_inner(o), <Self as AutodiffBackend>::from_inner(lse))
    }

    fn fused_attention_norm_backward(dy: FloatTensor<Self>, o: FloatTensor<Self>, lse: FloatTensor<Self>, params: FloatTensor<Self>, heads: usize, out_scale: f32) -> FloatTensor<Self> {
        let dnorm = B::fused_attention_norm_backward(dy.into_primitive(), o.into_primitive(), lse.into_primitive(), params.into_primitive(), heads, out_scale);
        <Self as AutodiffBackend>::from_inner(dnorm)
    }

    fn fused_attention_stats(o: FloatTensor<Self>, dout: FloatTensor<Self>, lse: FloatTensor<Self>, params: FloatTensor<Self>, heads: usize, pair: bool) -> FloatTensor<Self> {
        let stats = B::fused_attention_stats(o.into_primitive(), dout.into_primitive(), lse.into_primitive(), params.into_primitive(), heads, pair);
        <Self as AutodiffBackend>::from_inner(stats)
    }

    fn fused_attention_dq(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, params: FloatTensor<Self>, dout: FloatTensor<Self>, stats: FloatTensor<Self>, heads: usize, scale: f32, causal: bool, pair: bool) -> FloatTensor<Self> {
        let (q, k, v, params, dout, stats) = (q.into_primitive(), k.into_primitive(), v.into_primitive(), params.into_primitive(), dout.into_primitive(), stats.into_primitive());
        <Self as AutodiffBackend>::from_inner(B::fused_attention_dq(q, k, v, params, dout, stats, heads, scale, causal, pair))
    }

    fn fused_attention_dkv(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>, params: FloatTensor<Self>, dout: FloatTensor<Self>, stats: FloatTensor<Self>, heads: usize, scale: f32, causal: bool, pair: bool) -> FloatTensor<Self> {
        let (q, k, v, params, dout, stats) = (q.into_primitive(), k.into_primitive(), v.into_primitive(), params.into_primitive(), dout.into_primitive(), stats.into_primitive());
        <Self as AutodiffBackend>::from_inner(B::fused_attention_dkv(q, k, v, params, dout, stats, heads, scale, causal, pair))
    }
}

/// Whether plain (non-autodiff) tensors on CubeCL devices use the kernel too
/// ([`crate::set_gpu_inference_kernel`]).
static INFERENCE: AtomicBool = AtomicBool::new(false);

pub(crate) fn set_inference(enabled: bool) {
    INFERENCE.store(enabled, Ordering::Relaxed);
}

pub(crate) fn inference() -> bool {
    INFERENCE.load(Ordering::Relaxed)
}

/// Whether `t` is a float tensor the kernels compile for (f32, f16, bf16) on a CubeCL device,
/// and the device's autodiff flag. (f16 under autodiff on wgpu can fail inside Burn's fusion,
/// "Should have handle for tensor", while other threads use the device: with Burn's own ops as
/// with this kernel, docs/performance.md.)
fn on_cube(t: &Tensor<3>) -> Option<bool> {
    let device = t.device();
    let autodiff = device.is_autodiff();
    let cube = matches!(t.dtype(), DType::F32 | DType::F16 | DType::BF16) && matches!(device.inner().as_dispatch(), DispatchDevice::Cube(_));
    cube.then_some(autodiff)
}

/// The differential part of a kernel call: λ then γ (`[1 + 2hd]`), the norm's eps and the
/// output scale `1 − λ_init`.
pub(crate) struct DiffArgs<'a> {
    pub(crate) params: &'a Tensor<1>,
    pub(crate) eps: f32,
    pub(crate) out_scale: f32,
}

/// Attention of `[B, N, W]` projections on a CubeCL device: with `diff`,
/// `RMSNorm((A1 − λ·A2)·V)·γ·out_scale` per head pair; without, standard `A·V` per head.
/// Under autodiff (differentiable), or on a plain device when [`crate::set_gpu_inference_kernel`]
/// is on. `None` otherwise.
pub(crate) fn attention(q: &Tensor<3>, k: &Tensor<3>, v: &Tensor<3>, diff: Option<DiffArgs<'_>>, heads: usize, scale: f32, causal: bool) -> Option<Tensor<3>> {
    let autodiff = on_cube(q)?;
    let fits = crate::heads_fit(q.dims()[2], heads, diff.is_some());
    if !(autodiff || inference()) || q.dims() != k.dims() || k.dims() != v.dims() || !fits || diff.as_ref().is_some_and(|d| d.params.dtype() != q.dtype()) {
        return None;
    }
    CALLS.set(CALLS.get() + 1);
    let pair = diff.is_some();
    // Standard attention reads no parameters; the op still takes a buffer, of q's float type
    // as the kernel declares it.
    let (params, eps, out_scale) = match diff {
        Some(d) => (d.params.clone(), d.eps, d.out_scale),
        None => (Tensor::<1>::zeros([1], &q.device()).cast(q.dtype()), 0.0, 1.0),
    };
    let (q, k, v, p) = (q.clone().into_dispatch(), k.clone().into_dispatch(), v.clone().into_dispatch(), params.into_dispatch());
    let (y, _o, _lse) = <Dispatch as AttentionKernelOps>::fused_attention(q, k, v, p, heads, scale, causal, pair, false, eps, out_scale);
    Some(Tensor::from_dispatch(y))
}
