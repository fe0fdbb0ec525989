//! One query position per item (`forward_at`, an encoder's last block): the full output
//! gathered there, values and gradients; and, on flex, exact under padding.

use burn::tensor::{Distribution, Int, Tensor};
use diffclip_attention::{AttentionConfig, AttentionKind, AttentionPath, DiffAttention, gather_rows};
use diffclip_testkit::devices;

mod common;
use common::{gradient_case_sized, max_diff, rel_diff, serial};

/// One position per item (a caption's end token, the class token) equals the full output
/// gathered there: values, and on autodiff devices the gradients of x, the projections, λ and
/// the norm gain; both kinds, causal or not, both paths.
#[test]
fn one_position_per_item_equals_the_full_output_gathered() {
    let _serial = serial();
    for (backend, plain) in devices() {
        for device in [plain.clone(), plain.autodiff()] {
            // Positions at the end, the start and the middle (causal: 13, 1 and 6 keys).
            let at = Tensor::<2, Int>::from_ints([[12], [0], [5]], &device);
            for (causal, path) in [(false, AttentionPath::Fused), (true, AttentionPath::Fused), (true, AttentionPath::Reference)] {
                let (x, probe, diff) = gradient_case_sized(&device, 13, 32, 4, causal);
                let x = Tensor::cat(vec![x.clone(), x.narrow(0, 0, 1).flip([1])], 0);
                let probe = Tensor::cat(vec![probe.clone(), probe.narrow(0, 0, 1)], 0).narrow(1, 0, 1);
                let diff = DiffAttention { path, ..diff };
                let std = AttentionConfig { causal, path, ..AttentionConfig::new(32, 4) }.init(&device).unwrap();
                let what = format!("{backend} autodiff={} causal={causal} {path:?}", device.is_autodiff());
                let run = |one: bool, attn: &dyn Fn(Tensor<3>, bool) -> Tensor<3>| {
                    let x = if device.is_autodiff() { x.clone().require_grad() } else { x.clone() };
                    let y = attn(x.clone(), one);
                    let grads = device.is_autodiff().then(|| {
                        let g = (y.clone() * probe.clone()).sum().backward();
                        x.grad(&g).unwrap()
                    });
                    (y, grads)
                };
                let diff_out = |x: Tensor<3>, one: bool| {
                    if one { diff.forward_at(x, at.clone()) } else { gather_rows(diff.forward(x, None), at.clone()) }
                };
                let std_out = |x: Tensor<3>, one: bool| {
                    if one { std.forward_at(x, at.clone()) } else { gather_rows(std.forward(x, None), at.clone()) }
                };
                for (kind, attn) in [("differential", &diff_out as &dyn Fn(Tensor<3>, bool) -> Tensor<3>), ("standard", &std_out)] {
                    let ((one, g_one), (all, g_all)) = (run(true, attn), run(false, attn));
                    assert_eq!(one.dims(), [3, 1, 32], "{what} {kind}");
                    assert!(max_diff(one, all) < 1e-5, "{what} {kind}: values");
                    if let (Some(a), Some(b)) = (g_one, g_all) {
                        assert!(rel_diff(a, b) < 1e-4, "{what} {kind}: dx");
                    }
                }
                if device.is_autodiff() {
                    // The layer's own parameters, differential kind.
                    let params = |one: bool| {
                        let g = (diff_out(x.clone(), one) * probe.clone()).sum().backward();
                        let grad = |p: &burn::module::Param<Tensor<2>>| p.grad(&g).unwrap();
                        (grad(&diff.q_proj.weight), grad(&diff.k_proj.weight), grad(&diff.v_proj.weight), diff.lambda_q2.grad(&g).unwrap(), diff.diff_norm.gamma.grad(&g).unwrap())
                    };
                    let (a, b) = (params(true), params(false));
                    for (name, d) in [("dWq", rel_diff(a.0, b.0)), ("dWk", rel_diff(a.1, b.1)), ("dWv", rel_diff(a.2, b.2))] {
                        assert!(d < 1e-4, "{what}: {name} {d:e}");
                    }
                    let dl = (a.3 - b.3).abs().max().into_scalar::<f32>();
                    assert!(dl < 1e-4, "{what}: dλq2 {dl:e}");
                    let dg = (a.4 - b.4).abs().max().into_scalar::<f32>();
                    assert!(dg < 1e-4, "{what}: dγ {dg:e}");
                }
            }
        }
    }
}

/// On flex an item's pooled output is the same bit for bit alone and in a batch padded far
/// past it: a caption among longer ones (causal, its keys `0..=at`), or an image beside
/// another (every key). So an embedding never depends on what it was batched with.
#[test]
fn one_position_per_item_is_exact_under_padding() {
    let _serial = serial();
    let (_, device) = devices().into_iter().find(|(name, _)| *name == "flex").expect("flex is built");
    let (width, heads) = (128, 4);
    for causal in [true, false] {
        let (n, at) = if causal { (77, [[8], [76]]) } else { (50, [[0], [0]]) };
        let x = Tensor::<3>::random([2, n, width], Distribution::Normal(0.0, 1.0), &device);
        let len = if causal { at[0][0] as usize + 1 } else { n };
        let alone = x.clone().narrow(0, 0, 1).narrow(1, 0, len);
        for kind in [AttentionKind::Differential, AttentionKind::Standard] {
            let attn = AttentionConfig { causal, kind, ..AttentionConfig::new(width, heads) }.init(&device).unwrap();
            let batched = attn.forward_at(x.clone(), Tensor::from_ints(at, &device)).narrow(0, 0, 1);
            let single = attn.forward_at(alone.clone(), Tensor::from_ints([at[0]], &device));
            let values = |t: Tensor<3>| t.into_data().iter::<f32>().collect::<Vec<_>>();
            let (b, s) = (values(batched), values(single));
            assert!(b == s, "{kind:?} causal={causal}: batched and alone differ by {:e}", b.iter().zip(&s).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max));
        }
    }
}
