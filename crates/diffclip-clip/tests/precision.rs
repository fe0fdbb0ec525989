//! Reduced-precision inference against the f32 reference fixtures: the DiffCLIP authors' tiny
//! model and open_clip's tiny model taken to bf16 and f16 after loading (products of the f32
//! weights on the CPU, cast weights elsewhere), on every backend that computes in that type.
//! Tolerances are stated per type, relative to the largest embedding value, and the embeddings
//! must keep their direction (cosine to the reference).

use burn::tensor::Tensor;
use diffclip_clip::{Clip, ClipConfig, ClipError, Precision, load_checkpoint};
use diffclip_testkit::{Arrays, devices, fixture, read_arrays};

/// Largest error relative to the largest reference value, and smallest row cosine, allowed.
fn tolerance(p: Precision) -> (f32, f64) {
    match p {
        // 8 bits of mantissa: ~0.4 % per rounding, compounded over the layers.
        Precision::Bf16 => (4e-2, 0.998),
        Precision::F16 => (6e-3, 0.99995),
        Precision::F32 => (1e-4, 1.0 - 1e-7),
    }
}

fn check(label: &str, got: Tensor<2>, want: &(Vec<usize>, Vec<f32>), p: Precision) {
    let (max_rel, min_cos) = tolerance(p);
    assert_eq!(got.dtype(), burn::tensor::DType::F32, "{label}: embeddings come back as f32");
    let got = got.into_data().try_to_vec::<f32>().unwrap();
    let (shape, want) = want;
    assert_eq!(got.len(), want.len(), "{label}: shape {shape:?}");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = got.iter().zip(want).fold(0f32, |m, (g, w)| m.max((g - w).abs())) / scale;
    assert!(err <= max_rel, "{label}: relative error {err:e} > {max_rel:e}");
    for (r, (g, w)) in got.chunks(shape[1]).zip(want.chunks(shape[1])).enumerate() {
        // In f64: f32 sums round the cosine itself by ~1e-7, f32's own threshold.
        let dot: f64 = g.iter().zip(w).map(|(&a, &b)| a as f64 * b as f64).sum();
        let norm = |x: &[f32]| x.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
        let cos = dot / (norm(g) * norm(w));
        assert!(cos >= min_cos, "{label}: row {r} cosine {cos} < {min_cos}");
    }
}

fn run(dir: &str, config: ClipConfig) {
    let inputs: Arrays = read_arrays(&format!("{dir}/inputs.safetensors"));
    let expected = read_arrays(&format!("{dir}/expected.safetensors"));
    let mut tested = 0;
    for (backend, device) in devices() {
        for p in [Precision::Bf16, Precision::F16] {
            let mut model: Clip = config.init(&device).unwrap();
            load_checkpoint(&mut model, fixture(&format!("{dir}/model.safetensors"))).unwrap();
            let model = match model.with_precision(p) {
                Ok(model) => model,
                Err(e) => {
                    // Refused, never a panic later; flex computes in both.
                    assert!(matches!(e, ClipError::Precision { .. }), "{backend} {p}: {e}");
                    assert_ne!(backend, "flex", "flex refused {p}: {e}");
                    println!("{backend}: {e}");
                    continue;
                }
            };
            assert_eq!(model.precision(), Some(p));
            let label = |t: &str| format!("{backend} {dir} {p} {t}");
            check(&label("image_embed"), model.encode_image(inputs.float("image", &device)), expected.get("image_embed"), p);
            check(&label("text_embed"), model.encode_text(inputs.int("text", &device)), expected.get("text_embed"), p);
            tested += 1;
        }
    }
    // flex computes in both types: the test never passes by skipping everything.
    assert!(tested >= 2, "only {tested} backend/precision pairs ran");
}

#[test]
fn diffclip_tiny_in_bf16_and_f16() {
    run("diffclip_tiny", ClipConfig::diffclip_tiny());
}

#[test]
fn openclip_tiny_in_bf16_and_f16() {
    run("openclip_tiny", ClipConfig::openai_tiny());
}

/// bf16 and f16 on the CPU (flex) are products of the f32 weights (`MatmulPrecision::{Bf16,
/// F16}`, bf16 on AMX or AVX512-BF16 where the CPU has them): `with_precision` casts nothing
/// and the operands of the linear layers and of the attention products (scores and `A·V`, in
/// inference) are rounded, in this model's forward passes only: the thread's and the process's settings stay.
#[test]
fn bf16_products_of_f32_weights_on_the_cpu() {
    use diffclip_clip::attention::{MatmulPrecision, matmul_precision, matmul_precision_applies, with_matmul_precision};
    let device = burn::tensor::Device::flex();
    assert!(matmul_precision_applies(&device));
    for (dir, config) in [("diffclip_tiny", ClipConfig::diffclip_tiny()), ("openclip_tiny", ClipConfig::openai_tiny())] {
        let inputs: Arrays = read_arrays(&format!("{dir}/inputs.safetensors"));
        let expected = read_arrays(&format!("{dir}/expected.safetensors"));
        let mut model: Clip = config.init(&device).unwrap();
        load_checkpoint(&mut model, fixture(&format!("{dir}/model.safetensors"))).unwrap();
        let encode = |model: &Clip| (model.encode_image(inputs.float("image", &device)), model.encode_text(inputs.int("text", &device)));
        let f32_image = encode(&model).0.into_data();
        // Measured (2026-12-06, attention products rounded too): bf16 1.4e-3 to 5.4e-3, where a
        // bf16 model is allowed 4e-2; f16 1.6e-4 to 7.2e-4, where an f16 model is allowed 6e-3.
        for (p, allowed) in [(Precision::Bf16, 1.5e-2), (Precision::F16, 2e-3)] {
            let reduced = model.clone().with_precision(p).unwrap();
            assert_eq!(reduced.precision(), Some(p));
            assert_eq!(reduced.image_projection.val().dtype(), burn::tensor::DType::F32, "{p}: nothing cast on the CPU");
            let (image, text) = encode(&reduced);
            assert_eq!(matmul_precision(), MatmulPrecision::F32, "{p}: the thread's setting stays");
            // The same bits as the f32 model under the thread-level knob it scopes.
            let (scoped_image, _) = with_matmul_precision(p.products(), || encode(&model));
            assert_eq!(image.clone().into_data(), scoped_image.into_data(), "{dir} {p}");
            let (image_err, text_err) = (max_relative_error(image.clone(), expected.get("image_embed")), max_relative_error(text.clone(), expected.get("text_embed")));
            println!("{dir}: {p} products: image error {image_err:e}, text error {text_err:e}");
            assert!(image_err.max(text_err) <= allowed, "{dir} {p}: {image_err:e}, {text_err:e}");
            let label = |t: &str| format!("flex {dir} {p} products {t}");
            check(&label("image_embed"), image.clone(), expected.get("image_embed"), p);
            check(&label("text_embed"), text, expected.get("text_embed"), p);
            // The products were rounded, and f32 is back, from this model and from `F32`.
            assert_ne!(image.into_data(), f32_image, "{dir}: {p} products gave the f32 result");
            for (which, m) in [("the f32 model", model.clone()), ("with_precision(F32)", reduced.with_precision(Precision::F32).unwrap())] {
                assert_eq!(m.precision(), Some(Precision::F32));
                let (image, text) = encode(&m);
                check(&format!("flex {dir} {which} image_embed"), image, expected.get("image_embed"), Precision::F32);
                check(&format!("flex {dir} {which} text_embed"), text, expected.get("text_embed"), Precision::F32);
            }
        }
    }
    // Under autodiff (training) too: the gradient reaching the pixels goes back through every
    // linear layer's dx = dy·Wᵀ, with bf16 products close to f32's and not equal to them. The
    // backward multiplies as the forward did, though `backward()` runs outside the model.
    let ad = device.autodiff();
    assert!(matmul_precision_applies(&ad));
    let inputs: Arrays = read_arrays("diffclip_tiny/inputs.safetensors");
    let mut model: Clip = ClipConfig::diffclip_tiny().init(&ad).unwrap();
    load_checkpoint(&mut model, fixture("diffclip_tiny/model.safetensors")).unwrap();
    let pixel_grad = |model: &Clip| {
        let image = inputs.float::<4>("image", &ad).require_grad();
        let grads = model.encode_image(image.clone()).powf_scalar(2.0).sum().backward();
        image.grad(&grads).expect("a gradient").into_data().try_to_vec::<f32>().unwrap()
    };
    let (f32_grad, bf16_grad) = (pixel_grad(&model), pixel_grad(&model.clone().with_precision(Precision::Bf16).unwrap()));
    let scoped = with_matmul_precision(MatmulPrecision::Bf16, || pixel_grad(&model));
    assert_eq!(bf16_grad, scoped, "the backward of a bf16 model's forward multiplies in bf16");
    let scale = f32_grad.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = f32_grad.iter().zip(&bf16_grad).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale;
    println!("pixel gradient with bf16 products: error {err:e}"); // measured 1.3e-2
    assert!(err > 1e-5 && err <= 5e-2, "pixel gradient error {err:e}");
}

/// The products belong to the model: they hold under another scope and from another thread,
/// survive loading weights into the model, and a model moved off the CPU says it computes in
/// its weights' type (f32), which is what it then does.
#[test]
fn products_belong_to_the_model() {
    use burn::module::Module;
    use diffclip_clip::attention::{MatmulPrecision, with_matmul_precision};
    let device = burn::tensor::Device::flex();
    let inputs: Arrays = read_arrays("diffclip_tiny/inputs.safetensors");
    let images = inputs.float::<4>("image", &device);
    let checkpoint = fixture("diffclip_tiny/model.safetensors");
    let mut model: Clip = ClipConfig::diffclip_tiny().init(&device).unwrap();
    load_checkpoint(&mut model, &checkpoint).unwrap();
    let bf16 = model.clone().with_precision(Precision::Bf16).unwrap();
    let image = |m: &Clip| m.encode_image(images.clone()).into_data();
    let want = image(&bf16);
    assert_ne!(want, image(&model), "bf16 products differ from f32");
    assert_eq!(with_matmul_precision(MatmulPrecision::F16, || image(&bf16)), want, "an outer f16 scope");
    assert_eq!(std::thread::scope(|s| s.spawn(|| image(&bf16)).join().unwrap()), want, "another thread");
    let mut loaded = ClipConfig::diffclip_tiny().init(&device).unwrap().with_precision(Precision::Bf16).unwrap();
    load_checkpoint(&mut loaded, &checkpoint).unwrap();
    assert_eq!((loaded.precision(), image(&loaded)), (Some(Precision::Bf16), want), "weights loaded into it");
    for (backend, other) in devices() {
        if backend != "flex" {
            assert_eq!(bf16.clone().to_device(&other).precision(), Some(Precision::F32), "{backend}");
        }
    }
}

/// The largest difference from the reference, relative to its largest value.
fn max_relative_error(got: Tensor<2>, (_, want): &(Vec<usize>, Vec<f32>)) -> f32 {
    let got = got.into_data().try_to_vec::<f32>().unwrap();
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    got.iter().zip(want).fold(0f32, |m, (g, w)| m.max((g - w).abs())) / scale
}
