//! Exact search of an embedding-shard folder (`diffclip_eval::shards`), one text-sized query:
//! streamed from the shards (`search_many`: what `search --text` and `--queries FILE` do, each
//! shard read once per call) against the rows held in memory (`ExactIndex`: what
//! `search --queries -` does per line). The baseline is the scoring loop exact search had
//! before `ExactIndex` (one thread, `row·q / ‖row‖` with serial sums), on the same rows in
//! memory, so the two in-memory figures differ only in the scoring.
//!
//! 100,000 rows × 512 (a ViT-B/16 collection, 195 MiB) in 20 shards, written to a temporary
//! folder first; `DIFFCLIP_BENCH_QUICK=1` uses 20,000 rows.
//!
//! ```sh
//! cargo bench --bench search
//! ```

mod common;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use diffclip::clip::files::{F32Tensor, write_safetensors};
use diffclip::eval::stats::SplitMix64;
use diffclip::eval::shards::{ExactIndex, Hit, search_many};
use std::hint::black_box;
use std::time::Duration;

const DIM: usize = 512;
const K: usize = 10;

fn uniform(rng: &mut SplitMix64) -> f32 {
    ((rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

/// The scoring exact search used before `ExactIndex`: per row, a serial dot product over the
/// norm, kept in a sorted top-k.
fn scalar_baseline(rows: &[f32], paths: &[String], query: &[f32]) -> Vec<Hit> {
    let norm = query.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    let q: Vec<f32> = query.iter().map(|v| v / norm).collect();
    let mut hits: Vec<Hit> = Vec::new();
    for (row, path) in rows.chunks(DIM).zip(paths) {
        let n = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        let score = row.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>() / n;
        if hits.len() < K || hits.last().is_some_and(|h| score > h.score) {
            let at = hits.partition_point(|h| h.score >= score);
            hits.insert(at, Hit { score, path: path.clone() });
            hits.truncate(K);
        }
    }
    hits
}

fn search(c: &mut Criterion) {
    let n = if common::quick() { 20_000 } else { 100_000 };
    let per = n / 20;
    let dir = tempfile::tempdir().expect("temporary folder");
    let mut rng = SplitMix64::new(1);
    let rows: Vec<f32> = (0..n * DIM).map(|_| uniform(&mut rng)).collect();
    let paths: Vec<String> = (0..n).map(|i| format!("images/{i:07}.jpg")).collect();
    for (k, chunk) in rows.chunks(per * DIM).enumerate() {
        let meta = [("paths".to_string(), serde_json::to_string(&paths[k * per..(k + 1) * per]).unwrap())].into();
        let t = F32Tensor { name: "image_embed".into(), shape: vec![per, DIM], data: chunk };
        write_safetensors(&dir.path().join(format!("embeddings-{k:05}.safetensors")), &[t], meta).expect("shard");
    }
    let query: Vec<f32> = (0..DIM).map(|_| uniform(&mut rng)).collect();
    let index = ExactIndex::open(dir.path(), "image_embed").expect("index");
    // The same hits each way (the scores differ in rounding only).
    let want: Vec<String> = scalar_baseline(&rows, &paths, &query).into_iter().map(|h| h.path).collect();
    let got: Vec<String> = index.search(&query, K).expect("search").into_iter().map(|h| h.path).collect();
    assert_eq!(want, got);

    let mut group = c.benchmark_group(format!("search_{n}x{DIM}"));
    group.sampling_mode(SamplingMode::Flat).sample_size(20).measurement_time(Duration::from_secs(10));
    group.bench_function("scalar_in_memory_baseline", |b| b.iter(|| black_box(scalar_baseline(&rows, &paths, &query))));
    group.bench_function("exact_index", |b| b.iter(|| black_box(index.search(&query, K).expect("search"))));
    group.bench_function("streamed_from_shards", |b| b.iter(|| black_box(search_many(dir.path(), "image_embed", &[&query], K).expect("search"))));
    group.bench_function("exact_index_open", |b| b.iter(|| black_box(ExactIndex::open(dir.path(), "image_embed").expect("index").rows())));
    group.finish();
}

criterion_group!(benches, search);
criterion_main!(benches);
