//! Test data written at test time: images, caption files, tar shards, Karpathy JSON.

#![allow(dead_code)]

use std::io::Cursor;
use std::path::{Path, PathBuf};

use diffclip_data::datasets::{BadSamplePolicy, ClipItem, ImageLoader};
use diffclip_data::preprocess::Pipeline;

pub const SIZE: usize = 16;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/preprocess/images")
}

pub fn metadata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/zeroshot_metadata.json")
}

pub fn png_bytes(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
    let mut buf = Cursor::new(Vec::new());
    image::RgbImage::from_pixel(w, h, image::Rgb(rgb))
        .write_to(&mut buf, image::ImageFormat::Png)
        .unwrap();
    buf.into_inner()
}

pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

pub fn loader() -> ImageLoader {
    ImageLoader::new(Pipeline::from_name("openai", SIZE as u32).unwrap())
}

pub fn fail_loader() -> ImageLoader {
    loader().with_policy(BadSamplePolicy::Fail)
}

/// The red channel of the top-left pixel, de-normalised to 0..255.
pub fn red(item: &ClipItem) -> u8 {
    let mean = diffclip_data::preprocess::OPENAI_MEAN[0];
    let std = diffclip_data::preprocess::OPENAI_STD[0];
    ((item.image[0] * std + mean) * 255.0).round() as u8
}

// ---------------------------------------------------------------- CSV / TSV

/// `dir/imgs/{a,b,c}.png` (red 10, 20, 30) and the fixture photos, referenced from `dir/meta/`.
pub fn csv_fixture(dir: &Path) {
    for (name, r) in [("a", 10), ("b", 20), ("c", 30)] {
        write(
            &dir.join(format!("imgs/{name}.png")),
            &png_bytes(20, 12, [r, 0, 0]),
        );
    }
    let china = fixtures().join("china.jpg");
    let tsv = format!(
        "filepath\ttitle\n../imgs/a.png\ta red thing\n../imgs/b.png\t\"quoted, caption\"\n{}\ta photo\n",
        china.display()
    );
    write(&dir.join("meta/train.tsv"), tsv.as_bytes());
    let csv = "image,caption,label\n../imgs/c.png,third,2\n../imgs/a.png,first,0\n";
    write(&dir.join("meta/train.csv"), csv.as_bytes());
}

/// A TSV whose rows 1..=4 are a missing, an empty, a corrupt and a truncated image.
pub fn bad_images_tsv(dir: &Path) -> PathBuf {
    csv_fixture(dir);
    write(&dir.join("imgs/empty.png"), b"");
    write(
        &dir.join("imgs/garbage.jpg"),
        b"\xFF\xD8\xFF\xE0 this is not a jpeg at all",
    );
    let png = std::fs::read(fixtures().join("rgba_300x200.png")).unwrap();
    write(&dir.join("imgs/truncated.png"), &png[..png.len() / 2]);
    let rows = ["a", "missing", "empty", "garbage", "truncated", "b"];
    let exts = ["png", "png", "png", "jpg", "png", "png"];
    let mut text = String::from("filepath\ttitle\n");
    for (r, e) in rows.iter().zip(exts) {
        text += &format!("imgs/{r}.{e}\t{r}\n");
    }
    let path = dir.join("bad_images.tsv");
    write(&path, text.as_bytes());
    path
}

// ---------------------------------------------------------------- WebDataset

pub fn tar_bytes(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

pub fn sample(key: &str, ext: &str, image: Vec<u8>, caption: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        (format!("{key}.{ext}"), image),
        (format!("{key}.txt"), caption.as_bytes().to_vec()),
        (
            format!("{key}.json"),
            format!("{{\"key\": \"{key}\"}}").into_bytes(),
        ),
    ]
}

/// Six shards: 0 good + a broken image member + a missing caption, 1 fixture photos, 2 a
/// corrupt header after one sample, 3 truncated inside a member after one sample, 4 missing,
/// 5 zero bytes. 7 good samples, 6 bad ones.
pub fn shards(dir: &Path) -> String {
    let mut s0 = Vec::new();
    s0.extend(sample("000000", "png", png_bytes(10, 10, [1, 0, 0]), "one"));
    s0.extend(sample(
        "000001",
        "jpg",
        b"\xFF\xD8\xFF\xE0 broken jpeg".to_vec(),
        "broken",
    ));
    s0.push(("000002.png".to_string(), png_bytes(10, 10, [3, 0, 0]))); // no caption
    s0.extend(sample(
        "000003",
        "png",
        png_bytes(10, 10, [4, 0, 0]),
        "  four \n",
    ));
    let members: Vec<(&str, Vec<u8>)> = s0.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
    write(&dir.join("00000.tar"), &tar_bytes(&members));

    let fx = |n: &str| std::fs::read(fixtures().join(n)).unwrap();
    let s1 = [
        ("100000.webp", fx("webp_263x257.webp")),
        ("100000.txt", b"a webp".to_vec()),
        ("100001.jpg", fx("coco_sample.jpg")),
        ("100001.txt", b"a coco photo".to_vec()),
        ("sub/100002.png", fx("gray_123x457.png")),
        ("sub/100002.txt", b"grey".to_vec()),
    ];
    write(&dir.join("00001.tar"), &tar_bytes(&s1));

    let s2 = [
        ("200000.png", png_bytes(8, 8, [5, 0, 0])),
        ("200000.txt", b"five".to_vec()),
        ("200001.png", png_bytes(8, 8, [6, 0, 0])),
        ("200001.txt", b"lost".to_vec()),
    ];
    let mut bytes = tar_bytes(&s2);
    // Corrupt the checksum of the third member's header.
    let third = (0..bytes.len())
        .step_by(512)
        .find(|&o| bytes[o..].starts_with(b"200001.png"))
        .unwrap();
    bytes[third + 148..third + 156].copy_from_slice(b"0000000\0");
    write(&dir.join("00002.tar"), &bytes);

    let big = png_bytes(64, 64, [7, 0, 0]);
    let s3 = [
        ("300000.png", png_bytes(8, 8, [7, 0, 0])),
        ("300000.txt", b"seven".to_vec()),
        ("300001.png", big.clone()),
        ("300001.txt", b"cut".to_vec()),
    ];
    let bytes = tar_bytes(&s3);
    let cut = (0..bytes.len())
        .step_by(512)
        .find(|&o| bytes[o..].starts_with(b"300001.png"))
        .unwrap();
    write(&dir.join("00003.tar"), &bytes[..cut + 512 + big.len() / 2]);
    write(&dir.join("00005.tar"), b"");
    format!("{}/{{00000..00005}}.tar", dir.display())
}

// ---------------------------------------------------------------- Karpathy JSON

pub fn karpathy(dir: &Path) -> PathBuf {
    write(
        &dir.join("images/val2014/1.png"),
        &png_bytes(6, 6, [100, 0, 0]),
    );
    write(&dir.join("images/2.png"), &png_bytes(6, 6, [110, 0, 0]));
    write(&dir.join("images/3.png"), &png_bytes(6, 6, [120, 0, 0]));
    write(&dir.join("images/0.png"), &png_bytes(6, 6, [90, 0, 0]));
    let json = serde_json::json!({"dataset": "coco", "images": [
        {"filename": "0.png", "split": "train", "sentences": [{"raw": "zero"}]},
        {"filepath": "val2014", "filename": "1.png", "split": "test",
         "sentences": [{"raw": "a"}, {"raw": " b "}, {"raw": "c"}, {"raw": "d"}, {"raw": "e"}]},
        {"filename": "broken.png", "split": "test"},
        {"filename": "2.png", "split": "test", "sentences": [{"raw": "f"}, {"raw": "g"}]},
        {"filename": "3.png", "split": "val", "sentences": [{"raw": "h"}]}
    ]});
    let path = dir.join("meta/dataset_coco.json");
    write(&path, json.to_string().as_bytes());
    path
}

/// Runs `f` on its own thread and fails if it takes more than `secs` seconds, so a regression
/// that blocks or reads without end fails the test instead of hanging the run.
pub fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("{what}: still running after {secs} s"),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
    }
}
