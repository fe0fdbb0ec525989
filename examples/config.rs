//! Print a preset's model JSON (the format `--config` takes), to start a custom model from.
//!
//! ```text
//! cargo run --release --example config -- diffclip_tiny > model.json
//! ```

use std::process::ExitCode;

use diffclip::clip::{ClipConfig, PRESETS};

fn main() -> ExitCode {
    let Some(name) = std::env::args().nth(1) else {
        eprintln!("usage: config PRESET\npresets: {}", PRESETS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "));
        return ExitCode::FAILURE;
    };
    match ClipConfig::preset(&name) {
        Ok(cfg) => {
            println!("{}", serde_json::to_string_pretty(&cfg).expect("config serialises"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
