//! What the training tests share: the tiny model, its batcher, the synthetic data and a lock.
#![allow(dead_code)]

use diffclip_clip::ClipConfig;
use diffclip_data::synthetic::{ContrastiveView, Split};
use diffclip_data::{ClipBatcher, ClipTokenizer, SyntheticConfig, SyntheticDataset, TokenizerConfig};

/// `diffclip_tiny` with a 32-token context (the synthetic captions are short).
pub fn tiny_model() -> ClipConfig {
    let mut c = ClipConfig::diffclip_tiny();
    c.text.context_length = 32;
    c
}

/// A batcher for [`tiny_model`]'s context.
pub fn batcher() -> ClipBatcher {
    ClipBatcher::new(ClipTokenizer::with_config(TokenizerConfig { context_length: 32, ..Default::default() }).unwrap())
}

/// The synthetic training split at 32 px with `train_size` samples.
pub fn synthetic(train_size: usize) -> ContrastiveView {
    let cfg = SyntheticConfig { image_size: 32, train_size, test_size: 8, ..SyntheticConfig::default() };
    SyntheticDataset::new(cfg, Split::Train).unwrap().contrastive()
}

// The device RNG is global and every run reseeds it: tests that build or train models take
// this lock for their whole body so parallel test threads cannot interleave draws.
pub use diffclip_testkit::serial;
