//! Approximate nearest-neighbour search over a shard folder (`embed --output DIR`), for
//! collections too large to scan per query: an HNSW graph (crate `hnsw_rs`) of every row,
//! built once, saved beside the shards (`DIR/index.hnsw.{graph,data,json}`, a `text_embed`
//! index as `DIR/index-text_embed.hnsw.*`), opened again only
//! when it still matches the shards, and searched like [`crate::shards::search`] (cosine,
//! same [`Hit`](crate::shards::Hit)s). Its recall@10 against exact search is measured when it
//! is built.
//!
//! ```
//! use diffclip_clip::files::{F32Tensor, write_safetensors};
//! use diffclip_eval::ann::{AnnConfig, AnnIndex};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let rows: Vec<f32> = (0..64 * 8).map(|i| ((i * 37 % 101) as f32).sin()).collect();
//! let paths: Vec<String> = (0..64).map(|i| format!("img{i}.png")).collect();
//! let meta = [("paths".to_string(), serde_json::to_string(&paths).unwrap())].into();
//! let t = F32Tensor { name: "image_embed".into(), shape: vec![64, 8], data: &rows };
//! write_safetensors(&dir.path().join("embeddings-00000.safetensors"), &[t], meta).unwrap();
//!
//! let built = AnnIndex::build(dir.path(), "image_embed", AnnConfig::default()).unwrap();
//! assert_eq!(built.build_recall(), Some(1.0));
//! let index = AnnIndex::open(dir.path(), "image_embed").unwrap();
//! let hits = index.search(&rows[8..16], 3).unwrap();
//! assert_eq!(hits[0].path, "img1.png");
//! ```

mod config;
mod distance;
mod dump_check;
mod error;
mod index;
mod manifest;
mod recall;
mod rows;

pub use config::AnnConfig;
pub use error::IndexError;
pub use index::AnnIndex;
