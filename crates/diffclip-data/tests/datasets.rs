//! Dataset tests: CSV/TSV, WebDataset shards, image folders, label subsets, Karpathy JSON,
//! bad-sample policies and batching. All data is written to a temp dir at test time
//! (`fixtures`), from generated PNGs and `../shared/fixtures/preprocess/images/`.

#[path = "datasets/batch.rs"]
mod batch;
#[path = "datasets/brace.rs"]
mod brace;
#[path = "datasets/csv.rs"]
mod csv;
#[path = "datasets/fixtures.rs"]
mod fixtures;
#[path = "datasets/folder.rs"]
mod folder;
#[path = "datasets/retrieval.rs"]
mod retrieval;
#[path = "datasets/webdataset.rs"]
mod webdataset;
