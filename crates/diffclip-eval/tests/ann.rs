//! The approximate index (`diffclip_eval::ann`) on synthetic clustered embeddings written as
//! shards: recall against exact search, save/load, staleness, and damaged or hostile index
//! files (always an error, never a panic).

use std::path::{Path, PathBuf};
use std::time::Instant;

use diffclip_clip::files::{F32Tensor, write_safetensors};
use diffclip_eval::ann::{AnnConfig, AnnIndex, IndexError};
use diffclip_eval::stats::SplitMix64;
use diffclip_eval::shards::search;

/// `n` rows of `dim` values around `clusters` random centres (Gaussian, spread 0.35 per
/// coordinate around unit-scale centres), in a seeded order.
fn clustered(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    let mut gauss = move || {
        let u = |r: &mut SplitMix64| ((r.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let (a, b) = (u(&mut rng), u(&mut rng));
        ((-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()) as f32
    };
    let centres: Vec<f32> = (0..clusters * dim).map(|_| gauss()).collect();
    let mut rows = Vec::with_capacity(n * dim);
    for i in 0..n {
        let c = (i * 7919) % clusters;
        rows.extend((0..dim).map(|j| centres[c * dim + j] + 0.35 * gauss()));
    }
    rows
}

/// Writes `rows` (`dim` columns) as shards of `per` rows, named `row<i>.png`.
fn write_shards(dir: &Path, rows: &[f32], dim: usize, per: usize) {
    for (k, chunk) in rows.chunks(per * dim).enumerate() {
        write_shard(dir, k, k * per, chunk, dim);
    }
}

fn write_shard(dir: &Path, k: usize, first: usize, rows: &[f32], dim: usize) {
    let paths: Vec<String> = (first..first + rows.len() / dim).map(|i| format!("row{i}.png")).collect();
    let meta = [("paths".to_string(), serde_json::to_string(&paths).unwrap())].into();
    let t = F32Tensor { name: "image_embed".into(), shape: vec![paths.len(), dim], data: rows };
    write_safetensors(&dir.join(format!("embeddings-{k:05}.safetensors")), &[t], meta).unwrap();
}

fn graph(dir: &Path) -> PathBuf {
    dir.join("index.hnsw.graph")
}

fn manifest(dir: &Path) -> PathBuf {
    dir.join("index.hnsw.json")
}

fn small_config() -> AnnConfig {
    AnnConfig { recall_queries: 20, ..AnnConfig::default() }
}

#[test]
fn recall_at_10_against_exact_search_is_at_least_0_95() {
    let dir = tempfile::tempdir().unwrap();
    let (n, dim) = (5000, 64);
    let rows = clustered(n, dim, 50, 7);
    write_shards(dir.path(), &rows, dim, 1000);
    let t = Instant::now();
    let index = AnnIndex::build(dir.path(), "image_embed", AnnConfig::default()).unwrap();
    let built = t.elapsed();
    let recall = index.build_recall().unwrap();
    assert!(recall >= 0.95, "recall@10 at build {recall}");
    let t = Instant::now();
    let index = AnnIndex::open(dir.path(), "image_embed").unwrap();
    let opened = t.elapsed();
    assert_eq!((index.rows(), index.dim()), (n, dim));
    let wider = index.recall_at_k(500, 10).unwrap();
    assert!(wider >= 0.95, "recall@10 on 500 queries {wider}");
    // Timings of one query each way, for the record (cargo test -- --nocapture).
    let q = &rows[1234 * dim..1235 * dim];
    let t = Instant::now();
    let exact = search(dir.path(), "image_embed", q, 10).unwrap();
    let exact_t = t.elapsed();
    let t = Instant::now();
    let approx = index.search(q, 10).unwrap();
    let approx_t = t.elapsed();
    eprintln!("{n} x {dim}: build {built:?} (recall@10 {recall:.4}), open {opened:?}, recall@10 on 500 queries {wider:.4}; one query: exact {exact_t:?}, approximate {approx_t:?}");
    // A stored row finds itself first, with the cosine exact search gives.
    assert_eq!(approx[0].path, "row1234.png");
    assert_eq!(exact[0].path, "row1234.png");
    assert!((approx[0].score - 1.0).abs() < 1e-5);
    for h in &approx {
        if let Some(e) = exact.iter().find(|e| e.path == h.path) {
            assert!((e.score - h.score).abs() < 1e-5, "{h:?} vs {e:?}");
        }
    }
    assert!(approx.windows(2).all(|w| w[0].score >= w[1].score));
}

#[test]
fn a_saved_index_answers_as_the_one_built() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 16;
    let rows = clustered(600, dim, 12, 3);
    write_shards(dir.path(), &rows, dim, 250);
    let built = AnnIndex::build(dir.path(), "image_embed", small_config()).unwrap();
    let loaded = AnnIndex::open(dir.path(), "image_embed").unwrap();
    assert_eq!(loaded.config(), small_config());
    assert_eq!(loaded.build_recall(), built.build_recall());
    for i in (0..600).step_by(13) {
        let q: Vec<f32> = rows[i * dim..(i + 1) * dim].iter().map(|v| v * 3.0 + 0.01).collect();
        assert_eq!(built.search(&q, 7).unwrap(), loaded.search(&q, 7).unwrap(), "query {i}");
    }
    // k beyond the collection gives every row; k = 0 none; a wrong length is an error.
    assert_eq!(loaded.search(&rows[..dim], 1000).unwrap().len(), 600);
    assert_eq!(loaded.search(&rows[..dim], usize::MAX).unwrap().len(), 600);
    assert!(loaded.search(&rows[..dim], 0).unwrap().is_empty());
    assert!(matches!(loaded.search(&rows[..dim - 1], 3), Err(IndexError::Invalid(_))));
    assert!(matches!(loaded.search(&vec![f32::NAN; dim], 3), Err(IndexError::Invalid(_))));
    // The caption tensor has an index of its own, not this one.
    assert!(matches!(AnnIndex::open(dir.path(), "text_embed"), Err(IndexError::Missing { .. })));
}

/// A folder of image–text pairs holds an index of each tensor, neither replacing the other.
#[test]
fn the_image_and_text_indexes_of_a_folder_live_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 8;
    let (images, texts) = (clustered(300, dim, 6, 1), clustered(300, dim, 6, 2));
    let paths: Vec<String> = (0..300).map(|i| format!("row{i}.png")).collect();
    let meta = [("paths".to_string(), serde_json::to_string(&paths).unwrap())].into();
    let tensor = |name: &str, data| F32Tensor { name: name.into(), shape: vec![300, dim], data };
    write_safetensors(&dir.path().join("embeddings-00000.safetensors"), &[tensor("image_embed", &images), tensor("text_embed", &texts)], meta).unwrap();
    let by_image = AnnIndex::build(dir.path(), "image_embed", small_config()).unwrap();
    let by_text = AnnIndex::build(dir.path(), "text_embed", small_config()).unwrap();
    assert!(dir.path().join("index-text_embed.hnsw.json").is_file() && manifest(dir.path()).is_file());
    let q = &texts[5 * dim..6 * dim];
    assert_eq!(AnnIndex::open(dir.path(), "text_embed").unwrap().search(q, 3).unwrap(), by_text.search(q, 3).unwrap());
    assert_eq!(AnnIndex::open(dir.path(), "image_embed").unwrap().search(q, 3).unwrap(), by_image.search(q, 3).unwrap());
    // A text index saved under the old shared name (a folder of captions alone) still opens.
    for ext in ["graph", "data", "json"] {
        std::fs::rename(dir.path().join(format!("index-text_embed.hnsw.{ext}")), dir.path().join(format!("index.hnsw.{ext}"))).unwrap();
    }
    assert_eq!(AnnIndex::open(dir.path(), "text_embed").unwrap().search(q, 3).unwrap(), by_text.search(q, 3).unwrap());
    assert!(matches!(AnnIndex::open(dir.path(), "image_embed"), Err(IndexError::Stale { .. })), "the old name holds the text index now");
}

#[test]
fn changed_shards_make_the_index_stale() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 8;
    let rows = clustered(300, dim, 5, 11);
    write_shards(dir.path(), &rows, dim, 100);
    assert!(matches!(AnnIndex::open(dir.path(), "image_embed"), Err(IndexError::Missing { .. })));
    let (_, why) = AnnIndex::open_or_build(dir.path(), "image_embed", small_config()).unwrap();
    assert!(matches!(why, Some(IndexError::Missing { .. })));
    let (_, why) = AnnIndex::open_or_build(dir.path(), "image_embed", small_config()).unwrap();
    assert!(why.is_none(), "opened, not rebuilt");

    let stale = |needle: &str| {
        let e = AnnIndex::open(dir.path(), "image_embed").unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, IndexError::Stale { .. }) && msg.contains(needle) && msg.contains("index.hnsw.json"), "{msg}");
    };
    // A shard added.
    write_shard(dir.path(), 3, 300, &clustered(50, dim, 5, 12), dim);
    stale("embeddings-00003.safetensors added");
    let (index, why) = AnnIndex::open_or_build(dir.path(), "image_embed", small_config()).unwrap();
    assert!(matches!(why, Some(IndexError::Stale { .. })));
    assert_eq!(index.rows(), 350);
    // A shard re-embedded: same names, same size, other values.
    write_shard(dir.path(), 1, 100, &clustered(100, dim, 5, 99), dim);
    stale("embeddings-00001.safetensors changed");
    AnnIndex::build(dir.path(), "image_embed", small_config()).unwrap();
    // One middle row re-embedded, the file's time set back: the header's checksums tell.
    let shard = dir.path().join("embeddings-00001.safetensors");
    let when = std::fs::metadata(&shard).unwrap().modified().unwrap();
    let mut changed = clustered(100, dim, 5, 99);
    changed[50 * dim] += 0.5;
    write_shard(dir.path(), 1, 100, &changed, dim);
    std::fs::File::options().write(true).open(&shard).unwrap().set_modified(when).unwrap();
    stale("embeddings-00001.safetensors changed");
    AnnIndex::build(dir.path(), "image_embed", small_config()).unwrap();
    // A shard removed.
    std::fs::remove_file(dir.path().join("embeddings-00003.safetensors")).unwrap();
    stale("embeddings-00003.safetensors removed");
    // The exact-search rows were never touched by the index files.
    assert_eq!(search(dir.path(), "image_embed", &rows[..dim], 1).unwrap()[0].path, "row0.png");
}

#[test]
fn unindexable_shards_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = clustered(40, 4, 2, 5);
    rows[4 * 7 + 2] = f32::NAN;
    write_shards(dir.path(), &rows, 4, 40);
    let e = AnnIndex::build(dir.path(), "image_embed", small_config()).unwrap_err().to_string();
    assert!(e.contains("embeddings-00000.safetensors") && e.contains("row 7 (row7.png) is not finite"), "{e}");
    let e = AnnIndex::build(dir.path(), "text_embed", small_config()).unwrap_err().to_string();
    assert!(e.contains("embeddings-00000.safetensors") && e.contains("holds no text_embed (it holds image_embed)"), "{e}");
    let e = diffclip_eval::shards::search(dir.path(), "text_embed", &rows[..4], 1).unwrap_err().to_string();
    assert!(e.contains("embeddings-00000.safetensors") && e.contains("holds no text_embed (it holds image_embed)"), "exact search says the same: {e}");
    // A value damaged on disk: refused by the checksum, naming shard and tensor.
    let shard = dir.path().join("embeddings-00000.safetensors");
    let mut bytes = std::fs::read(&shard).unwrap();
    let middle = bytes.len() - 4 * 20;
    bytes[middle] ^= 1;
    std::fs::write(&shard, &bytes).unwrap();
    let e = AnnIndex::build(dir.path(), "image_embed", small_config()).unwrap_err().to_string();
    assert!(e.contains("embeddings-00000.safetensors") && e.contains("tensor 'image_embed': its bytes do not match the checksum"), "{e}");
    // The tensor's checksum taken out of the header: a file changed after writing, refused.
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    header["__metadata__"][diffclip_clip::checksum::CHECKSUM_KEY] = "{}".into();
    let mut json = serde_json::to_vec(&header).unwrap();
    json.resize(json.len().next_multiple_of(8), b' ');
    std::fs::write(&shard, [&(json.len() as u64).to_le_bytes()[..], &json, &bytes[8 + len..]].concat()).unwrap();
    let e = AnnIndex::build(dir.path(), "image_embed", small_config()).unwrap_err().to_string();
    assert!(e.contains("embeddings-00000.safetensors") && e.contains("tensor 'image_embed' has no checksum"), "{e}");
    let empty = tempfile::tempdir().unwrap();
    let e = AnnIndex::build(empty.path(), "image_embed", small_config()).unwrap_err().to_string();
    assert!(e.contains("no embeddings-NNNNN.safetensors shards"), "{e}");
    let e = AnnIndex::build(dir.path(), "image_embed", AnnConfig { m: 256, ..small_config() }).unwrap_err().to_string();
    assert!(e.contains("outside 2..=255"), "{e}");
    assert!(serde_json::from_str::<AnnConfig>(r#"{"M": 8}"#).is_err(), "unknown fields are refused");
}

/// Builds a small index; returns its folder and the bytes of its two graph files.
fn built_index() -> (tempfile::TempDir, Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let dim = 8;
    write_shards(dir.path(), &clustered(200, dim, 4, 21), dim, 80);
    AnnIndex::build(dir.path(), "image_embed", small_config()).unwrap();
    let g = std::fs::read(graph(dir.path())).unwrap();
    let d = std::fs::read(dir.path().join("index.hnsw.data")).unwrap();
    (dir, g, d)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `bytes` as the index file `which` (`graph` or `data`) and, when `forge`, updates the
/// manifest's size and checksum to match, as a hostile writer would.
fn replace(dir: &Path, which: &str, bytes: &[u8], forge: bool) {
    std::fs::write(dir.join(format!("index.hnsw.{which}")), bytes).unwrap();
    if forge {
        let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(manifest(dir)).unwrap()).unwrap();
        m[which] = serde_json::json!({ "bytes": bytes.len(), "sha256": sha256_hex(bytes) });
        std::fs::write(manifest(dir), serde_json::to_vec(&m).unwrap()).unwrap();
    }
}

/// Opens the index: it must not panic; an error must be `Corrupt` naming a file of it.
fn open_checked(dir: &Path) -> Result<AnnIndex, String> {
    let r = std::panic::catch_unwind(|| AnnIndex::open(dir, "image_embed")).unwrap_or_else(|_| panic!("open panicked"));
    r.map_err(|e| {
        let msg = e.to_string();
        assert!(matches!(e, IndexError::Corrupt { .. }) && msg.contains("index.hnsw."), "{msg}");
        msg
    })
}

#[test]
fn damaged_index_files_are_errors() {
    let (dir, g, d) = built_index();
    let dir = dir.path();
    for (which, bytes) in [("graph", &g), ("data", &d)] {
        replace(dir, which, &bytes[..bytes.len() / 2], false);
        let e = open_checked(dir).unwrap_err();
        assert!(e.contains(&format!("index.hnsw.{which}")) && e.contains("the manifest says"), "{e}");
        let garbage: Vec<u8> = (0..bytes.len()).map(|i| (i * 31 % 251) as u8).collect();
        replace(dir, which, &garbage, false);
        open_checked(dir).unwrap_err();
        let mut flipped = bytes.clone();
        flipped[bytes.len() * 2 / 3] ^= 0x10;
        replace(dir, which, &flipped, false);
        open_checked(dir).unwrap_err();
        replace(dir, which, bytes, false);
        open_checked(dir).unwrap();
    }
    std::fs::write(manifest(dir), b"{ not json").unwrap();
    assert!(open_checked(dir).unwrap_err().contains("index.hnsw.json"));
    std::fs::write(manifest(dir), br#"{"format": 0, "library": "other"}"#).unwrap();
    assert!(matches!(AnnIndex::open(dir, "image_embed"), Err(IndexError::Stale { .. })));
    // A rebuild replaces a damaged index, and clears what a killed save left.
    std::fs::write(graph(dir), b"junk").unwrap();
    let leftover = dir.join(".index.hnsw.tmp999999999");
    std::fs::create_dir(&leftover).unwrap();
    std::fs::write(leftover.join("index.hnsw.data"), b"partial").unwrap();
    AnnIndex::build(dir, "image_embed", small_config()).unwrap();
    assert!(!leftover.exists());
    open_checked(dir).unwrap();
    std::fs::remove_file(dir.join("index.hnsw.data")).unwrap();
    assert!(open_checked(dir).unwrap_err().contains("index.hnsw.data"));
}

#[test]
fn forged_index_files_with_matching_checksums_are_errors_not_panics() {
    let (dir, g, d) = built_index();
    let dir = dir.path();
    // Truncated anywhere, garbage, or one byte changed anywhere, with the manifest forged to
    // match: the structural check refuses it before hnsw_rs reads it, or (a change that keeps
    // the graph valid, e.g. a link's distance) it opens and searches without panicking.
    for (which, bytes) in [("graph", &g), ("data", &d)] {
        let step = (bytes.len() / 97).max(1);
        for cut in (0..bytes.len()).step_by(step) {
            replace(dir, which, &bytes[..cut], true);
            open_checked(dir).unwrap_err();
        }
        for at in (0..bytes.len()).step_by(step) {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[at] ^= flip;
                replace(dir, which, &b, true);
                if let Ok(index) = open_checked(dir) {
                    index.search(&[0.5; 8], 5).unwrap();
                }
            }
        }
        replace(dir, which, bytes, true);
        open_checked(dir).unwrap();
    }
}
