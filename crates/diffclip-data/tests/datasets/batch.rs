//! Tests: batching.

use burn::data::dataloader::DataLoaderBuilder;
use burn::tensor::{DType, Device};
use diffclip_data::datasets::*;

use crate::fixtures::*;

#[test]
fn batcher_shapes_and_dtypes_on_flex() {
    let tmp = tempfile::tempdir().unwrap();
    csv_fixture(tmp.path());
    let config = CsvConfig {
        image_column: "image".into(),
        caption_column: "caption".into(),
        label_column: Some("label".into()),
        ..Default::default()
    };
    let ds = CsvDataset::open(tmp.path().join("meta/train.csv"), &config, loader()).unwrap();
    let device = Device::flex();
    let dl = DataLoaderBuilder::new(ClipBatcher::default())
        .batch_size(2)
        .set_device(device.clone())
        .build(ds);
    let batch = dl.iter().next().unwrap().unwrap();
    assert_eq!(batch.images.dims(), [2, 3, SIZE, SIZE]);
    assert_eq!(batch.images.dtype(), DType::F32);
    assert_eq!(batch.texts.dims(), [2, 77]);
    assert!(matches!(batch.texts.dtype(), DType::I64 | DType::I32));
    let labels = batch.labels.unwrap();
    assert_eq!(
        labels
            .clone()
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap(),
        [2, 0]
    );
    let ids = batch
        .texts
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .unwrap();
    let third: Vec<i64> = ClipBatcher::default()
        .tokenizer()
        .tokenize("third")
        .unwrap()
        .iter()
        .map(|&i| i as i64)
        .collect();
    assert_eq!(&ids[..77], third.as_slice());
    assert_eq!((ids[0], ids[2]), (49406, 49407)); // SOT, one token, EOT

    let batcher = ClipBatcher::default();
    let item = |size: usize| ClipItem {
        image: vec![0.0; 3 * size * size],
        size,
        caption: "x".into(),
        label: None,
    };
    assert!(batcher.try_batch(vec![], &device).is_err());
    let err = batcher
        .try_batch(vec![item(4), item(5)], &device)
        .unwrap_err();
    assert!(err.to_string().contains("different sizes"), "{err}");
    let b = batcher.try_batch(vec![item(4)], &device).unwrap();
    assert!(b.labels.is_none());
}

#[test]
fn shuffle_buffer_is_a_deterministic_permutation() {
    let a: Vec<u32> = ShuffleBuffer::new(0..50, 8, 1).collect();
    assert_eq!(a, ShuffleBuffer::new(0..50, 8, 1).collect::<Vec<_>>());
    assert_ne!(a, ShuffleBuffer::new(0..50, 8, 2).collect::<Vec<_>>());
    let mut s = a.clone();
    s.sort();
    assert_eq!(s, (0..50).collect::<Vec<_>>());
    assert_eq!(
        ShuffleBuffer::new(0..5, 0, 1).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
}
