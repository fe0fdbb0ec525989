//! `examples/reproduce` and `examples/convert` with a tiny budget, run as a user would: the
//! shape of `results.json`, the statistics it holds, and identical results from the same seeds.

use std::path::{Path, PathBuf};
use std::process::Command;

use diffclip::eval::stats::{mean, paired_t_interval, sample_sd};
use serde_json::Value;

mod common;

use common::example;

fn tmpdir(name: &str) -> common::TestDir {
    common::tmpdir("repro", name)
}

const TINY: [&str; 18] = [
    "--steps", "2", "--train-size", "64", "--test-size", "20", "--width", "16", "--vision-layers", "1", "--text-layers", "1", "--image-size", "16",
    "--batch-size", "8", "--bootstrap", "50",
];

fn run(name: &str, out: &Path, extra: &[&str]) {
    let o = Command::new(example(name)).args(TINY).args(extra).arg("--output").arg(out).output().unwrap();
    assert!(o.status.success(), "{name}: {}", String::from_utf8_lossy(&o.stderr));
}

fn read(path: PathBuf) -> Value {
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

const METRICS: [&str; 7] = ["zero_shot_shape_top1", "zero_shot_color_top1", "image_to_text_r1", "image_to_text_r5", "text_to_image_r1", "text_to_image_r5", "heldout_loss"];

#[test]
fn reproduce_tiny_budget_is_deterministic_with_correct_statistics() {
    let (a, b) = (tmpdir("a"), tmpdir("b"));
    run("reproduce", &a, &["--seeds", "0,1,2", "--eval-every", "1"]);
    run("reproduce", &b, &["--seeds", "0,1,2", "--eval-every", "1"]);
    let bytes = |d: &Path, f: &str| std::fs::read(d.join(f)).unwrap();
    assert_eq!(bytes(&a, "results.json"), bytes(&b, "results.json"), "same seeds, different results");
    assert_eq!(bytes(&a, "runs.json"), bytes(&b, "runs.json"));
    for f in ["table.md", "timing.json", "loss.png", "zero_shot_shape_top1.png", "heldout_loss.png"] {
        assert!(a.join(f).exists(), "{f} missing");
    }

    let r = read(a.join("results.json"));
    let variants = r["variants"].as_object().unwrap();
    assert_eq!(variants.keys().collect::<Vec<_>>(), ["clip", "diffclip", "diffclip-dagger", "diffclip-star"]);
    for (name, v) in variants {
        for m in METRICS {
            let seeds: Vec<f64> = ["0", "1", "2"].iter().map(|s| v["seeds"][s][m].as_f64().unwrap()).collect();
            assert!((v["mean"][m].as_f64().unwrap() - mean(&seeds)).abs() < 1e-12, "{name} {m}");
            assert!((v["sd"][m].as_f64().unwrap() - sample_sd(&seeds)).abs() < 1e-12, "{name} {m}");
        }
    }
    let vs = r["vs_clip"].as_object().unwrap();
    assert_eq!(vs.len(), 3);
    for (name, per) in vs {
        for m in METRICS {
            let d = &per[m];
            let col = |v: &str| ["0", "1", "2"].iter().map(|s| r["variants"][v]["seeds"][s][m].as_f64().unwrap()).collect::<Vec<f64>>();
            let t = paired_t_interval(&col(name), &col("clip"), 0.95).unwrap();
            assert!((d["diff_mean"].as_f64().unwrap() - t.diff_mean).abs() < 1e-12, "{name} {m}");
            assert!((d["ci95"][0].as_f64().unwrap() - t.ci[0]).abs() < 1e-12 && (d["ci95"][1].as_f64().unwrap() - t.ci[1]).abs() < 1e-12);
            let (lo, hi) = (d["ci95_bootstrap"][0].as_f64().unwrap(), d["ci95_bootstrap"][1].as_f64().unwrap());
            assert!(lo <= hi, "{name} {m}: bootstrap [{lo}, {hi}]");
            // Both tests' p-values, and Holm's adjustment over the 24 comparisons never lowers them.
            for test in ["p_t", "p_bootstrap"] {
                let (p, adjusted) = (d[test].as_f64(), d[format!("{test}_holm").as_str()].as_f64());
                if let (Some(p), Some(adjusted)) = (p, adjusted) {
                    assert!((0.0..=1.0).contains(&p) && p <= adjusted && adjusted <= 1.0, "{name} {m} {test}: {p} -> {adjusted}");
                } else {
                    assert_eq!(p.is_some(), adjusted.is_some(), "{name} {m} {test}");
                }
            }
            assert!(d["p_bootstrap"].is_number(), "{name} {m}: the bootstrap always has a p-value");
        }
    }

    // Another seed set gives other numbers (the seed reaches initialisation and data order).
    let c = tmpdir("c");
    run("reproduce", &c, &["--seeds", "3,4", "--variants", "clip,diffclip"]);
    let rc = read(c.join("results.json"));
    assert_ne!(rc["variants"]["clip"]["seeds"]["3"], r["variants"]["clip"]["seeds"]["0"]);
}

#[test]
fn convert_tiny_budget_reports_closeness_and_arms() {
    let out = tmpdir("convert");
    run("convert", &out, &["--seeds", "0,1", "--pretrain-steps", "3"]);
    let r = read(out.join("results.json"));
    let closeness = r["conversion"].as_object().unwrap();
    for (name, c) in closeness {
        let (ci, ct) = (c["image_cosine"].as_f64().unwrap(), c["text_cosine"].as_f64().unwrap());
        assert!((-1.0..=1.0 + 1e-6).contains(&ci) && (-1.0..=1.0 + 1e-6).contains(&ct), "{name}: {ci} {ct}");
        assert!(c["before_finetuning"]["zero_shot_shape_top1"].is_number(), "{name}");
    }
    let arms = r["arms"].as_object().unwrap();
    assert!(arms.contains_key("clip-continued") && arms.contains_key("converted") && arms.contains_key("scratch"));
    for (name, a) in arms {
        for m in METRICS {
            assert!(a["mean"][m].is_number() && a["seeds"]["1"][m].is_number(), "{name} {m}");
        }
    }
    assert!(r["vs_clip_continued"]["converted"]["mean_score"]["ci95"].is_array());
    // A given checkpoint brings its own shape: the results record it (and no pretraining), not
    // the size flags, and the flags it overrides are named.
    let mut flags = TINY.to_vec();
    let width = flags.iter().position(|f| *f == "--width").unwrap() + 1;
    flags[width] = "32";
    let again = tmpdir("convert-checkpoint");
    let o = Command::new(example("convert")).args(&flags).args(["--seeds", "0", "--checkpoint"]).arg(out.join("clip.safetensors")).arg("--output").arg(&*again).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("the model is --checkpoint's (width 16"), "{err}");
    let r = read(again.join("results.json"));
    assert_eq!((r["config"]["shape"]["width"].as_u64(), &r["config"]["pretrain_steps"]), (Some(16), &Value::Null), "{}", r["config"]);
    // A model that is DiffCLIP already is refused before any folder is made.
    let shape = diffclip::train::synthetic::CompactShape { width: 16, vision_layers: 1, text_layers: 1, image_size: 16 };
    let config = diffclip::train::synthetic::compact_config("diffclip", &shape).unwrap();
    let model = config.init(&burn::tensor::Device::flex()).unwrap();
    let diff = out.join("diffclip.safetensors");
    diffclip::clip::save_safetensors(&model, Some(&config), &diff).unwrap();
    let fresh = out.join("never-made");
    let o = Command::new(example("convert")).args(TINY).args(["--seeds", "0", "--checkpoint"]).arg(&diff).arg("--output").arg(&fresh).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("vision layer 0 is already differential"), "{err}");
    assert!(!fresh.exists(), "an output folder was made for a refused model");
}

#[test]
fn a_repeated_seed_is_refused_before_any_training() {
    for name in ["reproduce", "convert"] {
        let out = tmpdir(&format!("{name}-dup"));
        let o = Command::new(example(name)).args(TINY).args(["--seeds", "0,1,0"]).arg("--output").arg(&*out).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains("--seeds lists 0 twice"), "{name}: {err}");
        assert!(!out.join("results.json").exists(), "{name}");
        // A bootstrap over a handful of test samples would call anything clear.
        let few: Vec<&str> = TINY.iter().map(|a| if *a == "20" { "5" } else { a }).collect(); // --test-size 5
        let o = Command::new(example(name)).args(few).arg("--output").arg(&*out).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains("--test-size 5 is below 20"), "{name}: {err}");
        // As would an interval of a handful of resamples.
        let few: Vec<&str> = TINY.iter().map(|a| if *a == "50" { "5" } else { a }).collect(); // --bootstrap 5
        let o = Command::new(example(name)).args(few).arg("--output").arg(&*out).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains("--bootstrap") && err.contains("40..=100000"), "{name}: {err}");
    }
    // A folder holding an earlier run's files is refused before any training, and left as it was.
    let earlier = tmpdir("earlier-run");
    std::fs::write(earlier.join("results.json"), b"{}").unwrap();
    for (name, flags) in [("reproduce", &TINY[..]), ("convert", &TINY[..]), ("quickstart", &["--steps", "1"][..])] {
        let o = Command::new(example(name)).args(flags).arg("--output").arg(&*earlier).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.code() == Some(1) && err.contains("already holds files") && err.contains("--overwrite"), "{name}: {err}");
        assert_eq!(std::fs::read_dir(&*earlier).unwrap().count(), 1, "{name}");
        assert_eq!(std::fs::read(earlier.join("results.json")).unwrap(), b"{}");
    }
    // Every difference is to clip.
    let out = tmpdir("no-clip");
    let o = Command::new(example("reproduce")).args(TINY).args(["--variants", "diffclip,diffclip-star"]).arg("--output").arg(&*out).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("has no clip"), "{err}");
    // A training set that cannot be iterated, or is smaller than a batch, is named before any
    // folder is made.
    for name in ["reproduce", "convert"] {
        for (size, says) in [("100000000000000000", "--train-size 100000000000000000: an epoch's order alone needs"), ("4", "--train-size 4 is smaller than one batch (--batch-size 8)")] {
            let fresh = out.join(format!("{name}-{size}"));
            let flags: Vec<&str> = TINY.iter().map(|a| if *a == "64" { size } else { a }).collect(); // --train-size
            let o = Command::new(example(name)).args(flags).arg("--output").arg(&fresh).output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.code() == Some(1) && err.contains(says), "{name}: {err}");
            assert!(!fresh.exists(), "{name}");
        }
    }
}

#[test]
fn a_stopped_comparison_keeps_its_finished_runs() {
    let out = tmpdir("stopped");
    // Runs of 400 steps: the first is kept long before the sixth could end.
    let flags: Vec<&str> = TINY.iter().map(|a| if *a == "2" { "400" } else { a }).collect(); // --steps
    // Over an earlier comparison: its results must not stay beside this one's partial runs.
    std::fs::write(out.join("results.json"), b"{}").unwrap();
    let mut child = Command::new(example("reproduce")).args(flags).args(["--seeds", "0,1,2", "--overwrite"]).arg("--output").arg(&*out).stderr(std::process::Stdio::null()).spawn().unwrap();
    let runs = out.join("runs.json");
    let start = std::time::Instant::now();
    while !runs.exists() {
        assert!(child.try_wait().unwrap().is_none(), "reproduce ended before keeping a run");
        assert!(start.elapsed().as_secs() < 300, "no run kept after 300 s");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!out.join("results.json").exists(), "the earlier results were left, or the comparison finished before it was stopped");
    let kept = read(runs);
    let kept = kept.as_array().unwrap();
    assert!(!kept.is_empty() && kept.len() < 6, "{} runs kept", kept.len());
    assert_eq!((kept[0]["variant"].as_str(), kept[0]["seed"].as_u64()), (Some("clip"), Some(0)));
    assert_eq!(kept[0]["losses"].as_array().unwrap().len(), 400);
}
