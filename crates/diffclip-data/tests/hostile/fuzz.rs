//! Property tests over arbitrary bytes and strings.

use super::*;

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
