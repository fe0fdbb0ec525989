//! The example programs, run as a user would (cargo builds examples before running tests).

mod common;

use std::process::Command;

use common::{example, fixture, read_arrays, tmpdir};

#[test]
fn embed_reproduces_the_fixture() {
    let dir = tmpdir("examples-cli", "embed");
    let out = dir.join("embed.safetensors");
    let status = Command::new(example("embed"))
        .args(["--preset", "diffclip_tiny", "--checkpoint"])
        .arg(fixture("diffclip_tiny/checkpoint.pt"))
        .arg("--inputs")
        .arg(fixture("diffclip_tiny/inputs.safetensors"))
        .arg("--output")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = std::fs::read(&out).unwrap();
    let got = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let expected = read_arrays("diffclip_tiny/expected.safetensors");
    for name in ["image_embed", "text_embed", "logit_scale"] {
        let view = got.tensor(name).unwrap();
        let (shape, want) = expected.get(name);
        assert_eq!(view.shape(), &shape[..], "{name}");
        let vals: Vec<f32> = view.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        let d = vals.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0f32, |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) });
        assert!(d <= 1e-4, "{name}: {d}");
    }
}

#[test]
fn embed_reports_bad_files_and_exits_non_zero() {
    let dir = tmpdir("examples-cli", "bad");
    // Never written (every run fails), but inside the test's own folder all the same.
    let out = dir.join("x.safetensors");
    let run = |args: &[&str]| {
        let o = Command::new(example("embed")).args(args).output().unwrap();
        (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let ckpt = fixture("diffclip_tiny/checkpoint.pt");
    let inputs = fixture("diffclip_tiny/inputs.safetensors");
    let cfg = fixture("diffclip_tiny/config.json");
    let (ok, err) = run(&["--preset", "diffclip_tiny", "--checkpoint", ckpt.to_str().unwrap(), "--inputs", cfg.to_str().unwrap(), "--output", out.to_str().unwrap()]);
    assert!(!ok && err.contains("config.json"), "{err}");
    let (ok, err) = run(&["--preset", "openai_tiny", "--checkpoint", ckpt.to_str().unwrap(), "--inputs", inputs.to_str().unwrap(), "--output", out.to_str().unwrap()]);
    assert!(!ok && err.contains("missing") && err.contains("lambda"), "{err}");
    let (ok, err) = run(&["--preset", "nope", "--checkpoint", ckpt.to_str().unwrap(), "--inputs", inputs.to_str().unwrap(), "--output", out.to_str().unwrap()]);
    assert!(!ok && err.contains("unknown preset"), "{err}");
    // Images of the wrong size for the model: 16 px for diffclip_tiny's 32, with its own checkpoint.
    let small = dir.join("small.safetensors");
    let pixels: Vec<u8> = vec![0.25f32; 3 * 16 * 16].iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1, 3, 16, 16], &pixels).unwrap();
    safetensors::serialize_to_file([("image", view)], None, &small).unwrap();
    let (ok, err) = run(&["--preset", "diffclip_tiny", "--checkpoint", ckpt.to_str().unwrap(), "--inputs", small.to_str().unwrap(), "--output", out.to_str().unwrap()]);
    assert!(!ok && err.contains("'image'") && err.contains("[B, 3, 32, 32]") && err.contains("[1, 3, 16, 16]"), "{err}");
}

/// `bench --gpu-kernel` on wgpu times inference through diffclip's attention kernel and says so
/// (the flag only sets the switch; the kernel's values are checked in diffclip-attention), and
/// each line names the adapter it ran on (a GPU figure must not come from a CPU fallback).
#[cfg(feature = "wgpu-untuned")]
#[test]
fn bench_times_inference_through_the_gpu_kernel() {
    for kernel in [false, true] {
        let mut args = vec!["--preset", "diffclip_tiny", "--backend", "wgpu", "--batch", "2", "--iters", "1", "--warmup", "0"];
        if kernel {
            args.push("--gpu-kernel");
        }
        let out = Command::new(example("bench")).args(&args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let line: serde_json::Value = serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
        assert_eq!(line["gpu_kernel"], kernel, "{line}");
        assert!(line["images_per_s"].as_f64().is_some_and(|r| r > 0.0), "{line}");
        assert!(line["adapter"].as_str().is_some_and(|name| !name.is_empty()), "{line}");
    }
}

/// `bench --train --dtype bf16 --path reference`: the mixed-precision step runs on the path
/// asked for and says so.
#[test]
fn bench_times_a_mixed_precision_training_step() {
    let out = Command::new(example("bench")).args(["--train", "--dtype", "bf16", "--path", "reference", "--iters", "1", "--warmup", "0"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        assert_eq!(line["dtype"], "bf16", "{line}");
        assert_eq!(line["path"], "reference", "{line}");
        assert!(line["step_ms_median"].as_f64().is_some_and(|ms| ms > 0.0), "{line}");
        assert!(line["adapter"].is_null(), "flex names no adapter: {line}");
    }
}

/// A backend without bf16 (wgpu: WGSL has none) is refused with a message, not a panic.
#[cfg(feature = "wgpu-untuned")]
#[test]
fn bench_refuses_bf16_where_the_backend_has_none() {
    let out = Command::new(example("bench")).args(["--train", "--dtype", "bf16", "--backend", "wgpu", "--iters", "1"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bf16"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `eval --task all --data ROOT` runs what ROOT holds (class folders right under it count as
/// zero-shot's) and draws the attention figure of the data's own first image.
#[test]
fn eval_runs_what_the_data_holds_and_draws_its_first_image() {
    let dir = tmpdir("examples-cli", "eval-data");
    let images = fixture("preprocess/images");
    for (class, file) in [("cat", "flower.jpg"), ("dog", "china.jpg")] {
        std::fs::create_dir_all(dir.join("classes").join(class)).unwrap();
        std::fs::copy(images.join(file), dir.join("classes").join(class).join(file)).unwrap();
    }
    std::fs::write(dir.join("captions.csv"), "image,caption\nclasses/cat/flower.jpg,a flower\nclasses/dog/china.jpg,a temple\n").unwrap();
    let eval = |data: &std::path::Path, task: &str| {
        let out = dir.join("results.json");
        let mut cmd = Command::new(example("eval"));
        cmd.args(["--preset", "diffclip_tiny", "--no-cache", "--quiet", "--task", task, "--data"]).arg(data).arg("--output").arg(&out);
        // Without --heatmap the figure goes beside the results, not into the current folder.
        let o = if task == "all" { cmd.output() } else { cmd.arg("--heatmap").arg(dir.join("map.png")).output() }.unwrap();
        let results = o.status.success().then(|| serde_json::from_slice::<serde_json::Value>(&std::fs::read(&out).unwrap()).unwrap());
        (results, String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (results, err) = eval(&dir.join("classes"), "all");
    let results = results.unwrap_or_else(|| panic!("{err}"));
    assert_eq!(results["results"]["zeroshot"]["n_samples"], 2, "{results}");
    assert!(!err.contains("read alike"), "{err}");
    let attention = &results["results"]["attention"];
    assert!(attention["image"].as_str().unwrap().ends_with("cat/flower.jpg"), "{attention}");
    assert_eq!(attention["query"], "a photo of a cat.");
    assert_eq!(attention["png"].as_str(), dir.join("results-attention.png").to_str());
    assert!(dir.join("results-attention.png").is_file());
    // Outputs stay out of the data, and replace only an earlier run's results.
    let refused = |output: &std::path::Path| {
        let o = Command::new(example("eval")).args(["--preset", "diffclip_tiny", "--no-cache", "--quiet", "--task", "zeroshot", "--data"]).arg(dir.join("classes")).arg("--output").arg(output).output().unwrap();
        assert!(!o.status.success(), "{}", output.display());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let image = dir.join("classes/cat/flower.jpg");
    let before = std::fs::read(&image).unwrap();
    assert!(refused(&image).contains("is inside --data"));
    assert!(refused(&dir.join("classes/results.json")).contains("is inside --data"));
    assert_eq!(std::fs::read(&image).unwrap(), before);
    std::fs::write(dir.join("notes.txt"), b"mine").unwrap();
    assert!(refused(&dir.join("notes.txt")).contains("is not an evaluation's results file"));
    assert_eq!(std::fs::read(dir.join("notes.txt")).unwrap(), b"mine");
    // Nor into a --set folder; and a figure replaces only a figure (a PNG image).
    let set = format!("imagenet-r={}", dir.join("classes").display());
    let o = Command::new(example("eval")).args(["--preset", "diffclip_tiny", "--no-cache", "--quiet", "--task", "robustness", "--set", &set, "--output"]).arg(dir.join("classes/r.json")).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("is inside --set"), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(dir.join("mine.png"), b"mine").unwrap();
    let o = Command::new(example("eval")).args(["--preset", "diffclip_tiny", "--no-cache", "--quiet", "--task", "attention", "--data"]).arg(dir.join("classes")).arg("--output").arg(dir.join("r.json")).arg("--heatmap").arg(dir.join("mine.png")).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("exists and is not a PNG image"), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(dir.join("mine.png")).unwrap(), b"mine");
    let (again, err) = eval(&dir.join("classes"), "zeroshot");
    assert!(again.is_some(), "an earlier results file is replaced: {err}");
    // Class names zero-shot cannot tell apart are said (not refused: lists like ImageNet's have them).
    std::fs::write(dir.join("classes/classnames.txt"), "house cat\nHouse  Cat\n").unwrap();
    let (results, err) = eval(&dir.join("classes"), "zeroshot");
    assert!(results.is_some() && err.contains("classes 0 and 1 (cat and dog) are named \"house cat\" and \"House  Cat\""), "{err}");
    std::fs::remove_file(dir.join("classes/classnames.txt")).unwrap();
    // A shipped list of another size (ImageNet's, which repeats names) is a count error, never a panic.
    let o = Command::new(example("eval")).args(["--preset", "diffclip_tiny", "--no-cache", "--quiet", "--task", "zeroshot", "--classnames", "imagenet1k", "--data"]).arg(dir.join("classes")).arg("--output").arg(dir.join("r.json")).output().unwrap();
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.code() == Some(1) && said.contains("2 class folders but 1000 class names"), "{said}");
    // A checkpoint's weights, named in the results; a released model by name from the hub cache
    // (none here: the file it lacks is named), and an unknown name.
    let ckpt = fixture("diffclip_tiny/model.safetensors");
    let o = Command::new(example("eval")).args(["--preset", "diffclip_tiny", "--no-cache", "--quiet", "--task", "zeroshot", "--checkpoint"]).arg(&ckpt).arg("--data").arg(dir.join("classes")).arg("--output").arg(dir.join("r.json")).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("r.json")).unwrap()).unwrap();
    assert_eq!(results["model"]["checkpoint"].as_str(), ckpt.to_str());
    let cache = dir.join("empty-hub-cache");
    std::fs::create_dir_all(&cache).unwrap();
    for (name, says) in [("openai-vit-b16", "openai/clip-vit-base-patch16/model.safetensors is not in the Hugging Face cache"), ("vit-h", "unknown model 'vit-h'")] {
        let o = Command::new(example("eval")).args(["--model", name, "--no-cache", "--quiet", "--task", "zeroshot", "--data"]).arg(dir.join("classes")).arg("--output").arg(dir.join("r.json")).env("HF_HUB_CACHE", &cache).output().unwrap();
        let said = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.code() == Some(1) && said.contains(says), "{said}");
    }
    // A caption file as ROOT: retrieval, and the first image with its caption.
    let (results, err) = eval(&dir.join("captions.csv"), "all");
    let results = results.unwrap_or_else(|| panic!("{err}"));
    assert_eq!(results["results"]["retrieval"]["n_images"], 2, "{results}");
    assert_eq!(results["results"]["attention"]["query"], "a flower");
    // Data without an image: --task attention says to give one.
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    let (results, err) = eval(&dir.join("empty"), "attention");
    assert!(results.is_none() && err.contains("no image found for the attention figure") && err.contains("--image"), "{err}");
}
