//! Hostile input and faults against the example programs, run as a user would: untrusted model
//! configs, outputs that are inputs, devices, FIFOs or links, earlier runs in the output folder,
//! non-finite embeddings, bad flags. Each must end with a clear error (exit 1), never an abort,
//! a hang or lost work.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{example, fixture};
use diffclip::clip::ClipConfig;


fn tmpdir(name: &str) -> common::TestDir {
    common::tmpdir("hostile", name)
}

/// Runs `cmd` and kills it after `limit`: a hang is a test failure, not a stuck CI.
fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("{cmd:?} still running after {limit:?}; stderr: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Exit code 1 with a message containing every one of `needles`.
fn assert_clean_error(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "expected exit 1 (a clean error), got {:?}; stderr: {err}", out.status);
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {err}");
    }
}

fn tiny_json(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut v = serde_json::to_value(ClipConfig::diffclip_tiny()).unwrap();
    edit(&mut v);
    v.to_string()
}

fn embed(args: &[&std::ffi::OsStr]) -> Output {
    let mut cmd = Command::new(example("embed"));
    cmd.args(args);
    run_bounded(cmd, Duration::from_secs(60))
}

#[test]
fn hostile_model_json_is_refused_before_allocating() {
    let dir = tmpdir("json");
    let inputs = fixture("diffclip_tiny/inputs.safetensors");
    let ckpt = fixture("diffclip_tiny/model.safetensors");
    let out = dir.join("out.safetensors");
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, Box<dyn Fn(&mut serde_json::Value)>, &str)> = vec![
        ("huge vision", Box::new(|v| { v["vision"]["width"] = 1_000_000.into(); v["vision"]["layers"] = 1000.into(); v["vision"]["heads"] = 1000.into() }), "too large"),
        ("huge text", Box::new(|v| { v["text"]["width"] = 65536.into(); v["text"]["layers"] = 1000.into() }), "too large"),
        ("context_length", Box::new(|v| v["text"]["context_length"] = 1_000_000_000u64.into()), "too large"),
        ("vocab_size", Box::new(|v| v["text"]["vocab_size"] = 4_000_000_000u64.into()), "too large"),
        ("image_size", Box::new(|v| v["vision"]["image_size"] = (1u64 << 20).into()), "too large"),
        ("mlp_ratio huge", Box::new(|v| v["vision"]["mlp_ratio"] = 1e12.into()), "too large"),
        ("layers u64::MAX", Box::new(|v| v["vision"]["layers"] = u64::MAX.into()), "too large"),
        ("in_chans 0", Box::new(|v| v["vision"]["in_chans"] = 0.into()), "in_chans"),
        ("mlp_ratio negative", Box::new(|v| v["vision"]["mlp_ratio"] = (-4.0).into()), "mlp_ratio"),
        ("ln_eps negative", Box::new(|v| v["text"]["ln_eps"] = (-1.0).into()), "ln_eps"),
    ];
    for (name, edit, needle) in cases {
        let cfg = dir.join("model.json");
        std::fs::write(&cfg, tiny_json(edit)).unwrap();
        let o = embed(&["--config".as_ref(), cfg.as_os_str(), "--checkpoint".as_ref(), ckpt.as_os_str(), "--inputs".as_ref(), inputs.as_os_str(), "--output".as_ref(), out.as_os_str()]);
        assert_clean_error(&o, &[needle, "model.json"]);
        assert!(!out.exists(), "{name}: wrote an output");
    }
}

#[test]
fn a_checkpoints_embedded_config_is_untrusted() {
    let dir = tmpdir("embedded");
    let inputs = fixture("diffclip_tiny/inputs.safetensors");
    for (config, needle) in [
        (tiny_json(|v| { v["vision"]["width"] = 1_000_000.into(); v["vision"]["layers"] = 1000.into(); v["vision"]["heads"] = 1000.into() }), "too large"),
        (tiny_json(|v| v["vision"]["in_chans"] = 0.into()), "in_chans"),
    ] {
        let ckpt = dir.join("evil.safetensors");
        let data = [0u8; 4];
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1], &data).unwrap();
        let meta = std::collections::HashMap::from([("diffclip_config".to_string(), config)]);
        std::fs::write(&ckpt, safetensors::serialize([("logit_scale", view)], Some(meta)).unwrap()).unwrap();
        let out = dir.join("out.safetensors");
        let o = embed(&["--checkpoint".as_ref(), ckpt.as_os_str(), "--inputs".as_ref(), inputs.as_os_str(), "--output".as_ref(), out.as_os_str()]);
        assert_clean_error(&o, &[needle, "evil.safetensors"]);
    }
}

#[test]
fn outputs_that_are_inputs_are_refused() {
    let dir = tmpdir("same");
    let ckpt = dir.join("m.safetensors");
    std::fs::copy(fixture("diffclip_tiny/model.safetensors"), &ckpt).unwrap();
    let inputs = dir.join("in.safetensors");
    std::fs::copy(fixture("diffclip_tiny/inputs.safetensors"), &inputs).unwrap();
    let before = std::fs::read(&ckpt).unwrap();
    for target in [&ckpt, &inputs] {
        let o = embed(&["--preset".as_ref(), "diffclip_tiny".as_ref(), "--checkpoint".as_ref(), ckpt.as_os_str(), "--inputs".as_ref(), inputs.as_os_str(), "--output".as_ref(), target.as_os_str()]);
        assert_clean_error(&o, &["also an input"]);
    }
    assert_eq!(std::fs::read(&ckpt).unwrap(), before);

    let good = dir.join("good.png");
    std::fs::copy(fixture("preprocess/images/tiny_1x1.png"), &good).unwrap();
    let image = std::fs::read(&good).unwrap();
    let mut cmd = Command::new(example("preprocess"));
    cmd.arg("--output").arg(&good).arg(&good).arg(fixture("preprocess/images/gray_123x457.png"));
    assert_clean_error(&run_bounded(cmd, Duration::from_secs(60)), &["also an input", "good.png"]);
    assert_eq!(std::fs::read(&good).unwrap(), image, "an input image was overwritten");

    // A tensor named like the header's metadata key would write a file no reader opens.
    let meta = dir.join("__metadata__.png");
    std::fs::copy(fixture("preprocess/images/tiny_1x1.png"), &meta).unwrap();
    let out = dir.join("meta.safetensors");
    let mut cmd = Command::new(example("preprocess"));
    cmd.arg("--size").arg("8").arg("--output").arg(&out).arg(&meta);
    assert_clean_error(&run_bounded(cmd, Duration::from_secs(60)), &["__metadata__.png", "metadata key"]);
    assert!(!out.exists());

    // Outputs memory cannot hold (4000 × 192 MiB) are refused before any image is read.
    let mut cmd = Command::new(example("preprocess"));
    cmd.arg("--size").arg("4096").arg("--output").arg(&out).args((0..4000).map(|i| dir.join(format!("missing-{i}.png"))));
    assert_clean_error(&run_bounded(cmd, Duration::from_secs(60)), &["4000 images at --size 4096 need 750.0 GiB", "GiB available", "several runs"]);
}

fn preprocess_to(output: &Path, umask: Option<&str>) -> Output {
    let exe = example("preprocess");
    let image = fixture("preprocess/images/tiny_1x1.png");
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(format!("umask {}; exec \"$0\" --size 8 --output \"$1\" \"$2\"", umask.unwrap_or("022"))).arg(exe).arg(output).arg(image);
    run_bounded(cmd, Duration::from_secs(60))
}

#[test]
fn special_files_and_links_as_outputs() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let dir = tmpdir("special");

    // A symlink is written through: the link stays, its target gets the tensors.
    let target = dir.join("real.safetensors");
    let link = dir.join("link.safetensors");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let o = preprocess_to(&link, None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link was replaced");
    assert!(safetensors::SafeTensors::deserialize(&std::fs::read(&target).unwrap()).is_ok());

    // A FIFO is refused (not replaced, and no hang).
    let fifo = dir.join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    assert_clean_error(&preprocess_to(&fifo, None), &["FIFO", "fifo"]);
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());

    // A device node is refused and kept (our own node of /dev/full's kind: tests run as root).
    let dev = dir.join("full");
    let made = Command::new("mknod").arg(&dev).args(["c", "1", "7"]).status().unwrap();
    assert!(made.success(), "mknod failed: the tests run as root (CI does)");
    assert_clean_error(&preprocess_to(&dev, None), &["device"]);
    assert!(std::fs::symlink_metadata(&dev).unwrap().file_type().is_char_device(), "the device node was replaced");

    // New files follow the umask (not 0600).
    let out = dir.join("mode.safetensors");
    assert!(preprocess_to(&out, Some("027")).status.success());
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o640);
    let out = dir.join("mode2.safetensors");
    assert!(preprocess_to(&out, Some("022")).status.success());
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o644);
}

#[test]
fn non_finite_embeddings_are_an_error_unless_allowed() {
    let dir = tmpdir("nan");
    let (shape, mut pixels) = {
        let bytes = std::fs::read(fixture("diffclip_tiny/inputs.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let v = st.tensor("image").unwrap();
        (v.shape().to_vec(), v.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect::<Vec<f32>>())
    };
    let per_image = pixels.len() / shape[0];
    pixels[per_image + 5] = f32::NAN; // one NaN pixel in image 1
    let bytes: Vec<u8> = pixels.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, &bytes).unwrap();
    let inputs = dir.join("nan.safetensors");
    std::fs::write(&inputs, safetensors::serialize([("image", view)], None).unwrap()).unwrap();
    let ckpt = fixture("diffclip_tiny/model.safetensors");
    let out = dir.join("out.safetensors");
    let args = |allow: bool| {
        let mut a: Vec<&std::ffi::OsStr> = vec!["--preset".as_ref(), "diffclip_tiny".as_ref(), "--checkpoint".as_ref(), ckpt.as_os_str(), "--inputs".as_ref(), inputs.as_os_str(), "--output".as_ref(), out.as_os_str()];
        if allow {
            a.push("--allow-non-finite".as_ref());
        }
        a
    };
    assert_clean_error(&embed(&args(false)), &["image_embed", "rows 1 ", "not finite"]);
    assert!(!out.exists());
    assert!(embed(&args(true)).status.success());
    assert!(out.exists());
}

#[test]
fn training_into_an_earlier_runs_folder_is_refused() {
    let dir = tmpdir("train");
    let out = dir.join("run");
    let train = |steps: &str, extra: &[&str]| {
        let mut cmd = Command::new(example("train"));
        cmd.args(["--data", "synthetic", "--train-num-samples", "64", "--preset", "diffclip_tiny", "--batch-size", "16", "--steps", steps, "--quiet", "--output"]).arg(&out).args(extra);
        run_bounded(cmd, Duration::from_secs(300))
    };
    let o = train("4", &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ckpt = std::fs::read(out.join("checkpoint-latest.safetensors")).unwrap();
    let model = std::fs::read(out.join("model.safetensors")).unwrap();
    let metrics = std::fs::read(out.join("metrics.jsonl")).unwrap();
    let other_ckpt = dir.join("other/checkpoint-latest.safetensors");
    std::fs::create_dir_all(dir.join("other")).unwrap();
    std::fs::write(&other_ckpt, &ckpt).unwrap();
    let o = train("2", &[]);
    assert_clean_error(&o, &[out.to_str().unwrap(), "--resume", "--overwrite"]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("training 2 steps"), "a refused run was announced");
    assert_eq!(std::fs::read(out.join("checkpoint-latest.safetensors")).unwrap(), ckpt, "checkpoint replaced");
    assert_eq!(std::fs::read(out.join("model.safetensors")).unwrap(), model, "model replaced");
    assert_eq!(std::fs::read(out.join("metrics.jsonl")).unwrap(), metrics, "metrics changed");
    // The folder's own checkpoint, named bare from inside it or through a link to the folder,
    // is this run's: it resumes.
    let link = dir.join("link");
    std::os::unix::fs::symlink(&out, &link).unwrap();
    for (steps, output) in [("6", &out), ("8", &link)] {
        let mut cmd = Command::new(example("train"));
        cmd.current_dir(&out).args(["--data", "synthetic", "--train-num-samples", "64", "--preset", "diffclip_tiny", "--batch-size", "16", "--steps", steps, "--quiet", "--resume", "checkpoint-latest.safetensors", "--output"]).arg(output);
        let o = run_bounded(cmd, Duration::from_secs(300));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let lines = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert!(lines.lines().any(|l| l.contains("\"step\":8")), "{lines}");
    let o = train("2", &["--overwrite"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A replacing run that fails leaves no model of the run it replaced beside its own metrics.
    // (Readable first rows pass the start's probe; a missing image then fails a step.)
    std::fs::copy(fixture("preprocess/images/flower.jpg"), dir.join("a.jpg")).unwrap();
    let rows: String = (0..8).map(|i| format!("nope-{i}.png,gone\n")).collect();
    std::fs::write(dir.join("missing.csv"), format!("filepath,title\na.jpg,a\na.jpg,b\n{rows}")).unwrap();
    let mut cmd = Command::new(example("train"));
    cmd.args(["--data"]).arg(format!("csv:{}", dir.join("missing.csv").display())).args(["--bad-samples", "fail", "--preset", "diffclip_tiny", "--batch-size", "2", "--steps", "5", "--quiet", "--overwrite", "--output"]).arg(&out);
    let o = run_bounded(cmd, Duration::from_secs(120));
    assert!(!o.status.success(), "trained on missing images");
    assert!(!out.join("model.safetensors").exists(), "the replaced run's model was left");
    // ... but kept aside whole, and said so, until a run replacing it writes a checkpoint.
    assert!(String::from_utf8_lossy(&o.stderr).contains("as *.replaced"), "{}", String::from_utf8_lossy(&o.stderr));
    for name in ["model.safetensors", "checkpoint-latest.safetensors", "metrics.jsonl"] {
        assert!(out.join(format!("{name}.replaced")).is_file(), "{name} of the replaced run was lost");
    }
    // A run without --overwrite does not take the kept run for nothing.
    assert_clean_error(&train("2", &[]), &["keeps files of an earlier training run aside as *.replaced", "--overwrite"]);
    assert!(out.join("checkpoint-latest.safetensors.replaced").is_file(), "a refused run let the kept run go");
    assert_clean_error(&train("2", &["--resume", "latest"]), &["no checkpoint at", "is of an earlier run kept aside: rename its files back"]);
    let kept = out.join("checkpoint-latest.safetensors.replaced");
    assert_clean_error(&train("6", &["--resume", kept.to_str().unwrap()]), &["a run kept aside", "rename its files back first"]);
    // Its checkpoint renamed back alone: a resume would go on with the failed run's log.
    std::fs::rename(&kept, out.join("checkpoint-latest.safetensors")).unwrap();
    assert_clean_error(&train("6", &["--resume", "latest"]), &["keeps files of an earlier training run aside", "rename them all back"]);
    std::fs::rename(out.join("checkpoint-latest.safetensors"), &kept).unwrap();
    // Resumed from another folder into this one: the kept run is named, not called a live one.
    let mut cmd = Command::new(example("train"));
    cmd.args(["--data", "synthetic", "--train-num-samples", "64", "--steps", "6", "--quiet", "--resume"]).arg(&other_ckpt).arg("--output").arg(&out);
    assert_clean_error(&run_bounded(cmd, Duration::from_secs(120)), &["keeps files of an earlier training run aside as *.replaced"]);
    // A folder made only to be held is removed when the run is refused.
    let fresh = dir.join("made/for/nothing");
    let mut cmd = Command::new(example("train"));
    cmd.args(["--data", "synthetic", "--preset", "diffclip_tiny", "--steps", "2", "--quiet", "--resume", "latest", "--output"]).arg(&fresh);
    assert_clean_error(&run_bounded(cmd, Duration::from_secs(120)), &["no checkpoint at"]);
    assert!(!dir.join("made").exists(), "a refused run left the folders it made");
    let o = train("2", &["--overwrite"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!out.join("model.safetensors.replaced").exists() && !out.join("checkpoint-latest.safetensors.replaced").exists(), "let go once the new run checkpointed");
    // A log that is a FIFO is refused, overwritten or not, before anything is moved.
    std::fs::remove_file(out.join("metrics.jsonl")).unwrap();
    assert!(Command::new("mkfifo").arg(out.join("metrics.jsonl")).status().unwrap().success());
    assert_clean_error(&train("2", &["--overwrite"]), &["metrics.jsonl", "not a regular file"]);
    assert!(out.join("checkpoint-latest.safetensors").is_file());
    std::fs::remove_file(out.join("metrics.jsonl")).unwrap();
    // Another run writing the folder: refused.
    let held = std::fs::File::open(&out).unwrap();
    held.try_lock().unwrap();
    assert_clean_error(&train("2", &["--overwrite"]), &["is writing to this folder"]);
    assert!(out.join("model.safetensors").is_file() && out.join("checkpoint-latest.safetensors").is_file(), "a refused run moved the running one's files");
    drop(held);
    // A step that would never end.
    assert_clean_error(&train("2", &["--overwrite", "--accum-steps", "9223372036854775808"]), &["at most 65536 batches"]);
    // A model alone (one convert wrote) replaced: kept aside until the first checkpoint, then let go.
    let only = dir.join("model-only");
    std::fs::create_dir_all(&only).unwrap();
    std::fs::copy(out.join("model.safetensors"), only.join("model.safetensors")).unwrap();
    let mut cmd = Command::new(example("train"));
    cmd.args(["--data", "synthetic", "--train-num-samples", "64", "--preset", "diffclip_tiny", "--batch-size", "16", "--steps", "2", "--quiet", "--overwrite", "--output"]).arg(&only);
    let o = run_bounded(cmd, Duration::from_secs(300));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(only.join("model.safetensors").is_file() && !only.join("model.safetensors.replaced").exists(), "the replaced model was not let go");
    // An empty log (a run that failed before its first step) is nothing to keep aside.
    let empty = dir.join("empty-log");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("metrics.jsonl"), b"").unwrap();
    let mut cmd = Command::new(example("train"));
    cmd.args(["--data"]).arg(format!("csv:{}", dir.join("missing.csv").display())).args(["--bad-samples", "fail", "--preset", "diffclip_tiny", "--batch-size", "2", "--steps", "5", "--quiet", "--overwrite", "--output"]).arg(&empty);
    let o = run_bounded(cmd, Duration::from_secs(120));
    assert!(!o.status.success() && !String::from_utf8_lossy(&o.stderr).contains(".replaced"), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!empty.join("metrics.jsonl.replaced").exists(), "an empty log was kept aside");
}

#[test]
fn quickstart_names_the_bad_flag() {
    for (flag, value) in [("--steps", "0"), ("--width", "0"), ("--batch-size", "1"), ("--width", "30"), ("--image-size", "60")] {
        let mut cmd = Command::new(example("quickstart"));
        cmd.args([flag, value, "--output"]).arg(tmpdir("qs"));
        assert_clean_error(&run_bounded(cmd, Duration::from_secs(60)), &[flag]);
    }
}

#[test]
fn special_files_as_inputs_are_refused_without_a_hang() {
    let dir = tmpdir("inputs");
    let fifo = dir.join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let out = dir.join("out");
    // A FIFO as checkpoint, resume checkpoint or model JSON: no writer ever comes.
    let runs: [(&str, Vec<&std::ffi::OsStr>); 3] = [
        ("embed", vec!["--preset".as_ref(), "diffclip_tiny".as_ref(), "--checkpoint".as_ref(), fifo.as_os_str(), "--texts".as_ref(), fifo.as_os_str(), "--output".as_ref(), out.as_os_str()]),
        ("train", vec!["--resume".as_ref(), fifo.as_os_str(), "--output".as_ref(), out.as_os_str()]),
        ("bench", vec!["--config".as_ref(), fifo.as_os_str(), "--iters".as_ref(), "1".as_ref()]),
    ];
    for (program, args) in runs {
        let mut cmd = Command::new(example(program));
        cmd.args(args);
        assert_clean_error(&run_bounded(cmd, Duration::from_secs(60)), &["not a regular file", "FIFO"]);
    }
    // A device is not read into memory.
    let mut cmd = Command::new(example("train"));
    cmd.args(["--resume", "/dev/zero", "--output"]).arg(&out);
    assert_clean_error(&run_bounded(cmd, Duration::from_secs(60)), &["/dev/zero", "device"]);
}

#[test]
fn a_full_standard_output_is_an_error_not_a_panic() {
    for (program, args) in [("config", &["diffclip_tiny"][..]), ("bench", &["--preset", "diffclip_tiny", "--batch", "1", "--iters", "1", "--warmup", "0"])] {
        let mut cmd = Command::new(example(program));
        cmd.args(args).stdout(std::fs::File::create("/dev/full").unwrap()).stderr(Stdio::piped());
        let out = cmd.output().unwrap();
        assert_clean_error(&out, &["standard output"]);
    }
}

#[test]
fn an_attention_figure_never_replaces_an_input() {
    let dir = tmpdir("heatmap");
    let ckpt = dir.join("m.safetensors");
    std::fs::copy(fixture("diffclip_tiny/model.safetensors"), &ckpt).unwrap();
    let before = std::fs::read(&ckpt).unwrap();
    let mut cmd = Command::new(example("eval"));
    cmd.args(["--preset", "diffclip_tiny", "--no-cache", "--quiet", "--task", "attention", "--synthetic-test", "4", "--checkpoint"])
        .arg(&ckpt).arg("--heatmap").arg(&ckpt).arg("--output").arg(dir.join("r.json"));
    assert_clean_error(&run_bounded(cmd, Duration::from_secs(120)), &["--heatmap", "also an input"]);
    assert_eq!(std::fs::read(&ckpt).unwrap(), before, "the checkpoint was overwritten");
}

/// Exit code 2 (clap's refusal of a flag's value) naming the flag.
fn assert_flag_refused(out: &Output, flag: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "expected clap's exit 2, got {:?}; stderr: {err}", out.status);
    assert!(err.contains(flag), "stderr lacks {flag:?}: {err}");
}

#[test]
fn errors_name_the_flag_to_change() {
    let dir = tmpdir("flags");
    let ckpt = fixture("diffclip_tiny/model.safetensors");
    // A batch that cannot fit is refused from the estimate, not aborted in the allocator.
    let mut cmd = Command::new(example("bench"));
    cmd.args(["--preset", "diffclip_vit_b16", "--batch", "1000000000", "--iters", "1"]);
    assert_clean_error(&run_bounded(cmd, Duration::from_secs(60)), &["--batch 1000000000: a batch of 1000000000 needs", "GiB of memory available"]);
    // bench flags its run would ignore.
    for (flags, says) in [(&["--gpu-kernel"][..], "--gpu-kernel applies to wgpu and cuda"), (&["--train", "--batch", "8"], "--batch applies to --train-model vit_b16"), (&["--train", "--text-tokens", "5"], "--text-tokens applies to the encoders' timing")] {
        let mut cmd = Command::new(example("bench"));
        cmd.args(["--iters", "1"]).args(flags);
        assert_clean_error(&run_bounded(cmd, Duration::from_secs(60)), &[says]);
    }
    let mut cmd = Command::new(example("bench"));
    cmd.args(["--train", "--preset", "diffclip_tiny"]);
    assert_flag_refused(&run_bounded(cmd, Duration::from_secs(60)), "--preset");
    for flag in ["--iters", "--warmup"] {
        let mut cmd = Command::new(example("bench"));
        cmd.args(["--preset", "diffclip_tiny", flag, "18446744073709551615"]);
        assert_flag_refused(&run_bounded(cmd, Duration::from_secs(60)), flag);
    }
    // HNSW parameters outside what the graph file can hold.
    for (flag, value) in [("--hnsw-m", "1"), ("--hnsw-m", "256"), ("--ef-construction", "0"), ("--ef-search", "0")] {
        let mut cmd = Command::new(example("search"));
        cmd.args(["--preset", "diffclip_tiny", "--checkpoint"]).arg(&ckpt).args(["--text", "a dog", "--index"]).arg(&dir).args([flag, value]);
        assert_flag_refused(&run_bounded(cmd, Duration::from_secs(60)), flag);
    }
    let mut cmd = Command::new(example("search"));
    cmd.args(["--preset", "diffclip_tiny", "--checkpoint"]).arg(&ckpt).args(["--text", "a dog", "--hnsw-m", "32", "--ef-construction", "8", "--index"]).arg(&dir);
    assert_clean_error(&run_bounded(cmd, Duration::from_secs(60)), &["--ef-construction 8 is below --hnsw-m 32"]);
    // An index that is not there, or holds no shards, is named before the model loads (the
    // checkpoint here does not exist either).
    std::fs::create_dir_all(dir.join("no-shards")).unwrap();
    for (index, says) in [("nope", "--index"), ("no-shards", "no embeddings-NNNNN.safetensors shards")] {
        let mut cmd = Command::new(example("search"));
        cmd.args(["--preset", "diffclip_tiny", "--checkpoint"]).arg(dir.join("missing.safetensors")).args(["--text", "a dog", "--index"]).arg(dir.join(index));
        assert_clean_error(&run_bounded(cmd, Duration::from_secs(60)), &[says, index]);
    }
    // A cache folder that cannot be made, before any image is encoded.
    std::fs::write(dir.join("cache-file"), "").unwrap();
    let mut cmd = Command::new(example("eval"));
    cmd.args(["--preset", "diffclip_tiny", "--checkpoint"]).arg(&ckpt).args(["--quiet", "--task", "zeroshot", "--cache-dir"]).arg(dir.join("cache-file")).arg("--output").arg(dir.join("r.json"));
    assert_clean_error(&run_bounded(cmd, Duration::from_secs(60)), &["--cache-dir:", "cache-file is a file, not a folder"]);
    // A layer the vision tower does not have, before any model is built.
    let mut cmd = Command::new(example("eval"));
    cmd.args(["--preset", "diffclip_tiny", "--no-cache", "--quiet", "--task", "attention", "--layer", "5", "--output"]).arg(dir.join("r.json"));
    let out = run_bounded(cmd, Duration::from_secs(60));
    assert_clean_error(&out, &["--layer 5: the vision tower has 2 layers (0 to 1)"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("random"), "refused before the model is built");
    // A web origin or host written so that it could never match a request.
    for (flag, value) in [("--allow-origin", "http://a/"), ("--allow-origin", "app.example"), ("--allow-host", "")] {
        let mut cmd = Command::new(example("classify"));
        cmd.args(["--preset", "diffclip_tiny", "--checkpoint"]).arg(&ckpt).args(["--labels", "a,b", "--listen", "127.0.0.1:0", flag, value]);
        assert_flag_refused(&run_bounded(cmd, Duration::from_secs(60)), flag);
    }
    // Standard input among files.
    let mut cmd = Command::new(example("classify"));
    cmd.args(["--preset", "diffclip_tiny", "--checkpoint"]).arg(&ckpt).args(["--labels", "a,b", "-"]).arg(fixture("preprocess/images/flower.jpg"));
    assert_clean_error(&run_bounded(cmd, Duration::from_secs(60)), &["`-` (read the images from standard input) must be the only image argument"]);
    // Labels and queries of control characters only: nothing the tokenizer reads.
    let mut cmd = Command::new(example("classify"));
    cmd.args(["--preset", "diffclip_tiny", "--checkpoint"]).arg(&ckpt).args(["--labels", "a dog,\u{1}\u{2},a cat"]).arg(fixture("preprocess/images/flower.jpg"));
    assert_clean_error(&run_bounded(cmd, Duration::from_secs(60)), &["--labels: label 2 is empty"]);
    // In a file such a line is a blank one, skipped.
    std::fs::write(dir.join("queries.txt"), "\u{1}\u{2}\n \n").unwrap();
    let mut cmd = Command::new(example("search"));
    cmd.args(["--preset", "diffclip_tiny", "--checkpoint"]).arg(&ckpt).arg("--queries").arg(dir.join("queries.txt")).arg("--index").arg(dir.join("no-index"));
    assert_clean_error(&run_bounded(cmd, Duration::from_secs(60)), &["queries.txt: no queries (only blank lines)"]);
    // Flags the synthetic set would ignore, and a batch of nothing.
    for (flags, says) in [(&["--templates", "/nonexistent"][..], "--templates applies to --data"), (&["--classnames", "pets"], "--classnames applies to --data"), (&["--set", "imagenet=/nonexistent"], "--set applies to --task robustness (and all), not zeroshot")] {
        let mut cmd = Command::new(example("eval"));
        cmd.args(["--preset", "diffclip_tiny", "--no-cache", "--quiet", "--task", "zeroshot", "--output"]).arg(dir.join("r.json")).args(flags);
        assert_clean_error(&run_bounded(cmd, Duration::from_secs(60)), &[says]);
    }
    // Data that is not there, a robustness set of no known name, a class folder alone.
    let one_class = dir.join("one-class");
    std::fs::create_dir_all(one_class.join("test/cat")).unwrap();
    std::fs::copy(fixture("preprocess/images/flower.jpg"), one_class.join("test/cat/1.jpg")).unwrap();
    for (flags, says) in [
        (vec!["--data".into(), dir.join("nowhere").into_os_string()], "nowhere: No such file".to_string()),
        (vec!["--task".into(), "robustness".into(), "--set".into(), format!("imagenet-aa={}", dir.display()).into()], "unknown set \"imagenet-aa\"".into()),
        (vec!["--task".into(), "zeroshot".into(), "--data".into(), one_class.clone().into_os_string()], "needs at least 2 class folders, found 1".into()),
        (vec!["--task".into(), "attention".into(), "--heatmap".into(), dir.join("map.jpg").into_os_string()], "give a path ending in .png".into()),
        (vec!["--task".into(), "attention".into(), "--heatmap".into(), dir.join("no/map.png").into_os_string()], format!("--heatmap: {}: its folder {} does not exist", dir.join("no/map.png").display(), dir.join("no").display())),
    ] {
        let mut cmd = Command::new(example("eval"));
        cmd.args(["--preset", "diffclip_tiny", "--no-cache", "--quiet", "--output"]).arg(dir.join("r.json")).args(&flags);
        assert_clean_error(&run_bounded(cmd, Duration::from_secs(60)), &[&says]);
    }
    // Data where no evaluation finds its layout fails before the attention figure is drawn.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let mut cmd = Command::new(example("eval"));
    cmd.args(["--preset", "diffclip_tiny", "--no-cache", "--quiet", "--data"]).arg(&empty).arg("--heatmap").arg(dir.join("h.png")).arg("--output").arg(dir.join("nothing.json"));
    assert_clean_error(&run_bounded(cmd, Duration::from_secs(60)), &["no evaluation found its data there"]);
    assert!(!dir.join("h.png").exists() && !dir.join("nothing.json").exists(), "drew or wrote for nothing");
    let mut cmd = Command::new(example("eval"));
    cmd.args(["--preset", "diffclip_tiny", "--batch-size", "0", "--output"]).arg(dir.join("r.json"));
    assert_flag_refused(&run_bounded(cmd, Duration::from_secs(60)), "--batch-size");
    // The pixel guard says how to raise it, and the environment raises it for every program.
    let image = fixture("preprocess/images/gray_123x457.png");
    let preprocess = |env: Option<&str>, flag: Option<&str>| {
        let mut cmd = Command::new(example("preprocess"));
        cmd.args(["--size", "8", "--output"]).arg(dir.join("p.safetensors")).arg(&image);
        if let Some(v) = env {
            cmd.env("DIFFCLIP_MAX_PIXELS", v);
        }
        if let Some(v) = flag {
            cmd.args(["--max-pixels", v]);
        }
        run_bounded(cmd, Duration::from_secs(60))
    };
    assert_clean_error(&preprocess(None, Some("1000")), &["above the limit of 1000 pixels", "DIFFCLIP_MAX_PIXELS=N", "--max-pixels"]);
    assert_clean_error(&preprocess(Some("1e3"), None), &["above the limit of 1000 pixels"]);
    assert!(preprocess(Some("1e3"), Some("100000")).status.success(), "the flag wins over the environment");
    // A limit meant to be changed that cannot be read stops the program, named.
    assert_clean_error(&preprocess(Some("abc"), None), &["DIFFCLIP_MAX_PIXELS=abc: not a positive count"]);
    // Settings wrong whatever the model and data are refused before anything is built or announced.
    for (flags, says) in [
        (&["--steps", "0"][..], "--steps must be at least 1"),
        (&["--epochs", "0"], "--epochs must be a positive number, got 0"),
        (&["--steps", "2", "--lr", "0"], "lr (--lr) must be a finite number > 0, got 0"),
        (&["--steps", "2", "--batch-size", "1"], "batch_size (--batch-size) must be at least 2"),
        (&["--steps", "2", "--truncate", "bogus"], "unknown truncation policy \"bogus\""),
        (&["--steps", "2", "--devices", "100000"], "--devices must be from 1 to 1024, got 100000"),
    ] {
        let mut cmd = Command::new(example("train"));
        cmd.args(["--preset", "diffclip_tiny", "--data", "synthetic", "--output"]).arg(dir.join("refused")).args(flags);
        let out = run_bounded(cmd, Duration::from_secs(60));
        assert_clean_error(&out, &[says]);
        assert!(!String::from_utf8_lossy(&out.stderr).contains("model:"), "{flags:?}: announced a model first");
        assert!(!dir.join("refused").exists(), "{flags:?}: made the output folder");
    }
    // More replicas than samples in a batch.
    let mut cmd = Command::new(example("train"));
    cmd.args(["--preset", "diffclip_tiny", "--data", "synthetic", "--batch-size", "4", "--steps", "1", "--devices", "5", "--quiet", "--output"]).arg(dir.join("replicas"));
    assert_clean_error(&run_bounded(cmd, Duration::from_secs(120)), &["--devices 5 is more than the batch of 4 samples"]);
    // A held-out CSV of one image: the flag's prefix is not repeated, and no column hint.
    let one = dir.join("one.csv");
    std::fs::write(&one, "filepath,title\na.png,a cat\n").unwrap();
    let mut cmd = Command::new(example("train"));
    cmd.args(["--preset", "diffclip_tiny", "--data", "synthetic", "--steps", "1", "--quiet", "--eval"]).arg(format!("csv:{}", one.display())).arg("--output").arg(dir.join("one-eval"));
    let out = run_bounded(cmd, Duration::from_secs(120));
    assert_clean_error(&out, &[&format!("--eval csv:{0}: invalid argument: {0}: retrieval needs at least 2 images, found 1", one.display())]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("its columns"), "a column hint for a row count");
    // A warm-up longer than the run is allowed, and said.
    let mut cmd = Command::new(example("train"));
    cmd.args(["--preset", "diffclip_tiny", "--data", "synthetic", "--batch-size", "4", "--steps", "1", "--warmup-steps", "5", "--quiet", "--output"]).arg(dir.join("run"));
    let out = run_bounded(cmd, Duration::from_secs(120));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.contains("warning: the warm-up (--warmup-steps/--warmup-epochs) of 5 steps is longer than the run's 1"), "{err}");
}

#[test]
fn a_failed_evaluation_keeps_the_trained_model() {
    let dir = tmpdir("eval-fails");
    std::fs::copy(fixture("preprocess/images/flower.jpg"), dir.join("a.jpg")).unwrap();
    std::fs::write(dir.join("b.jpg"), b"not a jpeg").unwrap();
    std::fs::write(dir.join("val.csv"), "filepath,title\na.jpg,a flower\nb.jpg,a broken file\n").unwrap();
    let train = |csv: &str, out: &str| {
        let mut cmd = Command::new(example("train"));
        cmd.args(["--preset", "diffclip_tiny", "--data", "synthetic", "--steps", "2", "--batch-size", "4", "--quiet", "--eval"]).arg(format!("csv:{}", dir.join(csv).display())).arg("--output").arg(dir.join(out));
        run_bounded(cmd, Duration::from_secs(120))
    };
    // An image that cannot be decoded fails the evaluation, not the training before it.
    let out = train("val.csv", "run");
    assert_clean_error(&out, &["--eval failed at step 2", "b.jpg", "the trained model and checkpoint are written"]);
    assert!(dir.join("run/model.safetensors").is_file() && dir.join("run/checkpoint-latest.safetensors").is_file());
    // A missing one is refused before training.
    std::fs::write(dir.join("gone.csv"), "filepath,title\na.jpg,a flower\nnope.jpg,nothing\n").unwrap();
    let out = train("gone.csv", "never");
    assert_clean_error(&out, &["gone.csv:3: image", "nope.jpg is not a file"]);
    assert!(!dir.join("never/metrics.jsonl").exists(), "trained before refusing");
}

#[test]
fn a_corrupt_tar_is_reported_without_its_raw_bytes() {
    let dir = tmpdir("tar");
    // One sample, then the checksum field overwritten with a terminal escape sequence.
    let tar_path = dir.join("shard-0.tar");
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in [("0.png", std::fs::read(fixture("preprocess/images/tiny_1x1.png")).unwrap()), ("0.txt", b"a dot".to_vec())] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, data.as_slice()).unwrap();
    }
    let mut bytes = builder.into_inner().unwrap();
    bytes[148..156].copy_from_slice(b"\x1b[31m\x07\xff\0");
    std::fs::write(&tar_path, bytes).unwrap();
    let out_dir = dir.join("index");
    let mut cmd = Command::new(example("embed"));
    cmd.args(["--preset", "diffclip_tiny", "--checkpoint"]).arg(fixture("diffclip_tiny/model.safetensors")).arg("--data").arg(format!("wds:{}", tar_path.display())).arg("--output").arg(&out_dir);
    let out = run_bounded(cmd, Duration::from_secs(60));
    assert_clean_error(&out, &["shard-0.tar: corrupt or truncated archive after member", "numeric field", "no sample of this job could be read (1 skipped"]);
    assert!(!out.stderr.contains(&0x1b) && !out.stderr.contains(&0x07), "raw control bytes on stderr");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("[31m"), "the header's bytes echoed");
    let shards: Vec<_> = std::fs::read_dir(&out_dir).map(|d| d.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "safetensors")).collect()).unwrap_or_default();
    assert!(shards.is_empty(), "an empty index was left behind: {shards:?}");
    assert!(!out_dir.exists(), "the output folder this run made was left behind, empty");
}

#[test]
fn names_from_files_cannot_break_lines_or_send_escapes() {
    let dir = tmpdir("names");
    let images = dir.join("images");
    std::fs::create_dir(&images).unwrap();
    std::fs::copy(fixture("preprocess/images/tiny_1x1.png"), images.join("red\n\u{1b}[31mline.png")).unwrap();
    let ckpt = fixture("diffclip_tiny/model.safetensors");
    let mut cmd = Command::new(example("classify"));
    cmd.args(["--preset", "diffclip_tiny", "--checkpoint"]).arg(&ckpt).args(["--labels", "a dog,a \u{1b}[32mcat", "--templates", "simple"]).arg(&images);
    let out = run_bounded(cmd, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.lines().count(), 1, "one image, one line: {stdout}");
    assert!(stdout.contains("red\\u{a}\\u{1b}[31mline.png: ") && stdout.contains("a \\u{1b}[32mcat"), "{stdout}");
    assert!(!out.stdout.contains(&0x1b), "raw escape on stdout");
    // A query of control characters only is no query.
    let mut cmd = Command::new(example("search"));
    cmd.args(["--preset", "diffclip_tiny", "--checkpoint"]).arg(&ckpt).args(["--text", "\u{1}\u{2}", "--index"]).arg(&dir);
    assert_flag_refused(&run_bounded(cmd, Duration::from_secs(60)), "--text");
}

/// The tiny model's checkpoint with every value of `tensor` replaced by `value`.
fn tiny_with(dir: &Path, tensor: &str, value: f32) -> std::path::PathBuf {
    let bytes = std::fs::read(fixture("diffclip_tiny/model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(name, v)| {
            let data = match name == tensor {
                true => value.to_le_bytes().repeat(v.data().len() / 4),
                false => v.data().to_vec(),
            };
            (name, v.shape().to_vec(), data)
        })
        .collect();
    let views = data.iter().map(|(n, s, d)| (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap()));
    let path = dir.join(format!("{tensor}.safetensors"));
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
    path
}

#[test]
fn classify_gives_probabilities_or_an_error_never_nan() {
    let dir = tmpdir("classify-nan");
    let image = fixture("preprocess/images/flower.jpg");
    let classify = |ckpt: &Path| {
        let mut cmd = Command::new(example("classify"));
        cmd.args(["--preset", "diffclip_tiny", "--labels", "dog,cat", "--json", "--checkpoint"]).arg(ckpt).arg(&image);
        run_bounded(cmd, Duration::from_secs(60))
    };
    // A temperature whose exp overflows f32 still ranks: the softmax runs in f64.
    let out = classify(&tiny_with(&dir, "logit_scale", 100.0));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let total: f64 = answer["top"].as_array().unwrap().iter().map(|t| t["probability"].as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-5, "{answer}");
    // A model that embeds to infinity is an error naming the image, not NaN probabilities.
    let out = classify(&tiny_with(&dir, "visual.pos_embed", 3e38));
    assert_clean_error(&out, &["flower.jpg", "NaN or infinity"]);
    assert!(out.stdout.is_empty());
}

#[test]
fn attention_benchmarks_refuse_sizes_that_cannot_be_held() {
    for program in ["attention_ratio", "attention_memory"] {
        for (size, says) in [("9223372036854775808", "more than any tensor can hold"), ("4294967296", "more than any tensor can hold"), ("100000", "GiB needed")] {
            let mut cmd = Command::new(example(program));
            cmd.args(["--n", size, "--batch", size]);
            assert_clean_error(&run_bounded(cmd, Duration::from_secs(30)), &[&format!("--n {size} --batch {size}: "), says]);
        }
    }
    // Flags without effect are refused rather than echoed in the results as if they had one.
    let mut cmd = Command::new(example("attention_ratio"));
    cmd.args(["--n", "4", "--batch", "1", "--iters", "1", "--gpu-kernel"]);
    assert_clean_error(&run_bounded(cmd, Duration::from_secs(30)), &["--gpu-kernel applies to wgpu and cuda"]);
    let mut cmd = Command::new(example("attention_ratio"));
    cmd.args(["--n", "4", "--iters", "1", "--warmup", "18446744073709551615"]);
    assert_flag_refused(&run_bounded(cmd, Duration::from_secs(30)), "--warmup");
    let mut cmd = Command::new(example("attention_memory"));
    cmd.args(["--n", "8", "--all", "--kind", "standard"]);
    assert_flag_refused(&run_bounded(cmd, Duration::from_secs(30)), "--kind");
    for (flags, flag) in [(&["--config", "m.json", "--preset", "diffclip_tiny"][..], "--preset"), (&["--image-only", "--text-batch", "3"], "--text-batch")] {
        let mut cmd = Command::new(example("bench"));
        cmd.args(flags);
        assert_flag_refused(&run_bounded(cmd, Duration::from_secs(30)), flag);
    }
}

#[test]
fn load_memory_replaces_nothing_and_reads_only_files() {
    let dir = tmpdir("load-memory");
    let kept = dir.join("kept.bin");
    std::fs::write(&kept, b"keep").unwrap();
    let mut cmd = Command::new(example("load_memory"));
    cmd.args(["--preset", "diffclip_tiny", "--write-training"]).arg(&kept);
    assert_clean_error(&run_bounded(cmd, Duration::from_secs(30)), &["--write-training", "exists; give a new path"]);
    assert_eq!(std::fs::read(&kept).unwrap(), b"keep");
    let mut cmd = Command::new(example("load_memory"));
    cmd.args(["--preset", "diffclip_tiny", "--whole-file", "--checkpoint", "/dev/zero"]);
    assert_clean_error(&run_bounded(cmd, Duration::from_secs(30)), &["/dev/zero: not a regular file"]);
}

#[test]
fn embedding_a_table_without_a_usable_row_is_an_error() {
    let dir = tmpdir("empty-table");
    let ckpt = fixture("diffclip_tiny/model.safetensors");
    for (name, body, needles) in [
        ("header.csv", "filepath,title\n", vec!["header.csv: no usable rows"]),
        ("ragged.csv", "filepath,title\nflower.jpg\n", vec!["ragged.csv: no usable rows (1 malformed"]),
    ] {
        let csv = dir.join(name);
        std::fs::write(&csv, body).unwrap();
        let out = dir.join(format!("{name}.index"));
        let data = format!("csv:{}", csv.display());
        assert_clean_error(&embed(&["--preset".as_ref(), "diffclip_tiny".as_ref(), "--checkpoint".as_ref(), ckpt.as_os_str(), "--data".as_ref(), data.as_ref(), "--output".as_ref(), out.as_os_str()]), &needles);
        assert!(!out.exists());
    }
}

#[test]
fn inputs_listed_twice_are_refused_not_indexed_twice() {
    let dir = tmpdir("twice");
    let images = fixture("preprocess/images");
    let ckpt = fixture("diffclip_tiny/model.safetensors");
    let model = ["--preset".as_ref(), "diffclip_tiny".as_ref(), "--checkpoint".as_ref(), ckpt.as_os_str()];
    // A folder and a file inside it: the file would be two rows of the index.
    let inside = images.join("tiny_1x1.png");
    let out = embed(&[&model[..], &["--images".as_ref(), images.as_os_str(), inside.as_os_str(), "--output".as_ref(), dir.join("a").as_os_str()]].concat());
    assert_clean_error(&out, &["--images", "tiny_1x1.png is listed twice"]);
    assert!(!dir.join("a").exists());
    let pattern = format!("wds:{}/{{x,y,x}}.tar", dir.display());
    let out = embed(&[&model[..], &["--data".as_ref(), pattern.as_ref(), "--output".as_ref(), dir.join("b").as_os_str()]].concat());
    assert_clean_error(&out, &["x.tar is listed twice (shards 1 and 3 of 3)"]);
}

#[test]
fn file_names_that_are_not_utf8_are_answered_or_left_out_never_altered() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tmpdir("not-utf8");
    let images = dir.join("images");
    std::fs::create_dir(&images).unwrap();
    std::fs::copy(fixture("preprocess/images/tiny_1x1.png"), images.join(std::ffi::OsStr::from_bytes(b"\xff\xfe.png"))).unwrap();
    std::fs::copy(fixture("preprocess/images/tiny_1x1.png"), images.join("plain.png")).unwrap();
    let ckpt = fixture("diffclip_tiny/model.safetensors");
    // classify --json answers both, saying which name JSON cannot hold exactly.
    let mut cmd = Command::new(example("classify"));
    cmd.args(["--preset", "diffclip_tiny", "--checkpoint"]).arg(&ckpt).args(["--labels", "a dog,a cat", "--templates", "simple", "--json"]).arg(&images);
    let out = run_bounded(cmd, Duration::from_secs(60));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    let odd = lines.iter().find(|l| l["path_not_utf8"] == true).expect("the odd name is flagged");
    assert!(odd["path"].as_str().unwrap().ends_with("\u{fffd}\u{fffd}.png") && odd["top"].is_array(), "{odd}");
    // embed leaves it out, reported, rather than index it under another name.
    let index = dir.join("index");
    let out = embed(&["--preset".as_ref(), "diffclip_tiny".as_ref(), "--checkpoint".as_ref(), ckpt.as_os_str(), "--images".as_ref(), images.as_os_str(), "--output".as_ref(), index.as_os_str()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("its name is not UTF-8"), "{err}");
    let rows = common::shard_rows(&index, "image_embed");
    assert_eq!(rows.len(), 1, "{:?}", rows.iter().map(|r| &r.0).collect::<Vec<_>>());
    assert!(rows[0].0.ends_with("plain.png"));
}

#[test]
fn an_index_folder_is_one_jobs_and_its_foreign_files_are_kept() {
    let dir = tmpdir("index-owner");
    let index = dir.join("index");
    std::fs::create_dir(&index).unwrap();
    let ckpt = fixture("diffclip_tiny/model.safetensors");
    let images = fixture("preprocess/images");
    let run = |extra: &[&str]| {
        let args: Vec<&std::ffi::OsStr> = ["--preset".as_ref(), "diffclip_tiny".as_ref(), "--checkpoint".as_ref(), ckpt.as_os_str(), "--images".as_ref(), images.as_os_str(), "--output".as_ref(), index.as_os_str()].into_iter().chain(extra.iter().map(|a| a.as_ref())).collect();
        embed(&args)
    };
    // Another job holds the folder: refused, nothing written.
    let other = std::fs::File::open(&index).unwrap();
    other.try_lock().unwrap();
    assert_clean_error(&run(&[]), &["is writing to this folder"]);
    assert_eq!(std::fs::read_dir(&index).unwrap().count(), 0);
    // The parts of a split job share it.
    other.unlock().unwrap();
    other.try_lock_shared().unwrap();
    assert_clean_error(&run(&[]), &["is writing to this folder", "split with --shard may share it"]);
    let out = run(&["--shard", "0/2", "--rows-per-shard", "4"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    drop(other);
    // A file of a shard's name that embed did not write is not replaced.
    let foreign = index.join("embeddings-00001.safetensors");
    std::fs::write(&foreign, b"precious").unwrap();
    let out = run(&["--shard", "1/2", "--rows-per-shard", "4"]);
    assert_clean_error(&out, &["embeddings-00001.safetensors", "no shard embed wrote"]);
    assert_eq!(std::fs::read(&foreign).unwrap(), b"precious");
}
