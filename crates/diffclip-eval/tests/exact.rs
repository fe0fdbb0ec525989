//! Exact search of shard folders: streamed ([`search_many`]) and in memory ([`ExactIndex`])
//! give the same hits to the bit across shard and block boundaries, with ties, a NaN row, and
//! clear errors for bad queries and folders.

use std::path::Path;

use diffclip_clip::files::{F32Tensor, write_safetensors};
use diffclip_eval::EvalError;
use diffclip_eval::stats::SplitMix64;
use diffclip_eval::shards::{ExactIndex, Hit, search_many};

/// Writes `rows` (`dim` columns) as shard `k`, its rows named `row<first + i>.png`.
fn write_shard(dir: &Path, k: usize, first: usize, rows: &[f32], dim: usize, tensor: &str) {
    let paths: Vec<String> = (first..first + rows.len() / dim).map(|i| format!("row{i}.png")).collect();
    let meta = [("paths".to_string(), serde_json::to_string(&paths).unwrap())].into();
    let t = F32Tensor { name: tensor.into(), shape: vec![paths.len(), dim], data: rows };
    write_safetensors(&dir.join(format!("embeddings-{k:05}.safetensors")), &[t], meta).unwrap();
}

fn uniform(rng: &mut SplitMix64) -> f32 {
    ((rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

fn bits(hits: &[Hit]) -> Vec<(u32, &str)> {
    hits.iter().map(|h| (h.score.to_bits(), h.path.as_str())).collect()
}

#[test]
fn in_memory_and_streamed_search_agree_to_the_bit() {
    let dir = tempfile::tempdir().unwrap();
    let (n, dim) = (9000, 24);
    let mut rng = SplitMix64::new(5);
    let mut rows: Vec<f32> = (0..n * dim).map(|_| uniform(&mut rng)).collect();
    // Row 7000 repeats row 100 (a tie across shards and blocks of 4096); row 50 holds NaN.
    rows.copy_within(100 * dim..101 * dim, 7000 * dim);
    rows[50 * dim + 3] = f32::NAN;
    let mut first = 0;
    for (k, per) in [1000, 2500, 5500].into_iter().enumerate() {
        write_shard(dir.path(), k, first, &rows[first * dim..(first + per) * dim], dim, "image_embed");
        first += per;
    }
    let index = ExactIndex::open(dir.path(), "image_embed").unwrap();
    assert_eq!((index.rows(), index.dim(), index.non_finite_rows()), (n, dim, 1), "row 50 holds NaN");
    let mut queries: Vec<Vec<f32>> = (0..5).map(|_| (0..dim).map(|_| uniform(&mut rng)).collect()).collect();
    queries.push(rows[100 * dim..101 * dim].iter().map(|v| v * 3.0).collect());
    let q: Vec<&[f32]> = queries.iter().map(Vec::as_slice).collect();
    for k in [0, 1, 10, n, 2 * n] {
        let streamed = search_many(dir.path(), "image_embed", &q, k).unwrap();
        let memory = index.search_many(&q, k).unwrap();
        for (s, m) in streamed.iter().zip(&memory) {
            assert_eq!(bits(s), bits(m), "k = {k}");
            assert_eq!(m.len(), k.min(n));
        }
        assert_eq!(bits(&index.search(q[0], k).unwrap()), bits(&memory[0]));
    }
    // No queries, no answers; a query at any scale ranks as the unit one (the norm in f64).
    assert!(search_many(dir.path(), "image_embed", &[], 3).unwrap().is_empty());
    for scale in [1e-30f32, 1e30] {
        let scaled: Vec<f32> = q[0].iter().map(|v| v * scale).collect();
        let (a, b) = (index.search(&scaled, 10).unwrap(), index.search(q[0], 10).unwrap());
        assert_eq!(a.iter().map(|h| &h.path).collect::<Vec<_>>(), b.iter().map(|h| &h.path).collect::<Vec<_>>(), "scale {scale}");
        assert!(a.iter().zip(&b).all(|(x, y)| (x.score - y.score).abs() < 1e-6), "scale {scale}");
    }
    // The row and its copy tie; the earlier ranks first.
    let top = index.search(q[5], 3).unwrap();
    assert_eq!((top[0].path.as_str(), top[1].path.as_str()), ("row100.png", "row7000.png"));
    assert_eq!(top[0].score.to_bits(), top[1].score.to_bits());
    assert!((top[0].score - 1.0).abs() < 1e-6);
    // Every cosine is right (against f64), the order never rises, no row left out beats the
    // last one kept, and the NaN row comes last.
    let cosine = |q: &[f32], i: usize| {
        let r = &rows[i * dim..(i + 1) * dim];
        let dot: f64 = q.iter().zip(r).map(|(a, b)| *a as f64 * *b as f64).sum();
        let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        dot / (norm(q) * norm(r))
    };
    for query in &q[..5] {
        let all = index.search(query, n).unwrap();
        assert_eq!(all.last().unwrap().path, "row50.png");
        assert!(all.last().unwrap().score.is_nan());
        let ranked = &all[..n - 1];
        assert!(ranked.windows(2).all(|w| w[0].score >= w[1].score));
        for h in ranked.iter().step_by(97) {
            let i: usize = h.path.trim_start_matches("row").trim_end_matches(".png").parse().unwrap();
            assert!((h.score as f64 - cosine(query, i)).abs() < 1e-5, "{h:?}");
        }
        let top = index.search(query, 10).unwrap();
        let kept: Vec<&str> = top.iter().map(|h| h.path.as_str()).collect();
        let best_left = (0..n).filter(|&i| i != 50 && !kept.contains(&format!("row{i}.png").as_str())).map(|i| cosine(query, i)).fold(f64::MIN, f64::max);
        assert!(best_left <= top[9].score as f64 + 1e-5, "{best_left} beats {:?}", top[9]);
    }
}

#[test]
fn bad_queries_and_folders_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(ExactIndex::open(dir.path(), "image_embed"), Err(EvalError::Dataset { .. })), "no shards");
    write_shard(dir.path(), 0, 0, &[1.0, 0.0, 0.0, 1.0], 2, "text_embed");
    let err = ExactIndex::open(dir.path(), "image_embed").unwrap_err().to_string();
    assert!(err.contains("holds no image_embed") && err.contains("text_embed"), "{err}");
    let index = ExactIndex::open(dir.path(), "text_embed").unwrap();
    assert_eq!(index.non_finite_rows(), 0);
    assert!(matches!(index.search(&[1.0, 0.0, 0.0], 1), Err(EvalError::Invalid(_))));
    assert!(matches!(index.search(&[f32::NAN, 1.0], 1), Err(EvalError::Invalid(_))));
    assert!(matches!(search_many(dir.path(), "text_embed", &[&[f32::INFINITY, 1.0]], 1), Err(EvalError::Invalid(_))));
    assert_eq!(index.search(&[0.0, 2.0], 1).unwrap()[0].path, "row1.png");
    let err = search_many(dir.path(), "text_embed", &[&[1.0, 0.0, 0.0]], 1).unwrap_err().to_string();
    assert!(err.contains("expected F32 [2, 3]"), "{err}");
    // Shards of different widths cannot be searched together.
    write_shard(dir.path(), 1, 2, &[1.0, 0.0, 0.0], 3, "text_embed");
    let err = ExactIndex::open(dir.path(), "text_embed").unwrap_err().to_string();
    assert!(err.contains("embeddings-00001") && err.contains("expected F32 [1, 2]"), "{err}");
    // A row flipped on disk is refused by its checksum, naming the shard and the tensor.
    let flipped = tempfile::tempdir().unwrap();
    write_shard(flipped.path(), 0, 2, &[1.0, 0.0, 0.0, 1.0], 2, "text_embed");
    let shard = flipped.path().join("embeddings-00000.safetensors");
    let mut bytes = std::fs::read(&shard).unwrap();
    let last = bytes.len() - 4;
    bytes[last] ^= 1;
    std::fs::write(&shard, &bytes).unwrap();
    for err in [ExactIndex::open(flipped.path(), "text_embed").unwrap_err(), search_many(flipped.path(), "text_embed", &[&[1.0, 0.0]], 1).unwrap_err()] {
        let err = err.to_string();
        assert!(err.contains("embeddings-00000") && err.contains("tensor 'text_embed': its bytes do not match the checksum"), "{err}");
    }
    // A damaged row list is named as such, not blamed on the tensor.
    let listed = tempfile::tempdir().unwrap();
    let shard = listed.path().join("embeddings-00000.safetensors");
    for (paths, said) in [("not json", "`paths` metadata is not a JSON list"), ("[\"a.png\"]", "`paths` metadata names 1 rows, but text_embed holds 2")] {
        let t = F32Tensor { name: "text_embed".into(), shape: vec![2, 2], data: &[1.0, 0.0, 0.0, 1.0] };
        write_safetensors(&shard, &[t], [("paths".to_string(), paths.to_string())].into()).unwrap();
        let err = ExactIndex::open(listed.path(), "text_embed").unwrap_err().to_string();
        assert!(err.contains(said), "{err}");
    }
}
