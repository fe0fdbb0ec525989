//! Devices, FIFOs and directories given as files, and oversized files.

use super::*;

#[test]
fn devices_fifos_and_directories_are_refused_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    for (path, kind) in special_files(tmp.path()) {
        let p = path.clone();
        let err = within(60, "decode_file", move || {
            decode_file(&p, &DecodeOptions::default()).unwrap_err()
        });
        assert!(matches!(err, PreprocessError::Io { .. }), "{err}");
        assert_names(&err.to_string(), &path, kind);

        // Through a pipeline, as `preprocess`, the datasets and `eval` read images.
        let p = path.clone();
        let err = within(60, "process_file", move || {
            let pipeline = Pipeline::from_name("openai", 16).unwrap();
            pipeline.process_file(&p, 0).unwrap_err().to_string()
        });
        assert_names(&err, &path, kind);

        // As a caption file and as a tar shard.
        let p = path.clone();
        let err = within(60, "CsvDataset::open", move || {
            CsvDataset::open(&p, &CsvConfig::default(), loader())
                .unwrap_err()
                .to_string()
        });
        assert_names(&err, &path, kind);
        let p = path.clone();
        let results = within(60, "WebDataset", move || {
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
    let (item, skipped, errors) = within(60, "CSV of special files", move || {
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

/// `TextLines` (line lists, `search --queries -`): a line of exactly `MAX_LINE_BYTES` is read
/// whatever its ending; one byte more is an error naming the line, after which reading stops;
/// a line that is not UTF-8 is an error and reading goes on.
#[test]
fn text_lines_hold_their_limit_exactly() {
    use diffclip_data::files::{MAX_LINE_BYTES, TextLines};
    let max = MAX_LINE_BYTES as usize;
    for ending in ["\n", "\r\n"] {
        let mut input = vec![b'a'; max];
        input.extend_from_slice(ending.as_bytes());
        input.extend_from_slice(b"next\n");
        let lines: Vec<String> = TextLines::new(&input[..], "in").collect::<Result<_, _>>().unwrap_or_else(|e| panic!("{ending:?}: {e}"));
        assert_eq!((lines.len(), lines[0].len(), lines[1].as_str()), (2, max, "next"), "{ending:?}");
    }
    let last: Vec<String> = TextLines::new(&vec![b'a'; max][..], "in").collect::<Result<_, _>>().unwrap();
    assert_eq!(last[0].len(), max);
    let mut input = b"first\n".to_vec();
    input.extend(std::iter::repeat_n(b'a', max + 1));
    input.extend_from_slice(b"\r\nnever read\n");
    let mut lines = TextLines::new(&input[..], "in");
    assert_eq!(lines.next().unwrap().unwrap(), "first");
    let err = lines.next().unwrap().unwrap_err().to_string();
    assert_eq!(err, format!("in:2: longer than {MAX_LINE_BYTES} bytes"));
    assert!(lines.next().is_none() && lines.ended());
    let mut lines = TextLines::new(&b"\xffa\nb\n"[..], "in");
    assert!(lines.next().unwrap().is_err() && !lines.ended());
    assert_eq!(lines.next().unwrap().unwrap(), "b");
}

#[test]
fn a_bitmap_of_zero_width_or_height_says_so() {
    let mut bmp = Vec::new();
    image::RgbImage::from_pixel(3, 2, image::Rgb([1, 2, 3]))
        .write_to(&mut std::io::Cursor::new(&mut bmp), image::ImageFormat::Bmp)
        .unwrap();
    for (offset, want) in [(18, "zero size 0x2"), (22, "zero size 3x0")] {
        let mut bad = bmp.clone();
        bad[offset..offset + 4].copy_from_slice(&0i32.to_le_bytes());
        let err = decode_bytes(&bad, "flat.bmp", &DecodeOptions::default()).unwrap_err();
        assert!(err.to_string().contains(want) && err.to_string().contains("flat.bmp"), "{err}");
    }
}

#[test]
fn a_symbolic_link_loop_in_an_image_folder_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    for class in ["a", "b"] {
        std::fs::create_dir(tmp.path().join(class)).unwrap();
        std::fs::write(tmp.path().join(class).join("1.png"), b"not decoded here").unwrap();
    }
    std::os::unix::fs::symlink("..", tmp.path().join("a").join("loop")).unwrap();
    let err = within(60, "list_image_files", {
        let a = tmp.path().join("a");
        move || list_image_files(&[a]).unwrap_err()
    });
    assert!(err.to_string().contains("a symbolic link back to") && err.to_string().contains("loop"), "{err}");
    let link = tmp.path().join("a").join("loop");
    assert!(err.to_string().starts_with(&format!("cannot read {}: ", link.display())), "the link is named: {err}");
    // A link to a folder elsewhere is followed.
    std::fs::remove_file(tmp.path().join("a").join("loop")).unwrap();
    std::os::unix::fs::symlink("../b", tmp.path().join("a").join("more")).unwrap();
    assert_eq!(list_image_files(&[tmp.path().join("a")]).unwrap().len(), 2);
}
