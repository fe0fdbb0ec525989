//! `embed --data csv:PATH|wds:PATTERN`: image–caption pairs into row-aligned `image_embed` and
//! `text_embed` shards, equal to embedding the same images (`--images`) and captions
//! (`--texts`) on their own; bad samples skipped and listed; WebDataset one shard per tar.

mod common;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{example, fixture, shard_rows, tmpdir};

const IMAGES: [&str; 5] = ["flower.jpg", "gray_123x457.png", "palette_150x148.gif", "rgba_300x200.png", "webp_263x257.webp"];

fn embed(args: &[&OsStr]) -> std::process::Output {
    let ckpt = fixture("diffclip_tiny/model.safetensors");
    let o = Command::new(example("embed")).args(["--preset", "diffclip_tiny", "--checkpoint"]).arg(ckpt).args(args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

fn caption(i: usize) -> String {
    format!("photo number {i} of a thing")
}

/// Each image's and each caption's embedding computed alone (`--images`, `--texts`).
fn reference(dir: &Path) -> (HashMap<String, Vec<f32>>, Vec<Vec<f32>>) {
    let (imgs, texts) = (dir.join("ref"), dir.join("captions.txt"));
    std::fs::write(&texts, (0..IMAGES.len()).map(caption).collect::<Vec<_>>().join("\n")).unwrap();
    let files: Vec<PathBuf> = IMAGES.iter().map(|n| fixture(&format!("preprocess/images/{n}"))).collect();
    let mut args: Vec<&OsStr> = vec!["--images".as_ref()];
    args.extend(files.iter().map(|f| f.as_os_str()));
    args.extend(["--texts".as_ref(), texts.as_os_str(), "--output".as_ref(), imgs.as_os_str()]);
    embed(&args);
    let by_name = shard_rows(&imgs, "image_embed").into_iter().map(|(p, v)| (name_of(&p), v)).collect();
    let captions = shard_rows(&imgs.join("texts"), "text_embed").into_iter().map(|(_, v)| v).collect();
    (by_name, captions)
}

fn name_of(id: &str) -> String {
    Path::new(id.rsplit(':').next().unwrap()).file_name().unwrap().to_string_lossy().into_owned()
}

/// Bit for bit: an embedding never depends on what it was batched with.
fn assert_same(a: &[f32], b: &[f32], what: &str) {
    let d = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(a == b, "{what}: max difference {d}");
}

#[test]
fn csv_pairs_embed_images_and_captions_row_aligned() {
    let dir = tmpdir("embed-pairs", "csv");
    let (images, captions) = reference(&dir);
    // Relative paths resolve against the CSV's folder; one row names a file that is not there.
    for n in IMAGES {
        std::fs::copy(fixture(&format!("preprocess/images/{n}")), dir.join(n)).unwrap();
    }
    let mut csv = String::from("filepath,title\n");
    for (i, n) in IMAGES.iter().enumerate() {
        csv += &format!("{n},{}\n", caption(i));
        if i == 1 {
            csv += "missing.png,a caption whose image is gone\n";
        }
    }
    std::fs::write(dir.join("pairs.csv"), csv).unwrap();
    let out = dir.join("out");
    let spec = format!("csv:{}", dir.join("pairs.csv").display());
    let o = embed(&["--data".as_ref(), spec.as_ref(), "--output".as_ref(), out.as_os_str(), "--rows-per-shard".as_ref(), "4".as_ref(), "--batch-size".as_ref(), "3".as_ref()]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("missing.png") && stderr.contains("skipped 1 unreadable samples"), "{stderr}");
    let (img_rows, txt_rows) = (shard_rows(&out, "image_embed"), shard_rows(&out, "text_embed"));
    assert_eq!(img_rows.len(), IMAGES.len(), "the missing image's row is left out whole");
    for (i, ((p, img), (q, txt))) in img_rows.iter().zip(&txt_rows).enumerate() {
        assert_eq!(p, q, "rows are aligned");
        assert_eq!(name_of(p), IMAGES[i]);
        assert_same(img, &images[IMAGES[i]], p);
        assert_same(txt, &captions[i], &format!("caption of {p}"));
    }
    // A CSV kept apart from its images finds them through --csv-image-root.
    std::fs::create_dir_all(dir.join("lists")).unwrap();
    std::fs::copy(dir.join("pairs.csv"), dir.join("lists/pairs.csv")).unwrap();
    let apart = format!("csv:{}", dir.join("lists/pairs.csv").display());
    let rooted = dir.join("rooted");
    embed(&["--data".as_ref(), apart.as_ref(), "--csv-image-root".as_ref(), dir.as_os_str(), "--embed".as_ref(), "images".as_ref(), "--output".as_ref(), rooted.as_os_str()]);
    let rows = shard_rows(&rooted, "image_embed");
    assert_eq!(rows.len(), IMAGES.len());
    assert_same(&rows[0].1, &images[IMAGES[0]], "an image found through the root");
    // --embed texts writes captions only; --bad-samples fail stops at the missing file.
    let texts_only = dir.join("texts-only");
    embed(&["--data".as_ref(), spec.as_ref(), "--embed".as_ref(), "texts".as_ref(), "--output".as_ref(), texts_only.as_os_str()]);
    assert_eq!(shard_rows(&texts_only, "text_embed").len(), IMAGES.len() + 1);
    // search --texts finds the captions beside the images; searching images in a caption-only
    // folder is an error, not an empty answer.
    let search = |index: &Path, extra: &[&str]| {
        Command::new(example("search")).args(["--preset", "diffclip_tiny", "--checkpoint"]).arg(fixture("diffclip_tiny/model.safetensors")).arg("--index").arg(index).args(["--text", "photo number 3", "--json"]).args(extra).output().unwrap()
    };
    let o = search(&out, &["--texts"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), IMAGES.len());
    let o = search(&texts_only, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("holds no image_embed") && err.contains("text_embed"), "{err}");
    let ckpt = fixture("diffclip_tiny/model.safetensors");
    let failed = Command::new(example("embed")).args(["--preset", "diffclip_tiny", "--checkpoint"]).arg(&ckpt).args(["--data", &spec, "--bad-samples", "fail", "--output"]).arg(dir.join("fail")).output().unwrap();
    assert!(!failed.status.success() && String::from_utf8_lossy(&failed.stderr).contains("missing.png"));
}

/// A tar of `(member name, bytes)` pairs.
fn write_tar(path: &Path, members: &[(String, Vec<u8>)]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, bytes.as_slice()).unwrap();
    }
    b.finish().unwrap();
}

#[test]
fn webdataset_tars_become_one_shard_each_and_split_by_tar() {
    let dir = tmpdir("embed-pairs", "wds");
    let (images, captions) = reference(&dir);
    let member = |i: usize| {
        let n = IMAGES[i];
        let ext = n.rsplit('.').next().unwrap().replace("gif", "png");
        let bytes = std::fs::read(fixture(&format!("preprocess/images/{n}"))).unwrap();
        vec![(format!("{i:04}.{ext}"), bytes), (format!("{i:04}.txt"), caption(i).into_bytes())]
    };
    // Tar 0: samples 0 and 1 and an undecodable image; tar 1: samples 2 (a GIF stored as .png:
    // formats are sniffed from the bytes) to 4.
    let mut tar0: Vec<(String, Vec<u8>)> = [0, 1].into_iter().flat_map(member).collect();
    tar0.extend([("0099.png".into(), b"not an image".to_vec()), ("0099.txt".into(), b"broken".to_vec())]);
    write_tar(&dir.join("00000.tar"), &tar0);
    write_tar(&dir.join("00001.tar"), &[2, 3, 4].into_iter().flat_map(member).collect::<Vec<_>>());
    let spec = format!("wds:{}/{{00000..00001}}.tar", dir.display());
    let out = dir.join("out");
    // Part 1 of 2 writes tar 1's shard only; part 0 then adds tar 0's.
    let run = |part: &str| embed(&["--data".as_ref(), spec.as_ref(), "--output".as_ref(), out.as_os_str(), "--shard".as_ref(), part.as_ref()]);
    run("1/2");
    assert!(!out.join("embeddings-00000.safetensors").exists() && out.join("embeddings-00001.safetensors").exists());
    let o = run("0/2");
    assert!(String::from_utf8_lossy(&o.stderr).contains("00000.tar:0099"), "the broken sample is listed");
    let (img_rows, txt_rows) = (shard_rows(&out, "image_embed"), shard_rows(&out, "text_embed"));
    let keys: Vec<String> = img_rows.iter().map(|(p, _)| p.rsplit('/').next().unwrap().to_string()).collect();
    assert_eq!(keys, ["00000.tar:0000", "00000.tar:0001", "00001.tar:0002", "00001.tar:0003", "00001.tar:0004"]);
    for (i, ((p, img), (q, txt))) in img_rows.iter().zip(&txt_rows).enumerate() {
        assert_eq!(p, q);
        assert_same(img, &images[IMAGES[i]], p);
        assert_same(txt, &captions[i], &format!("caption of {p}"));
    }
    // A sample needs only the members the job embeds: an image without a caption is a row of
    // --embed images, a caption without an image one of --embed texts.
    let mut odd = member(0);
    odd.truncate(1);
    odd.push(("0001.txt".into(), caption(1).into_bytes()));
    write_tar(&dir.join("odd.tar"), &odd);
    let spec = format!("wds:{}", dir.join("odd.tar").display());
    for (embed_what, tensor, key) in [("images", "image_embed", "0000"), ("texts", "text_embed", "0001")] {
        let out = dir.join(format!("odd-{embed_what}"));
        embed(&["--data".as_ref(), spec.as_ref(), "--embed".as_ref(), embed_what.as_ref(), "--output".as_ref(), out.as_os_str()]);
        let rows = shard_rows(&out, tensor);
        assert_eq!(rows.len(), 1, "{embed_what}");
        assert!(rows[0].0.ends_with(&format!("odd.tar:{key}")), "{embed_what}: {}", rows[0].0);
    }
}
