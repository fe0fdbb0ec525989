//! Broken and legitimately quoted CSV files.

use super::*;

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
    // The quoted empty caption reads as empty; with captions required it is a bad row.
    let err = CsvDataset::open(&path, &CsvConfig::default(), fail_loader()).unwrap_err();
    assert!(err.to_string().contains(":7: empty caption"), "{err}");
    let images_only = CsvConfig { require_caption: false, ..CsvConfig::default() };
    let ds = CsvDataset::open(&path, &images_only, fail_loader()).unwrap();
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
