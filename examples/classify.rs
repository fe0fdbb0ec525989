//! Zero-shot labels for image files: each label is embedded under prompt templates (the 80
//! OpenAI templates by default), and every image gets its top-k labels with probabilities.
//!
//! ```text
//! cargo run --release --example classify -- --preset diffclip_tiny \
//!     --checkpoint ../shared/fixtures/diffclip_tiny/model.safetensors \
//!     --labels "a dog,a cat,a car" ../shared/fixtures/preprocess/images
//! ```
//! With `-` for the images, each line of standard input names a file or folder, classified
//! (and flushed) as it arrives, the model and the label embeddings computed once:
//! `find photos -name '*.jpg' | classify … --json -`. A line naming nothing readable is reported
//! on stderr and the program goes on (exit 1 at the end if no line could be classified). Output going to a closed pipe (`| head`) ends the
//! program quietly with exit 0.
//!
//! `--listen ADDR` serves the same over HTTP: `POST /classify?top_k=N` with an image file's
//! bytes answers `{"top": [{"label", "probability"}, …]}` (the `--json` form's, to the bit);
//! `GET /health` answers `{"status": "ok", "labels": N}` (see `docs/eval.md`, "Over HTTP").

use diffclip::eprintln;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[path = "common/model.rs"]
mod model_args;
#[path = "common/serve.rs"]
mod serve;
use model_args::ModelArgs;

use clap::Parser;
use diffclip::data::datasets::list_image_files;
use diffclip::data::files::printable_line;
use diffclip::data::Pipeline;
use diffclip::eval::{Evaluator, ImageSource, Matrix, metadata};
use diffclip::http::Response;

#[derive(Parser, Debug)]
#[command(about = "Zero-shot classification of image files with a CLIP / DiffCLIP checkpoint")]
struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Labels: comma-separated, or a file with one label per line.
    #[arg(long)]
    labels: String,
    /// Prompt templates: a shipped set (openai, simple) or a file, one per line with {c}.
    #[arg(long, default_value = "openai")]
    templates: String,
    /// Labels shown per image.
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// Preprocessing: openai, slip, square-imagenet (default: slip for the timm layout DiffCLIP
    /// uses, openai for the OpenAI layout).
    #[arg(long)]
    preprocess: Option<String>,
    /// Over-long prompts: keep-eot (open_clip) or drop-eot (the DiffCLIP authors'); default: the model's.
    #[arg(long)]
    truncate: Option<String>,
    /// One JSON object per image instead of text (`path`, `top`; `path_not_utf8: true` when
    /// the file name is not UTF-8 and `path` holds U+FFFD in place of its odd bytes).
    #[arg(long)]
    json: bool,
    /// HTTP: POST /classify with an image's bytes; GET /health.
    #[command(flatten)]
    listen: serve::ListenArgs,
    /// Image files and/or folders (recursive); `-`: one file or folder per line of standard
    /// input, each answered as it arrives.
    #[arg(required_unless_present = "listen", conflicts_with = "listen")]
    images: Vec<PathBuf>,
}

fn main() -> ExitCode {
    diffclip::cli::run_main(|| diffclip::cli::closed_output_is_success(run(Args::parse())))
}

type Error = Box<dyn std::error::Error>;

fn run(args: Args) -> Result<(), Error> {
    let labels: Vec<String> = match std::fs::metadata(&args.labels) {
        Ok(m) if m.is_file() => diffclip::data::files::read_lines(&args.labels)?,
        // A folder or device named as the labels' file, or a file name misspelt, is no label.
        Ok(m) => return Err(format!("--labels {}: is {}, not a file of labels", args.labels, diffclip::data::files::file_kind(m.file_type()).unwrap_or("no regular file")).into()),
        Err(e) if !args.labels.contains(',') => return Err(format!("--labels {}: {e}; give a file of labels (one per line) or a comma-separated list", args.labels).into()),
        Err(_) => args.labels.split(',').map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect(),
    };
    if args.top_k == 0 {
        return Err("--top-k must be at least 1".into());
    }
    if args.images.len() > 1 && args.images.iter().any(|p| p == Path::new("-")) {
        return Err("`-` (read the images from standard input) must be the only image argument".into());
    }
    if let Some(i) = labels.iter().position(|l| diffclip::cli::non_blank(l).is_err()) {
        return Err(format!("--labels: label {} is empty (only white space or control characters)", i + 1).into());
    }
    // Some class lists repeat a name for two senses (ImageNet's "crane"): said, not refused.
    // Labels the tokenizer reads alike (case, spacing, entities) have the same prompts.
    if let Some((j, i)) = diffclip::data::tokenizer::first_read_alike(&labels) {
        let cleaned = diffclip::data::tokenizer::clean_text(&labels[i]);
        let short = |l: &str| diffclip::data::metadata::shortened(l, 80);
        eprintln!("warning: --labels lists {:?} more than once (labels {} and {}, {:?} and {:?}): the CLIP tokenizer reads them alike, so they split one probability", short(&cleaned), j + 1, i + 1, short(&labels[j]), short(&labels[i]));
    }
    if labels.len() < 2 {
        let given = labels.first().map_or(String::new(), |l| format!(": {:?}", diffclip::data::metadata::shortened(l, 80)));
        return Err(format!("--labels {}: {} label{given}; at least two are needed", diffclip::data::metadata::shortened(&args.labels, 200), labels.len()).into());
    }
    let templates = metadata::templates_from(&args.templates)?;
    let loaded = args.model.load()?;
    let pipeline = Pipeline::from_name(args.preprocess.as_deref().unwrap_or(loaded.preprocess), loaded.config.vision.image_size as u32)?;
    let serving = args.listen.listen.is_some() || (args.images.len() == 1 && args.images[0] == Path::new("-"));
    let mut encoder = loaded.encoder()?.with_progress(!serving);
    if let Some(truncate) = args.truncate.as_deref() {
        encoder = encoder.with_truncation(truncate.parse()?)?;
    }
    let classifier = Evaluator::new(encoder.clone()).zero_shot_classifier(&labels, &templates)?;
    // Each row's `k` top labels with their probabilities.
    let rank = |embeddings: &Matrix, k: usize| -> Result<Vec<Vec<(usize, f32)>>, Error> { Ok(classifier.top_k(embeddings, k)?) };
    let json_top = |top: &[(usize, f32)]| -> Vec<serde_json::Value> { top.iter().map(|&(c, p)| serde_json::json!({ "label": labels[c], "probability": p })).collect() };
    if args.listen.listen.is_some() {
        return args.listen.serve(&format!("{} labels", labels.len()), |requests| {
            // Each request checked (`Err`: its answer already), then the images embedded as one batch.
            let checked: Vec<Result<usize, Response>> = requests.iter().map(|r| match (r.method.as_str(), r.path.as_str()) {
                ("GET", "/health") => Err(match diffclip::serve::known_params(r, &[]) {
                    Ok(()) => Response::json(200, &serde_json::json!({ "status": "ok", "labels": labels.len() })),
                    Err(refused) => refused,
                }),
                ("POST", "/classify") if r.body.is_empty() => Err(Response::error(400, "the body holds no image")),
                // More labels than there are gets them all, as `--top-k` does.
                ("POST", "/classify") => diffclip::serve::known_params(r, &["top_k"]).and_then(|()| diffclip::serve::top_k(r, args.top_k.min(diffclip::serve::MAX_TOP_K), labels.len())),
                _ => Err(diffclip::serve::unrouted(r, &[("POST", "/classify"), ("GET", "/health")])),
            }).collect();
            let bodies: Vec<&[u8]> = requests.iter().zip(&checked).filter(|(_, c)| c.is_ok()).map(|(r, _)| r.body.as_slice()).collect();
            let mut rows = diffclip::serve::image_embeddings(&encoder, &pipeline, &bodies).into_iter();
            let answer = |k: usize, row: Vec<f32>| -> Result<Response, Response> {
                let top = rank(&Matrix::new(1, row.len(), row).map_err(|e| Response::error(500, e))?, k).map_err(|e| Response::error(500, e))?;
                Ok(Response::json(200, &serde_json::json!({ "top": json_top(&top[0]) })))
            };
            checked.into_iter().map(|k| k.and_then(|k| answer(k, rows.next().expect("one embedding per image")?)).unwrap_or_else(|e| e)).collect()
        });
    }
    let mut stdout = std::io::stdout().lock();
    // The top labels of each readable file of `files` (`source`), printed; unreadable ones are reported
    // and left out. Returns how many were classified.
    let mut classify = |files: &[PathBuf], source: &ImageSource| -> Result<usize, Error> {
        let out = encoder.encode_source_skipping(source)?;
        for (i, why) in &out.skipped {
            eprintln!("skipped {}: {}", shown(&files[*i]), printable_line(&why.to_string()));
        }
        if out.kept.is_empty() {
            return Ok(0);
        }
        if let Some(row) = out.embeddings.row_iter().position(|r| r.iter().any(|v| !v.is_finite())) {
            return Err(format!("the model embeds {} to NaN or infinity: its weights are damaged or diverged", shown(&files[out.kept[row]])).into());
        }
        for (file, top) in out.kept.iter().map(|&i| &files[i]).zip(rank(&out.embeddings, args.top_k)?) {
            if args.json {
                // JSON holds text: a name that is not UTF-8 is written with U+FFFD in place of its
                // odd bytes, and said to be so.
                let path = match file.to_str() {
                    Some(path) => serde_json::json!({ "path": path }),
                    None => serde_json::json!({ "path": file.to_string_lossy(), "path_not_utf8": true }),
                };
                let mut line = path;
                line["top"] = json_top(&top).into();
                writeln!(stdout, "{line}")?;
            } else {
                let top: Vec<String> = top.iter().map(|&(c, p)| format!("{} ({:.1}%)", printable_line(&labels[c]), 100.0 * p)).collect();
                writeln!(stdout, "{}: {}", shown(file), top.join(", "))?;
            }
        }
        stdout.flush()?;
        Ok(out.kept.len())
    };
    if serving {
        // One file or folder per line, answered as it arrives; a bad line is reported, not fatal.
        return diffclip::cli::serve_stdin(diffclip::cli::StdinLines::Paths, |line| {
            let path = PathBuf::from(line);
            match list_image_files(&[&path]) {
                Ok(files) if files.is_empty() => eprintln!("skipped {}: no image files", shown(&path)),
                Ok(files) => return Ok(classify(&files, &ImageSource::files(files.clone(), &pipeline))? > 0),
                Err(e) => eprintln!("skipped {}: {}", shown(&path), printable_line(&e.to_string())),
            }
            Ok(false)
        });
    }
    let files = list_image_files(&args.images)?;
    if files.is_empty() {
        return Err(format!("no image files in {}", args.images.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")).into());
    }
    // One unreadable file among many is reported and left out; the others are answered, then the
    // exit code says that not every image was (as `cat` does with a file it cannot read).
    match classify(&files, &ImageSource::files(files.clone(), &pipeline))? {
        0 => Err(format!("none of the {} image files could be read", files.len()).into()),
        n if n < files.len() => Err(format!("{} of the {} image files could not be read (listed above); the others are answered", files.len() - n, files.len()).into()),
        _ => Ok(()),
    }
}

/// A path as one line of text, control characters escaped (a file name may hold any).
fn shown(path: &Path) -> String {
    printable_line(&path.to_string_lossy()).into_owned()
}
