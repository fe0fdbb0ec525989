//! Preprocess images exactly like open_clip / SLIP / the DiffCLIP demo and save them.
//!
//! ```text
//! cargo run --release --example preprocess -- --pipeline openai --size 224 \
//!     --output images.safetensors ../shared/fixtures/preprocess/images/*.jpg
//! ```
//! OUT receives one `[3, S, S]` f32 tensor per image, named by the file stem. A file
//! that cannot be decoded stops the run with a message naming it and exit code 1.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use diffclip_data::preprocess::{Pipeline, PreprocessConfig, Preset};
use diffclip::clip::files::{F32Tensor, METADATA_KEY, check_output, resolve_output, write_safetensors};

/// Largest output side: 3 x 4096 x 4096 f32 is 192 MiB per image.
const MAX_SIZE: u32 = 4096;

#[derive(Parser, Debug)]
#[command(about = "Decode and preprocess images into a safetensors file")]
struct Args {
    /// Preset: openai, slip, square-imagenet or slip-train.
    #[arg(long, default_value = "openai")]
    pipeline: String,
    /// Output side S (1 to 4096).
    #[arg(long, default_value_t = 224)]
    size: u32,
    /// Where to write the tensors (safetensors).
    #[arg(long)]
    output: PathBuf,
    /// Seed for random geometry (slip-train).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Apply the EXIF orientation tag.
    #[arg(long)]
    exif_orientation: bool,
    /// Reject images with more pixels than this (default: DIFFCLIP_MAX_PIXELS, else 178956970).
    #[arg(long)]
    max_pixels: Option<u64>,
    /// Reject image files longer than this many bytes (only regular files are read; default:
    /// DIFFCLIP_MAX_IMAGE_BYTES, else 256 MiB).
    #[arg(long)]
    max_bytes: Option<u64>,
    /// Image files (JPEG, PNG, GIF, WebP, BMP).
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

fn run(args: Args) -> Result<(), String> {
    let preset: Preset = args
        .pipeline
        .parse()
        .map_err(|e| format!("--pipeline: {e}"))?;
    // Every output ([3, S, S] f32) is held in memory until the file is written.
    if !(1..=MAX_SIZE).contains(&args.size) {
        return Err(format!("--size must be 1 to {MAX_SIZE}, got {}", args.size));
    }
    if args.max_pixels == Some(0) {
        return Err("--max-pixels must be positive".into());
    }
    if args.max_bytes == Some(0) {
        return Err("--max-bytes must be positive".into());
    }
    let mut config = PreprocessConfig::preset(preset, args.size);
    config.decode.exif_orientation = args.exif_orientation;
    config.decode.max_pixels = args.max_pixels.unwrap_or(config.decode.max_pixels);
    config.decode.max_bytes = args.max_bytes.unwrap_or(config.decode.max_bytes);
    let pipeline = Pipeline::new(config).map_err(|e| e.to_string())?;

    let mut names = BTreeMap::new();
    for (i, path) in args.images.iter().enumerate() {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| format!("{}: no usable file stem", path.display()))?
            .to_string();
        if stem == METADATA_KEY {
            return Err(format!("{}: the file stem {stem:?} is the safetensors metadata key; rename the file", path.display()));
        }
        if let Some(j) = names.insert(stem.clone(), i) {
            return Err(format!(
                "{} and {} share the tensor name {stem:?}",
                args.images[j].display(),
                path.display()
            ));
        }
    }
    // Every output is held until the file is written: refuse what memory cannot hold, before
    // decoding, instead of an abort in the allocator.
    let s = args.size as usize;
    let need = (args.images.len() as u128) * 3 * (s as u128) * (s as u128) * 4;
    if let Some(available) = diffclip::clip::ModelLimits::default().max_bytes.filter(|&a| need > a as u128) {
        let gib = |b: u128| b as f64 / (1u64 << 30) as f64;
        return Err(format!(
            "{} images at --size {s} need {:.1} GiB in memory until the file is written, more than the {:.1} GiB available; preprocess them in several runs",
            args.images.len(),
            gib(need),
            gib(available as u128)
        ));
    }
    let inputs: Vec<&std::path::Path> = args.images.iter().map(PathBuf::as_path).collect();
    let target = resolve_output(&args.output).map_err(|e| e.to_string())?;
    check_output(&target, &inputs).map_err(|e| e.to_string())?;
    let images = pipeline
        .process_files(&args.images, args.seed)
        .map_err(|e| e.to_string())?;
    let mut tensors = Vec::with_capacity(names.len());
    for (name, &i) in &names {
        tensors.push(F32Tensor { name: name.clone(), shape: vec![3, s, s], data: &images[i] });
    }
    let mut meta = std::collections::HashMap::new();
    meta.insert("pipeline".to_string(), preset.to_string());
    meta.insert("size".to_string(), s.to_string());
    write_safetensors(&args.output, &tensors, meta).map_err(|e| e.to_string())?;
    match diffclip::cli::print_line(format!("wrote {} tensors [3,{s},{s}] to {}", names.len(), args.output.display())) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.to_string()),
        _ => Ok(()),
    }
}

fn main() -> ExitCode {
    diffclip::cli::run_main(|| run(Args::parse()))
}
