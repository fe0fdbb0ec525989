//! Half precision through the fused attention paths. A binary of its own, its tests serialised,
//! so each runs alone on the device: while other threads used the same wgpu device, f16 under
//! autodiff failed inside Burn 0.22.1's fusion ("Should have handle for tensor", burn#4347) in 3 of 20
//! runs with Burn's own ops and 1 of 12 with the CubeCL kernel; alone, 0 of 25.

use burn::module::Module;
use burn::tensor::FloatDType::{F16, F32};
use burn::tensor::{Int, Tensor};
use diffclip_attention::{AttentionConfig, gather_rows};
use diffclip_testkit::devices;

mod common;
use common::{Cast, GpuInferenceKernel, gradient_case, rel_diff, serial};

/// Runs `case(device, n, causal)` (the named relative differences between a layer's f16 cast and
/// its f32 reference path) on every device with f16, seeded, one test at a time, and checks each
/// is within f16's rounding and that the CubeCL kernel ran on wgpu and only there.
fn f16_tracks_f32(kind: &str, seed: u64, case: impl Fn(&burn::tensor::Device, usize, bool) -> Vec<(&'static str, f32)>) {
    let _serial = serial();
    for (backend, device) in devices() {
        if !device.supports_dtype(burn::tensor::DType::F16) {
            continue;
        }
        let ad = device.autodiff();
        for (n, causal) in [(29, false), (120, true)] {
            // Seeded: f16's error depends on the draw (Burn's f16 ops on flex ranged 1.4e-3 to
            // 1.9e-2 over unseeded runs), and a test must give the same answer every time.
            ad.seed(seed + n as u64);
            let calls = diffclip_attention::gpu_kernel_calls();
            let diffs = case(&ad, n, causal);
            let at = format!("{backend} {kind} f16 n={n} causal={causal}");
            let ran = diffclip_attention::gpu_kernel_calls() > calls;
            assert_eq!(ran, backend == "wgpu", "{at}: CubeCL kernel ran: {ran}");
            // f16 keeps 11 bits: ~5e-4 per value, a few times that after sums and products;
            // Burn's f16 ops measured 2.9e-3 on flex for this draw, up to 1.9e-2 over unseeded ones.
            for (what, d) in diffs {
                assert!(d < 5e-2, "{at}: {what} differs by {d:e}");
            }
        }
    }
}

/// Mixed precision: the fused path on an f16 cast of the differential layer tracks the f32
/// reference path, values and the gradients that reach the f32 weights (on wgpu: the CubeCL
/// kernel in f16).
#[test]
fn fused_f16_tracks_the_f32_reference() {
    f16_tracks_f32("diff", 17, |ad, n, causal| {
        let (x, probe, diff) = gradient_case(ad, n, causal);
        let grads = |half: bool| {
            let x = x.clone().require_grad();
            let y = if half {
                diff.clone().map(&mut Cast(F16)).forward_fused(x.clone().cast(F16), None).cast(F32)
            } else {
                diff.forward_with_maps(x.clone(), None).0
            };
            let g = (y.clone() * probe.clone()).sum().backward();
            (x.grad(&g).unwrap(), diff.q_proj.weight.grad(&g).unwrap(), diff.v_proj.weight.grad(&g).unwrap(), diff.diff_norm.gamma.grad(&g).unwrap(), y)
        };
        let (h, r) = (grads(true), grads(false));
        vec![("values", rel_diff(h.4, r.4)), ("dx", rel_diff(h.0, r.0)), ("dWq", rel_diff(h.1, r.1)), ("dWv", rel_diff(h.2, r.2)), ("dγ", rel_diff(h.3, r.3))]
    });
}

/// Standard attention on an f16 cast of the layer tracks its f32 reference path (on wgpu: the
/// CubeCL kernel in f16, which reads no parameters).
#[test]
fn standard_f16_tracks_the_f32_reference() {
    f16_tracks_f32("standard", 29, |ad, n, causal| {
        let (x, probe, _) = gradient_case(ad, n, causal);
        let std = AttentionConfig { causal, ..AttentionConfig::new(32, 4) }.init_standard(ad).unwrap();
        let grads = |half: bool| {
            let x = x.clone().require_grad();
            let y = if half {
                std.clone().map(&mut Cast(F16)).forward(x.clone().cast(F16), None).cast(F32)
            } else {
                std.forward_with_maps(x.clone(), None).0
            };
            let g = (y.clone() * probe.clone()).sum().backward();
            (x.grad(&g).unwrap(), std.k_proj.weight.grad(&g).unwrap(), y)
        };
        let (h, r) = (grads(true), grads(false));
        vec![("values", rel_diff(h.2, r.2)), ("dx", rel_diff(h.0, r.0)), ("dWk", rel_diff(h.1, r.1))]
    });
}

/// Inference in f16 through the CubeCL kernel (`set_gpu_inference_kernel`, on wgpu), both
/// kinds and the class token alone, tracks the f32 reference path.
#[test]
fn f16_inference_through_the_gpu_kernel_tracks_f32() {
    let _serial = serial();
    let _kernel = GpuInferenceKernel::on();
    for (backend, device) in devices() {
        if !device.supports_dtype(burn::tensor::DType::F16) {
            continue;
        }
        for (n, causal) in [(29, false), (120, true)] {
            device.seed(41 + n as u64);
            let (x, _, diff) = gradient_case(&device, n, causal);
            let std = AttentionConfig { causal, ..AttentionConfig::new(32, 4) }.init_standard(&device).unwrap();
            let at = format!("{backend} f16 inference n={n} causal={causal}");
            let calls = diffclip_attention::gpu_kernel_calls();
            let d = diff.clone().map(&mut Cast(F16)).forward(x.clone().cast(F16), None).cast(F32);
            let s = std.clone().map(&mut Cast(F16)).forward(x.clone().cast(F16), None).cast(F32);
            // One position per item (an encoder's last block): Burn's ops in f16 on every backend.
            let pooled = Tensor::<2, Int>::from_ints([[n as i64 - 1], [0]], &device);
            let one = diff.clone().map(&mut Cast(F16)).forward_at(x.clone().cast(F16), pooled.clone()).cast(F32);
            let ran = diffclip_attention::gpu_kernel_calls() - calls;
            let diff_ref = diff.forward_with_maps(x.clone(), None).0;
            let found = [
                ("differential", rel_diff(d, diff_ref.clone())),
                ("standard", rel_diff(s, std.forward_with_maps(x, None).0)),
                ("one position per item", rel_diff(one, gather_rows(diff_ref.clone(), pooled))),
            ];
            assert_eq!(ran, if backend == "wgpu" { 2 } else { 0 }, "{at}: CubeCL kernel calls");
            // A few f16 roundings (4.9e-4 each); measured up to 1.5e-3 (flex, Burn's ops) and
            // 8.6e-4 (wgpu, the kernel) for these draws.
            for (what, d) in found {
                assert!(d < 5e-3, "{at}: {what} differs by {d:e}");
            }
        }
    }
}
