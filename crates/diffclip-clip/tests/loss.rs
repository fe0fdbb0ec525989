//! Losses and their gradients against open_clip's `ClipLoss` (`../shared/fixtures/loss`).

use burn::tensor::Tensor;
use diffclip_clip::loss::{clip_loss, clip_loss_normalized, siglip_loss};
use diffclip_testkit::{assert_close, devices, read_arrays};

const TOL: f32 = 1e-5;

#[test]
fn clip_loss_and_gradients_match_open_clip_all_variants() {
    let f = read_arrays("loss/loss.safetensors");
    let scalar = |name: &str| (vec![1], f.get(name).1.clone());
    for (backend, device) in devices() {
        let ad = device.autodiff();
        let scale = || Tensor::<1>::from_data(burn::tensor::TensorData::new(f.get("logit_scale").1.clone(), [1]), &ad).require_grad();
        // Variant A: normalised features fed directly.
        for (suffix, img, txt, loss_name) in [("", "image_features", "text_features", "loss"), ("_unnormalized", "image_features_raw", "text_features_raw", "loss_unnormalized")] {
            let i = f.float::<2>(img, &ad).require_grad();
            let t = f.float::<2>(txt, &ad).require_grad();
            let s = scale();
            let loss = clip_loss(i.clone(), t.clone(), s.clone());
            // Relative 1e-5: the unnormalised loss is ~139.
            let want = scalar(loss_name);
            assert_close(&format!("{backend} {loss_name}"), loss.clone().inner(), &want, TOL * want.1[0].abs().max(1.0));
            let g = loss.backward();
            assert_close(&format!("{backend} grad_image{suffix}"), i.grad(&g).unwrap(), f.get(&format!("grad_image_features{suffix}")), TOL);
            assert_close(&format!("{backend} grad_text{suffix}"), t.grad(&g).unwrap(), f.get(&format!("grad_text_features{suffix}")), TOL);
            assert_close(&format!("{backend} grad_logit_scale{suffix}"), s.grad(&g).unwrap(), &scalar(&format!("grad_logit_scale{suffix}")), TOL);
        }
        // Variant B: raw rows normalised inside the graph; gradients w.r.t. the raw rows.
        let i = f.float::<2>("image_features_raw", &ad).require_grad();
        let t = f.float::<2>("text_features_raw", &ad).require_grad();
        let s = scale();
        let loss = clip_loss_normalized(i.clone(), t.clone(), s.clone());
        assert_close(&format!("{backend} loss_normalize_in_graph"), loss.clone().inner(), &scalar("loss_normalize_in_graph"), TOL);
        let g = loss.backward();
        assert_close(&format!("{backend} grad_image_raw"), i.grad(&g).unwrap(), f.get("grad_image_features_raw"), TOL);
        assert_close(&format!("{backend} grad_text_raw"), t.grad(&g).unwrap(), f.get("grad_text_features_raw"), TOL);
        assert_close(&format!("{backend} grad_logit_scale_normalize_in_graph"), s.grad(&g).unwrap(), &scalar("grad_logit_scale_normalize_in_graph"), TOL);
    }
}

#[test]
fn siglip_loss_prefers_matching_pairs() {
    for (_, device) in devices() {
        let f = read_arrays("loss/loss.safetensors");
        let img = f.float::<2>("image_features", &device);
        let s = Tensor::<1>::from_floats([10.0], &device);
        let b = Tensor::<1>::from_floats([-10.0], &device);
        let matched = siglip_loss(img.clone(), img.clone(), s.clone(), b.clone()).into_scalar::<f32>();
        let shuffled = siglip_loss(img.clone(), img.flip([0]), s, b).into_scalar::<f32>();
        assert!(matched.is_finite() && matched < shuffled, "{matched} vs {shuffled}");
        // Hand-computed value for a 1-pair batch: -log σ(s·1 + b).
        let one = Tensor::<2>::from_floats([[1.0, 0.0]], &device);
        let v = siglip_loss(one.clone(), one, Tensor::from_floats([2.0], &device), Tensor::from_floats([-1.0], &device)).into_scalar::<f32>();
        let want = -(1.0f32 / (1.0 + (-1.0f32).exp())).ln();
        assert!((v - want).abs() < 1e-6, "{v} vs {want}");
    }
}

/// The scale's (and SigLIP bias's) gradient at batch 512, where one reduction over all logits
/// would span 2^18 elements (Burn 0.22.1's wgpu sums those wrongly): every backend agrees with
/// the analytic value `∂L/∂s = Σ ∂L/∂logits ⊙ logits / s`, computed on the host in f64.
#[test]
fn scale_gradients_at_batch_512() {
    use burn::tensor::{Distribution, TensorData};
    let n = 512;
    let host = Tensor::<2>::random([2 * n, 16], Distribution::Normal(0.0, 1.0), &burn::tensor::Device::flex());
    let values = host.into_data();
    for (backend, device) in devices() {
        let ad = device.autodiff();
        let feats = Tensor::<2>::from_data(values.clone(), &ad);
        let (i, t) = (feats.clone().narrow(0, 0, n), feats.narrow(0, n, n));
        let s = Tensor::<1>::from_data(TensorData::new(vec![10.0f32], [1]), &ad).require_grad();
        // The same loss with s applied to the (detached-scale) logits as a plain product: its
        // gradient w.r.t. s is a full sum(), which is correct on every backend.
        let logits = i.clone().matmul(t.clone().transpose()).detach();
        let x = logits.clone().require_grad();
        let labels = Tensor::<1, burn::tensor::Int>::arange(0..n as i64, &ad).reshape([n, 1]);
        let ce = |l: Tensor<2>| -burn::tensor::activation::log_softmax(l, 1).gather(1, labels.clone()).mean();
        let l = (ce(x.clone() * 10.0) + ce(x.clone().transpose() * 10.0)) / 2.0;
        let dx = x.grad(&l.backward()).unwrap();
        let want = (dx * logits).sum().into_scalar::<f32>() / 10.0;
        let g = clip_loss(i.clone(), t.clone(), s.clone()).backward();
        let got = s.grad(&g).unwrap().into_scalar::<f32>();
        assert!((got - want).abs() <= 1e-4 * want.abs().max(1.0), "{backend}: clip dL/ds {got} vs {want}");
        let b = Tensor::<1>::from_data(TensorData::new(vec![-5.0f32], [1]), &ad).require_grad();
        let g = siglip_loss(i.clone(), t.clone(), s.clone(), b.clone()).backward();
        let (gs, gb) = (s.grad(&g).unwrap().into_scalar::<f32>(), b.grad(&g).unwrap().into_scalar::<f32>());
        assert!(gs.is_finite() && gb.is_finite(), "{backend}: siglip grads {gs} {gb}");
        // SigLIP: ∂L/∂b = Σ ∂L/∂logit = -(1/n) Σ z·σ(-z·logit).
        let cos = burn::tensor::Tensor::<2>::from_data(
            diffclip_clip::normalize(i.clone().inner()).matmul(diffclip_clip::normalize(t.clone().inner()).transpose()).into_data(),
            &burn::tensor::Device::flex(),
        );
        let z = Tensor::<2>::eye(n, &burn::tensor::Device::flex()) * 2.0 - 1.0;
        let want_b = -(z.clone() * burn::tensor::activation::sigmoid(-(z * (cos * 10.0 - 5.0)))).sum().into_scalar::<f32>() / n as f32;
        assert!((gb - want_b).abs() <= 1e-4 * want_b.abs().max(1.0), "{backend}: siglip dL/db {gb} vs {want_b}");
    }
}

/// A zero embedding (a dead tower, an all-padding row) normalises to zero with PyTorch's finite
/// gradient `g / eps`, not NaN through `sqrt(0)`: the trainer stops on a NaN gradient.
#[test]
fn normalize_has_a_finite_gradient_at_a_zero_row() {
    for (backend, device) in devices() {
        let ad = device.autodiff();
        let x = Tensor::<2>::from_floats([[0.0, 0.0], [3.0, 4.0]], &ad).require_grad();
        let y = diffclip_clip::normalize(x.clone());
        let w = Tensor::<2>::from_floats([[1.0, 2.0], [1.0, 0.0]], &ad);
        let g = (y.clone() * w).sum().backward();
        let grad = x.grad(&g).unwrap().into_data().try_to_vec::<f32>().unwrap();
        assert!(grad.iter().all(|v| v.is_finite()), "{backend}: {grad:?}");
        // Zero row: d(x/eps)/dx = w / eps; the norm's own gradient is zero there, as PyTorch's.
        assert!((grad[0] / 1e12 - 1.0).abs() < 1e-3 && (grad[1] / 2e12 - 1.0).abs() < 1e-3, "{backend}: {grad:?}");
        // Row (3, 4): (w - y·(y·w)) / |x| with y = (0.6, 0.8), y·w = 0.6.
        assert!((grad[2] - 0.64 / 5.0).abs() < 1e-6 && (grad[3] + 0.48 / 5.0).abs() < 1e-6, "{backend}: {grad:?}");
        let y = y.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(&y[..2], &[0.0, 0.0], "{backend}");
    }
}
