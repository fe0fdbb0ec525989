//! diffclip-data

pub mod files;

pub mod metadata;

pub mod preprocess;
pub use preprocess::{Pipeline, PreprocessConfig, PreprocessError, Preset};

pub mod tokenizer;
pub use tokenizer::{ClipTokenizer, TokenizerConfig, TokenizerError, Truncation};

pub mod datasets;
pub use datasets::{BadSamplePolicy, ClipBatch, ClipBatcher, ClipItem, DataError};

pub mod synthetic;
pub use synthetic::{SyntheticConfig, SyntheticDataset};
