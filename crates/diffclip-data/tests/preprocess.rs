//! Image preprocessing against the Pillow/torchvision fixtures in
//! `shared/fixtures/preprocess` (see its `config.json`).

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use diffclip_data::preprocess::{
    DecodeOptions, Geometry, Pipeline, PreprocessConfig, PreprocessError, Preset, decode_bytes,
    decode_file, image_tensor,
};

// Tests on synthetic files of other formats and modes (BMP, PNG variants, EXIF).
#[path = "preprocess_support/formats.rs"]
mod formats;

const IMAGES: [(&str, &str); 11] = [
    ("coco_sample", "coco_sample.jpg"),
    ("china", "china.jpg"),
    ("flower", "flower.jpg"),
    ("rgba_300x200", "rgba_300x200.png"),
    ("gray_123x457", "gray_123x457.png"),
    ("cmyk_256x256", "cmyk_256x256.jpg"),
    ("tiny_1x1", "tiny_1x1.png"),
    ("wide_1000x10", "wide_1000x10.png"),
    ("gray16_200x150", "gray16_200x150.png"),
    ("palette_150x148", "palette_150x148.gif"),
    ("webp_263x257", "webp_263x257.webp"),
];

/// Plain RGB (or grey) images: these must match the reference closely.
const PLAIN: [&str; 7] = [
    "coco_sample",
    "china",
    "flower",
    "webp_263x257",
    "wide_1000x10",
    "tiny_1x1",
    "gray_123x457",
];

fn fixtures() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/preprocess");
    assert!(
        dir.join("expected.safetensors").is_file(),
        "preprocess fixtures missing: expected {}/expected.safetensors (the shared reference \
         material must be checked out next to the repository as ../shared)",
        dir.display()
    );
    dir
}

pub(crate) fn image_path(file: &str) -> PathBuf {
    fixtures().join("images").join(file)
}

/// Reference uint8 CHW tensors by key.
fn reference(key: &str) -> Vec<u8> {
    let bytes = std::fs::read(fixtures().join("expected.safetensors")).expect("read fixture");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("parse fixture");
    let t = st
        .tensor(key)
        .unwrap_or_else(|e| panic!("fixture tensor {key} missing: {e}"));
    assert_eq!(t.dtype(), safetensors::Dtype::U8, "{key}");
    assert_eq!(t.shape(), &[3, 224, 224], "{key}");
    t.data().to_vec()
}

fn normalize_chw_u8(u8s: &[u8], mean: [f32; 3], std: [f32; 3]) -> Vec<f32> {
    let n = u8s.len() / 3;
    u8s.iter()
        .enumerate()
        .map(|(i, &v)| ((v as f32) / 255f32 - mean[i / n]) / std[i / n])
        .collect()
}

struct Err {
    mean: f64,
    max: f64,
    exact: f64,
}

fn compare(ours: &[f32], reference: &[f32]) -> Err {
    assert_eq!(ours.len(), reference.len());
    let d: Vec<f64> = ours
        .iter()
        .zip(reference)
        .map(|(a, b)| f64::from((a - b).abs()))
        .collect();
    Err {
        mean: d.iter().sum::<f64>() / d.len() as f64,
        max: d.iter().cloned().fold(0.0, f64::max),
        exact: d.iter().filter(|&&x| x == 0.0).count() as f64 / d.len() as f64,
    }
}

fn why(name: &str) -> &'static str {
    match name {
        "coco_sample" | "china" | "flower" => {
            "JPEG decoder: zune-jpeg vs libjpeg-turbo (IDCT, fancy upsampling, YCbCr rounding)"
        }
        "cmyk_256x256" => "JPEG decoder on CMYK planes; conversion itself is Pillow's cmyk2rgb",
        "rgba_300x200" => "exact: alpha dropped; openai resizes premultiplied RGBa like Pillow",
        "gray16_200x150" => "exact: I;16 resized in 16 bits then clipped (openai)",
        "palette_150x148" => "exact: P resized with nearest on indices (openai)",
        "webp_263x257" => "exact: image-webp decodes like libwebp here",
        _ => "exact: lossless decode, bit-exact resampling",
    }
}

#[test]
fn pipelines_match_pillow_reference() {
    let openai = Pipeline::from_preset(Preset::OpenAi, 224).unwrap();
    let square = Pipeline::from_preset(Preset::SquareImagenet, 224).unwrap();
    println!(
        "\n{:<16} {:>6} | {:>9} {:>9} {:>7} | {:>9} {:>9} {:>7} | why",
        "image", "mode", "openai.mean", "max", "exact", "square.mean", "max", "exact"
    );
    let mut failures = Vec::new();
    for (name, file) in IMAGES {
        let img = decode_file(image_path(file), &DecodeOptions::default()).unwrap();
        let mut row = Vec::new();
        for (pipe, key) in [(&openai, "openclip"), (&square, "authors")] {
            let c = pipe.config();
            let want = normalize_chw_u8(&reference(&format!("{name}/{key}/u8")), c.mean, c.std);
            let got = pipe.process_image(&img, 0);
            let e = compare(&got, &want);
            if PLAIN.contains(&name) && (e.mean > 0.01 || e.max > 0.35) {
                failures.push(format!("{name} {key}: mean {:.5} max {:.5}", e.mean, e.max));
            }
            // Images labelled exact (rgba, gray16, palette, webp, lossless RGB/grey) must
            // reproduce the reference bit for bit, on both pipelines.
            if why(name).starts_with("exact") && e.max != 0.0 {
                failures.push(format!(
                    "{name} {key}: labelled exact but {:.1}% exact, max {:.5}",
                    100.0 * e.exact,
                    e.max
                ));
            }
            row.push(e);
        }
        println!(
            "{:<16} {:>6} | {:>11.6} {:>9.5} {:>6.1}% | {:>11.6} {:>9.5} {:>6.1}% | {}",
            name,
            img.mode_name(),
            row[0].mean,
            row[0].max,
            100.0 * row[0].exact,
            row[1].mean,
            row[1].max,
            100.0 * row[1].exact,
            why(name)
        );
    }
    assert!(failures.is_empty(), "reference mismatch: {failures:#?}");
}

#[test]
fn reference_f32_tensors_are_reproduced_for_coco() {
    // The fixture also stores the full float pipelines for coco_sample.
    let bytes = std::fs::read(fixtures().join("expected.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for (preset, key) in [
        (Preset::OpenAi, "coco_sample/openclip"),
        (Preset::SquareImagenet, "coco_sample/authors"),
    ] {
        let t = st.tensor(key).unwrap();
        let want: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let got = Pipeline::from_preset(preset, 224)
            .unwrap()
            .process_file(image_path("coco_sample.jpg"), 0)
            .unwrap();
        let e = compare(&got, &want);
        assert!(
            e.mean <= 0.01 && e.max <= 0.35,
            "{key}: mean {} max {}",
            e.mean,
            e.max
        );
    }
}

#[test]
fn all_images_decode_to_3x224x224_tensors_for_every_preset() {
    let device = Device::flex();
    let paths: Vec<PathBuf> = IMAGES.iter().map(|(_, f)| image_path(f)).collect();
    for preset in Preset::ALL {
        let p = Pipeline::from_preset(preset, 224).unwrap();
        let batch = p.load_batch(&paths, 42, &device).unwrap();
        assert_eq!(batch.dims(), [11, 3, 224, 224], "{preset}");
        let values = batch.into_data().try_to_vec::<f32>().unwrap();
        assert!(values.iter().all(|v| v.is_finite()), "{preset}");
    }
    let one = Pipeline::from_preset(Preset::OpenAi, 224).unwrap();
    let t = image_tensor(one.process_file(&paths[0], 0).unwrap(), 224, &device).unwrap();
    assert_eq!(t.dims(), [3, 224, 224]);
}

#[test]
fn any_output_size_works() {
    for size in [1, 7, 96, 225, 336] {
        for preset in Preset::ALL {
            let p = Pipeline::from_preset(preset, size).unwrap();
            for (_, file) in [IMAGES[1], IMAGES[7], IMAGES[9]] {
                let x = p.process_file(image_path(file), 3).unwrap();
                assert_eq!(
                    x.len(),
                    3 * size as usize * size as usize,
                    "{preset} {size} {file}"
                );
            }
        }
    }
}

fn temp_file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn assert_names_file(err: &PreprocessError, path: &Path) {
    assert_eq!(err.path(), Some(path), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn bad_files_give_errors_naming_the_file() {
    let opts = DecodeOptions::default();
    let missing = fixtures().join("images/does_not_exist.jpg");
    let e = decode_file(&missing, &opts).unwrap_err();
    assert!(matches!(e, PreprocessError::Io { .. }), "{e}");
    assert_names_file(&e, &missing);

    let dir = tempfile::tempdir().unwrap();
    let empty = temp_file(&dir, "empty.jpg", b"");
    let e = decode_file(&empty, &opts).unwrap_err();
    assert!(matches!(e, PreprocessError::Empty { .. }), "{e}");
    assert_names_file(&e, &empty);

    let text = temp_file(&dir, "notes.png", b"this is not an image at all");
    let e = decode_file(&text, &opts).unwrap_err();
    assert!(matches!(e, PreprocessError::UnknownFormat { .. }), "{e}");
    assert_names_file(&e, &text);

    // Truncated and corrupted versions of every format.
    for (_, file) in IMAGES {
        let bytes = std::fs::read(image_path(file)).unwrap();
        if bytes.len() < 200 {
            continue; // tiny_1x1: covered by the header cuts below
        }
        let cut = temp_file(&dir, &format!("cut_{file}"), &bytes[..bytes.len() / 2]);
        let e = decode_file(&cut, &opts).unwrap_err();
        assert!(matches!(e, PreprocessError::Decode { .. }), "{file}: {e}");
        assert_names_file(&e, &cut);

        let mut garbled = bytes.clone();
        for b in &mut garbled[16..] {
            *b = b.wrapping_mul(31).wrapping_add(7);
        }
        let bad = temp_file(&dir, &format!("garbled_{file}"), &garbled);
        let e = decode_file(&bad, &opts).unwrap_err();
        assert!(
            matches!(
                e,
                PreprocessError::Decode { .. } | PreprocessError::Unsupported { .. }
            ),
            "{file}: {e}"
        );
        assert_names_file(&e, &bad);
    }
    for (_, file) in IMAGES {
        let bytes = std::fs::read(image_path(file)).unwrap();
        for n in [4, 13, 40] {
            let r = decode_bytes(&bytes[..n.min(bytes.len())], file, &opts);
            assert!(r.is_err(), "{file} cut to {n} bytes decoded");
        }
    }
    let p = Pipeline::from_preset(Preset::OpenAi, 224).unwrap();
    let e = p
        .process_files(&[image_path("china.jpg"), empty.clone()], 0)
        .unwrap_err();
    assert_names_file(&e, &empty);
}

#[test]
fn pixel_limit_rejects_large_images() {
    let opts = DecodeOptions {
        max_pixels: 100 * 100,
        ..Default::default()
    };
    for (_, file) in IMAGES {
        let path = image_path(file);
        let r = decode_file(&path, &opts);
        let img = decode_file(&path, &DecodeOptions::default()).unwrap();
        if u64::from(img.width()) * u64::from(img.height()) > 100 * 100 {
            let e = r.unwrap_err();
            assert!(matches!(e, PreprocessError::TooLarge { .. }), "{file}: {e}");
            assert!(e.to_string().contains("limit"), "{e}");
            assert_names_file(&e, &path);
        } else {
            r.unwrap();
        }
    }
}

#[test]
fn random_resized_crop_is_deterministic_per_seed() {
    let p = Pipeline::from_preset(Preset::SlipTrain, 224).unwrap();
    let img = decode_file(image_path("china.jpg"), &DecodeOptions::default()).unwrap();
    let a = p.process_image(&img, 1234);
    assert_eq!(a, p.process_image(&img, 1234));
    let others = (0..5).filter(|s| p.process_image(&img, *s) != a).count();
    assert_eq!(others, 5, "different seeds should give different crops");

    let paths = [
        image_path("china.jpg"),
        image_path("flower.jpg"),
        image_path("china.jpg"),
    ];
    let b1 = p.process_files(&paths, 9).unwrap();
    let b2 = p.process_files(&paths, 9).unwrap();
    assert_eq!(b1, b2);
    assert_ne!(b1[0], b1[2], "items of a batch get their own seeds");

    let mut cfg = PreprocessConfig::preset(Preset::SlipTrain, 64);
    cfg.geometry = Geometry::RandomResizedCrop {
        scale: [1.0, 1.0],
        ratio: [1.5, 1.5],
    };
    let p = Pipeline::new(cfg).unwrap();
    assert_eq!(
        p.process_image(&img, 1),
        p.process_image(&img, 2),
        "no randomness left"
    );
}

#[test]
fn presets_parse_by_name_with_clear_errors() {
    for name in ["openai", "slip", "square-imagenet", "slip-train"] {
        assert_eq!(name.parse::<Preset>().unwrap().to_string(), name);
    }
    let e = Pipeline::from_name("squareimagenet", 224).unwrap_err();
    assert!(matches!(e, PreprocessError::UnknownPreset(_)));
    assert!(e.to_string().contains("square-imagenet"), "{e}");
    assert!(matches!(
        Pipeline::from_name("openai", 0),
        Err(PreprocessError::InvalidConfig(_))
    ));
}

#[test]
fn a_misspelt_config_key_is_an_error_not_a_default() {
    use diffclip_data::tokenizer::TokenizerConfig;
    let tokenizer = serde_json::from_str::<TokenizerConfig>(r#"{"context_lenght": 64}"#).unwrap_err().to_string();
    assert!(tokenizer.contains("unknown field `context_lenght`"), "{tokenizer}");
    let decode = serde_json::from_str::<DecodeOptions>(r#"{"max_pixel": 10}"#).unwrap_err().to_string();
    assert!(decode.contains("unknown field `max_pixel`"), "{decode}");
    let mut config = serde_json::to_value(PreprocessConfig::preset(Preset::OpenAi, 224)).unwrap();
    assert!(serde_json::from_value::<PreprocessConfig>(config.clone()).is_ok(), "a config as written reads back");
    config["decode"]["exif"] = true.into();
    let nested = serde_json::from_value::<PreprocessConfig>(config).unwrap_err().to_string();
    assert!(nested.contains("unknown field `exif`"), "{nested}");
}
