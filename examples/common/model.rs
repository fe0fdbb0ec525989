//! The model flags shared by the programs that load a checkpoint (embed, classify, search).

use std::path::PathBuf;

use diffclip::LoadedModel;
use diffclip::cli::load_model;

/// `--model NAME`, or `--checkpoint` with `--preset`/`--config`; and the backend.
#[derive(clap::Args, Debug)]
pub struct ModelArgs {
    /// A released model by name (`diffclip-vit-b16-cc12m`, `openai-vit-b16`, ...; see
    /// `diffclip::pretrained`), read from the Hugging Face cache; sets the preset, preprocessing
    /// and truncation too.
    #[arg(long, conflicts_with_all = ["config", "preset", "checkpoint"])]
    pub model: Option<String>,
    /// Model config JSON (see README); or use --preset.
    #[arg(long, conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    /// Preset name, e.g. diffclip_vit_b16, openai_vit_b16, diffclip_tiny.
    #[arg(long)]
    pub preset: Option<String>,
    /// Weights: .pt, .safetensors (DiffCLIP, open_clip, HuggingFace layouts) or .bpk.
    #[arg(long, required_unless_present = "model")]
    pub checkpoint: Option<PathBuf>,
    /// Backend: flex, ndarray, wgpu (as compiled in).
    #[arg(long, default_value = "flex")]
    pub backend: String,
    /// Compute in f32, bf16 or f16; embeddings stay f32. On the CPU (flex) bf16 and f16 keep
    /// the weights f32 and multiply in that type (bf16 on AMX on Intel Xeons, AVX512-BF16 on
    /// AMD); otherwise the weights are cast after loading.
    #[arg(long, default_value = "f32")]
    pub dtype: diffclip::clip::Precision,
}

impl ModelArgs {
    /// The model on the chosen backend.
    pub fn load(&self) -> Result<LoadedModel, Box<dyn std::error::Error>> {
        let device = diffclip::backend::device(&self.backend)?;
        let mut loaded = load_model(self.model.as_deref(), self.config.as_deref(), self.preset.as_deref(), self.checkpoint.as_deref(), &device)?;
        loaded.model = loaded.model.with_precision(self.dtype)?;
        Ok(loaded)
    }
}
