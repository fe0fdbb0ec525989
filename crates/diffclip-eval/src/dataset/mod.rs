//! Dataset layouts read from disk (documented in `docs/eval.md`).
//!
//! Classification folders are `diffclip-data`'s [`ImageFolder`] (the one folder reader, shared
//! with training), and the CSV files here are read by its [`CsvTable`](diffclip_data::datasets::CsvTable).

mod captions;
mod pairs;

pub use captions::CaptionSet;
pub use diffclip_data::datasets::ImageFolder;
pub use pairs::{PairItem, PairSet};
