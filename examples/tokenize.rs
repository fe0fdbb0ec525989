//! Tokenizes each line of standard input with the CLIP BPE tokenizer and prints one JSON array
//! of ids per line.
//!
//! ```text
//! printf 'a photo of a cat\nA dog.\n' | cargo run --release --example tokenize -- --context-length 16
//! cargo run --release --example tokenize -- --truncate drop-eot < captions.txt
//! ```
//!
//! Flags: `--context-length N` (default 77, at least 2), `--truncate keep-eot|drop-eot`
//! (default keep-eot: open_clip; drop-eot: the DiffCLIP authors' tokenizer).

use std::io::{self, BufRead, BufWriter, Write};
use std::process::ExitCode;

use diffclip_data::tokenizer::{ClipTokenizer, TokenizerConfig, Truncation};

const USAGE: &str =
    "usage: tokenize [--context-length N] [--truncate keep-eot|drop-eot] < lines.txt";

/// Parses the command line into a tokenizer config; `Ok(None)` means `--help`.
fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<TokenizerConfig>, String> {
    let mut config = TokenizerConfig::default();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--context-length" => {
                let v = value("--context-length")?;
                config.context_length = v.parse().map_err(|_| {
                    format!("--context-length: {v:?} is not a non-negative integer")
                })?;
            }
            "--truncate" => {
                let v = value("--truncate")?;
                config.truncation = v.parse::<Truncation>().map_err(|e| e.to_string())?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(Some(config))
}

fn main() -> ExitCode {
    let config = match parse_args(std::env::args().skip(1)) {
        Ok(Some(config)) => config,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("error: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let tokenizer = match ClipTokenizer::with_config(config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut stdin = io::stdin().lock();
    let mut out = BufWriter::new(io::stdout().lock());
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match stdin.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                eprintln!("error: reading standard input: {e}");
                return ExitCode::FAILURE;
            }
        }
        // Invalid UTF-8 becomes U+FFFD rather than an error.
        let line = String::from_utf8_lossy(&buf);
        let ids = tokenizer.tokenize(line.strip_suffix('\n').unwrap_or(&line));
        let body: Vec<String> = ids.iter().map(u32::to_string).collect();
        if writeln!(out, "[{}]", body.join(",")).is_err() {
            return ExitCode::SUCCESS; // closed pipe (e.g. `| head`)
        }
    }
    if out.flush().is_err() {
        return ExitCode::SUCCESS;
    }
    ExitCode::SUCCESS
}
