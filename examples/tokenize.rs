//! Tokenizes each line of standard input with the CLIP BPE tokenizer and prints one JSON array
//! of ids per line.
//!
//! ```text
//! printf 'a photo of a cat\nA dog.\n' | cargo run --release --example tokenize -- --context-length 16
//! cargo run --release --example tokenize -- --truncate drop-eot < captions.txt
//! ```
//!
//! Flags: `--context-length N` (default 77, 2 to 65536), `--truncate keep-eot|drop-eot`
//! (default keep-eot: open_clip; drop-eot: the DiffCLIP authors' tokenizer).
//!
//! A line longer than 16 MiB is an error (exit 1). Output going to a closed pipe (`| head`) ends
//! the program quietly with exit 0; any other write error (a full disk, `> /dev/full`) is
//! reported with exit 1.

use diffclip::eprintln;
use std::io::{self, BufRead, BufWriter, Read, Write};
use std::process::ExitCode;

// The longest input line accepted (a guard against `tokenize < /dev/zero`), as for every
// line-list input.
use diffclip_data::files::MAX_LINE_BYTES;
use diffclip_data::tokenizer::{ClipTokenizer, TokenizerConfig, Truncation};

/// Exit status for a failed write to standard output: quiet success for a closed pipe (the
/// reader has all it wanted), an error otherwise.
fn write_failed(e: &io::Error) -> ExitCode {
    if e.kind() == io::ErrorKind::BrokenPipe {
        ExitCode::SUCCESS
    } else {
        eprintln!("error: writing standard output: {e}");
        ExitCode::FAILURE
    }
}

const USAGE: &str =
    "usage: tokenize [--context-length N] [--truncate keep-eot|drop-eot] < lines.txt";

/// Parses the command line into a tokenizer config; `Ok(None)` means `--help`.
fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<TokenizerConfig>, String> {
    let mut config = TokenizerConfig::default();
    let mut args = args.peekable();
    let mut seen = Vec::new();
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
        if matches!(flag.as_str(), "--context-length" | "--truncate") {
            if seen.contains(&flag) {
                return Err(format!("{flag} given more than once"));
            }
            seen.push(flag.clone());
        }
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--context-length" => {
                let v = value("--context-length")?;
                config.context_length = v.parse().map_err(|_| {
                    format!(
                        "--context-length: {v:?} is not an integer from 2 to {}",
                        diffclip_data::tokenizer::MAX_CONTEXT_LENGTH
                    )
                })?;
            }
            "--truncate" => {
                let v = value("--truncate")?;
                config.truncation = v.parse::<Truncation>().map_err(|e| e.to_string())?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    config
        .check()
        .map_err(|e| format!("--context-length: {e}"))?;
    Ok(Some(config))
}

fn main() -> ExitCode {
    let config = match parse_args(std::env::args().skip(1)) {
        Ok(Some(config)) => config,
        Ok(None) => {
            let mut out = io::stdout().lock();
            return match writeln!(out, "{USAGE}").and_then(|()| out.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => write_failed(&e),
            };
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
    let mut line_no = 0u64;
    loop {
        buf.clear();
        line_no += 1;
        // Two bytes past the limit hold a line of exactly the limit and its `\r\n`, as every
        // other line reader (`diffclip_data::files::TextLines`) counts it.
        let read = stdin.by_ref().take(MAX_LINE_BYTES + 2).read_until(b'\n', &mut buf);
        let text_len = buf.strip_suffix(b"\n").map_or(&buf[..], |l| l.strip_suffix(b"\r").unwrap_or(l)).len();
        match read {
            Ok(0) => break,
            Ok(_) if text_len as u64 > MAX_LINE_BYTES => {
                eprintln!(
                    "error: standard input line {line_no} is longer than {MAX_LINE_BYTES} bytes"
                );
                return ExitCode::FAILURE;
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("error: reading standard input: {e}");
                return ExitCode::FAILURE;
            }
        }
        // Invalid UTF-8 becomes U+FFFD rather than an error (one output line per input line),
        // said on stderr.
        let line = String::from_utf8_lossy(&buf);
        if let std::borrow::Cow::Owned(_) = line {
            eprintln!("warning: standard input line {line_no} is not UTF-8: its invalid bytes are tokenized as U+FFFD");
        }
        let ids = tokenizer.tokenize(line.strip_suffix('\n').unwrap_or(&line));
        let body: Vec<String> = ids.iter().map(u32::to_string).collect();
        if let Err(e) = writeln!(out, "[{}]", body.join(",")) {
            return write_failed(&e);
        }
    }
    match out.flush() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => write_failed(&e),
    }
}
