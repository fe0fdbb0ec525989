//! The CubeCL kernels against attention written out in plain Rust on the host: forward values,
//! and q/k/v gradients against central differences. No Burn op runs on the device besides the
//! kernels, element-wise products and copies, so this also checks a build whose other kernels
//! cannot run: with `burn/vulkan` (SPIR-V) lavapipe crashes on Burn's matmuls and sums, and
//! since the kernels took shared tiles on ours too (`cargo test --release -p diffclip -p
//! diffclip-attention --features diffclip/vulkan --lib host_check`; docs/performance.md).
//! `benches/gpu-prepare.sh` packs this test for the GPU machine, where `gpu.sh` runs it before
//! any timing.

use burn::tensor::{Distribution, Tensor};

use super::{DiffArgs, attention, set_inference};

const B: usize = 2;
const N: usize = 17;
const HEADS: usize = 4;
const HD: usize = 8;
const W: usize = HEADS * HD;
const LAMBDA: f32 = 0.3;
const EPS: f32 = 1e-5;
const OUT_SCALE: f32 = 0.2;

fn scale() -> f32 {
    1.0 / (HD as f32).sqrt()
}

/// Softmax of head `h`'s scores for query `i` of batch `b`.
fn map(q: &[f32], k: &[f32], b: usize, h: usize, i: usize) -> Vec<f32> {
    let at = |t: &[f32], pos: usize, c: usize| t[(b * N + pos) * W + h * HD + c];
    let s: Vec<f32> = (0..N).map(|j| (0..HD).map(|c| at(q, i, c) * at(k, j, c)).sum::<f32>() * scale()).collect();
    let m = s.iter().copied().fold(f32::MIN, f32::max);
    let e: Vec<f32> = s.iter().map(|x| (x - m).exp()).collect();
    let z: f32 = e.iter().sum();
    e.iter().map(|x| x / z).collect()
}

/// `[B, N, W]` output: per head `A·V`, or with `diff` per head pair `RMSNorm((A1 − λA2)·V)·γ·s`
/// with γ = 1 (the params buffer below).
fn host(q: &[f32], k: &[f32], v: &[f32], diff: bool) -> Vec<f32> {
    let mut out = vec![0.0; B * N * W];
    let (groups, width) = if diff { (HEADS / 2, 2 * HD) } else { (HEADS, HD) };
    for b in 0..B {
        for g in 0..groups {
            for i in 0..N {
                let p: Vec<f32> = if diff {
                    let (a1, a2) = (map(q, k, b, 2 * g, i), map(q, k, b, 2 * g + 1, i));
                    a1.iter().zip(&a2).map(|(x, y)| x - LAMBDA * y).collect()
                } else {
                    map(q, k, b, g, i)
                };
                let o: Vec<f32> = (0..width).map(|c| (0..N).map(|j| p[j] * v[(b * N + j) * W + g * width + c]).sum()).collect();
                let r = if diff { OUT_SCALE / (o.iter().map(|x| x * x).sum::<f32>() / width as f32 + EPS).sqrt() } else { 1.0 };
                for c in 0..width {
                    out[(b * N + i) * W + g * width + c] = o[c] * r;
                }
            }
        }
    }
    out
}

fn values(t: Tensor<3>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().expect("f32 values")
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn kernels_match_attention_written_out_on_the_host() {
    let (_, device) = diffclip_testkit::other_device();
    let random = || Tensor::<3>::random([B, N, W], Distribution::Default, &device);
    let (q, k, v, r) = (random(), random(), random(), random());
    let (qh, kh, vh, rh) = (values(q.clone()), values(k.clone()), values(v.clone()), values(r.clone()));
    let gains: Vec<f32> = std::iter::once(LAMBDA).chain(std::iter::repeat_n(1.0, 2 * HD)).collect();
    let params = Tensor::<1>::from_floats(gains.as_slice(), &device);
    let ad = device.clone().autodiff();
    for diff in [false, true] {
        let args = |p| diff.then_some(DiffArgs { params: p, eps: EPS, out_scale: OUT_SCALE });
        // Forward on a plain device (the inference switch), values within 1e-4.
        set_inference(true);
        let y = attention(&q, &k, &v, args(&params), HEADS, scale(), false).expect("the kernel takes f32 on a CubeCL device");
        set_inference(false);
        let err = max_diff(&values(y), &host(&qh, &kh, &vh, diff));
        assert!(err < 1e-4, "diff={diff}: forward off by {err}");

        // Backward: d(Σ y·r)/d{q,k,v}, seeded with ones rather than summed on the device.
        let leaf = |t: &Tensor<3>| Tensor::<3>::from_data(t.to_data(), &ad).require_grad();
        let (qa, ka, va) = (leaf(&q), leaf(&k), leaf(&v));
        let pa = Tensor::<1>::from_data(params.to_data(), &ad);
        let y = attention(&qa, &ka, &va, args(&pa), HEADS, scale(), false).expect("the kernel under autodiff");
        let grads = (y * Tensor::<3>::from_data(r.to_data(), &ad)).backward();
        let loss = |q: &[f32], k: &[f32], v: &[f32]| -> f64 { host(q, k, v, diff).iter().zip(&rh).map(|(y, r)| *y as f64 * *r as f64).sum() };
        for (which, input) in [(0, &qa), (1, &ka), (2, &va)] {
            let grad = values(input.grad(&grads).expect("a gradient"));
            for idx in [0, 5, 77, 300, B * N * W - 1] {
                let step = 1e-2;
                let nudged = |by: f32| {
                    let mut xs = [qh.clone(), kh.clone(), vh.clone()];
                    xs[which][idx] += by;
                    loss(&xs[0], &xs[1], &xs[2])
                };
                let fd = (nudged(step) - nudged(-step)) / (2.0 * step as f64);
                assert!((fd - grad[idx] as f64).abs() < 1e-3, "diff={diff}: d/d{} [{idx}]: kernel {} vs {fd}", ["q", "k", "v"][which], grad[idx]);
            }
        }
    }
}
