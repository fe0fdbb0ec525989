//! Print a preset's model JSON (the format `--config` takes), to start a custom model from.
//!
//! ```text
//! cargo run --release --example config -- diffclip_tiny > model.json
//! ```

use std::process::ExitCode;

use clap::Parser;
use diffclip::clip::{ClipConfig, PRESETS};

/// Print a preset's model JSON (the format `--config` takes)
#[derive(Parser)]
#[command(after_help = presets())]
struct Args {
    /// The preset (listed below)
    preset: String,
}

fn presets() -> String {
    format!("Presets: {}", PRESETS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let printed = ClipConfig::preset(&args.preset)
        .map_err(|e| e.into())
        .and_then(|cfg| Ok(diffclip::cli::print_line(serde_json::to_string_pretty(&cfg)?)?));
    diffclip::cli::exit_code(diffclip::cli::closed_output_is_success(printed))
}
