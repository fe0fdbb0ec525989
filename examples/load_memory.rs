//! Time and peak memory of loading a checkpoint, as one JSON line (docs/performance.md).
//!
//! ```sh
//! # once: random weights of a preset, in the DiffCLIP safetensors layout
//! cargo run --release --example load_memory -- --preset diffclip_vit_b16 --write /tmp/b16.safetensors
//! # then, in a fresh process:
//! cargo run --release --example load_memory -- --preset diffclip_vit_b16 --checkpoint /tmp/b16.safetensors
//! # a training checkpoint (weights + AdamW moments, 3x the size): loading it for inference
//! # reads only the weights; --whole-file reads the moments too
//! cargo run --release --example load_memory -- --preset diffclip_vit_b16 --write-training /tmp/b16-train.safetensors
//! cargo run --release --example load_memory -- --preset diffclip_vit_b16 --checkpoint /tmp/b16-train.safetensors
//! ```
//! Printed: the file's size, the model's f32 weights, seconds to load, resident memory before
//! the load (`VmRSS`, the empty model included) and the process's peak (`VmHWM`), all in MiB.

use diffclip::eprintln;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[path = "common/machine.rs"]
mod machine;
use machine::status_mb;

use clap::Parser;
use diffclip::clip::checkpoint::{CheckpointFormat, StateDict, StateTensor, detect_format, load_state_dict, safetensors_to_f32, to_canonical};
use diffclip::burn::tensor::Tensor;
use diffclip::clip::{ClipConfig, load_checkpoint, save_safetensors};
use diffclip::train::{AdamW, AdamWConfig, Checkpoint, Moments, TrainConfig, TrainState, parameter_sizes, save_training_checkpoint};

#[derive(Parser, Debug)]
#[command(about = "Time and peak memory of loading a checkpoint, as one JSON line")]
struct Args {
    /// Model preset (see `examples/config.rs`).
    #[arg(long, default_value = "diffclip_vit_b16")]
    preset: String,
    /// The checkpoint to load (any format `load_checkpoint` reads).
    #[arg(long, required_unless_present_any = ["write", "write_training"], conflicts_with_all = ["write", "write_training"])]
    checkpoint: Option<PathBuf>,
    /// Instead: write the preset's random weights here (safetensors) and exit.
    #[arg(long, conflicts_with = "write_training")]
    write: Option<PathBuf>,
    /// Instead: write a diffclip training checkpoint of the preset here (its random weights and
    /// AdamW moments of the same sizes, `save_training_checkpoint`) and exit.
    #[arg(long)]
    write_training: Option<PathBuf>,
    /// Baseline: read the whole safetensors file into memory first, then convert every tensor
    /// (how `load_checkpoint` read files before it streamed them tensor by tensor).
    #[arg(long, conflicts_with_all = ["write", "write_training"])]
    whole_file: bool,
}

fn main() -> ExitCode {
    diffclip::cli::run_main(|| run(Args::parse()))
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let config = ClipConfig::preset(&args.preset)?;
    let device = diffclip::backend::device("flex")?;
    let mut model = config.init_lazy(&device)?;
    // A tool that writes random weights replaces nothing.
    for (flag, path) in [("--write", &args.write), ("--write-training", &args.write_training)] {
        if let Some(path) = path.as_ref().filter(|p| std::fs::symlink_metadata(p).is_ok()) {
            return Err(format!("{flag} {}: exists; give a new path", path.display()).into());
        }
    }
    if let Some(path) = &args.write {
        save_safetensors(&model, Some(&config), path)?;
        eprintln!("wrote {}", path.display());
        return Ok(());
    }
    if let Some(path) = &args.write_training {
        let model = config.init(&device)?;
        let mut optim = AdamW::new(AdamWConfig::default());
        for (key, n) in parameter_sizes(&model) {
            let zeros = || Tensor::<1>::zeros([n], &device);
            optim.moments.insert(key, Moments { m: zeros(), v: zeros() });
        }
        let meta = Checkpoint { state: TrainState::default(), model: config.clone(), train: TrainConfig::default() };
        save_training_checkpoint(path, &model, &optim, &meta)?;
        eprintln!("wrote {}", path.display());
        return Ok(());
    }
    let path = args.checkpoint.expect("clap requires --checkpoint without --write");
    let before = status_mb("VmRSS:");
    let start = Instant::now();
    let format = if args.whole_file { load_whole_file(&mut model, &path)? } else { load_checkpoint(&mut model, &path)? };
    let seconds = start.elapsed().as_secs_f64();
    let line = serde_json::json!({
        "preset": args.preset,
        "format": format!("{format:?}"),
        "reader": if args.whole_file { "whole file" } else { "load_checkpoint" },
        "file_mb": std::fs::metadata(&path)?.len() as f64 / (1 << 20) as f64,
        "weights_mb": config.estimate().params as f64 * 4.0 / (1 << 20) as f64,
        "seconds": seconds,
        "rss_before_mb": before,
        "peak_rss_mb": status_mb("VmHWM:"),
        "machine": machine::machine(),
    });
    diffclip::cli::print_line(line)?;
    Ok(())
}

/// The baseline reader: the file's bytes and the f32 state dict of every tensor in it are both
/// resident at once.
fn load_whole_file(model: &mut diffclip::clip::Clip, path: &std::path::Path) -> Result<CheckpointFormat, Box<dyn std::error::Error>> {
    // A regular file only, and no more than memory holds (the reader under test holds it all).
    let available = diffclip::clip::ModelLimits::default().max_bytes.unwrap_or(u64::MAX);
    let bytes = diffclip::data::files::read_capped(path, available)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .ok_or_else(|| format!("{}: larger than the {:.1} GiB of memory available; --whole-file reads it whole", path.display(), available as f64 / (1u64 << 30) as f64))?;
    // The baseline reads safetensors only.
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| format!("{}: not a safetensors file (--whole-file reads only those): {e}", path.display()))?;
    let mut sd = StateDict::new();
    for (key, view) in st.tensors() {
        let data = safetensors_to_f32(view.dtype(), view.data(), &key, &path.display().to_string())?;
        sd.insert(key, StateTensor { shape: view.shape().to_vec(), data });
    }
    drop(bytes);
    // A training checkpoint: every tensor was read, the moments included; the model is `model.*`.
    if sd.keys().any(|k| k.starts_with("optim.m.")) {
        sd = sd.into_iter().filter_map(|(k, t)| Some((k.strip_prefix("model.")?.to_string(), t))).collect();
    }
    let format = detect_format(&sd);
    load_state_dict(model, to_canonical(sd, format, "baseline")?, "baseline")?;
    Ok(format)
}
