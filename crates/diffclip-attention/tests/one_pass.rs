//! Products that share work with bf16 products on packed pairs (AMX, AVX512-BF16) give the bits
//! of the separate steps: the transformer MLP `fc2(act(fc1(x)))` in one pass, and several
//! layers of one input.

use burn::nn::LinearConfig;
use burn::tensor::{Distribution, Tensor};
use diffclip_attention::{Activation, MatmulPrecision, linear, linears, mlp, with_matmul_precision};
use diffclip_testkit::devices;

mod common;
use common::{rel_diff, serial};

fn bits<const D: usize>(t: Tensor<D>) -> Vec<u32> {
    t.into_data().try_to_vec::<f32>().unwrap().into_iter().map(f32::to_bits).collect()
}

/// The same bits on flex (where the one pass runs); elsewhere both sides are the same ops, which
/// GPU backends may fuse or tune differently from call to call, so they agree to rounding.
fn alike<const D: usize>(backend: &str, a: Tensor<D>, b: Tensor<D>) -> bool {
    if backend == "flex" { bits(a) == bits(b) } else { rel_diff(a, b) < 1e-5 }
}

/// On every backend and precision, with and without biases, at sizes off the 32 × 32 blocks
/// (a hidden width that is not a multiple of 32, a lone row) and large enough for threads:
/// the one-pass MLP gives exactly the bits of linear, activation, linear.
#[test]
fn mlp_is_its_three_steps_to_the_bit() {
    let _serial = serial();
    for (backend, device) in devices() {
        for ([b, n, width, hidden, out], bias) in [([2, 37, 48, 200, 40], true), ([1, 1, 64, 96, 64], false), ([3, 70, 96, 384, 96], true)] {
            let fc1 = LinearConfig::new(width, hidden).with_bias(bias).init(&device);
            let fc2 = LinearConfig::new(hidden, out).with_bias(bias).init(&device);
            let x = Tensor::<3>::random([b, n, width], Distribution::Normal(0.0, 1.0), &device);
            for activation in [Activation::Gelu, Activation::QuickGelu] {
                for precision in [MatmulPrecision::F32, MatmulPrecision::Bf16] {
                    let at = format!("{backend} [{b}, {n}, {width}] -> {hidden} -> {out}, bias {bias}, {activation:?}, {precision}");
                    let (one, three) = with_matmul_precision(precision, || {
                        let one = mlp(&fc1, activation, &fc2, x.clone());
                        (one, linear(&fc2, activation.apply(linear(&fc1, x.clone()))))
                    });
                    assert_eq!(one.dims(), [b, n, out], "{at}");
                    assert!(alike(backend, one, three), "{at}: the one pass differs from the three steps");
                }
            }
        }
    }
}

/// Under autodiff the MLP differentiates as its three steps do.
#[test]
fn mlp_gradients_are_the_three_steps_gradients() {
    let _serial = serial();
    for (backend, device) in devices() {
        let ad = device.autodiff();
        let fc1 = LinearConfig::new(48, 130).init(&ad);
        let fc2 = LinearConfig::new(130, 40).init(&ad);
        let x = Tensor::<3>::random([2, 9, 48], Distribution::Normal(0.0, 1.0), &ad);
        let grads = |one: bool| {
            let x = x.clone().require_grad();
            let y = if one { mlp(&fc1, Activation::Gelu, &fc2, x.clone()) } else { linear(&fc2, Activation::Gelu.apply(linear(&fc1, x.clone()))) };
            let g = y.sum().backward();
            (x.grad(&g).unwrap(), fc1.weight.grad(&g).unwrap(), fc2.bias.as_ref().unwrap().grad(&g).unwrap())
        };
        let (one, three) = (grads(true), grads(false));
        assert!(alike(backend, one.0, three.0), "{backend}: dx differs");
        assert!(alike(backend, one.1, three.1), "{backend}: dW1 differs");
        assert!(alike(backend, one.2, three.2), "{backend}: db2 differs");
    }
}

/// Several layers of one input (a lone row, threads, with and without biases, widths off the
/// blocks) equal [`linear`] of each to the bit, on every backend and precision.
#[test]
fn linears_of_one_input_are_each_linear_to_the_bit() {
    let _serial = serial();
    for (backend, device) in devices() {
        for [b, n, width] in [[1, 1, 64], [2, 37, 48], [3, 70, 200]] {
            let layers = [(width, true), (width + 33, false), (7, true)].map(|(out, bias)| LinearConfig::new(width, out).with_bias(bias).init(&device));
            let x = Tensor::<3>::random([b, n, width], Distribution::Normal(0.0, 1.0), &device);
            for precision in [MatmulPrecision::F32, MatmulPrecision::Bf16] {
                let at = format!("{backend} [{b}, {n}, {width}], {precision}");
                let (shared, each) = with_matmul_precision(precision, || {
                    (linears([&layers[0], &layers[1], &layers[2]], x.clone()), layers.each_ref().map(|l| linear(l, x.clone())))
                });
                for (i, (s, e)) in shared.into_iter().zip(each).enumerate() {
                    assert_eq!(s.dims(), e.dims(), "{at}: layer {i}");
                    assert!(alike(backend, s, e), "{at}: layer {i} differs");
                }
            }
        }
    }
}
