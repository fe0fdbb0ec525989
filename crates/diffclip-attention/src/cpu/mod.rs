//! Hand-written CPU kernels used when a tensor lives on Burn's `flex` backend (feature `flex`).
//!
//! Burn 0.22's flex backend runs GELU/erf and sigmoid as scalar single-threaded loops and its
//! attention needs head-major contiguous q/k/v (and materialises the maps under autodiff);
//! these kernels are vectorised, multi-threaded, read `[B, N, D]` projections in place and
//! have their own backward (`autodiff.rs`). They run for f32 flex tensors, plain or tracked by
//! autodiff with the default checkpointing; anything else takes the generic Burn path, so
//! results never depend on the backend beyond rounding.

mod attention;
mod autodiff;
mod backward;
mod bf16;
mod embedding;
mod few_rows;
mod layer_norm;
mod linear;
mod packed_weights;
pub(crate) mod simd;

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

pub(crate) use attention::{Combine, Dims};
pub(crate) use autodiff::{DiffArgs, activation_tracked, attention_tracked};
use crate::Activation;
use autodiff::linear_tracked;
pub(crate) use embedding::embedding_tracked;
pub(crate) use layer_norm::layer_norm_tracked;
use linear::LinearDims;

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Forgets the weights packed for reduced-precision products.
pub(crate) fn clear_packed_weights() {
    packed_weights::clear();
}

/// What runs bf16 products here (see [`crate::bf16_matmul_engine`]).
pub(crate) fn bf16_engine() -> &'static str {
    bf16::Engine::best().name()
}

pub(crate) fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The flex primitive behind `t`, contiguous f32, or `None` (kernels off, another backend,
/// autodiff, dtype).
fn flex_of<const D: usize>(t: &Tensor<D>) -> Option<FlexTensor> {
    if !enabled() {
        return None;
    }
    let p = t.clone().try_into_primitive::<Flex>().ok()?;
    if p.dtype() != DType::F32 {
        return None;
    }
    Some(contiguous(p))
}

/// [`flex_of`] of an optional tensor: `Some(None)` without one, `None` when it is there but
/// not a plain f32 flex tensor.
fn flex_of_optional<const D: usize>(t: Option<&Tensor<D>>) -> Option<Option<FlexTensor>> {
    t.map_or(Some(None), |t| flex_of(t).map(Some))
}

/// `t` itself when it is contiguous from offset 0 (what the kernels index), else a copy that is.
fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.layout().is_contiguous() && t.layout().start_offset() == 0 { t } else { t.to_contiguous() }
}

/// Whether `t` is a plain (not autodiff) f32 flex tensor and the kernels are on; no copy, no sync.
pub(crate) fn is_plain_flex<const D: usize>(t: &Tensor<D>) -> bool {
    enabled() && t.dtype() == DType::F32 && t.clone().try_into_primitive::<Flex>().is_ok()
}

/// Whether `t` is an f32 tensor on an autodiff flex device (default checkpointing) and the
/// kernels are on.
pub(crate) fn is_autodiff_flex<const D: usize>(t: &Tensor<D>) -> bool {
    enabled() && t.dtype() == DType::F32 && autodiff::is_autodiff_flex(t)
}

/// A `len`-element buffer whose every element `fill` writes before it is read: outputs that
/// are overwritten anyway skip the zero-fill pass of `vec![0.0; len]`.
pub(super) fn written(len: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut out = Vec::with_capacity(len);
    fill(&mut out.spare_capacity_mut()[..len]);
    // SAFETY: `fill` initialised all `len` elements (each caller writes every one).
    unsafe { out.set_len(len) };
    out
}

/// `dst` initialised as a copy of `src` (same length), as an ordinary slice.
pub(super) fn copy_into<'a>(dst: &'a mut [MaybeUninit<f32>], src: &[f32]) -> &'a mut [f32] {
    assert_eq!(dst.len(), src.len());
    // SAFETY: same length, distinct buffers (`dst` is exclusively borrowed); after the copy
    // every element is initialised, so viewing it as `[f32]` is sound.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr().cast::<f32>(), src.len());
        &mut *(dst as *mut [MaybeUninit<f32>] as *mut [f32])
    }
}

fn from_vec<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> Tensor<D> {
    Tensor::from_primitive::<Flex>(FlexTensor::from_data(TensorData::new(values, shape)))
}

/// Apply an in-place slice kernel to `x`, reusing its buffer when nothing else holds it.
/// `Ok` is the result, `Err(x)` hands `x` back untouched (not a plain flex tensor).
#[allow(clippy::result_large_err)] // `Err` hands the input back; it is not an error
fn map_in_place<const D: usize>(x: Tensor<D>, f: fn(&mut [f32])) -> Result<Tensor<D>, Tensor<D>> {
    let Some(p) = flex_of(&x) else { return Err(x) };
    let shape = x.dims();
    drop(x); // so `p` may be the buffer's only owner
    let n: usize = shape.iter().product();
    let mut p = p;
    let values: &mut [f32] = &mut p.storage_mut::<f32>()[..n];
    // Chunks big enough to amortise scheduling, small enough to split across cores.
    values.par_chunks_mut(1 << 14).for_each(f);
    Ok(Tensor::from_primitive::<Flex>(p))
}

/// Exact GELU on flex (plain or autodiff), or `Err(x)` untouched.
#[allow(clippy::result_large_err)]
pub(crate) fn gelu<const D: usize>(x: Tensor<D>) -> Result<Tensor<D>, Tensor<D>> {
    match map_in_place(x, simd::gelu_in_place) {
        Ok(y) => Ok(y),
        Err(x) => activation_tracked(&x, Activation::Gelu).ok_or(x),
    }
}

/// QuickGELU on flex (plain or autodiff), or `Err(x)` untouched.
#[allow(clippy::result_large_err)]
pub(crate) fn quick_gelu<const D: usize>(x: Tensor<D>) -> Result<Tensor<D>, Tensor<D>> {
    match map_in_place(x, simd::quick_gelu_in_place) {
        Ok(y) => Ok(y),
        Err(x) => activation_tracked(&x, Activation::QuickGelu).ok_or(x),
    }
}

/// `x·W + b` on flex (plain or autodiff; `x`: `[.., k]`, W: `[k, n]`), or `None` (then the
/// caller runs Burn's `Linear::forward`).
pub(crate) fn linear<const D: usize>(x: &Tensor<D>, w: &Tensor<2>, b: Option<&Tensor<1>>) -> Option<Tensor<D>> {
    let (shape, [k, n]) = (x.dims(), w.dims());
    // Empty or mismatched sizes: Burn's path reports (or handles) them.
    if D == 0 || shape[D - 1] != k || k == 0 || n == 0 || b.is_some_and(|b| b.dims() != [n]) {
        return None;
    }
    let rows: usize = shape[..D - 1].iter().product();
    if rows == 0 {
        return None;
    }
    let dims = LinearDims { rows, k, n };
    if let (Some(xf), Some(wf)) = (flex_of(x), flex_of(w)) {
        let bf = flex_of_optional(b)?;
        let (x, b) = (&xf.storage::<f32>()[..rows * k], bf.as_ref().map(|b| &b.storage::<f32>()[..n]));
        let out = match bf16::Engine::for_products(crate::matmul_precision()) {
            None => linear::forward(x, &wf.storage::<f32>()[..k * n], b, dims),
            // Inference: the weight is packed once and reused while it lives.
            Some(engine) => linear::forward_packed(x, &packed_weights::packed(&wf, k, n, engine), b, dims),
        };
        let mut out_shape = shape;
        out_shape[D - 1] = n;
        return Some(from_vec(out, out_shape));
    }
    linear_tracked(x, w, b, dims)
}

/// `x·W + b` for several layers `(W, b)` of one plain f32 flex input when bf16 products run on
/// packed pairs (AMX or AVX512-BF16): `x` is rounded and packed once. `None` otherwise (then
/// each runs as [`linear`], the same bits).
pub(crate) fn linears<const D: usize>(x: &Tensor<D>, layers: &[(Tensor<2>, Option<Tensor<1>>)]) -> Option<Vec<Tensor<D>>> {
    let engine = bf16::Engine::for_products(crate::matmul_precision()).filter(|e| e.packs_pairs())?;
    let shape = x.dims();
    let (rows, k): (usize, usize) = (shape[..D.checked_sub(1)?].iter().product(), shape[D - 1]);
    if rows == 0 || k == 0 {
        return None;
    }
    let xf = flex_of(x)?;
    let mut flex = Vec::with_capacity(layers.len());
    for (w, b) in layers {
        let [wk, n] = w.dims();
        if wk != k || n == 0 || b.as_ref().is_some_and(|b| b.dims() != [n]) {
            return None;
        }
        flex.push((flex_of(w)?, flex_of_optional(b.as_ref())?, n));
    }
    let packed: Vec<_> = flex.iter().map(|(w, _, n)| packed_weights::packed(w, k, *n, engine)).collect();
    let operands: Vec<_> = packed.iter().zip(&flex).map(|(p, (_, b, n))| (&**p, b.as_ref().map(|b| &b.storage::<f32>()[..*n]))).collect();
    let outs = bf16::products_of_one_input(&xf.storage::<f32>()[..rows * k], rows, &operands)?;
    Some(outs.into_iter().zip(&flex).map(|(out, (_, _, n))| {
        let mut out_shape = shape;
        out_shape[D - 1] = *n;
        from_vec(out, out_shape)
    }).collect())
}

/// `fc2(act(fc1(x)))` in one pass when bf16 products run on packed pairs (AMX or AVX512-BF16)
/// and every operand is a plain
/// f32 flex tensor (`x`: `[.., k]`, `w1`: `[k, hidden]`, `w2`: `[hidden, n]`), else `None` (then
/// the caller runs the three steps, which give the same bits).
pub(crate) fn mlp<const D: usize>(
    x: &Tensor<D>,
    w1: &Tensor<2>,
    b1: Option<&Tensor<1>>,
    activation: Activation,
    w2: &Tensor<2>,
    b2: Option<&Tensor<1>>,
) -> Option<Tensor<D>> {
    let engine = bf16::Engine::for_products(crate::matmul_precision()).filter(|e| e.packs_pairs())?;
    let (shape, [k, hidden], [hidden2, n]) = (x.dims(), w1.dims(), w2.dims());
    let rows: usize = shape[..D.checked_sub(1)?].iter().product();
    let biases_fit = b1.is_none_or(|b| b.dims() == [hidden]) && b2.is_none_or(|b| b.dims() == [n]);
    if shape[D - 1] != k || hidden2 != hidden || rows == 0 || k == 0 || hidden == 0 || n == 0 || !biases_fit {
        return None;
    }
    let (xf, w1f, w2f) = (flex_of(x)?, flex_of(w1)?, flex_of(w2)?);
    let (b1f, b2f) = (flex_of_optional(b1)?, flex_of_optional(b2)?);
    let (b1v, b2v) = (b1f.as_ref().map(|t| &t.storage::<f32>()[..hidden]), b2f.as_ref().map(|t| &t.storage::<f32>()[..n]));
    let (p1, p2) = (packed_weights::packed(&w1f, k, hidden, engine), packed_weights::packed(&w2f, hidden, n, engine));
    let out = bf16::mlp(&xf.storage::<f32>()[..rows * k], rows, &p1, b1v, simd::in_place(activation), &p2, b2v)?;
    let mut out_shape = shape;
    out_shape[D - 1] = n;
    Some(from_vec(out, out_shape))
}

/// Attention of `[B, N, D]` projections on flex before the output projection, or `None`.
/// `gamma` is the differential RMSNorm gain (for [`Combine::Diff`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention(
    q: &Tensor<3>,
    k: &Tensor<3>,
    v: &Tensor<3>,
    heads: usize,
    scale: f32,
    causal: bool,
    combine: Combine,
    gamma: Option<&Tensor<1>>,
) -> Option<Tensor<3>> {
    let [batch, n, width] = q.dims();
    let pairs = matches!(combine, Combine::Diff { .. });
    if k.dims() != q.dims() || v.dims() != q.dims() || !crate::heads_fit(width, heads, pairs) {
        return None;
    }
    let (q, k, v) = (flex_of(q)?, flex_of(k)?, flex_of(v)?);
    let gamma = flex_of_optional(gamma)?;
    let g: &[f32] = gamma.as_ref().map(|g| g.storage::<f32>()).unwrap_or(&[]);
    let len = batch * n * width;
    let (q, k, v) = (&q.storage::<f32>()[..len], &k.storage::<f32>()[..len], &v.storage::<f32>()[..len]);
    let dims = Dims { batch, n, width, heads };
    let inputs = attention::Inputs { q, k, v, dims, scale, causal, combine: &combine, gamma: g };
    let out = match bf16::Engine::for_products(crate::matmul_precision()) {
        Some(engine) => bf16::attention(engine, inputs),
        None => attention::attention(inputs, false, None).0,
    };
    Some(from_vec(out, [batch, n, width]))
}

#[cfg(test)]
mod tests {
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::{Device, Distribution};

    use super::*;
    use crate::{MatmulPrecision, with_matmul_precision};

    /// The one-pass MLP and the shared input of several layers run exactly where bf16 products
    /// run on packed pairs (AMX or AVX512-BF16), on plain flex tensors; their bits against the
    /// separate steps are `tests/one_pass.rs`'s.
    #[test]
    fn one_pass_where_bf16_products_run_on_packed_pairs() {
        let device = Device::flex();
        let (fc1, fc2) = (LinearConfig::new(64, 96).init(&device), LinearConfig::new(96, 32).init(&device));
        let x = Tensor::<3>::random([2, 5, 64], Distribution::Default, &device);
        let b = |l: &Linear| l.bias.as_ref().map(|b| b.val());
        let one_pass = |x: &Tensor<3>| {
            let mlp = mlp(x, &fc1.weight.val(), b(&fc1).as_ref(), Activation::Gelu, &fc2.weight.val(), b(&fc2).as_ref()).is_some();
            let shared = linears(x, &[(fc1.weight.val(), b(&fc1)), (fc1.weight.val(), None)]).is_some();
            assert_eq!(mlp, shared);
            mlp
        };
        let pairs = matches!(crate::bf16_matmul_engine(), "amx" | "avx512-bf16");
        println!("bf16 engine: {}", crate::bf16_matmul_engine());
        assert_eq!(with_matmul_precision(MatmulPrecision::Bf16, || one_pass(&x)), pairs);
        assert!(!with_matmul_precision(MatmulPrecision::F32, || one_pass(&x)));
        assert!(!with_matmul_precision(MatmulPrecision::F16, || one_pass(&x)));
        let tracked = Tensor::<3>::from_data(x.into_data(), &device.autodiff());
        assert!(!with_matmul_precision(MatmulPrecision::Bf16, || one_pass(&tracked)), "autodiff takes the separate steps");
    }
}
