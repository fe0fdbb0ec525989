//! Dataset layouts read from disk (documented in `docs/eval.md`).

mod captions;
mod csv;
mod image_folder;
mod pairs;

pub use captions::CaptionSet;
pub use csv::{Csv, Record};
pub use image_folder::{IMAGE_EXTENSIONS, ImageFolder, is_image, list_images, read_lines};
pub use pairs::{PairItem, PairSet};
