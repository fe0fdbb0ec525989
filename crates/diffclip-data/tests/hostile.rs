//! Hostile input (issue 14): devices, FIFOs and directories given as files, oversized files,
//! pathological shard patterns, broken CSV files, bad images that must be counted, and property
//! tests over arbitrary bytes and strings. Every case ends in an error or a value, quickly: no
//! panic, no hang (the cases that could hang run on a thread with a deadline).

#[path = "datasets/fixtures.rs"]
mod fixtures;

use std::path::{Path, PathBuf};

use diffclip_data::datasets::*;
use diffclip_data::preprocess::*;
use diffclip_data::tokenizer::*;
use fixtures::*;
use proptest::prelude::*;
use proptest::sample::Index;


fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o644) },
        0,
        "mkfifo {}",
        path.display()
    );
}

/// `/dev/zero`, a FIFO and a directory, each with what its error must say.
fn special_files(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let fifo = dir.join("pipe.png");
    mkfifo(&fifo);
    let folder = dir.join("folder.png");
    std::fs::create_dir(&folder).unwrap();
    vec![
        (PathBuf::from("/dev/zero"), "character device"),
        (fifo, "named pipe"),
        (folder, "directory"),
    ]
}

fn assert_names(err: &str, path: &Path, kind: &str) {
    assert!(
        err.contains(&*path.to_string_lossy())
            && err.contains(kind)
            && err.contains("regular file"),
        "{}: {err}",
        path.display()
    );
}

// ------------------------------------------------------------------ special and large files

#[test]
fn devices_fifos_and_directories_are_refused_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    for (path, kind) in special_files(tmp.path()) {
        let p = path.clone();
        let err = within(10, "decode_file", move || {
            decode_file(&p, &DecodeOptions::default()).unwrap_err()
        });
        assert!(matches!(err, PreprocessError::Io { .. }), "{err}");
        assert_names(&err.to_string(), &path, kind);

        // Through a pipeline, as `preprocess`, the datasets and `eval` read images.
        let p = path.clone();
        let err = within(10, "process_file", move || {
            let pipeline = Pipeline::from_name("openai", 16).unwrap();
            pipeline.process_file(&p, 0).unwrap_err().to_string()
        });
        assert_names(&err, &path, kind);

        // As a caption file and as a tar shard.
        let p = path.clone();
        let err = within(10, "CsvDataset::open", move || {
            CsvDataset::open(&p, &CsvConfig::default(), loader())
                .unwrap_err()
                .to_string()
        });
        assert_names(&err, &path, kind);
        let p = path.clone();
        let results = within(10, "WebDataset", move || {
            let wds =
                WebDataset::from_shards(vec![p], WebDatasetConfig::default(), loader()).unwrap();
            wds.raw_samples()
                .map(|r| r.map(|s| s.key).map_err(|e| e.to_string()))
                .collect::<Vec<_>>()
        });
        assert_eq!(results.len(), 1, "{results:?}");
        assert_names(results[0].as_ref().unwrap_err(), &path, kind);
    }
}

#[test]
fn special_files_in_a_csv_are_bad_samples_not_hangs() {
    let tmp = tempfile::tempdir().unwrap();
    let specials = special_files(tmp.path());
    write(&tmp.path().join("ok.png"), &png_bytes(4, 4, [40, 0, 0]));
    let mut text = String::from("filepath\ttitle\n");
    for (p, _) in &specials {
        text += &format!("{}\tspecial\n", p.display());
    }
    text += "ok.png\tfine\n";
    let csv = tmp.path().join("special.tsv");
    write(&csv, text.as_bytes());
    let (item, skipped, errors) = within(20, "CSV of special files", move || {
        let ds = CsvDataset::open(&csv, &CsvConfig::default(), loader()).unwrap();
        let errors: Vec<String> = (0..3)
            .map(|i| ds.try_get(i).unwrap_err().to_string())
            .collect();
        // Each bad row read is counted once and replaced by the next good one.
        let items: Vec<ClipItem> = (0..3).map(|i| ds.get_item(i).unwrap()).collect();
        assert!(items.iter().all(|i| i.caption == "fine"));
        (items[0].clone(), ds.skip_counter().skipped(), errors)
    });
    assert_eq!(
        (item.caption.as_str(), red(&item), skipped),
        ("fine", 40, 3)
    );
    for ((path, kind), err) in specials.iter().zip(&errors) {
        assert_names(err, path, kind);
    }
}

#[test]
fn image_files_are_capped_in_bytes() {
    let path = fixtures().join("rgba_300x200.png");
    let len = std::fs::metadata(&path).unwrap().len();
    let bytes = std::fs::read(&path).unwrap();
    let small = DecodeOptions {
        max_bytes: 1000,
        ..Default::default()
    };
    let err = decode_file(&path, &small).unwrap_err();
    assert!(
        matches!(err, PreprocessError::FileTooLarge { limit: 1000, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("rgba_300x200.png") && msg.contains("1000 bytes") && msg.contains("max_bytes"),
        "{msg}"
    );
    assert_eq!(err.path(), Some(path.as_path()));
    let err = decode_bytes(&bytes, "member.png", &small).unwrap_err();
    assert!(matches!(err, PreprocessError::FileTooLarge { .. }), "{err}");
    // Exactly at the limit is fine; the default is far above any photo.
    let exact = DecodeOptions {
        max_bytes: len,
        ..Default::default()
    };
    assert!(decode_file(&path, &exact).is_ok());
    assert_eq!(DecodeOptions::default().max_bytes, DEFAULT_MAX_BYTES);
    assert_eq!(DEFAULT_MAX_BYTES, 256 << 20);
    let mut config = PreprocessConfig::preset(Preset::OpenAi, 16);
    config.decode.max_bytes = 0;
    assert!(matches!(
        Pipeline::new(config),
        Err(PreprocessError::InvalidConfig(_))
    ));
    // Old configs without the field still read, with the default.
    let o: DecodeOptions = serde_json::from_str(r#"{"max_pixels": 10}"#).unwrap();
    assert_eq!((o.max_pixels, o.max_bytes), (10, DEFAULT_MAX_BYTES));
}

// ------------------------------------------------------------------ shard patterns

#[test]
fn pathological_brace_patterns_are_errors_not_crashes() {
    let check = |pattern: String, want: &'static str| {
        let shown = pattern.chars().take(40).collect::<String>();
        let err = within(10, "expand_braces", move || {
            expand_braces(&pattern).map(|v| v.len())
        });
        let err = match err {
            Err(e @ DataError::Pattern { .. }) => e.to_string(),
            other => panic!("{shown}: {other:?}"),
        };
        assert!(err.contains(want), "{shown}: {err}");
        assert!(err.len() < 1000, "a long pattern is quoted short: {err}");
    };
    // 60,000 nested groups (was a stack overflow), balanced or not.
    check(
        format!("{}x{}", "{".repeat(60_000), "}".repeat(60_000)),
        "nested",
    );
    check("{".repeat(60_000), "nested");
    check(
        format!("{}0..1{}", "{a,".repeat(60_000), "}".repeat(60_000)),
        "nested",
    );
    // 60,000 groups one after the other.
    check("{a}".repeat(60_000), "groups");
    check("{0..1}".repeat(MAX_BRACE_GROUPS + 1), "groups");
    // Too many names, or too many bytes of names.
    check("{a,b}".repeat(30), "names");
    check("{0..18446744073709551615}".into(), "names");
    check("{0..99999999999999999999999}".into(), "bad number");
    check(format!("{}{{0..999999}}", "x".repeat(1000)), "bytes");
    check(format!("{{{}..99999}}", "0".repeat(5000)), "bytes");
    check(format!("{}::{{0..999999}}", "{0..999999}"), "names");

    // At the limits, patterns still expand.
    let deep = format!(
        "{}b{}",
        "{a,".repeat(MAX_BRACE_DEPTH),
        "}".repeat(MAX_BRACE_DEPTH)
    );
    assert_eq!(expand_braces(&deep).unwrap().len(), MAX_BRACE_DEPTH + 1);
    let too_deep = format!("{{{deep}}}");
    assert!(expand_braces(&too_deep).is_err());
    let groups = "{a}".repeat(MAX_BRACE_GROUPS);
    assert_eq!(expand_braces(&groups).unwrap(), std::slice::from_ref(&groups));
    assert_eq!(expand_braces("{0..999999}").unwrap().len(), MAX_EXPANSION);
}

// ------------------------------------------------------------------ CSV structure

fn captions(rows: &[String]) -> String {
    let mut text = String::from("filepath,title\n");
    for r in rows {
        text += r;
        text += "\n";
    }
    text
}

#[test]
fn an_unterminated_quote_fails_with_its_line_under_both_policies() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("captions.csv");
    // 33 rows; the caption on line 4 (row 3) never closes: it used to swallow the rest of the
    // file, leaving 17 pairs and exit 0.
    let rows: Vec<String> = (0..33)
        .map(|i| {
            if i == 2 {
                format!("img{i}.png,\"a caption that never ends")
            } else {
                format!("img{i}.png,caption {i}")
            }
        })
        .collect();
    write(&path, captions(&rows).as_bytes());
    for l in [loader(), fail_loader()] {
        let err = CsvDataset::open(&path, &CsvConfig::default(), l).unwrap_err();
        assert!(matches!(err, DataError::Csv { line: 4, .. }), "{err}");
        assert!(
            err.to_string()
                .contains("captions.csv:4: unterminated quoted field"),
            "{err}"
        );
    }

    // The same quote "closed" by a later row's opening quote: the rows in between would be
    // merged into one caption silently.
    let mut rows = rows;
    rows[20] = "img20.png,\"a quoted caption\"".into();
    write(&path, captions(&rows).as_bytes());
    for l in [loader(), fail_loader()] {
        let err = CsvDataset::open(&path, &CsvConfig::default(), l).unwrap_err();
        assert!(matches!(err, DataError::Csv { line: 4, .. }), "{err}");
        assert!(err.to_string().contains("line 22"), "{err}");
    }

    // CRLF line ends, and a TSV: the same line.
    let crlf = captions(&rows[..5]).replace('\n', "\r\n");
    write(&path, crlf.as_bytes());
    let err = CsvDataset::open(&path, &CsvConfig::default(), loader()).unwrap_err();
    assert!(matches!(err, DataError::Csv { line: 4, .. }), "{err}");
    let tsv = tmp.path().join("captions.tsv");
    write(&tsv, captions(&rows[..5]).replace(',', "\t").as_bytes());
    let err = CsvDataset::open(&tsv, &CsvConfig::default(), loader()).unwrap_err();
    assert!(err.to_string().contains("captions.tsv:4"), "{err}");
    // In the header.
    write(&path, b"filepath,\"title\na.png,x\n");
    let err = CsvDataset::open(&path, &CsvConfig::default(), loader()).unwrap_err();
    assert!(
        err.to_string()
            .contains("captions.csv:1: unterminated quoted field"),
        "{err}"
    );
}

#[test]
fn legitimate_quoting_still_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ok.csv");
    let text = "\u{FEFF}\"filepath\",title\n\
                a.png,\"two\nlines\"\n\
                b.png,\"say \"\"hi\"\"\"\n\
                c.png,\"Hello\" she said\n\
                d.png,a 5\" screen\n\
                e.png,\"\"\n\
                f.png,\"last, with a comma\"";
    write(&path, text.as_bytes());
    let ds = CsvDataset::open(&path, &CsvConfig::default(), fail_loader()).unwrap();
    let got: Vec<(&str, u64)> = ds
        .rows()
        .iter()
        .map(|r| (r.caption.as_str(), r.line))
        .collect();
    assert_eq!(
        got,
        [
            ("two\nlines", 2),
            ("say \"hi\"", 4),
            ("Hello she said", 5),
            ("a 5\" screen", 6),
            ("", 7),
            ("last, with a comma", 8)
        ]
    );
    assert_eq!(ds.rows()[0].image, tmp.path().join("a.png"));
}

// ------------------------------------------------------------------ counting bad samples

/// `n` rows; the rows in `bad` point at images that are missing, empty, corrupt or folders.
fn holed_csv(dir: &Path, n: usize, bad: &[(usize, &str)]) -> PathBuf {
    write(&dir.join("imgs/empty.png"), b"");
    write(
        &dir.join("imgs/corrupt.jpg"),
        b"\xFF\xD8\xFF\xE0 not a jpeg",
    );
    std::fs::create_dir_all(dir.join("imgs/folder.png")).unwrap();
    let mut rows = Vec::new();
    for i in 0..n {
        match bad.iter().find(|b| b.0 == i) {
            Some((_, name)) => rows.push(format!("imgs/{name},bad {i}")),
            None => {
                let name = format!("imgs/{i:02}.png");
                write(&dir.join(&name), &png_bytes(4, 4, [i as u8, 0, 0]));
                rows.push(format!("{name},good {i}"));
            }
        }
    }
    let path = dir.join("train.csv");
    write(&path, captions(&rows).as_bytes());
    path
}

/// What the trainer does with a map dataset: every item of the epoch through `get_item`, an
/// `Err` counted as skipped. Returns (good, skipped).
fn trainer_epoch(ds: &dyn ClipDataset) -> (usize, usize) {
    let errs = (0..ds.num_items())
        .filter(|&i| ds.get_item(i).is_err())
        .count();
    (ds.num_items() - errs, errs)
}

#[test]
fn missing_images_in_a_csv_reach_the_count_the_trainer_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = [
        (3, "gone3.png"),
        (7, "gone7.png"),
        (11, "gone11.png"),
        (15, "gone15.png"),
    ];
    let path = holed_csv(tmp.path(), 20, &bad);
    let ds = CsvDataset::open(&path, &CsvConfig::default(), loader()).unwrap();
    assert_eq!(ds.len(), 20);
    let counter = ds.skip_counter().clone();
    let policy = ds.loader().policy();
    let ds = ReportBadSamples::new(ds, policy, counter.clone());
    assert_eq!(trainer_epoch(&ds), (16, 4));
    assert_eq!(counter.skipped(), 4);
    assert!(counter.last_error().unwrap().contains("gone15.png"));
    for (i, name) in bad {
        let err = ds.get_item(i).unwrap_err().to_string();
        assert!(err.contains(name), "{err}");
    }
    assert!(matches!(
        ds.get_item(20),
        Err(DataError::OutOfRange { index: 20, len: 20 })
    ));

    // Empty, corrupt and folder entries are counted the same way.
    let tmp = tempfile::tempdir().unwrap();
    let bad = [
        (0, "gone.png"),
        (5, "empty.png"),
        (9, "corrupt.jpg"),
        (19, "folder.png"),
    ];
    let path = holed_csv(tmp.path(), 20, &bad);
    let ds = CsvDataset::open(&path, &CsvConfig::default(), loader()).unwrap();
    let counter = ds.skip_counter().clone();
    let ds = ReportBadSamples::new(ds, BadSamplePolicy::Skip, counter.clone());
    assert_eq!(trainer_epoch(&ds), (16, 4));
    assert_eq!(counter.skipped(), 4);
    assert!(counter.last_error().unwrap().contains("directory"));

    // Under `Fail` the errors come back too, remembered but not counted.
    let ds = CsvDataset::open(&path, &CsvConfig::default(), fail_loader()).unwrap();
    let counter = ds.skip_counter().clone();
    let ds = ReportBadSamples::new(ds, BadSamplePolicy::Fail, counter.clone());
    assert_eq!(trainer_epoch(&ds), (16, 4));
    assert_eq!(counter.skipped(), 0);
    assert!(counter.last_error().is_some());
}

#[test]
fn bad_images_in_an_image_folder_reach_the_count_the_trainer_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for i in 0..3 {
        write(
            &root.join(format!("cat/{i}.png")),
            &png_bytes(4, 4, [i, 0, 0]),
        );
        write(
            &root.join(format!("dog/{i}.png")),
            &png_bytes(4, 4, [i, 9, 0]),
        );
    }
    write(&root.join("cat/corrupt.png"), b"\x89PNG\r\n\x1a\n broken");
    write(&root.join("dog/empty.jpg"), b"");
    mkfifo(&root.join("dog/pipe.png"));
    let root = root.to_path_buf();
    let (counts, skipped) = within(20, "image folder", move || {
        let ds = ImageFolderDataset::open(&root, loader()).unwrap();
        let counter = ds.skip_counter().clone();
        let ds = ReportBadSamples::new(ds, BadSamplePolicy::Skip, counter.clone());
        (trainer_epoch(&ds), counter.skipped())
    });
    assert_eq!((counts, skipped), ((6, 3), 3));
}

#[test]
fn an_empty_class_folder_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("cat/a.png"), &png_bytes(4, 4, [1, 0, 0]));
    write(&tmp.path().join("dog/notes.txt"), b"no images here");
    write(
        &tmp.path().join("dog/sub/.hidden.png"),
        &png_bytes(4, 4, [1, 0, 0]),
    );
    let err = ImageFolderDataset::open(tmp.path(), loader()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&*tmp.path().join("dog").to_string_lossy()) && msg.contains("no images"),
        "{msg}"
    );
    std::fs::remove_dir_all(tmp.path().join("dog")).unwrap();
    assert_eq!(
        ImageFolderDataset::open(tmp.path(), loader())
            .unwrap()
            .len(),
        1
    );
}

// ------------------------------------------------------------------ tokenizer

#[test]
fn context_length_is_bounded() {
    for n in [MAX_CONTEXT_LENGTH + 1, 100_000_000_000, usize::MAX] {
        let err = ClipTokenizer::with_config(TokenizerConfig {
            context_length: n,
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(err, TokenizerError::ContextLength(m) if m == n));
        assert!(
            err.to_string().contains(&MAX_CONTEXT_LENGTH.to_string()),
            "{err}"
        );
    }
    let tok = ClipTokenizer::with_config(TokenizerConfig {
        context_length: MAX_CONTEXT_LENGTH,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(tok.tokenize("a photo").len(), MAX_CONTEXT_LENGTH);
}

#[test]
fn a_megabyte_caption_tokenizes_quickly() {
    let text = "a photo of a cat on the mat, éé 東京 🐱 &amp; ".repeat(25_000);
    let ids = within(60, "tokenize 1 MB", move || {
        ClipTokenizer::new().tokenize(&text)
    });
    assert_eq!(ids.len(), 77);
    assert_eq!(ids[76], EOT_ID);
}

// ------------------------------------------------------------------ property tests

/// A valid two-sample shard.
fn good_shard() -> Vec<u8> {
    let mut members = sample("000000", "png", png_bytes(6, 6, [1, 2, 3]), "one");
    members.extend(sample(
        "000001",
        "jpg",
        std::fs::read(fixtures().join("coco_sample.jpg")).unwrap(),
        "two",
    ));
    let m: Vec<(&str, Vec<u8>)> = members
        .iter()
        .map(|(n, d)| (n.as_str(), d.clone()))
        .collect();
    tar_bytes(&m)
}

/// Reads every sample of a shard, decoded, under both policies; never panics.
fn read_shard_bytes(bytes: &[u8]) -> usize {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("shard.tar");
    std::fs::write(&path, bytes).unwrap();
    let mut n = 0;
    for l in [loader(), fail_loader()] {
        let wds =
            WebDataset::from_shards(vec![path.clone()], WebDatasetConfig::default(), l).unwrap();
        n += wds.items().filter(Result::is_ok).count();
    }
    n
}

const FIXTURES: [&str; 8] = [
    "coco_sample.jpg",
    "cmyk_256x256.jpg",
    "gray16_200x150.png",
    "palette_150x148.gif",
    "webp_263x257.webp",
    "tiny_1x1.png",
    "wide_1000x10.png",
    "rgba_300x200.png",
];

fn fixture_bytes() -> &'static [Vec<u8>] {
    static CACHE: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    CACHE.get_or_init(|| {
        FIXTURES
            .iter()
            .map(|f| std::fs::read(fixtures().join(f)).unwrap())
            .collect()
    })
}

/// Decodes and, when that works, preprocesses; an image of the wrong size would be a bug.
fn decode_and_process(bytes: &[u8]) {
    // A lower pixel limit than the default keeps damaged headers from asking for big (if
    // bounded) buffers on every case; the default limit is exercised by the other tests.
    let opts = DecodeOptions {
        max_pixels: 1 << 22,
        ..Default::default()
    };
    if let Ok(img) = decode_bytes(bytes, "fuzz", &opts) {
        for p in ["openai", "slip-train"] {
            let x = Pipeline::from_name(p, 8).unwrap().process_image(&img, 3);
            assert_eq!(x.len(), 3 * 8 * 8);
        }
    }
}

fn bmp_header() -> Vec<u8> {
    let mut b = Vec::new();
    image::RgbImage::from_pixel(3, 2, image::Rgb([1, 2, 3]))
        .write_to(&mut std::io::Cursor::new(&mut b), image::ImageFormat::Bmp)
        .unwrap();
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn brace_patterns_never_panic(pattern in "[{}.,:0-9ab]{0,40}") {
        if let Ok(names) = expand_braces(&pattern) {
            prop_assert!(names.len() <= MAX_EXPANSION);
        }
    }

    #[test]
    fn any_string_as_a_brace_pattern_never_panics(pattern in any::<String>()) {
        let _ = expand_braces(&pattern);
    }

    #[test]
    fn csv_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), tsv in any::<bool>()) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(if tsv { "x.tsv" } else { "x.csv" });
        std::fs::write(&path, &bytes).unwrap();
        for l in [loader(), fail_loader()] {
            if let Ok(ds) = CsvDataset::open(&path, &CsvConfig::default(), l) {
                for i in 0..ds.len().min(3) {
                    let _ = ds.get_item(i);
                }
            }
        }
    }

    #[test]
    fn csv_like_text_never_panics(body in "[ab.,\"\t\r\n ]{0,200}", tsv in any::<bool>()) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(if tsv { "x.tsv" } else { "x.csv" });
        let header = if tsv { "filepath\ttitle\n" } else { "filepath,title\n" };
        std::fs::write(&path, format!("{header}{body}")).unwrap();
        for l in [loader(), fail_loader()] {
            match CsvDataset::open(&path, &CsvConfig::default(), l) {
                Ok(ds) => {
                    for i in 0..ds.len().min(3) {
                        let _ = ds.get_item(i);
                    }
                }
                Err(e) => prop_assert!(e.to_string().contains("x."), "{}", e),
            }
        }
    }

    #[test]
    fn arbitrary_bytes_as_a_shard_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..3000),
        tar_magic in any::<bool>(),
    ) {
        let mut bytes = bytes;
        if tar_magic && bytes.len() > 265 {
            bytes[257..263].copy_from_slice(b"ustar\0");
        }
        read_shard_bytes(&bytes);
    }

    #[test]
    fn a_damaged_shard_never_panics(
        flips in prop::collection::vec((any::<Index>(), any::<u8>()), 1..12),
        cut in any::<Index>(),
        do_cut in any::<bool>(),
    ) {
        let mut bytes = good_shard();
        for (i, v) in flips {
            let i = i.index(bytes.len());
            bytes[i] = v;
        }
        if do_cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        read_shard_bytes(&bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(
        magic in 0usize..7,
        body in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        let bmp = bmp_header();
        let prefix: &[u8] = match magic {
            0 => b"\x89PNG\r\n\x1a\n",
            1 => b"\xFF\xD8\xFF",
            2 => b"GIF89a",
            3 => b"RIFF\0\0\0\0WEBPVP8 ",
            4 => &bmp[..54],
            5 => b"BM",
            _ => b"",
        };
        let bytes = [prefix, &body].concat();
        decode_and_process(&bytes);
    }

    #[test]
    fn damaged_fixture_images_never_panic(
        file in 0usize..FIXTURES.len(),
        flips in prop::collection::vec((any::<Index>(), any::<u8>()), 0..16),
        cut in proptest::option::of(any::<Index>()),
        head_only in any::<bool>(),
    ) {
        let mut bytes = fixture_bytes()[file].clone();
        for (i, v) in flips {
            // Half of the cases aim at the first 64 bytes, where the headers are.
            let n = if head_only { bytes.len().min(64) } else { bytes.len() };
            let i = i.index(n);
            bytes[i] = v;
        }
        if let Some(c) = cut {
            bytes.truncate(c.index(bytes.len()));
        }
        decode_and_process(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_text_of_any_length_tokenizes_to_the_context(
        text in any::<String>(),
        repeat in 1usize..400,
        context_length in 2usize..200,
        drop in any::<bool>(),
    ) {
        let truncation = if drop { Truncation::DropEot } else { Truncation::KeepEot };
        let tok = ClipTokenizer::with_config(TokenizerConfig { context_length, truncation }).unwrap();
        let ids = tok.tokenize(&text.repeat(repeat));
        prop_assert_eq!(ids.len(), context_length);
        prop_assert_eq!(ids[0], SOT_ID);
        prop_assert!(ids.iter().all(|&i| (i as usize) < VOCAB_SIZE));
        let _ = tok.decode(&ids);
    }
}
