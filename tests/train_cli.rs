//! `examples/train.rs` run as a user would: a tiny CSV dataset of PNGs, a few steps, `--resume`,
//! bad data, and a training process killed for real mid-run.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::example;


fn tmpdir(name: &str) -> common::TestDir {
    common::tmpdir("train-cli", name)
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// An RGB PNG (zlib "stored" blocks: no compressor needed).
fn png(w: u32, h: u32, pixel: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let mut raw = Vec::new();
    for y in 0..h {
        raw.push(0u8);
        for x in 0..w {
            raw.extend(pixel(x, y));
        }
    }
    let mut z = vec![0x78, 0x01];
    let n = raw.chunks(65_535).count();
    for (i, block) in raw.chunks(65_535).enumerate() {
        z.push(u8::from(i + 1 == n));
        z.extend((block.len() as u16).to_le_bytes());
        z.extend((!(block.len() as u16)).to_le_bytes());
        z.extend(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + byte as u32) % 65_521;
        b = (b + a) % 65_521;
    }
    z.extend(((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend(data);
        out.extend(&body);
        out.extend(crc32(&body).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &z);
    chunk(b"IEND", &[]);
    out
}

const COLORS: [(&str, [u8; 3]); 4] = [
    ("red", [220, 30, 30]),
    ("green", [30, 200, 40]),
    ("blue", [30, 40, 220]),
    ("yellow", [230, 220, 30]),
];

/// `n` images (a coloured square on grey, 40x40) and `train.csv` (`filepath,title`).
fn csv_dataset(dir: &Path, n: usize) -> PathBuf {
    std::fs::create_dir_all(dir.join("images")).unwrap();
    let mut csv = String::from("filepath,title\n");
    for i in 0..n {
        let (name, rgb) = COLORS[i % COLORS.len()];
        let off = (i as u32 * 3) % 12;
        let img = png(40, 40, |x, y| {
            if (8 + off..28 + off).contains(&x) && (6..26).contains(&y) {
                rgb
            } else {
                [128, 128, 128]
            }
        });
        std::fs::write(dir.join(format!("images/{i:03}.png")), img).unwrap();
        csv.push_str(&format!(
            "images/{i:03}.png,\"a {name} square, number {i}\"\n"
        ));
    }
    let path = dir.join("train.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

fn train(args: &[&str]) -> Output {
    Command::new(example("train"))
        .args(args)
        .arg("--quiet")
        .output()
        .unwrap()
}

/// `(step, loss)` of every training record in `metrics.jsonl`.
fn steps(out: &Path) -> Vec<(u64, f64)> {
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("loss").is_some())
        .map(|v| (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap()))
        .collect()
}

/// The steps of the complete lines of a log another process may be writing.
fn complete_steps(out: &Path) -> Vec<(u64, f64)> {
    let Ok(text) = std::fs::read_to_string(out.join("metrics.jsonl")) else { return vec![] };
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("loss").is_some())
        .map(|v| (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap()))
        .collect()
}

/// The step recorded in a training checkpoint's metadata.
fn checkpoint_step(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&meta.metadata().as_ref().unwrap()["diffclip_training"]).unwrap();
    json["state"]["step"].as_u64().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn trains_on_a_csv_then_resumes() {
    let dir = tmpdir("csv");
    let csv = csv_dataset(&dir, 12);
    let out = dir.join("out");
    let data = format!("csv:{}", csv.display());
    let common = [
        "--data",
        &data,
        "--batch-size",
        "4",
        "--workers",
        "2",
        "--output",
        out.to_str().unwrap(),
    ];
    let o = train(
        &[
            &common[..],
            &[
                "--preset",
                "diffclip_tiny",
                "--steps",
                "3",
                "--checkpoint-every",
                "2",
                "--eval",
                &data,
            ],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("checkpoint-latest.safetensors").exists());
    assert!(out.join("model.safetensors").exists());
    assert_eq!(
        steps(&out).iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(
        checkpoint_step(&out.join("checkpoint-latest.safetensors")),
        3
    );
    let log = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert!(
        log.contains("image_to_text_r1"),
        "the end-of-run evaluation is logged: {log}"
    );

    let o = train(&[&common[..], &["--resume", "--steps", "5"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("at step 3"), "{}", stderr(&o));
    assert_eq!(
        steps(&out).iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(
        checkpoint_step(&out.join("checkpoint-latest.safetensors")),
        5
    );
    assert!(steps(&out).iter().all(|s| s.1.is_finite()));
}

/// The `TrainConfig::data` a training checkpoint stores.
fn checkpoint_data(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let json: serde_json::Value = serde_json::from_str(&meta.metadata().as_ref().unwrap()["diffclip_training"]).unwrap();
    json["train"]["data"].clone()
}

#[test]
fn a_resumed_run_reads_its_data_as_the_stopped_one_did() {
    let dir = tmpdir("data-flags");
    let csv = csv_dataset(&dir, 8);
    let out = dir.join("out");
    let data = format!("csv:{}", csv.display());
    let o = train(&["--data", &data, "--preprocess", "openai", "--preset", "diffclip_tiny", "--batch-size", "4", "--steps", "2", "--output", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ckpt = out.join("checkpoint-latest.safetensors");
    let stored = checkpoint_data(&ckpt);
    assert_eq!((stored["data"].as_str(), stored["preprocess"].as_str(), stored["shuffle_buffer"].as_str()), (Some(data.as_str()), Some("openai"), Some("2000")));
    // Resumed with neither --data nor --preprocess: both come from the checkpoint, and the
    // longer run's cosine is announced.
    let o = train(&["--resume", "--steps", "4", "--output", out.to_str().unwrap()]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains(&csv.display().to_string()) && err.contains("4 steps instead of the stopped run's 2"), "{err}");
    assert!(!err.contains("warning"), "{err}");
    assert_eq!(checkpoint_data(&ckpt)["preprocess"], "openai", "the resumed run kept the stopped run's preprocessing");
    // Given differently, a data flag is used, with a warning.
    let o = train(&["--resume", "--steps", "5", "--preprocess", "slip", "--output", out.to_str().unwrap()]);
    let err = stderr(&o);
    assert!(o.status.success() && err.contains("--preprocess slip differs from the stopped run's openai"), "{err}");
    assert_eq!(checkpoint_data(&ckpt)["preprocess"], "slip");

    // A path given relative to the folder a run starts in is stored absolute: resumed from
    // another folder, the run reads the same files, without a warning.
    let name = csv.file_name().unwrap().to_str().unwrap();
    let run_in = |folder: &Path, args: &[&str]| Command::new(example("train")).current_dir(folder).args(args).arg("--quiet").output().unwrap();
    let o = run_in(&dir, &["--data", &format!("csv:{name}"), "--preset", "diffclip_tiny", "--batch-size", "4", "--steps", "2", "--output", "rel"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rel = dir.join("rel");
    let absolute = format!("csv:{}", std::fs::canonicalize(&dir).unwrap().join(name).display());
    assert_eq!(checkpoint_data(&rel.join("checkpoint-latest.safetensors"))["data"], absolute.as_str());
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let o = run_in(&elsewhere, &["--resume", "--steps", "3", "--output", rel.to_str().unwrap()]);
    let err = stderr(&o);
    assert!(o.status.success() && !err.contains("warning"), "{err}");
    // A stored path that is gone is named as the stopped run's.
    std::fs::rename(&csv, dir.join("moved.csv")).unwrap();
    let o = run_in(&elsewhere, &["--resume", "--steps", "4", "--output", rel.to_str().unwrap()]);
    let err = stderr(&o);
    assert!(!o.status.success() && err.contains("is the stopped run's") && err.contains(name), "{err}");
}

#[test]
fn a_resumed_run_refuses_data_changed_since_unless_named_again() {
    let dir = tmpdir("data-changed");
    let csv = csv_dataset(&dir, 8);
    let out = dir.join("out");
    let data = format!("csv:{}", csv.display());
    let o = train(&["--data", &data, "--preset", "diffclip_tiny", "--batch-size", "4", "--steps", "2", "--output", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ckpt = out.join("checkpoint-latest.safetensors");
    let stored = |ckpt: &Path| {
        let bytes = std::fs::read(ckpt).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let json: serde_json::Value = serde_json::from_str(&meta.metadata().as_ref().unwrap()["diffclip_training"]).unwrap();
        json["state"]["data"].as_str().unwrap().to_string()
    };
    let first = stored(&ckpt);
    assert!(first.starts_with("CSV of 8 rows, CRC-32 "), "{first}");
    // The same rows resume without a word; one caption edited is other data, refused.
    let o = train(&["--resume", "--steps", "3", "--output", out.to_str().unwrap()]);
    assert!(o.status.success() && !stderr(&o).contains("differ"), "{}", stderr(&o));
    let text = std::fs::read_to_string(&csv).unwrap();
    std::fs::write(&csv, text.replacen("number 3", "number three", 1)).unwrap();
    let o = train(&["--resume", "--steps", "4", "--output", out.to_str().unwrap()]);
    let err = stderr(&o);
    assert!(!o.status.success() && err.contains(&format!("the data differ from those the stopped run trained on ({first}; now CSV of 8 rows")), "{err}");
    assert!(err.contains(&format!("give --data {data} again")), "{err}");
    assert_eq!(checkpoint_step(&ckpt), 3, "nothing was trained");
    // Named again, the data are taken as they are now, with a warning, and stored.
    let o = train(&["--resume", "--steps", "4", "--data", &data, "--output", out.to_str().unwrap()]);
    let err = stderr(&o);
    assert!(o.status.success() && err.contains("warning: the data differ from the stopped run's"), "{err}");
    assert_ne!(stored(&ckpt), first);
    let o = train(&["--resume", "--steps", "5", "--output", out.to_str().unwrap()]);
    assert!(o.status.success() && !stderr(&o).contains("differ"), "{}", stderr(&o));
}

#[test]
fn bad_data_and_flags_exit_non_zero_with_a_message() {
    let dir = tmpdir("bad");
    csv_dataset(&dir, 6);
    let out = dir.join("out");
    let run = |extra: &[&str]| {
        let o = train(
            &[
                &[
                    "--preset",
                    "diffclip_tiny",
                    "--steps",
                    "2",
                    "--batch-size",
                    "2",
                    "--output",
                    out.to_str().unwrap(),
                ],
                extra,
            ]
            .concat(),
        );
        (o.status.success(), stderr(&o))
    };
    // A CSV without the caption column.
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "filepath,text\nimages/000.png,a red square\n").unwrap();
    let (ok, err) = run(&["--data", &format!("csv:{}", bad.display())]);
    assert!(
        !ok && err.contains("bad.csv") && err.contains("title"),
        "{err}"
    );
    // A CSV whose images do not exist.
    let missing = dir.join("missing.csv");
    std::fs::write(
        &missing,
        "filepath,title\nnope/a.png,a\nnope/b.png,b\nnope/c.png,c\n",
    )
    .unwrap();
    let (ok, err) = run(&["--data", &format!("csv:{}", missing.display())]);
    assert!(
        !ok && err.contains("missing.csv") && err.contains("nope/"),
        "{err}"
    );
    // One missing image among good ones: skipped by default, fatal with --bad-samples fail.
    let mut rows = std::fs::read_to_string(dir.join("train.csv")).unwrap();
    rows.push_str("images/gone.png,a vanished square\n");
    // A row without a caption is left out as the table opens, and counted apart.
    let gapped = dir.join("gapped.csv");
    std::fs::write(&gapped, format!("{rows}images/001.png,\n")).unwrap();
    let holed = dir.join("holed.csv");
    std::fs::write(&holed, rows).unwrap();
    let holed_data = format!("csv:{}", holed.display());
    let out2 = dir.join("out2");
    // Four steps of two cover all seven rows.
    let whole_epoch = [
        "--preset",
        "diffclip_tiny",
        "--steps",
        "4",
        "--batch-size",
        "2",
        "--output",
        out2.to_str().unwrap(),
        "--data",
        &holed_data,
    ];
    let gapped_data = format!("csv:{}", gapped.display());
    let o = train(&[&whole_epoch[..whole_epoch.len() - 1], &[&gapped_data]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 samples skipped (and 1 bad row left out as the data was opened)"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("most of the data cannot be read"), "{}", stderr(&o));
    // Mostly unreadable data trains on what it can read, and says so at the end.
    let mostly_bad = dir.join("mostly-bad.csv");
    // Two readable rows of ten: four samples trained read past at least one epoch's eight bad rows.
    let bad_rows: String = (1..=8).map(|i| format!("nope/{i}.png,bad {i}\n")).collect();
    std::fs::write(&mostly_bad, format!("filepath,title\nimages/000.png,a\n{bad_rows}images/001.png,e\n")).unwrap();
    let o = train(&["--preset", "diffclip_tiny", "--steps", "2", "--batch-size", "2", "--overwrite", "--output", out2.to_str().unwrap(), "--data", &format!("csv:{}", mostly_bad.display())]);
    assert!(o.status.success() && stderr(&o).contains("most of the data cannot be read"), "{}", stderr(&o));
    let o = train(&[&whole_epoch[..], &["--bad-samples", "fail", "--overwrite"]].concat());
    assert!(
        !o.status.success() && stderr(&o).contains("gone.png"),
        "{}",
        stderr(&o)
    );
    // Replacing a run, it failed before proving itself: the earlier run stays, set aside.
    assert!(stderr(&o).contains("as *.replaced"), "{}", stderr(&o));
    // A fresh run keeps the steps trained before the bad sample (checkpoint and model), and
    // goes on once the data is mended, from the step that failed.
    let out3 = dir.join("out3");
    let fresh: Vec<&str> = whole_epoch.iter().map(|a| if *a == out2.to_str().unwrap() { out3.to_str().unwrap() } else { a }).collect();
    let o = train(&[&fresh[..], &["--bad-samples", "fail"]].concat());
    let err = stderr(&o);
    assert!(!o.status.success() && err.contains("stopped after step 2: its checkpoint") && err.contains("continue with --resume once the data is mended"), "{err}");
    assert!(out3.join("checkpoint-latest.safetensors").is_file() && out3.join("model.safetensors").is_file(), "{err}");
    std::fs::copy(dir.join("images/000.png"), dir.join("images/gone.png")).unwrap();
    let o = train(&["--resume", "--output", out3.to_str().unwrap()]);
    assert!(o.status.success() && stderr(&o).contains("done: step 4 of 4"), "{}", stderr(&o));
    std::fs::remove_file(dir.join("images/gone.png")).unwrap();
    // A CSV that does not exist, and fewer rows than a batch.
    let (ok, err) = run(&["--data", "csv:/no/such/train.csv"]);
    assert!(!ok && err.contains("/no/such/train.csv"), "{err}");
    let o = train(&[
        "--preset",
        "diffclip_tiny",
        "--steps",
        "2",
        "--batch-size",
        "64",
        "--output",
        out.to_str().unwrap(),
        "--data",
        &format!("csv:{}", dir.join("train.csv").display()),
    ]);
    let (ok, err) = (o.status.success(), stderr(&o));
    assert!(
        !ok && err.contains("train.csv") && err.contains("fewer than one batch"),
        "{err}"
    );
    // Flags.
    let (ok, err) = run(&["--data", "parquet:x"]);
    assert!(!ok && err.contains("csv:PATH"), "{err}");
    let (ok, err) = run(&["--data", "synthetic", "--image-size", "30"]);
    assert!(!ok && err.contains("patch size"), "{err}");
    let (ok, err) = run(&[
        "--data",
        "synthetic",
        "--resume",
        "/no/such/ckpt.safetensors",
    ]);
    assert!(!ok && err.contains("/no/such/ckpt.safetensors"), "{err}");
    let (ok, err) = run(&["--data", "wds:/no/such/{000..003}.tar"]);
    assert!(!ok && err.contains("shards"), "{err}");
}

#[test]
fn a_killed_training_process_resumes_from_its_checkpoint() {
    let dir = tmpdir("kill");
    let csv = csv_dataset(&dir, 16);
    let out = dir.join("out");
    let ckpt = out.join("checkpoint-latest.safetensors");
    let data = format!("csv:{}", csv.display());
    let common = [
        "--data",
        data.as_str(),
        "--batch-size",
        "4",
        "--workers",
        "1",
        "--output",
        out.to_str().unwrap(),
        "--checkpoint-every",
        "2",
    ];
    let mut child = Command::new(example("train"))
        .args(common)
        // A seed other than the default: the resumed run, given none, must take it from the checkpoint.
        .args(["--preset", "diffclip_tiny", "--steps", "100000", "--quiet", "--seed", "7"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill only once a checkpoint exists and a step past it has been logged, so the comparison
    // below always runs, however slow the machine.
    let start = Instant::now();
    let at = loop {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no checkpoint and later step after 5 minutes"
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("training exited early: {status}");
        }
        if ckpt.exists() {
            let at = checkpoint_step(&ckpt);
            if complete_steps(&out).iter().any(|s| s.0 > at) {
                break at;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    // The process may have checkpointed again between the check and the kill.
    let at = checkpoint_step(&ckpt).max(at);
    assert!(at >= 2 && at % 2 == 0, "checkpoint at step {at}");
    let before = complete_steps(&out);
    assert!(before.iter().any(|s| s.0 == at), "the killed run logged step {at}");

    let o = train(&[&common[..], &["--resume", "--steps", &(at + 2).to_string()]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("at step {at}")),
        "{}",
        stderr(&o)
    );
    // The log is cut back to the checkpoint, then continues: every step once, in order.
    let after = steps(&out);
    assert_eq!(
        after.iter().map(|s| s.0).collect::<Vec<_>>(),
        (1..=at + 2).collect::<Vec<_>>(),
        "continues from the checkpointed step"
    );
    assert_eq!(&after[..at as usize], &before[..at as usize], "records up to the checkpoint kept");
    // Where the killed run got past its checkpoint, the resumed run repeats that step exactly:
    // a step's loss comes from the weights after the previous step and the same batch (the new
    // --steps only changes the learning rate applied afterwards).
    let killed = before.iter().find(|s| s.0 == at + 1).map(|s| s.1);
    let Some(loss) = killed else {
        // Only possible if the final checkpoint landed right at the kill; then nothing to compare.
        assert_eq!(before.last().map(|s| s.0), Some(at), "a step past the checkpoint vanished");
        assert_eq!(checkpoint_step(&ckpt), at + 2);
        return;
    };
    let resumed = after[at as usize].1;
    assert!(
        (loss - resumed).abs() <= 1e-4 * loss.abs().max(1.0),
        "step {}: killed run {loss}, resumed {resumed}",
        at + 1
    );
    assert_eq!(checkpoint_step(&ckpt), at + 2);
}

/// SIGTERM (a scheduler's preemption, Ctrl-C's SIGINT alike) or SIGHUP (a closed SSH session)
/// ends a run after its step with that step's checkpoint written, even when no checkpoint was
/// due: nothing trained is lost.
#[test]
fn a_terminated_run_writes_its_checkpoint() {
    let dir = tmpdir("term");
    for signal in ["-TERM", "-HUP"] {
        let out = dir.join(signal.trim_start_matches('-'));
        let mut child = Command::new(example("train"))
            .args(["--data", "synthetic", "--train-num-samples", "64", "--preset", "diffclip_tiny", "--batch-size", "4", "--steps", "100000", "--checkpoint-every", "0", "--quiet", "--output"])
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while complete_steps(&out).len() < 2 {
            assert!(start.elapsed() < Duration::from_secs(300), "no two steps after 5 minutes");
            assert!(child.try_wait().unwrap().is_none(), "training exited early");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap().success());
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{signal}: {err}");
        let ckpt = out.join("checkpoint-latest.safetensors");
        assert!(err.contains("stopped after step") && err.contains("continue with --resume"), "{err}");
        let at = checkpoint_step(&ckpt);
        assert!(at >= 2 && complete_steps(&out).last().is_some_and(|s| s.0 == at), "checkpoint at step {at}, the log at {:?}", complete_steps(&out).last());
        // The steps trained are a model too, readable as a finished run's.
        assert!(err.contains("the model so far is written to"), "{err}");
        let model = std::fs::read(out.join("model.safetensors")).unwrap();
        assert!(safetensors::SafeTensors::deserialize(&model).is_ok_and(|st| st.names().iter().any(|n| n.starts_with("visual."))), "model.safetensors");
    }
}

/// A model already in --output (another run's, or one `convert` wrote) is not replaced by a
/// fresh run unless asked.
#[test]
fn a_model_in_the_output_folder_is_kept_unless_overwritten() {
    let dir = tmpdir("kept-model");
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("model.safetensors"), b"precious").unwrap();
    let args = ["--data", "synthetic", "--train-num-samples", "16", "--preset", "diffclip_tiny", "--batch-size", "4", "--steps", "1", "--output", out.to_str().unwrap()];
    let o = train(&args);
    let err = stderr(&o);
    assert!(!o.status.success() && err.contains("already holds a model") && err.contains("--overwrite"), "{err}");
    assert_eq!(std::fs::read(out.join("model.safetensors")).unwrap(), b"precious");
    let o = train(&[&args[..], &["--overwrite"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(std::fs::read(out.join("model.safetensors")).unwrap(), b"precious");
    // A run resumed into another folder does not replace the model it finds there either.
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("model.safetensors"), b"precious").unwrap();
    let ckpt = out.join("checkpoint-latest.safetensors");
    let o = train(&["--resume", ckpt.to_str().unwrap(), "--steps", "2", "--output", other.to_str().unwrap()]);
    let err = stderr(&o);
    assert!(!o.status.success() && err.contains("already holds a model: remove it"), "{err}");
    assert_eq!(std::fs::read(other.join("model.safetensors")).unwrap(), b"precious");
}
