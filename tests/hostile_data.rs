//! Hostile input on the data side (issue 14), through the example programs as a user runs them:
//! devices and FIFOs as images, oversized flags, write errors, pathological shard patterns,
//! broken caption files and bad images that must be counted. Every run has a deadline, so a
//! regression that hangs fails instead of blocking the test run.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{example, fixture};



fn tmpdir(name: &str) -> common::TestDir {
    common::tmpdir("hostile-data", name)
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap().success();
    assert!(ok, "mkfifo {}", path.display());
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `cmd` (stdin from `input`, or what `cmd` set) and kills it after `secs` seconds,
/// failing the test: a hang is a bug.
fn run(mut cmd: Command, input: Option<Vec<u8>>, secs: u64) -> Run {
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
    if let Some(input) = input {
        let mut stdin = child.stdin.take().unwrap();
        // The program may stop reading early (and that is fine).
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let read = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut s);
            }
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = read(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = read(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} still running after {secs} s; stderr: {}",
                err.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

// ------------------------------------------------------------------ preprocess

#[test]
fn preprocess_refuses_devices_fifos_folders_and_oversized_input() {
    let dir = tmpdir("preprocess");
    let fifo = dir.join("pipe.png");
    mkfifo(&fifo);
    let folder = dir.join("folder.png");
    std::fs::create_dir(&folder).unwrap();
    let out = dir.join("out.safetensors");
    for (input, kind) in [
        (PathBuf::from("/dev/zero"), "character device"),
        (fifo, "named pipe"),
        (folder, "directory"),
    ] {
        let mut cmd = Command::new(example("preprocess"));
        cmd.arg("--output").arg(&out).arg(&input);
        let r = run(cmd, None, 30);
        assert!(
            !r.ok() && r.stderr.contains(&*input.to_string_lossy()) && r.stderr.contains(kind),
            "{}: {}",
            input.display(),
            r.stderr
        );
        assert!(!out.exists());
    }
    // A byte cap, and flags that would ask for absurd buffers.
    let image = fixture("preprocess/images/coco_sample.jpg");
    let mut cmd = Command::new(example("preprocess"));
    cmd.args(["--max-bytes", "100", "--output"])
        .arg(&out)
        .arg(&image);
    let r = run(cmd, None, 30);
    assert!(
        !r.ok() && r.stderr.contains("coco_sample.jpg") && r.stderr.contains("100 bytes"),
        "{}",
        r.stderr
    );
    for (flag, value) in [
        ("--size", "100000"),
        ("--size", "0"),
        ("--max-bytes", "0"),
        ("--max-pixels", "0"),
    ] {
        let mut cmd = Command::new(example("preprocess"));
        cmd.args([flag, value, "--output"]).arg(&out).arg(&image);
        let r = run(cmd, None, 30);
        assert!(
            !r.ok() && r.stderr.contains(flag),
            "{flag} {value}: {}",
            r.stderr
        );
    }
    // The default cap lets real images through.
    let mut cmd = Command::new(example("preprocess"));
    cmd.args(["--size", "16", "--output"]).arg(&out).arg(&image);
    let r = run(cmd, None, 60);
    assert!(r.ok(), "{}", r.stderr);
}

// ------------------------------------------------------------------ tokenize

#[test]
fn tokenize_bounds_its_flags_and_input_and_reports_write_errors() {
    let tokenize = || Command::new(example("tokenize"));
    let r = run(
        {
            let mut c = tokenize();
            c.args(["--context-length", "100000000000"]);
            c
        },
        Some(b"a photo\n".to_vec()),
        30,
    );
    assert!(
        r.code == Some(2) && r.stderr.contains("--context-length") && r.stderr.contains("65536"),
        "{:?} {}",
        r.code,
        r.stderr
    );

    // A flag given twice is refused, whichever spelling.
    let r = run(
        {
            let mut c = tokenize();
            c.args(["--truncate", "drop-eot", "--truncate=keep-eot"]);
            c
        },
        Some(b"a photo\n".to_vec()),
        30,
    );
    assert!(r.code == Some(2) && r.stderr.contains("--truncate given more than once"), "{:?} {}", r.code, r.stderr);

    // Plain use still works.
    let mut c = tokenize();
    c.stdout(Stdio::piped());
    let r = run(c, Some(b"a photo of a cat\n".to_vec()), 30);
    assert!(r.ok(), "{}", r.stderr);
    assert!(
        r.stdout.starts_with("[49406,320,1125,539,320,2368,49407,0"),
        "{}",
        r.stdout
    );

    // A full disk is an error, not a silent exit 0.
    let mut c = tokenize();
    c.stdout(
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap(),
    );
    let r = run(c, Some(b"a photo\n".repeat(10)), 30);
    assert!(
        r.code == Some(1) && r.stderr.contains("writing standard output"),
        "{:?} {}",
        r.code,
        r.stderr
    );

    // A closed pipe (`| head`) ends quietly.
    let mut c = tokenize();
    c.stdout(Stdio::piped())
        .stdin(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    drop(child.stdout.take()); // the reader is gone before anything is written
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        let _ = stdin.write_all(&b"a photo of a cat\n".repeat(20_000));
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "tokenize | (closed) hangs"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success() && err.is_empty(), "{status:?} {err}");

    // An endless line is refused after a bounded read.
    let mut c = tokenize();
    c.stdin(std::fs::File::open("/dev/zero").unwrap());
    let r = run(c, None, 60);
    assert!(
        r.code == Some(1) && r.stderr.contains("line 1 is longer than"),
        "{:?} {}",
        r.code,
        r.stderr
    );
}

// ------------------------------------------------------------------ train

fn train(args: &[&str], secs: u64) -> Run {
    let mut cmd = Command::new(example("train"));
    cmd.args(args).arg("--quiet");
    run(cmd, None, secs)
}

/// `n` rows of `filepath,title`; rows in `missing` name images that do not exist.
fn csv(dir: &Path, n: usize, missing: &[usize]) -> PathBuf {
    let image = std::fs::read(fixture("preprocess/images/coco_sample.jpg")).unwrap();
    std::fs::create_dir_all(dir.join("images")).unwrap();
    let mut text = String::from("filepath,title\n");
    for i in 0..n {
        if missing.contains(&i) {
            text += &format!("images/gone{i}.jpg,a missing photo {i}\n");
        } else {
            std::fs::write(dir.join(format!("images/{i:02}.jpg")), &image).unwrap();
            text += &format!("images/{i:02}.jpg,a photo number {i}\n");
        }
    }
    let path = dir.join("captions.csv");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn train_counts_the_images_it_skips() {
    let dir = tmpdir("train-skips");
    let data = format!("csv:{}", csv(&dir, 20, &[3, 7, 11, 15]).display());
    let out = dir.join("out");
    // Five steps of four take the 16 good samples of epoch 0, so every position of it is read.
    let r = train(
        &[
            "--preset",
            "diffclip_tiny",
            "--steps",
            "5",
            "--batch-size",
            "4",
            "--output",
            out.to_str().unwrap(),
            "--data",
            &data,
        ],
        600,
    );
    assert!(r.ok(), "{}", r.stderr);
    let reported: usize = r
        .stderr
        .split(" samples skipped")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no skip count in: {}", r.stderr));
    assert!((4..=8).contains(&reported), "{}", r.stderr);
    let log = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let last = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("skipped_samples").and_then(|s| s.as_u64()))
        .next_back()
        .unwrap();
    assert_eq!(last as usize, reported, "{log}");
}

#[test]
fn train_refuses_hostile_data_quickly_with_a_message() {
    let dir = tmpdir("train-hostile");
    let out = dir.join("out");
    let common = [
        "--preset",
        "diffclip_tiny",
        "--steps",
        "1",
        "--batch-size",
        "2",
        "--output",
        out.to_str().unwrap(),
    ];
    fn with<'a>(common: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [common, extra].concat()
    }

    // 60,000 nested braces: a clear error, not a stack overflow.
    let pattern = format!("wds:{}x{}", "{".repeat(60_000), "}".repeat(60_000));
    let r = train(&with(&common, &["--data", &pattern]), 120);
    assert!(
        !r.ok() && r.stderr.contains("nested") && r.stderr.len() < 4000,
        "{:?} {}",
        r.code,
        &r.stderr[..r.stderr.len().min(2000)]
    );

    // An unterminated quote on line 4 of 33 rows: an error naming the line under both policies.
    let path = csv(&dir, 33, &[]);
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replacen("images/02.jpg,a photo", "images/02.jpg,\"a photo", 1);
    std::fs::write(&path, text).unwrap();
    let data = format!("csv:{}", path.display());
    for policy in ["skip", "fail"] {
        let r = train(
            &with(&common, &["--data", &data, "--bad-samples", policy]),
            120,
        );
        assert!(
            !r.ok()
                && r.stderr
                    .contains("captions.csv:4: unterminated quoted field"),
            "{policy}: {}",
            r.stderr
        );
    }

    // An empty class folder: the same rule as `eval`.
    let root = dir.join("folders");
    std::fs::create_dir_all(root.join("cat")).unwrap();
    std::fs::create_dir_all(root.join("dog")).unwrap();
    for i in 0..4 {
        std::fs::copy(
            fixture("preprocess/images/coco_sample.jpg"),
            root.join(format!("cat/{i}.jpg")),
        )
        .unwrap();
    }
    let data = format!("folder:{}", root.display());
    let r = train(&with(&common, &["--data", &data]), 120);
    assert!(
        !r.ok() && r.stderr.contains(&*root.join("dog").to_string_lossy()),
        "{}",
        r.stderr
    );
}
