//! Tests: CSV / TSV.

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::Dataset;
use burn::tensor::Device;
use diffclip_data::datasets::*;

use crate::fixtures::*;

#[test]
fn csv_and_tsv_resolve_paths_relative_to_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    csv_fixture(tmp.path());
    let tsv = CsvDataset::open(
        tmp.path().join("meta/train.tsv"),
        &CsvConfig::default(),
        loader(),
    )
    .unwrap();
    assert_eq!(tsv.len(), 3);
    assert_eq!(tsv.rows()[0].image, tmp.path().join("meta/../imgs/a.png"));
    assert_eq!(tsv.rows()[1].caption, "quoted, caption");
    assert_eq!(tsv.rows()[2].image, fixtures().join("china.jpg")); // absolute path kept
    let dynamic: &dyn ClipDataset = &tsv;
    dynamic.set_epoch(4);
    assert_eq!(tsv.loader().epoch(), 4);
    let item = tsv.get_item(1).unwrap();
    assert_eq!(
        (item.image.len(), item.size, red(&item)),
        (3 * SIZE * SIZE, SIZE, 20)
    );
    assert_eq!(item.label, None);
    assert_eq!(tsv.get_item(2).unwrap().caption, "a photo");

    let config = CsvConfig {
        image_column: "image".into(),
        caption_column: "caption".into(),
        label_column: Some("label".into()),
        ..Default::default()
    };
    let csv = CsvDataset::open(tmp.path().join("meta/train.csv"), &config, loader()).unwrap();
    let items: Vec<ClipItem> = csv.iter().map(Result::unwrap).collect();
    assert_eq!(
        items.iter().map(|i| (red(i), i.label)).collect::<Vec<_>>(),
        [(30, Some(2)), (10, Some(0))]
    );

    // An explicit separator and image root.
    write(&tmp.path().join("flat.txt"), b"filepath;title\na.png;x\n");
    let config = CsvConfig {
        separator: Some(';'),
        image_root: Some(tmp.path().join("imgs")),
        ..Default::default()
    };
    let flat = CsvDataset::open(tmp.path().join("flat.txt"), &config, loader()).unwrap();
    assert_eq!(red(&flat.get_item(0).unwrap()), 10);
}

#[test]
fn malformed_csv_rows_are_skipped_and_counted_or_fail_naming_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    csv_fixture(tmp.path());
    let text = "filepath\ttitle\n../imgs/a.png\tok\n../imgs/b.png\ttoo\tmany\n\tempty path\n../imgs/c.png\tok too\n";
    let path = tmp.path().join("meta/bad.tsv");
    write(&path, text.as_bytes());
    let ds = CsvDataset::open(&path, &CsvConfig::default(), loader()).unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(ds.skip_counter().skipped(), 2);
    assert!(
        ds.skip_counter()
            .last_error()
            .unwrap()
            .contains("bad.tsv:4")
    );

    let err = CsvDataset::open(&path, &CsvConfig::default(), fail_loader()).unwrap_err();
    assert!(matches!(err, DataError::Csv { line: 3, .. }), "{err}");
    assert!(err.to_string().contains("bad.tsv:3"), "{err}");

    let config = CsvConfig {
        caption_column: "caption".into(),
        ..Default::default()
    };
    let err = CsvDataset::open(&path, &config, loader()).unwrap_err();
    assert!(err.to_string().contains("no column \"caption\""), "{err}");
    let err = CsvDataset::open(
        tmp.path().join("missing.csv"),
        &CsvConfig::default(),
        loader(),
    )
    .unwrap_err();
    assert!(
        matches!(err, DataError::Io { .. }) && err.to_string().contains("missing.csv"),
        "{err}"
    );
}

#[test]
fn bad_images_are_substituted_and_counted_under_skip() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = CsvDataset::open(bad_images_tsv(tmp.path()), &CsvConfig::default(), loader()).unwrap();
    assert_eq!(ds.len(), 6);
    let captions: Vec<String> = (0..6)
        .map(|i| Dataset::get(&ds, i).unwrap().caption)
        .collect();
    // Rows 1..=4 are bad: each is replaced by the next good row (row 5).
    assert_eq!(captions, ["a", "b", "b", "b", "b", "b"]);
    assert_eq!(ds.skip_counter().skipped(), 4);
    assert!(
        ds.skip_counter()
            .last_error()
            .unwrap()
            .contains("truncated.png")
    );

    for (i, name) in [
        (1, "missing.png"),
        (2, "empty.png"),
        (3, "garbage.jpg"),
        (4, "truncated.png"),
    ] {
        let err = ds.try_get(i).unwrap_err();
        assert!(matches!(err, DataError::Image(_)), "{err}");
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
}

#[test]
fn bad_images_fail_under_fail_and_the_data_loader_reports_it() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = CsvDataset::open(
        bad_images_tsv(tmp.path()),
        &CsvConfig::default(),
        fail_loader(),
    )
    .unwrap();
    let err = ds.get_item(2).unwrap_err();
    assert!(err.to_string().contains("empty.png"), "{err}");
    assert_eq!(ds.skip_counter().skipped(), 0);
    assert!(
        ds.skip_counter()
            .last_error()
            .unwrap()
            .contains("empty.png")
    );
    assert!(
        Dataset::get(&ds, 1)
            .unwrap_err()
            .to_string()
            .contains("missing.png")
    );

    let counter = ds.skip_counter().clone();
    let dl = DataLoaderBuilder::new(ClipBatcher::default())
        .batch_size(2)
        .set_device(Device::flex())
        .build(ds);
    let mut it = dl.iter();
    assert!(it.next().unwrap().is_err(), "rows 0-1 hold a missing image");
    assert!(counter.last_error().unwrap().contains("missing.png"));
}

/// Moved from `diffclip-eval`'s units (its own CSV parser is gone; captions and pairs lists are
/// read by `CsvTable`): the same input, the same records and lines.
#[test]
fn csv_table_quotes_newlines_crlf_and_blank_lines() {
    let text = "image,caption\r\na.png,\"two\nlines\"\r\n\r\nb.png,plain\n\"c.png\", \"spaced\"\n";
    let csv = CsvTable::parse(text, "x.csv".as_ref(), b',').unwrap();
    assert_eq!(csv.header(), ["image", "caption"]);
    let rows: Vec<_> = csv
        .records()
        .iter()
        .map(|r| (r.line, r.fields.clone()))
        .collect();
    assert_eq!(
        rows[0],
        (2, vec!["a.png".to_string(), "two\nlines".to_string()])
    );
    assert_eq!(rows[1], (5, vec!["b.png".to_string(), "plain".to_string()]));
    assert_eq!(rows[2].1, ["c.png", "spaced"]);
    // A quote inside an unquoted field is a literal character (the `csv` crate's and pandas'
    // rule, which training files follow); eval's former parser refused it.
    let csv = CsvTable::parse("a,b\nx\"y,z\n", "x.csv".as_ref(), b',').unwrap();
    assert_eq!(csv.records()[0].fields, ["x\"y", "z"]);
    // A broken quote is an error naming its line.
    let e = CsvTable::parse("a,b\nx,\"y\nz\" w\n", "x.csv".as_ref(), b',').unwrap_err();
    assert!(matches!(e, DataError::Csv { line: 2, .. }), "{e}");
    assert!(CsvTable::parse("", "x.csv".as_ref(), b',').is_err());
    // Spaces around a quoted field, lines of spaces, a BOM, columns matched ignoring case.
    let csv = CsvTable::parse(
        "\u{feff}Image , Caption\n   \n a.png ,  \"x, y\"  \n",
        "x.csv".as_ref(),
        b',',
    )
    .unwrap();
    assert_eq!(csv.header(), ["Image", "Caption"]);
    assert_eq!(csv.records().len(), 1);
    assert_eq!(csv.records()[0].line, 3);
    assert_eq!(csv.records()[0].fields[1].trim(), "x, y");
    assert_eq!(csv.column("caption").unwrap(), 1);
    let e = csv.column("title").unwrap_err().to_string();
    assert!(e.starts_with("x.csv:1: no column \"title\""), "{e}");
    let e = csv.field(&csv.records()[0], 5).unwrap_err();
    assert!(matches!(e, DataError::Csv { line: 3, .. }), "{e}");
}

#[test]
fn csv_table_refuses_a_row_of_extra_fields() {
    // An unquoted comma in a caption: "a red" alone would be read as the caption.
    let csv = CsvTable::parse("image,caption\na.png,a red, flower\nb.png,\"a cat, sitting\"\n", "x.csv".as_ref(), b',').unwrap();
    let e = csv.field(&csv.records()[0], 1).unwrap_err().to_string();
    assert!(e.starts_with("x.csv:2: malformed row: 3 fields, the header has 2 (quote"), "{e}");
    assert_eq!(csv.field(&csv.records()[1], 1).unwrap(), "a cat, sitting");
}

#[test]
fn csv_rows_name_the_line_they_start_on() {
    // A multi-line caption and blank lines before a bad row: the row's own line is named.
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("c.csv");
    write(
        &path,
        b"filepath,title\na.png,\"two\nlines\"\n\n\nb.png,x,extra\n",
    );
    let err = CsvDataset::open(&path, &CsvConfig::default(), fail_loader()).unwrap_err();
    assert!(matches!(err, DataError::Csv { line: 6, .. }), "{err}");
    let ds = CsvDataset::open(&path, &CsvConfig::default(), loader()).unwrap();
    assert_eq!((ds.len(), ds.rows()[0].line), (1, 2));
    assert_eq!(ds.rows()[0].caption, "two\nlines");
}

#[test]
fn a_column_named_twice_or_read_twice_is_refused() {
    // Two "caption" columns: which one is meant cannot be known.
    let csv = CsvTable::parse("image,caption,Caption,caption\na.png,x,y,z\n", "x.csv".as_ref(), b',').unwrap();
    let e = csv.column("caption").unwrap_err().to_string();
    assert_eq!(e, "x.csv:1: column \"caption\" appears 2 times in the header (columns 2, 4): which one is meant cannot be known");
    assert_eq!(csv.column("image").unwrap(), 0);
    // The image column read as captions would train on file names.
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("pairs.csv");
    std::fs::write(&path, "image,caption\na.png,a cat\n").unwrap();
    let config = CsvConfig { image_column: "image".into(), caption_column: "image".into(), ..Default::default() };
    let e = CsvDataset::open(&path, &config, loader()).unwrap_err().to_string();
    assert!(e.contains("pairs.csv:1: the image column \"image\" and the caption column \"image\" are the same column (1)"), "{e}");
    assert!(CsvConfig::parse_separator("\"").is_err());
    let quoted = CsvConfig { separator: Some('"'), ..Default::default() };
    assert!(quoted.separator_for(&path).is_err());
}

#[test]
fn a_blank_caption_is_a_bad_row() {
    // Training on "" teaches nothing; WebDataset samples with blank captions are bad too.
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("c.csv");
    write(&path, b"filepath,title\na.png,a cat\nb.png,   \nc.png,\nd.png,\x01\x02\n");
    let err = CsvDataset::open(&path, &CsvConfig::default(), fail_loader()).unwrap_err();
    assert!(matches!(err, DataError::Csv { line: 3, .. }), "{err}");
    assert!(err.to_string().contains("empty caption"), "{err}");
    let ds = CsvDataset::open(&path, &CsvConfig::default(), loader()).unwrap();
    assert_eq!(ds.len(), 1);
    assert_eq!(ds.skip_counter().skipped(), 3, "control characters alone are as blank");
    // Read for its images alone (embed --embed images), every row counts.
    let images_only = CsvConfig { require_caption: false, ..CsvConfig::default() };
    assert_eq!(CsvDataset::open(&path, &images_only, fail_loader()).unwrap().len(), 4);
}

#[test]
fn a_file_of_no_rows_stops_at_the_row_cap_with_a_short_message() {
    let tmp = tempfile::tempdir().unwrap();
    // 20 MiB of NUL bytes, then a 1 TiB hole: read no further than the cap, under either policy.
    let path = tmp.path().join("zeros.csv");
    std::fs::File::create(&path).unwrap().set_len(1 << 40).unwrap();
    for policy in [BadSamplePolicy::Skip, BadSamplePolicy::Fail] {
        let e = CsvDataset::open(&path, &CsvConfig::default(), loader().with_policy(policy)).unwrap_err().to_string();
        assert!(e.contains("zeros.csv:1") && e.contains("a row of more than 16777216 bytes"), "{e}");
        assert!(e.len() < 400, "{} bytes of message", e.len());
    }
    // A quote left open makes a long row too: said as the open quote it is.
    let rows: String = (0..200_000).map(|i| format!("a{i}.jpg,caption {i} {}\n", "x".repeat(80))).collect();
    write(&path, format!("filepath,title\na.jpg,\"open\n{rows}").as_bytes());
    let e = CsvDataset::open(&path, &CsvConfig::default(), loader()).unwrap_err().to_string();
    assert!(e.contains("zeros.csv:2") && e.contains("unterminated quoted field"), "{e}");
    // A row of exactly the cap, with its line end, is a row.
    let cap = diffclip_data::files::MAX_LINE_BYTES as usize;
    let caption = "y".repeat(cap - "b.jpg,".len());
    write(&path, format!("filepath,title\r\nb.jpg,{caption}\r\n").as_bytes());
    assert_eq!(CsvDataset::open(&path, &CsvConfig::default(), loader()).unwrap().len(), 1);
    // A header of thousands of columns is named by its first few.
    let wide: Vec<String> = (0..5000).map(|i| format!("column number {i} {}", "x".repeat(100))).collect();
    write(&path, format!("{}\n", wide.join(",")).as_bytes());
    let e = CsvDataset::open(&path, &CsvConfig::default(), loader()).unwrap_err().to_string();
    assert!(e.contains("no column \"filepath\"") && e.contains("and 4980 more") && e.len() < 2000, "{e}");
}
