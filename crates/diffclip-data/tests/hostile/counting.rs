//! Bad samples are counted where the trainer reads them; an empty class folder is an error.

use super::*;

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
