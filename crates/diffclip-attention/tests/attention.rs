//! Differential and standard attention: fused and reference paths agree, masks, λ, errors.
//!
//! The tests run one at a time (`serial`): with them in parallel on one wgpu device, Burn
//! 0.22.1's fusion failed `fused_gradients_match_reference` (f32, autodiff) with "Should have
//! handle for tensor" (burn#4347) in 1 of 40 runs of this binary as of commit 99b3b59, and 3
//! of 47 runs with the inference test added (2026-12-04, 2-core AMD EPYC).

use burn::tensor::{Bool, Distribution, Tensor};
use diffclip_attention::{
    AttentionConfig, AttentionError, AttentionKind, AttentionPath, LambdaInit,
    causal_mask,
};
use diffclip_testkit::devices;

mod common;
use common::{GpuInferenceKernel, gradient_case_sized, max_diff, rel_diff, serial};

#[test]
fn diff_fused_matches_reference_with_and_without_causal_mask() {
    let _serial = serial();
    for (backend, device) in devices() {
        for causal in [false, true] {
            let attn = AttentionConfig { causal, ..AttentionConfig::new(64, 8) }.init_differential(&device).unwrap();
            let x = Tensor::<3>::random([3, 29, 64], Distribution::Normal(0.0, 1.0), &device);
            let fused = attn.forward_fused(x.clone(), None);
            let (reference, maps) = attn.forward_with_maps(x, None);
            let d = max_diff(fused, reference);
            assert!(d < 1e-5, "{backend} causal={causal}: fused vs reference {d:e}");
            assert_eq!(maps.first.dims(), [3, 4, 29, 29]);
            if causal {
                // Nothing above the diagonal in either map.
                let upper = maps.first.clone().mask_fill(causal_mask(29, &device).bool_not(), 0.0);
                assert_eq!(upper.abs().sum().into_scalar::<f32>(), 0.0, "{backend}: A1 attends to the future");
            }
        }
    }
}

#[test]
fn diff_fused_matches_reference_with_user_mask() {
    let _serial = serial();
    for (backend, device) in devices() {
        let attn = AttentionConfig { causal: true, ..AttentionConfig::new(32, 4) }.init_differential(&device).unwrap();
        let x = Tensor::<3>::random([2, 9, 32], Distribution::Normal(0.0, 1.0), &device);
        // Mask the last two keys of every query, except the first query that only sees itself.
        let mut m = vec![false; 9 * 9];
        for q in 1..9 {
            m[q * 9 + 7] = true;
            m[q * 9 + 8] = true;
        }
        let mask = Tensor::<1, Bool>::from_data(burn::tensor::TensorData::new(m, [81]), &device).reshape([1, 1, 9, 9]);
        let a = attn.forward_fused(x.clone(), Some(mask.clone()));
        let (b, _) = attn.forward_with_maps(x, Some(mask));
        let d = max_diff(a, b);
        assert!(d < 1e-5, "{backend}: {d:e}");
    }
}

#[test]
fn a_mask_per_differential_head_agrees_on_both_paths() {
    let _serial = serial();
    for (backend, device) in devices() {
        let attn = AttentionConfig::new(32, 4).init_differential(&device).unwrap();
        let x = Tensor::<3>::random([2, 6, 32], Distribution::Normal(0.0, 1.0), &device);
        // Differential head 0 may not see the last key, head 1 the first.
        let mut m = vec![false; 2 * 6 * 6];
        for q in 0..6 {
            m[q * 6 + 5] = true;
            m[36 + q * 6] = true;
        }
        let mask = Tensor::<1, Bool>::from_data(burn::tensor::TensorData::new(m, [72]), &device).reshape([1, 2, 6, 6]);
        let a = attn.forward_fused(x.clone(), Some(mask.clone()));
        let (b, maps) = attn.forward_with_maps(x, Some(mask));
        assert!(max_diff(a, b) < 1e-5, "{backend}");
        // Both maps of head 0 give the last key nothing.
        for map in [maps.first, maps.second.unwrap()] {
            let last = map.narrow(1, 0, 1).narrow(3, 5, 1).abs().max().into_scalar::<f32>();
            assert_eq!(last, 0.0, "{backend}");
        }
    }
}

#[test]
fn standard_fused_matches_reference() {
    let _serial = serial();
    for (backend, device) in devices() {
        for causal in [false, true] {
            let attn = AttentionConfig { causal, ..AttentionConfig::new(48, 6) }.init_standard(&device).unwrap();
            let x = Tensor::<3>::random([2, 17, 48], Distribution::Normal(0.0, 1.0), &device);
            let (reference, maps) = attn.forward_with_maps(x.clone(), None);
            let d = max_diff(attn.forward(x, None), reference);
            assert!(d < 1e-5, "{backend} causal={causal}: {d:e}");
            // Softmax rows sum to one.
            let rows = maps.first.sum_dim(3);
            let err = (rows - 1.0).abs().max().into_scalar::<f32>();
            assert!(err < 1e-5);
        }
    }
}

#[test]
fn long_sequences_fused_matches_reference() {
    let _serial = serial();
    for (backend, device) in devices() {
        for causal in [false, true] {
            let x = Tensor::<3>::random([2, 300, 32], Distribution::Normal(0.0, 1.0), &device);
            let diff = AttentionConfig { causal, ..AttentionConfig::new(32, 4) }.init_differential(&device).unwrap();
            let d = max_diff(diff.forward_fused(x.clone(), None), diff.forward_with_maps(x.clone(), None).0);
            assert!(d < 1e-5, "{backend} diff causal={causal}: {d:e}");
            let std = AttentionConfig { causal, ..AttentionConfig::new(32, 4) }.init_standard(&device).unwrap();
            let d = max_diff(std.forward(x.clone(), None), std.forward_with_maps(x, None).0);
            assert!(d < 1e-5, "{backend} standard causal={causal}: {d:e}");
        }
    }
}

/// Inference through the CubeCL kernel (`set_gpu_inference_kernel`) on wgpu: both kinds,
/// causal or not, short and long sequences. The switch is
/// process-wide; the tests of this binary run one at a time, so no other sees it on.
#[test]
fn gpu_inference_kernel_matches_reference() {
    let _serial = serial();
    let _kernel = GpuInferenceKernel::on();
    for (backend, device) in devices() {
        for (n, width, causal) in [(29, 32, false), (29, 32, true), (300, 32, false), (300, 32, true), (70, 256, false), (70, 256, true)] {
            let (x, _, diff) = gradient_case_sized(&device, n, width, 4, causal);
            let std = AttentionConfig { causal, ..AttentionConfig::new(width, 4) }.init_standard(&device).unwrap();
            let at = format!("{backend} n={n} width={width} causal={causal}");
            let calls = diffclip_attention::gpu_kernel_calls();
            let (d, s) = (diff.forward(x.clone(), None), std.forward(x.clone(), None));
            let ran = diffclip_attention::gpu_kernel_calls() - calls;
            assert_eq!(ran, if backend == "wgpu" { 2 } else { 0 }, "{at}: CubeCL kernel calls");
            assert!(rel_diff(d, diff.forward_with_maps(x.clone(), None).0) < 1e-5, "{at}: differential");
            assert!(rel_diff(s, std.forward_with_maps(x, None).0) < 1e-5, "{at}: standard");
        }
    }
}

/// Our GELU / QuickGELU (vectorised kernels on flex) against Burn's own ops.
#[test]
fn activations_match_burn() {
    let _serial = serial();
    for (backend, device) in devices() {
        let x = Tensor::<3>::random([3, 50, 70], Distribution::Normal(0.0, 3.0), &device);
        let want = burn::tensor::activation::gelu(x.clone());
        let d = max_diff(diffclip_attention::gelu(x.clone()), want);
        assert!(d < 2e-6, "{backend} gelu: {d:e}");
        let want = x.clone() * burn::tensor::activation::sigmoid(x.clone() * 1.702);
        let d = max_diff(diffclip_attention::quick_gelu(x), want);
        assert!(d < 2e-6, "{backend} quick_gelu: {d:e}");
    }
}

#[test]
fn reference_path_config_gives_same_output() {
    let _serial = serial();
    for (_, device) in devices() {
        let fused = AttentionConfig::new(32, 4).init_differential(&device).unwrap();
        // Same weights, reference path.
        let mut reference = fused.clone();
        reference.path = AttentionPath::Reference;
        let other = AttentionConfig { path: AttentionPath::Reference, ..AttentionConfig::new(32, 4) }.init_differential(&device).unwrap();
        assert!(other.path == AttentionPath::Reference && fused.path == AttentionPath::Fused);
        let x = Tensor::<3>::random([1, 5, 32], Distribution::Default, &device);
        assert!(max_diff(fused.forward(x.clone(), None), reference.forward(x, None)) < 1e-5);
    }
}

#[test]
fn lambda_full_formula_and_init() {
    let _serial = serial();
    for (_, device) in devices() {
        let attn = AttentionConfig { lambda_init: 0.3, ..AttentionConfig::new(32, 4) }.init_differential(&device).unwrap();
        let dot = |a: &burn::module::Param<Tensor<1>>, b: &burn::module::Param<Tensor<1>>| (a.val() * b.val()).sum().into_scalar::<f32>();
        let want = dot(&attn.lambda_q1, &attn.lambda_k1).exp() - dot(&attn.lambda_q2, &attn.lambda_k2).exp() + 0.3;
        let got = attn.lambda_full().into_scalar::<f32>();
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        assert_eq!(attn.lambda_q1.dims(), [8]);
        assert_eq!(attn.diff_norm.gamma.dims(), [16]);
    }
}

#[test]
fn lambda_schedules() {
    let _serial = serial();
    assert_eq!(LambdaInit::Constant(0.8).value(7), 0.8);
    for l in 0..12 {
        let want = 0.8 - 0.6 * (-0.3 * l as f64).exp();
        assert!((LambdaInit::DepthSchedule.value(l) - want).abs() < 1e-15);
    }
    assert!(LambdaInit::DepthSchedule.value(0) < LambdaInit::DepthSchedule.value(11));
}

#[test]
fn invalid_configs_are_errors_at_init() {
    let _serial = serial();
    for (_, device) in devices() {
        assert_eq!(AttentionConfig::new(60, 5).init_differential(&device).unwrap_err(), AttentionError::OddHeads { num_heads: 5 });
        assert_eq!(
            AttentionConfig::new(65, 4).init_differential(&device).unwrap_err(),
            AttentionError::WidthNotDivisible { d_model: 65, num_heads: 4 }
        );
        assert!(matches!(AttentionConfig::new(64, 0).init_standard(&device), Err(AttentionError::Empty { .. })));
        assert!(matches!(AttentionConfig { attn_dropout: 1.5, ..AttentionConfig::new(64, 4) }.init_differential(&device), Err(AttentionError::Dropout { .. })));
        // Standard attention allows odd head counts.
        let cfg = AttentionConfig { kind: AttentionKind::Standard, ..AttentionConfig::new(60, 5) };
        assert!(cfg.init(&device).is_ok());
    }
}

/// A layer whose public fields were edited out of shape (values wider than queries and keys)
/// never reaches the CPU kernel under autodiff, which would read v as q's shape: Burn's path
/// refuses the shapes instead of returning a wrong output.
#[test]
fn layers_edited_out_of_shape_never_reach_the_kernels() {
    let _serial = serial();
    let device = diffclip_testkit::devices().into_iter().find(|(name, _)| *name == "flex").expect("flex is built").1.autodiff();
    let mut diff = AttentionConfig::new(32, 4).init_differential(&device).unwrap();
    diff.v_proj = burn::nn::LinearConfig::new(32, 48).init(&device);
    let x = Tensor::<3>::random([1, 5, 32], Distribution::Default, &device);
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| diff.forward(x, None)));
    assert!(out.is_err(), "v of 48 columns read as 32");
}

#[test]
fn attention_kind_dispatch() {
    let _serial = serial();
    for (_, device) in devices() {
        let d = AttentionConfig::new(32, 4).init(&device).unwrap();
        let s = AttentionConfig { kind: AttentionKind::Standard, ..AttentionConfig::new(32, 4) }.init(&device).unwrap();
        assert_eq!(d.kind(), AttentionKind::Differential);
        assert!(d.lambda_full().is_some() && s.lambda_full().is_none());
        let x = Tensor::<3>::random([2, 3, 32], Distribution::Default, &device);
        assert_eq!(d.forward(x.clone(), None).dims(), [2, 3, 32]);
        assert_eq!(s.forward(x, None).dims(), [2, 3, 32]);
    }
}

#[test]
fn gradients_reach_lambda_and_projections() {
    let _serial = serial();
    for (backend, device) in devices() {
        let ad = device.autodiff();
        let attn = AttentionConfig { causal: true, ..AttentionConfig::new(32, 4) }.init_differential(&ad).unwrap();
        let x = Tensor::<3>::random([2, 6, 32], Distribution::Default, &ad);
        let grads = attn.forward(x, None).square().sum().backward();
        let g = attn.lambda_q1.grad(&grads).unwrap_or_else(|| panic!("{backend}: no gradient for lambda_q1"));
        assert!(g.abs().sum().into_scalar::<f32>() > 0.0);
        assert!(attn.q_proj.weight.grad(&grads).is_some());
    }
}

/// Training gradients of the fused path (flex: the CPU kernel's own backward; wgpu: the CubeCL
/// kernel's) equal those of the reference path (Burn's ops on materialised maps), for every
/// parameter kind, differential and standard attention.
#[test]
fn fused_gradients_match_reference() {
    let _serial = serial();
    for (backend, device) in devices() {
        let ad = device.autodiff();
        // Head dimension 8 (tiles of 16 keys or queries) and 64, ViT-B's (tiles of 15 or 16):
        // tiles and cubes of 32 rows end mid-sequence, causal rows mid-tile.
        for (n, width, causal) in [(29, 32, false), (29, 32, true), (300, 32, false), (300, 32, true), (70, 256, true)] {
            let (x, probe, diff) = gradient_case_sized(&ad, n, width, 4, causal);
            let grads = |fused: bool| {
                let x = x.clone().require_grad();
                let y = if fused { diff.forward_fused(x.clone(), None) } else { diff.forward_with_maps(x.clone(), None).0 };
                let g = (y.clone() * probe.clone()).sum().backward();
                (
                    x.grad(&g).unwrap(),
                    diff.q_proj.weight.grad(&g).unwrap(),
                    diff.k_proj.weight.grad(&g).unwrap(),
                    diff.v_proj.weight.grad(&g).unwrap(),
                    diff.lambda_q2.grad(&g).unwrap(),
                    diff.diff_norm.gamma.grad(&g).unwrap(),
                    y,
                )
            };
            let calls = diffclip_attention::gpu_kernel_calls();
            let (f, r) = (grads(true), grads(false));
            let at = format!("{backend} diff n={n} width={width} causal={causal}");
            // On wgpu the fused path is the CubeCL kernel with its own backward.
            let ran = diffclip_attention::gpu_kernel_calls() > calls;
            assert_eq!(ran, backend == "wgpu", "{at}: CubeCL kernel ran: {ran}");
            assert!(rel_diff(f.6, r.6) < 1e-4, "{at}: values");
            assert!(rel_diff(f.0, r.0) < 1e-4, "{at}: dx");
            assert!(rel_diff(f.1, r.1) < 1e-4, "{at}: dWq");
            assert!(rel_diff(f.2, r.2) < 1e-4, "{at}: dWk");
            assert!(rel_diff(f.3, r.3) < 1e-4, "{at}: dWv");
            // λ's gradient is one sum over B·h/2·N² products with cancellation: absolute below 1.
            let scale = r.4.clone().abs().max().into_scalar::<f32>().max(1.0);
            let d = (f.4 - r.4).abs().max().into_scalar::<f32>() / scale;
            assert!(d < 1e-4, "{at}: dλq2 {d:e}");
            assert!(rel_diff(f.5, r.5) < 1e-4, "{at}: dγ");

            let std = AttentionConfig { causal, ..AttentionConfig::new(width, 4) }.init_standard(&ad).unwrap();
            let grads = |fused: bool| {
                let x = x.clone().require_grad();
                let y = if fused { std.forward(x.clone(), None) } else { std.forward_with_maps(x.clone(), None).0 };
                let g = (y.clone() * probe.clone()).sum().backward();
                (x.grad(&g).unwrap(), std.k_proj.weight.grad(&g).unwrap(), std.v_proj.bias.as_ref().unwrap().grad(&g).unwrap(), y, std.q_proj.weight.grad(&g).unwrap())
            };
            let calls = diffclip_attention::gpu_kernel_calls();
            let (f, r) = (grads(true), grads(false));
            let at = format!("{backend} standard n={n} width={width} causal={causal}");
            let ran = diffclip_attention::gpu_kernel_calls() > calls;
            assert_eq!(ran, backend == "wgpu", "{at}: CubeCL kernel ran: {ran}");
            assert!(rel_diff(f.3, r.3) < 1e-4, "{at}: values");
            assert!(rel_diff(f.0, r.0) < 1e-4, "{at}: dx");
            assert!(rel_diff(f.4, r.4) < 1e-4, "{at}: dWq");
            assert!(rel_diff(f.1, r.1) < 1e-4, "{at}: dWk");
            assert!(rel_diff(f.2, r.2) < 1e-4, "{at}: dbv");
        }
    }
}

/// GELU / QuickGELU gradients (flex: the kernels' own backward) against the derivatives
/// written with Burn's ops.
#[test]
fn activation_gradients_match_derivatives() {
    let _serial = serial();
    for (backend, device) in devices() {
        let ad = device.autodiff();
        let x = Tensor::<2>::random([37, 300], Distribution::Normal(0.0, 3.0), &ad);
        let dy = Tensor::<2>::random([37, 300], Distribution::Normal(0.0, 1.0), &ad);
        let grad = |quick: bool| {
            let xg = x.clone().require_grad();
            let y = if quick { diffclip_attention::quick_gelu(xg.clone()) } else { diffclip_attention::gelu(xg.clone()) };
            xg.grad(&(y * dy.clone()).sum().backward()).unwrap()
        };
        let xi = x.clone().inner();
        let phi = (xi.clone().square() * -0.5).exp() * (1.0 / (2.0 * std::f64::consts::PI).sqrt());
        let gelu_d = ((xi.clone() * std::f64::consts::FRAC_1_SQRT_2).erf() + 1.0) * 0.5 + xi.clone() * phi;
        let s = burn::tensor::activation::sigmoid(xi.clone() * 1.702);
        let quick_d = s.clone() + xi * s.clone() * (s.neg() + 1.0) * 1.702;
        let d = rel_diff(grad(false), dy.clone().inner() * gelu_d);
        assert!(d < 1e-5, "{backend} gelu': {d:e}");
        let d = rel_diff(grad(true), dy.inner() * quick_d);
        assert!(d < 1e-5, "{backend} quick_gelu': {d:e}");
    }
}

/// Linear layers (flex: one GEMM from the bias, with its own backward) equal Burn's
/// `Linear::forward`: values (plain and autodiff) and the gradients of x, W and b.
#[test]
fn linear_matches_burn_forward_and_gradients() {
    let _serial = serial();
    use burn::nn::LinearConfig;
    for (backend, device) in devices() {
        let ad = device.clone().autodiff();
        // Small, and large enough for the threaded GEMM; with and without a bias.
        for ([b, n, k, out], bias) in [([3, 7, 33, 19], true), ([2, 300, 200, 210], false), ([2, 300, 200, 210], true)] {
            let at = format!("{backend} [{b}, {n}, {k}] -> {out} bias={bias}");
            let layer = LinearConfig::new(k, out).with_bias(bias).init(&device);
            let x = Tensor::<3>::random([b, n, k], Distribution::Normal(0.0, 1.0), &device);
            assert!(rel_diff(diffclip_attention::linear(&layer, x.clone()), layer.forward(x.clone())) < 1e-5, "{at}: y");

            let layer = LinearConfig::new(k, out).with_bias(bias).init(&ad);
            let probe = Tensor::<3>::random([b, n, out], Distribution::Normal(0.0, 1.0), &ad);
            let x = Tensor::<3>::from_data(x.into_data(), &ad);
            let run = |kernel: bool| {
                let x = x.clone().require_grad();
                let y = if kernel { diffclip_attention::linear(&layer, x.clone()) } else { layer.forward(x.clone()) };
                let g = (y.clone() * probe.clone()).sum().backward();
                (y.inner(), x.grad(&g).unwrap(), layer.weight.grad(&g).unwrap(), layer.bias.as_ref().map(|p| p.grad(&g).unwrap()))
            };
            let (f, r) = (run(true), run(false));
            assert!(rel_diff(f.0, r.0) < 1e-5, "{at}: y (autodiff)");
            assert!(rel_diff(f.1, r.1) < 1e-5, "{at}: dx");
            assert!(rel_diff(f.2, r.2) < 1e-5, "{at}: dW");
            match (f.3, r.3) {
                (Some(fb), Some(rb)) => assert!(rel_diff(fb, rb) < 1e-5, "{at}: db"),
                (None, None) => {}
                _ => panic!("{at}: bias gradient on one path only"),
            }
        }
    }
}

/// LayerNorm (flex under autodiff: one op with its own backward) equals Burn's generic
/// LayerNorm: values and the gradients of x, γ and β, with and without β.
#[test]
fn layer_norm_matches_burn_forward_and_gradients() {
    let _serial = serial();
    for (backend, device) in devices() {
        let ad = device.autodiff();
        for ([b, n, w], with_beta) in [([2, 5, 7], true), ([3, 300, 192], true), ([3, 300, 192], false)] {
            let at = format!("{backend} [{b}, {n}, {w}] beta={with_beta}");
            // An offset and a scale, so the centring matters.
            let x = Tensor::<3>::random([b, n, w], Distribution::Normal(3.0, 2.0), &ad);
            let gamma = Tensor::<1>::random([w], Distribution::Normal(1.0, 0.5), &ad);
            let beta = Tensor::<1>::random([w], Distribution::Normal(0.0, 0.5), &ad);
            let probe = Tensor::<3>::random([b, n, w], Distribution::Normal(0.0, 1.0), &ad);
            let run = |kernel: bool| {
                let (x, g, bt) = (x.clone().require_grad(), gamma.clone().require_grad(), beta.clone().require_grad());
                let bt_arg = with_beta.then(|| bt.clone());
                let y = if kernel {
                    diffclip_attention::layer_norm(x.clone(), g.clone(), bt_arg, 1e-5)
                } else {
                    burn::tensor::module::layer_norm(x.clone(), g.clone(), bt_arg, 1e-5)
                };
                let grads = (y.clone() * probe.clone()).sum().backward();
                (y.inner(), x.grad(&grads).unwrap(), g.grad(&grads).unwrap(), bt.grad(&grads))
            };
            let (f, r) = (run(true), run(false));
            assert!(rel_diff(f.0, r.0) < 1e-5, "{at}: y");
            assert!(rel_diff(f.1, r.1) < 1e-4, "{at}: dx");
            assert!(rel_diff(f.2, r.2) < 1e-4, "{at}: dγ");
            match (f.3, r.3) {
                (Some(fb), Some(rb)) => assert!(rel_diff(fb, rb) < 1e-5, "{at}: dβ"),
                (None, None) => assert!(!with_beta, "{at}: no dβ"),
                _ => panic!("{at}: β gradient on one path only"),
            }
        }
    }
}

/// The embedding lookup (flex under autodiff: one op with its own backward) equals Burn's
/// `embedding`: the rows exactly, and the table's gradient, with ids repeated within and
/// across sequences so rows must accumulate.
#[test]
fn embedding_matches_burn_forward_and_gradients() {
    let _serial = serial();
    use burn::tensor::{Int, TensorData};
    for (backend, device) in devices() {
        let ad = device.autodiff();
        let table = Tensor::<2>::random([50, 24], Distribution::Normal(0.0, 1.0), &ad);
        let ids: Vec<i64> = (0..3 * 11).map(|i| (i * 7 % 13) as i64).chain([49, 0]).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [5, 7]), &ad);
        let probe = Tensor::<3>::random([5, 7, 24], Distribution::Normal(0.0, 1.0), &ad);
        let run = |kernel: bool| {
            let w = table.clone().require_grad();
            let y = if kernel { diffclip_attention::embedding(w.clone(), ids.clone()) } else { burn::tensor::module::embedding(w.clone(), ids.clone()) };
            let grads = (y.clone() * probe.clone()).sum().backward();
            (y.inner(), w.grad(&grads).unwrap())
        };
        let (f, r) = (run(true), run(false));
        assert_eq!(f.0.into_data().try_to_vec::<f32>().unwrap(), r.0.into_data().try_to_vec::<f32>().unwrap(), "{backend}: rows");
        assert!(rel_diff(f.1.clone(), r.1) < 1e-6, "{backend}: d table");
        // Rows no id selects get no gradient.
        assert_eq!(f.1.slice([20..49, 0..24]).abs().sum().into_scalar::<f32>(), 0.0, "{backend}: unused rows");
    }
}
