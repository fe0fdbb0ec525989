//! Tests: WebDataset.

use burn::tensor::Device;
use diffclip_data::datasets::*;

use crate::fixtures::*;

#[test]
fn webdataset_streams_good_samples_and_counts_bad_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let pattern = shards(tmp.path());
    let wds = WebDataset::new(&pattern, WebDatasetConfig::default(), loader()).unwrap();
    assert_eq!(wds.shards().len(), 6);
    assert_eq!(wds.shards()[3], tmp.path().join("00003.tar"));

    let items: Vec<ClipItem> = wds.items().map(Result::unwrap).collect();
    let captions: Vec<&str> = items.iter().map(|i| i.caption.as_str()).collect();
    assert_eq!(
        captions,
        [
            "one",
            "four",
            "a webp",
            "a coco photo",
            "grey",
            "five",
            "seven"
        ]
    );
    assert_eq!(red(&items[0]), 1);
    assert_eq!(red(&items[1]), 4);
    assert!(
        items
            .iter()
            .all(|i| i.image.len() == 3 * SIZE * SIZE && i.label.is_none())
    );
    assert_eq!(
        wds.skip_counter().skipped(),
        6,
        "{:?}",
        wds.skip_counter().last_error()
    );

    // The raw stream names every problem.
    let errors: Vec<String> = wds
        .raw_samples()
        .filter_map(|r| r.err())
        .map(|e| e.to_string())
        .collect();
    assert_eq!(errors.len(), 5, "{errors:#?}"); // the broken JPEG only fails when decoded
    assert!(
        errors[0].contains("00000.tar")
            && errors[0].contains("000002")
            && errors[0].contains("caption")
    );
    assert!(
        errors[1].contains("00002.tar") && errors[1].contains("after member 200000.txt"),
        "{}",
        errors[1]
    );
    assert!(
        errors[2].contains("00003.tar")
            && errors[2].contains("300001.png")
            && errors[2].contains("truncated")
    );
    assert!(errors[3].contains("00004.tar"), "{}", errors[3]);
    assert!(errors[4].contains("00005.tar"), "{}", errors[4]);
    let first = wds.raw_samples().next().unwrap().unwrap();
    assert_eq!(first.json.as_deref(), Some("{\"key\": \"000000\"}"));
    let sub = wds
        .raw_samples()
        .filter_map(Result::ok)
        .find(|s| s.caption == "grey")
        .unwrap();
    assert_eq!(
        (sub.key.as_str(), sub.image_member.as_str()),
        ("sub/100002", "sub/100002.png")
    );
}

#[test]
fn webdataset_fail_policy_stops_at_the_first_bad_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let wds = WebDataset::new(
        &shards(tmp.path()),
        WebDatasetConfig::default(),
        fail_loader(),
    )
    .unwrap();
    let results: Vec<_> = wds.items().collect();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].as_ref().unwrap().caption, "one");
    let err = results[1].as_ref().unwrap_err().to_string();
    assert!(err.contains("00000.tar:000001.jpg"), "{err}");
    assert_eq!(wds.skip_counter().skipped(), 0);

    let batches: Vec<_> = wds
        .batches(ClipBatcher::default(), 4, Device::flex())
        .collect();
    assert_eq!(batches.len(), 1);
    assert!(
        batches[0]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("000001.jpg")
    );
}

#[test]
fn webdataset_batches_and_shuffling() {
    let tmp = tempfile::tempdir().unwrap();
    let pattern = shards(tmp.path());
    let wds = WebDataset::new(&pattern, WebDatasetConfig::default(), loader()).unwrap();
    let batches: Vec<ClipBatch> = wds
        .batches(ClipBatcher::default(), 3, Device::flex())
        .map(Result::unwrap)
        .collect();
    let sizes: Vec<usize> = batches.iter().map(|b| b.images.dims()[0]).collect();
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(batches[0].images.dims(), [3, 3, SIZE, SIZE]);
    assert_eq!(batches[0].texts.dims(), [3, 77]);
    assert!(batches[0].labels.is_none());
    assert_eq!(wds.skip_counter().skipped(), 6);

    let config = WebDatasetConfig {
        shuffle_shards: true,
        shuffle_buffer: 4,
        ..Default::default()
    };
    let wds = WebDataset::new(&pattern, config, loader().with_seed(3)).unwrap();
    let order = |w: &WebDataset| w.items().map(|i| i.unwrap().caption).collect::<Vec<_>>();
    let a = order(&wds);
    assert_eq!(a, order(&wds), "same epoch, same order");
    let mut sorted = a.clone();
    sorted.sort();
    let mut expected = vec![
        "a coco photo",
        "a webp",
        "five",
        "four",
        "grey",
        "one",
        "seven",
    ];
    expected.sort();
    assert_eq!(sorted, expected);
    let orders: Vec<Vec<String>> = (1..4)
        .map(|e| {
            wds.set_epoch(e);
            order(&wds)
        })
        .collect();
    assert!(orders.iter().any(|o| *o != a), "epochs reshuffle");
}

#[test]
fn an_oversized_member_skips_its_sample_not_the_rest_of_the_shard() {
    use std::io::{Seek, SeekFrom, Write};
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("00000.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
    let append = |b: &mut tar::Builder<std::fs::File>, name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).unwrap();
    };
    append(&mut b, "000001.png", &png_bytes(4, 4, [1, 0, 0]));
    append(&mut b, "000001.txt", b"one");
    // A member just over the limit, written as a hole so the test stays small on disk.
    let size = diffclip_data::datasets::MAX_MEMBER_BYTES + 1;
    let mut h = tar::Header::new_gnu();
    h.set_path("000002.png").unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    b.get_mut().write_all(h.as_bytes()).unwrap();
    b.get_mut().seek(SeekFrom::Current(size.div_ceil(512) as i64 * 512)).unwrap();
    append(&mut b, "000002.txt", b"two");
    append(&mut b, "000003.png", &png_bytes(4, 4, [3, 0, 0]));
    append(&mut b, "000003.txt", b"three");
    b.finish().unwrap();

    let results: Vec<_> = WebDataset::samples_of(vec![path], &WebDatasetConfig::default()).collect();
    assert_eq!(results.len(), 3, "{results:?}");
    assert_eq!(results[0].as_ref().unwrap().caption, "one");
    let err = results[1].as_ref().unwrap_err().to_string();
    assert!(err.contains("000002.png") && err.contains("limit"), "{err}");
    assert_eq!(results[2].as_ref().unwrap().caption, "three");
}

#[test]
fn members_a_job_does_not_need_are_optional() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("00000.tar");
    let members = [
        ("a.png", png_bytes(4, 4, [1, 0, 0])),
        ("b.txt", b"only a caption".to_vec()),
    ];
    write(&path, &tar_bytes(&members));
    let read = |config: WebDatasetConfig| -> Vec<Result<(usize, String), String>> {
        WebDataset::samples_of(vec![path.clone()], &config)
            .map(|r| r.map(|s| (s.image.len(), s.caption)).map_err(|e| e.to_string()))
            .collect()
    };
    // Both required (training): each sample lacks one member.
    let both = read(WebDatasetConfig::default());
    assert!(both.iter().all(Result::is_err), "{both:?}");
    assert!(both[0].as_ref().unwrap_err().contains("no caption member"));
    assert!(both[1].as_ref().unwrap_err().contains("no image member"));
    // Images only: the captionless sample is good, the imageless one is not.
    let images = read(WebDatasetConfig { require_caption: false, ..Default::default() });
    assert!(matches!(&images[0], Ok((n, c)) if *n > 0 && c.is_empty()), "{images:?}");
    assert!(images[1].is_err());
    // Captions only: the other way round.
    let texts = read(WebDatasetConfig { require_image: false, ..Default::default() });
    assert!(texts[0].is_err());
    assert_eq!(texts[1], Ok((0, "only a caption".to_string())));
}

#[test]
fn a_blank_caption_is_a_bad_sample_where_captions_are_required() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("00000.tar");
    let members = [
        ("a.png", png_bytes(4, 4, [1, 0, 0])),
        ("a.txt", b"  \n".to_vec()),
        ("b.png", png_bytes(4, 4, [2, 0, 0])),
        ("b.txt", b"a red square".to_vec()),
    ];
    write(&path, &tar_bytes(&members));
    let read = |config: WebDatasetConfig| -> Vec<Result<String, String>> {
        WebDataset::samples_of(vec![path.clone()], &config).map(|r| r.map(|s| s.caption).map_err(|e| e.to_string())).collect()
    };
    let training = read(WebDatasetConfig::default());
    assert!(training[0].as_ref().is_err_and(|e| e.contains("caption a.txt is empty")), "{training:?}");
    assert_eq!(training[1], Ok("a red square".to_string()));
    // A job that needs no caption takes the image.
    assert_eq!(read(WebDatasetConfig { require_caption: false, ..Default::default() })[0], Ok(String::new()));
}

#[test]
fn a_sample_with_two_members_of_one_kind_is_a_bad_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("00000.tar");
    let members = [
        ("a.png", png_bytes(4, 4, [1, 0, 0])),
        ("a.png", png_bytes(4, 4, [2, 0, 0])),
        ("a.txt", b"one".to_vec()),
        ("b.png", png_bytes(4, 4, [3, 0, 0])),
        ("b.txt", b"two".to_vec()),
        ("b.txt", b"three".to_vec()),
        ("c.png", png_bytes(4, 4, [4, 0, 0])),
        ("c.txt", b"four".to_vec()),
        // Members nothing reads may repeat.
        ("c.cls", b"1".to_vec()),
        ("c.cls", b"2".to_vec()),
        ("d.png", png_bytes(4, 4, [6, 0, 0])),
        ("d.txt", b"five".to_vec()),
        // `tar -r`: a sample met again after others is its later copy, left out.
        ("c.png", png_bytes(4, 4, [5, 0, 0])),
        ("c.txt", b"four again".to_vec()),
        ("e.png", png_bytes(4, 4, [7, 0, 0])),
        ("e.txt", b"six".to_vec()),
    ];
    write(&path, &tar_bytes(&members));
    let read: Vec<Result<String, String>> = WebDataset::samples_of(vec![path.clone()], &WebDatasetConfig::default()).map(|r| r.map(|s| s.caption).map_err(|e| e.to_string())).collect();
    assert!(read[0].as_ref().is_err_and(|e| e.contains("two .png members")), "{read:?}");
    assert!(read[1].as_ref().is_err_and(|e| e.contains("two .txt members")), "{read:?}");
    assert_eq!(read[2], Ok("four".to_string()));
    assert_eq!(read[3], Ok("five".to_string()));
    assert!(read[4].as_ref().is_err_and(|e| e.contains("\"c\" appears again after other samples")), "{read:?}");
    assert_eq!(read[5..], [Ok("six".to_string())]);
}

#[test]
fn a_shard_listed_twice_is_refused() {
    let err = WebDataset::new("d/{0..2}.tar::d/1.tar", WebDatasetConfig::default(), loader()).unwrap_err();
    assert!(err.to_string().contains("shard d/1.tar is listed twice (shards 2 and 4 of 4)"), "{err}");
    assert!(WebDataset::new("d/{0..2}.tar::e/1.tar", WebDatasetConfig::default(), loader()).is_ok());
}
