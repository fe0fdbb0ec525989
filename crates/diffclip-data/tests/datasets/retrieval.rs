//! Tests: retrieval (Karpathy JSON).

use diffclip_data::datasets::*;

use crate::fixtures::*;

#[test]
fn karpathy_json_exposes_images_and_caption_index() {
    let tmp = tempfile::tempdir().unwrap();
    let path = karpathy(tmp.path());
    let config = KarpathyConfig {
        image_root: Some(tmp.path().join("images")),
        ..Default::default()
    };
    let ds = KarpathyDataset::open(&path, &config, loader()).unwrap();
    assert_eq!(ds.num_images(), 2);
    assert_eq!(ds.captions(), ["a", "b", "c", "d", "e", "f", "g"]);
    assert_eq!(ds.caption_to_image(), [0, 0, 0, 0, 0, 1, 1]);
    assert_eq!(ds.caption_range(1), Some(5..7));
    assert_eq!(ds.images()[0], tmp.path().join("images/val2014/1.png"));
    assert_eq!(ds.skip_counter().skipped(), 1);
    assert!(
        ds.skip_counter()
            .last_error()
            .unwrap()
            .contains("images[2]")
    );
    let item = ds.get_item(1).unwrap();
    assert_eq!((item.caption.as_str(), red(&item)), ("f", 110));
    assert_eq!(ds.load_image(0).unwrap().len(), 3 * SIZE * SIZE);
    let pair = ds.pair(6).unwrap();
    assert_eq!((pair.caption.as_str(), red(&pair)), ("g", 110));

    let all = KarpathyConfig {
        splits: vec![],
        ..config.clone()
    };
    let ds = KarpathyDataset::open(&path, &all, loader()).unwrap();
    assert_eq!(ds.num_images(), 4);
    let tv = KarpathyConfig {
        splits: vec!["train".into(), "val".into()],
        ..config.clone()
    };
    assert_eq!(
        KarpathyDataset::open(&path, &tv, loader())
            .unwrap()
            .captions(),
        ["zero", "h"]
    );

    let err = KarpathyDataset::open(&path, &config, fail_loader()).unwrap_err();
    assert!(
        err.to_string().contains("dataset_coco.json") && err.to_string().contains("images[2]"),
        "{err}"
    );
    write(&tmp.path().join("bad.json"), b"{\"images\": [");
    let err = KarpathyDataset::open(tmp.path().join("bad.json"), &config, loader()).unwrap_err();
    assert!(
        matches!(err, DataError::Json { .. }) && err.to_string().contains("bad.json"),
        "{err}"
    );

    // Default image root: the JSON's directory.
    let ds = KarpathyDataset::open(&path, &KarpathyConfig::default(), loader()).unwrap();
    let err = ds.load_image(1).unwrap_err();
    assert!(err.to_string().contains("meta/2.png"), "{err}");
}

#[test]
fn an_empty_retrieval_set_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let path = karpathy(tmp.path());
    let open = |splits: &[&str], path: &std::path::Path| {
        let config = KarpathyConfig { splits: splits.iter().map(|s| s.to_string()).collect(), image_root: Some(tmp.path().join("images")) };
        KarpathyDataset::open(path, &config, loader()).map(|d| d.num_images()).map_err(|e| e.to_string())
    };
    // Flickr30k's JSON spells its held-out split "test"; a typo selected nothing, silently.
    let e = open(&["tset"], &path).unwrap_err();
    assert!(e.contains("dataset_coco.json") && e.contains("no entry has split tset; the file's splits are test, train, val"), "{e}");
    let no_splits = tmp.path().join("plain.json");
    write(&no_splits, br#"{"images": [{"filename": "2.png", "sentences": [{"raw": "f"}]}]}"#);
    assert!(open(&["test"], &no_splits).unwrap_err().contains("the file's splits are (none)"));
    assert_eq!(open(&[], &no_splits), Ok(1), "no split filter keeps an entry without a split");
    write(&no_splits, br#"{"images": []}"#);
    assert!(open(&[], &no_splits).unwrap_err().contains("the \"images\" array is empty"));
    write(&no_splits, br#"{"images": [{"filename": "gone.png", "split": "test"}]}"#);
    assert!(open(&["test"], &no_splits).unwrap_err().contains("none of the 1 selected entries could be used"));
}
