//! What the example programs share: turning a run's result into an exit code.

use std::process::ExitCode;

/// A program's `main`: glibc's allocator tuned for tensor workloads
/// ([`keep_freed_memory`](crate::allocator::keep_freed_memory)), the environment's limits
/// checked ([`environment_problem`]), then `run`, then its exit code.
pub fn run_main<E: std::fmt::Display>(run: impl FnOnce() -> Result<(), E>) -> ExitCode {
    crate::allocator::keep_freed_memory();
    if let Some(problem) = environment_problem() {
        return exit_code(Err(problem));
    }
    exit_code(run())
}

/// A limit set in the environment but unreadable, which would leave the default in force:
/// the decoding limits ([`limits_env_problem`](diffclip_data::preprocess::limits_env_problem))
/// and `DIFFCLIP_MAX_PARAMS`. Every program refuses to start on one.
pub fn environment_problem() -> Option<String> {
    let params = diffclip_clip::MAX_PARAMS_ENV;
    let params_problem = || {
        std::env::var_os(params)
            .filter(|v| v.to_str().and_then(diffclip_clip::parse_count).is_none())
            .map(|v| format!("{params}={}: not a count (such as 5e9 or 5_000_000_000)", v.to_string_lossy()))
    };
    diffclip_data::preprocess::limits_env_problem().or_else(params_problem)
}

/// Writes one line to standard error and ignores a failure: a closed or full standard error (a
/// dead `tee` or logger, a full log disk, a terminal gone) must not stop a program half-way,
/// losing its work, as `std::eprintln!`'s panic would; its lines are lost instead.
///
/// ```
/// diffclip::cli::print_err(format_args!("{} steps", 3));
/// ```
pub fn print_err(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// `eprintln!` that never panics ([`cli::print_err`](crate::cli::print_err)). The programs
/// import it (`use diffclip::eprintln;`), which shadows the standard one.
///
/// ```
/// use diffclip::eprintln;
/// eprintln!("warning: {}", "a note");
/// ```
#[macro_export]
macro_rules! eprintln {
    () => { $crate::cli::print_err(format_args!("")) };
    ($($arg:tt)*) => { $crate::cli::print_err(format_args!($($arg)*)) };
}

/// 0 for `Ok`; for `Err`, the error printed to stderr as `error: …` (control characters but
/// newline and tab escaped, [`printable`](diffclip_data::files::printable): an error may quote
/// a file's bytes) and exit code 1.
///
/// ```
/// let ok: Result<(), String> = Ok(());
/// assert_eq!(diffclip::cli::exit_code(ok), std::process::ExitCode::SUCCESS);
/// ```
pub fn exit_code<E: std::fmt::Display>(result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            print_err(format_args!("error: {}", diffclip_data::files::printable(&e.to_string())));
            ExitCode::FAILURE
        }
    }
}

/// `Ok` when `result` failed writing to a closed pipe (`search … | head`: the reader has all it
/// wanted, as for standard Unix tools), `result` otherwise.
///
/// ```
/// use std::io::{Error, ErrorKind};
/// let closed: Result<(), Box<dyn std::error::Error>> = Err(Error::from(ErrorKind::BrokenPipe).into());
/// assert!(diffclip::cli::closed_output_is_success(closed).is_ok());
/// let full: Result<(), Box<dyn std::error::Error>> = Err(Error::from(ErrorKind::StorageFull).into());
/// assert!(diffclip::cli::closed_output_is_success(full).is_err());
/// ```
pub fn closed_output_is_success(result: Result<(), Box<dyn std::error::Error>>) -> Result<(), Box<dyn std::error::Error>> {
    match result {
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) => Ok(()),
        other => other,
    }
}

/// Writes `text` and a newline to standard output, flushed. Unlike `println!`, which panics, a
/// failed write (a full disk, a closed pipe) comes back as an error saying "standard output"
/// with the kind kept, so [`closed_output_is_success`] still ends a closed pipe quietly.
///
/// ```
/// diffclip::cli::print_line("a line").unwrap();
/// ```
pub fn print_line(text: impl std::fmt::Display) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").and_then(|()| out.flush()).map_err(|e| std::io::Error::new(e.kind(), format!("standard output: {e}")))
}

/// A text argument that holds something the tokenizer reads (a query, a label), as a
/// command-line parser's check: white space and control characters are cleaned away
/// ([`clean_text`](diffclip_data::tokenizer::clean_text)), and an empty query would still rank
/// every row, meaninglessly.
///
/// ```
/// assert_eq!(diffclip::cli::non_blank(" a dog ").unwrap(), " a dog ");
/// assert!(diffclip::cli::non_blank("  ").is_err());
/// assert!(diffclip::cli::non_blank("\u{1}\u{2}").is_err());
/// ```
pub fn non_blank(text: &str) -> Result<String, String> {
    match diffclip_data::tokenizer::is_blank(text) {
        true => Err("empty (only white space or control characters)".into()),
        false => Ok(text.to_string()),
    }
}

/// A count of at least 1 (a batch size, rows per shard, resamples), as a command-line parser's
/// check: 0 is refused, not silently raised to 1 or run as nothing.
///
/// ```
/// assert_eq!(diffclip::cli::at_least_one("3").unwrap(), 3);
/// assert!(diffclip::cli::at_least_one("0").is_err());
/// ```
pub fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// The secret of `--token-file`: the file's text, white space around it dropped; refused when
/// it is shorter than 16 characters or holds white space or control characters inside (a header
/// could not carry it whole). Kept in a file, not on the command line, which other users of the
/// machine can read.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("token");
/// std::fs::write(&path, "  s3cret-token-0123456789\n").unwrap();
/// assert_eq!(diffclip::cli::read_token(&path).unwrap(), "s3cret-token-0123456789");
/// std::fs::write(&path, "short").unwrap();
/// assert!(diffclip::cli::read_token(&path).unwrap_err().contains("at least 16"));
/// std::fs::write(&path, "two words of a passphrase").unwrap();
/// assert!(diffclip::cli::read_token(&path).unwrap_err().contains("white space"));
/// ```
pub fn read_token(path: &std::path::Path) -> Result<String, String> {
    let said = |why: String| format!("--token-file {}: {why}", path.display());
    let bytes = diffclip_clip::files::read_regular_capped(path, 4096).map_err(|e| said(e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|_| said("not UTF-8 text".into()))?;
    let token = text.trim();
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(said("the token holds white space or control characters".into()));
    }
    if token.chars().count() < 16 {
        return Err(said(format!("a token of {} characters; give at least 16", token.chars().count())));
    }
    Ok(token.to_string())
}

/// A web page origin as browsers send it in `Origin` (`scheme://host[:port]`, `http` or `https`,
/// no path and no trailing slash), as a command-line parser's check: an origin written another
/// way would never match and every request from that page would get 403.
///
/// ```
/// assert_eq!(diffclip::cli::web_origin("https://app.example:8443").unwrap(), "https://app.example:8443");
/// assert!(diffclip::cli::web_origin("http://a/").unwrap_err().contains("no path"));
/// assert!(diffclip::cli::web_origin("app.example").is_err());
/// assert!(diffclip::cli::web_origin("null").is_err());
/// assert!(diffclip::cli::web_origin("http://[::1]:8080").is_ok());
/// assert!(diffclip::cli::web_origin("https://a:443").unwrap_err().contains("default port"));
/// assert!(diffclip::cli::web_origin("http://a:").is_err() && diffclip::cli::web_origin("http://a:99999").is_err());
/// ```
pub fn web_origin(text: &str) -> Result<String, String> {
    let shape = "an origin is scheme://host[:port], as a browser sends it";
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(format!("{text:?}: {shape}, e.g. https://app.example"));
    };
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return Err(format!("{text:?}: the scheme must be http or https"));
    }
    if rest.contains(['/', '?', '#']) {
        return Err(format!("{text:?}: {shape}, with no path (not even a trailing /)"));
    }
    // Browsers send host names in ASCII (punycode) and leave the scheme's default port out.
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            // After `]` only `:PORT` may follow (anything else fails the port check below).
            Some((ip, "")) if ip.parse::<std::net::Ipv6Addr>().is_ok() => (ip, None),
            Some((ip, after)) if ip.parse::<std::net::Ipv6Addr>().is_ok() => (ip, Some(after.strip_prefix(':').unwrap_or(after))),
            _ => return Err(format!("{text:?}: {shape}; the IPv6 address in [ ] is malformed")),
        },
        None => match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        },
    };
    let v6 = rest.starts_with('[');
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b) || (v6 && b == b':')) {
        return Err(format!("{text:?}: {shape}; the host is missing or not in ASCII (punycode) form"));
    }
    if let Some(port) = port {
        let default = if scheme.eq_ignore_ascii_case("https") { 443 } else { 80 };
        match port.parse::<u16>() {
            Ok(p) if p == default => return Err(format!("{text:?}: browsers leave the default port {p} out of the origin; write it without")),
            Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => {}
            _ => return Err(format!("{text:?}: the port must be a number from 1 to 65535")),
        }
    }
    Ok(text.to_string())
}

/// A host name for the `Host` header check (`name` or `name:port`), as a command-line parser's
/// check: not empty, no scheme, path or white space.
///
/// ```
/// assert!(diffclip::cli::host_name("clip.internal:8443").is_ok());
/// assert!(diffclip::cli::host_name("").is_err());
/// assert!(diffclip::cli::host_name("https://clip.internal").is_err());
/// assert!(diffclip::cli::host_name("[::1]:8080").is_ok() && diffclip::cli::host_name("[::1]").is_ok());
/// for bad in ["clip.internal:", "clip.internal:70000", ":8080", "::1", "[::1", "[::1]x", "a:b:c"] {
///     assert!(diffclip::cli::host_name(bad).is_err(), "{bad}");
/// }
/// ```
pub fn host_name(text: &str) -> Result<String, String> {
    if text.is_empty() || text.contains(['/', '@', '?', '#']) || text.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(format!("{text:?}: a host name as the Host header holds it (name or name:port, no scheme or path)"));
    }
    // A value no Host header can carry would accept nothing, or a header without a port.
    if let Some(problem) = host_problem(text) {
        return Err(format!("{text:?}: {problem}"));
    }
    Ok(text.to_string())
}

/// What is wrong with `name`, `name:port`, `[v6]` or `[v6]:port` as a Host header value: an
/// empty name, a port that is empty, not a number or outside 1..=65535, or an IPv6 address
/// without its brackets.
fn host_problem(text: &str) -> Option<&'static str> {
    let (name, port) = match text.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((ip, "")) => (ip, None),
            Some((ip, after)) => match after.strip_prefix(':') {
                Some(port) => (ip, Some(port)),
                None => return Some("only a port may follow a bracketed address"),
            },
            None => return Some("a bracketed address must end with ]"),
        },
        None if text.matches(':').count() > 1 => return Some("an IPv6 address must be written in brackets, [::1]:8080"),
        None => match text.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (text, None),
        },
    };
    if name.is_empty() {
        return Some("the name is empty");
    }
    match port {
        Some(port) if !(port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok_and(|p| p > 0)) => Some("the port must be a number from 1 to 65535"),
        _ => None,
    }
}

/// Refuses `flag`'s batch of `batch` samples on `device` when a model of `config` would need
/// more of the host's memory for it than is available
/// ([`ModelLimits::check_batch`](diffclip_clip::ModelLimits::check_batch)), the error naming
/// the flag, before anything is allocated. A GPU's batch is not checked: its memory is its own.
///
/// ```
/// use diffclip::clip::{ClipConfig, Workload};
/// let config = ClipConfig::diffclip_vit_b16();
/// let flex = diffclip::burn::tensor::Device::flex();
/// # #[cfg(target_os = "linux")] // the host's available memory is read from /proc/meminfo
/// # {
/// let err = diffclip::cli::check_batch(&config, usize::MAX, Workload::Images, "--batch", &flex).unwrap_err();
/// assert!(err.starts_with("--batch 18446744073709551615: a batch of"), "{err}");
/// # }
/// assert!(diffclip::cli::check_batch(&config, 8, Workload::Images, "--batch", &flex).is_ok());
/// ```
pub fn check_batch(config: &ClipConfig, batch: usize, workload: diffclip_clip::Workload, flag: &str, device: &Device) -> Result<(), String> {
    if !crate::attention::is_host_device(device) {
        return Ok(());
    }
    diffclip_clip::ModelLimits::default().check_batch(&config.estimate(), batch, workload).map_err(|e| format!("{flag} {batch}: {e}"))
}

/// Refuses an attention layer's `[batch, n, width]` input (with `heads` heads) that would not
/// fit in the host's memory: its activations and, with `maps`, the attention maps of the
/// reference path (kept twice as many for a `backward`), before anything is allocated. Sizes
/// whose tensors no address space can hold are refused on every device; a GPU's memory is its
/// own and not checked.
///
/// ```
/// let flex = diffclip::burn::tensor::Device::flex();
/// let err = diffclip::cli::check_attention_size(1 << 32, 1 << 32, 768, 12, true, false, &flex).unwrap_err();
/// assert!(err.starts_with("--n 4294967296 --batch 4294967296: more than any tensor can hold"), "{err}");
/// let err = diffclip::cli::check_attention_size(usize::MAX, usize::MAX, 768, 12, true, true, &flex).unwrap_err();
/// assert!(err.contains("more than any tensor can hold"), "{err}");
/// assert!(diffclip::cli::check_attention_size(8, 197, 768, 12, true, true, &flex).is_ok());
/// ```
pub fn check_attention_size(batch: usize, n: usize, width: usize, heads: usize, maps: bool, backward: bool, device: &Device) -> Result<(), String> {
    let (batch, n, width, heads) = (batch as u128, n as u128, width as u128, heads as u128);
    let too_large = || format!("--n {n} --batch {batch}: more than any tensor can hold");
    // Elements of the input and of one head pair's maps; each must be addressable in bytes.
    let input = batch.checked_mul(n).and_then(|x| x.checked_mul(width)).filter(|&e| e <= isize::MAX as u128 / 4).ok_or_else(too_large)?;
    let map = batch.checked_mul(heads).and_then(|x| x.checked_mul(n)).and_then(|x| x.checked_mul(n)).filter(|&e| !maps || e <= isize::MAX as u128 / 4).ok_or_else(too_large)?;
    // Four bytes a float: q, k, v, the projections and the output; the maps twice (both
    // softmaxes), four times with the backward's copies.
    let need = input * 4 * 8 + if maps { map * 4 * if backward { 4 } else { 2 } } else { 0 };
    let gib = |b: u128| b as f64 / (1u64 << 30) as f64;
    match diffclip_clip::ModelLimits::default().max_bytes.filter(|&a| crate::attention::is_host_device(device) && need > a as u128) {
        Some(available) => Err(format!("--n {n} --batch {batch}: about {:.1} GiB needed, more than the {:.1} GiB of memory available", gib(need), gib(available as u128))),
        None => Ok(()),
    }
}

/// What the lines of standard input hold, for [`serve_stdin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdinLines {
    /// Texts: each line trimmed.
    Texts,
    /// File or folder paths: each line kept as it is but for its line ending, since a file
    /// name may begin or end with a space.
    Paths,
}

/// Runs `answer` on each line of standard input as it arrives (read by
/// [`TextLines`](diffclip_data::files::TextLines): blank lines skipped, texts trimmed, paths
/// kept whole), for programs that serve a pipe. `answer` says whether it answered the line
/// (`false`: it reported why not and the program goes on). A line that is not UTF-8 is reported
/// on stderr and skipped; a line too long, a read error, or an error of `answer` ends the loop
/// with that error; lines of which not one was answered are an error at the end, so that a
/// pipe of nothing but bad lines does not exit 0 (an empty input does).
pub fn serve_stdin(kind: StdinLines, mut answer: impl FnMut(String) -> Result<bool, Box<dyn std::error::Error>>) -> Result<(), Box<dyn std::error::Error>> {
    let lines = diffclip_data::files::TextLines::new(std::io::stdin().lock(), "standard input");
    let mut lines = match kind {
        StdinLines::Texts => lines,
        StdinLines::Paths => lines.keep_spaces(),
    };
    let (mut seen, mut answered) = (0usize, 0usize);
    while let Some(line) = lines.next() {
        seen += 1;
        match line {
            Ok(line) => answered += usize::from(answer(line)?),
            Err(e) if !lines.ended() => print_err(format_args!("skipped {}", diffclip_data::files::printable_line(&e.to_string()))),
            Err(e) => return Err(e.into()),
        }
    }
    match (seen, answered) {
        (1, 0) => Err("the one line of standard input could not be answered (reported above)".into()),
        (2.., 0) => Err(format!("none of the {seen} lines of standard input could be answered (each is reported above)").into()),
        _ => Ok(()),
    }
}

use std::path::Path;

use burn::tensor::Device;
use diffclip_clip::ClipConfig;

use crate::LoadedModel;
use crate::pretrained::Pretrained;

/// Loads `--model NAME` (from the hub cache) or `--config`/`--preset` + `--checkpoint` on
/// `device`, naming the file in every error, and says which file it read.
pub fn load_model(
    name: Option<&str>,
    config: Option<&Path>,
    preset: Option<&str>,
    checkpoint: Option<&Path>,
    device: &Device,
) -> Result<LoadedModel, Box<dyn std::error::Error>> {
    let loaded = match (name, checkpoint) {
        (Some(name), _) => Pretrained::named(name)?.load(device)?,
        (None, Some(ckpt)) => LoadedModel::load(ClipConfig::select(config, preset, Some(ckpt))?, ckpt, device)?,
        (None, None) => return Err("give --model NAME, or --checkpoint with --preset/--config".into()),
    };
    print_err(format_args!("loaded {} ({:?} layout)", loaded.checkpoint.display(), loaded.format));
    Ok(loaded)
}

/// The folders a program makes for its output (the folder and any missing parents), removed
/// again, innermost first, as far as the program leaves them empty when this is dropped: a run
/// refused after making its `--output` leaves no empty folder behind.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let out = dir.path().join("runs/a");
/// let made = diffclip::cli::RemovedIfEmpty::made_by(&out);
/// std::fs::create_dir_all(&out).unwrap();
/// drop(made);
/// assert!(!dir.path().join("runs").exists());
/// ```
pub struct RemovedIfEmpty(Vec<std::path::PathBuf>);

impl RemovedIfEmpty {
    /// The folders of `path` that do not exist yet, innermost first.
    pub fn made_by(path: &Path) -> Self {
        Self(path.ancestors().take_while(|a| !a.as_os_str().is_empty() && std::fs::symlink_metadata(a).is_err()).map(Path::to_path_buf).collect())
    }
}

impl Drop for RemovedIfEmpty {
    fn drop(&mut self) {
        // `remove_dir` removes only an empty folder: one holding anything is left, and so are
        // the folders around it.
        for dir in &self.0 {
            if std::fs::remove_dir(dir).is_err() {
                break;
            }
        }
    }
}
