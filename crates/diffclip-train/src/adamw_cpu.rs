//! AdamW in one pass per parameter on Burn's flex backend (feature `flex`). Written with Burn's
//! ops, an update makes about a dozen whole-tensor passes, each allocating; on CPU that was most
//! of a small model's training step outside the GEMMs (docs/performance.md). Same f32 operations
//! in the same order as the generic path, so the results are identical; vectorised for the
//! CPU it runs on (`multiversion!`). Also the gradient norm's sums of squares in one pass.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

/// The scalars of one update, as f32 exactly as Burn's scalar ops receive them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Coeffs {
    pub b1: f64,
    pub b2: f64,
    pub eps: f64,
    /// Bias corrections `1 - β^t`.
    pub bc1: f64,
    pub bc2: f64,
    /// Learning rate, and the weight decay applied to this parameter (0 for vectors).
    pub lr: f64,
    pub decay: f64,
    /// Multiplies every gradient (clipping), as `GradBuffer::scale` would.
    pub grad_scale: f64,
}

/// [`Coeffs`] as the f32 values the generic path's scalar ops use.
struct Scalars {
    /// The gradient's factor, as the f32 a scalar multiply receives.
    scale: f32,
    b1: f32,
    omb1: f32,
    b2: f32,
    omb2: f32,
    bc2: f32,
    eps: f32,
    /// `1 − lr·decay`, and `lr / (1 − β1^t)`.
    keep: f32,
    rate: f32,
}

/// The parameter update from the new moments, in the generic path's operation order.
#[inline(always)]
fn apply(p: &mut f32, m: &mut f32, v: &mut f32, m1: f32, v1: f32, k: &Scalars) {
    let denom = (v1 / k.bc2).sqrt() + k.eps;
    *p = *p * k.keep - m1 / denom * k.rate;
    *m = m1;
    *v = v1;
}

diffclip_attention::multiversion! {
    /// A later step: `m·β1 + g·(1−β1)`, `v·β2 + g²·(1−β2)`, then the update. Branch-free so it
    /// vectorises (the first step has its own loop).
    fn update(ps: &mut [f32], ms: &mut [f32], vs: &mut [f32], gs: &[f32], k: &Scalars) {
        for (((p, m), v), &g) in ps.iter_mut().zip(ms.iter_mut()).zip(vs.iter_mut()).zip(gs) {
            let g = g * k.scale;
            let (m1, v1) = (*m * k.b1 + g * k.omb1, *v * k.b2 + (g * g) * k.omb2);
            apply(p, m, v, m1, v1, k);
        }
    }
}

diffclip_attention::multiversion! {
    /// The first step (no moments yet): `g·(1−β1)` and `g²·(1−β2)`, then the update.
    fn update_first(ps: &mut [f32], ms: &mut [f32], vs: &mut [f32], gs: &[f32], k: &Scalars) {
        for (((p, m), v), &g) in ps.iter_mut().zip(ms.iter_mut()).zip(vs.iter_mut()).zip(gs) {
            let g = g * k.scale;
            apply(p, m, v, g * k.omb1, (g * g) * k.omb2, k);
        }
    }
}

/// Whether `t` is a plain (not autodiff) f32 flex tensor; no copy, no sync.
fn is_flex(t: &Tensor<1>) -> bool {
    t.dtype() == DType::F32 && t.clone().try_into_primitive::<Flex>().is_ok()
}

/// The flex primitive of a tensor [`is_flex`] accepted, contiguous from offset 0. When nothing
/// else holds its buffer, writing to it (`storage_mut`) needs no copy.
fn primitive(t: Tensor<1>) -> FlexTensor {
    let p = t.try_into_primitive::<Flex>().expect("checked by is_flex");
    if p.layout().is_contiguous() && p.layout().start_offset() == 0 { p } else { p.to_contiguous() }
}

fn tensor(p: FlexTensor) -> Tensor<1> {
    Tensor::from_primitive::<Flex>(p)
}

/// One step for `p` with gradient `g` and its moments (`None` on a parameter's first update),
/// updated in place: `Ok((p, m, v))`, or `Err` handing everything back untouched when a tensor
/// is not plain f32 flex (the caller then runs the generic path).
#[allow(clippy::type_complexity, clippy::result_large_err)] // `Err` hands the inputs back
pub(crate) fn step(p: Tensor<1>, g: &Tensor<1>, moments: Option<(Tensor<1>, Tensor<1>)>, c: Coeffs) -> Result<(Tensor<1>, Tensor<1>, Tensor<1>), (Tensor<1>, Option<(Tensor<1>, Tensor<1>)>)> {
    let n = p.dims()[0];
    let flex = is_flex(&p) && is_flex(g) && moments.as_ref().is_none_or(|(m, v)| is_flex(m) && is_flex(v));
    if !flex {
        return Err((p, moments));
    }
    let first = moments.is_none();
    let (m, v) = moments.unwrap_or_else(|| {
        let zeros = || Tensor::from_primitive::<Flex>(FlexTensor::from_data(TensorData::new(vec![0f32; n], [n])));
        (zeros(), zeros())
    });
    let (mut pf, gf, mut mf, mut vf) = (primitive(p), primitive(g.clone()), primitive(m), primitive(v));
    let k = Scalars {
        scale: c.grad_scale as f32,
        b1: c.b1 as f32,
        omb1: (1.0 - c.b1) as f32,
        b2: c.b2 as f32,
        omb2: (1.0 - c.b2) as f32,
        bc2: c.bc2 as f32,
        eps: c.eps as f32,
        keep: (1.0 - c.lr * c.decay) as f32,
        rate: (c.lr / c.bc1) as f32,
    };
    let gs = &gf.storage::<f32>()[..n];
    let (ps, ms, vs) = (&mut pf.storage_mut::<f32>()[..n], &mut mf.storage_mut::<f32>()[..n], &mut vf.storage_mut::<f32>()[..n]);
    const CHUNK: usize = 1 << 14;
    ps.par_chunks_mut(CHUNK).zip(ms.par_chunks_mut(CHUNK)).zip(vs.par_chunks_mut(CHUNK)).zip(gs.par_chunks(CHUNK)).for_each(|(((ps, ms), vs), gs)| {
        if first { update_first(ps, ms, vs, gs, &k) } else { update(ps, ms, vs, gs, &k) }
    });
    Ok((tensor(pf), tensor(mf), tensor(vf)))
}

diffclip_attention::multiversion! {
    /// `Σ x²` of a chunk, in f64 (lanes of 8 so it vectorises; the order is fixed).
    fn chunk_sum_of_squares(xs: &[f32]) -> f64 {
        let mut lanes = [0.0f64; 8];
        let mut chunks = xs.chunks_exact(8);
        for c in &mut chunks {
            for (l, &x) in lanes.iter_mut().zip(c) {
                *l += (x as f64) * (x as f64);
            }
        }
        let tail: f64 = chunks.remainder().iter().map(|&x| (x as f64) * (x as f64)).sum();
        lanes.iter().sum::<f64>() + tail
    }
}

/// `Σ g²` of a plain f32 flex tensor in one pass (fixed chunks in parallel, added in order:
/// the result does not depend on the thread count), or `None` for other tensors.
pub(crate) fn sum_of_squares(g: &Tensor<1>) -> Option<f64> {
    if !is_flex(g) {
        return None;
    }
    let n = g.dims()[0];
    let p = primitive(g.clone());
    const CHUNK: usize = 1 << 14;
    let partials: Vec<f64> = p.storage::<f32>()[..n].par_chunks(CHUNK).map(chunk_sum_of_squares).collect();
    Some(partials.iter().sum())
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, Tensor};

    use super::{Coeffs, step};

    /// The generic path of `optim.rs`, written with Burn's ops, after `GradBuffer::scale`.
    fn generic(p: &Tensor<1>, g: &Tensor<1>, mv: Option<(&Tensor<1>, &Tensor<1>)>, c: Coeffs) -> [Vec<f32>; 3] {
        let g = &(g.clone() * c.grad_scale);
        let (m, v) = match mv {
            Some((m, v)) => (m.clone() * c.b1 + g.clone() * (1.0 - c.b1), v.clone() * c.b2 + g.clone().square() * (1.0 - c.b2)),
            None => (g.clone() * (1.0 - c.b1), g.clone().square() * (1.0 - c.b2)),
        };
        let denom = (v.clone() / c.bc2).sqrt() + c.eps;
        let p = p.clone() * (1.0 - c.lr * c.decay) - m.clone() / denom * (c.lr / c.bc1);
        [p, m, v].map(|t| t.into_data().try_to_vec::<f32>().unwrap())
    }

    #[test]
    fn one_pass_equals_the_generic_ops_bit_for_bit() {
        let device = Device::flex();
        // Odd length: several parallel chunks and a short last one.
        let n = 3 * (1 << 14) + 77;
        let t = |s: f64| Tensor::<1>::random([n], Distribution::Normal(0.0, s), &device);
        let (p, g, m, v) = (t(1.0), t(0.01), t(0.001), t(1e-5).abs());
        let m_before = m.clone().into_data().try_to_vec::<f32>().unwrap();
        for (decay, moments, step_no, grad_scale) in [(0.5, true, 3, 1.0), (0.0, true, 10, 0.37), (0.5, false, 1, 1.0), (0.5, false, 1, 0.2)] {
            let (bc1, bc2) = (1.0 - 0.9f64.powi(step_no), 1.0 - 0.98f64.powi(step_no));
            let c = Coeffs { b1: 0.9, b2: 0.98, eps: 1e-6, bc1, bc2, lr: 5e-4, decay, grad_scale };
            let mv = moments.then_some((&m, &v));
            let want = generic(&p, &g, mv, c);
            let owned = moments.then(|| (m.clone(), v.clone()));
            let Ok((fp, fm, fv)) = step(p.clone(), &g, owned, c) else { panic!("plain f32 flex tensors take the one-pass path") };
            let fused = [fp, fm, fv].map(|t| t.into_data().try_to_vec::<f32>().unwrap());
            assert_eq!(fused, want, "decay {decay}, moments {moments}, gradient scale {grad_scale}");
            // In place, but never through a buffer someone else still holds.
            assert_eq!(m.clone().into_data().try_to_vec::<f32>().unwrap(), m_before, "the caller's moment was overwritten");
        }
    }

    #[test]
    fn sum_of_squares_is_the_f64_sum() {
        let device = Device::flex();
        let n = 3 * (1 << 14) + 77;
        let g = Tensor::<1>::random([n], Distribution::Normal(0.0, 1.0), &device);
        let values = g.clone().into_data().try_to_vec::<f32>().unwrap();
        let want: f64 = values.iter().map(|&x| (x as f64) * (x as f64)).sum();
        let got = super::sum_of_squares(&g).expect("a plain f32 flex tensor");
        assert!((got - want).abs() <= 1e-12 * want, "{got} vs {want}");
    }

    #[test]
    fn other_backends_take_the_generic_path() {
        let (_, device) = diffclip_testkit::other_device();
        let t = Tensor::<1>::ones([4], &device);
        let c = Coeffs { b1: 0.9, b2: 0.98, eps: 1e-6, bc1: 0.1, bc2: 0.02, lr: 1e-3, decay: 0.0, grad_scale: 1.0 };
        assert!(step(t.clone(), &t, None, c).is_err());
    }
}
