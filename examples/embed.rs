//! Embed images and/or token ids with any CLIP / DiffCLIP checkpoint.
//!
//! ```text
//! cargo run --release --example embed -- --preset diffclip_tiny \
//!     --checkpoint ../shared/fixtures/diffclip_tiny/checkpoint.pt \
//!     --inputs ../shared/fixtures/diffclip_tiny/inputs.safetensors --output out.safetensors
//! ```
//! INPUTS holds `image` `[B,3,H,W]` f32 and/or `text` `[B,L]` integer ids; OUT receives
//! `image_embed`, `text_embed` (unnormalised) and `logit_scale` (`exp`ed, 0-d).
//!
//! On real files: `--images PATH...` (files and folders, recursive, sorted) and/or `--texts FILE`
//! (one caption per line), or `--data csv:PATH|wds:PATTERN` (image–caption pairs, as `train`
//! reads them) write shards `OUT/embeddings-NNNNN.safetensors` (`image_embed` and/or
//! `text_embed` `[n, E]`, row-aligned, and each row's file, `TAR:KEY` or `LINE:n` in the
//! metadata key `paths`); a re-run keeps finished shards, `--shard I/N` splits the work over
//! machines. WebDataset input writes one shard per tar. Each shard records the job that wrote it
//! (checkpoint, preprocessing, truncation, `--normalize`, its input rows): a re-run whose job
//! differs stops with an error naming what changed instead of mixing rows from two jobs.
//!
//! ```text
//! cargo run --release --example embed -- --model diffclip-vit-b16-cc12m --images photos/ --output emb/
//! cargo run --release --example embed -- --model openai-vit-b16 --data 'wds:cc3m/{00000..00331}.tar' \
//!     --shard 3/8 --output emb/
//! ```

use diffclip::eprintln;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

#[path = "common/model.rs"]
mod model_args;
use model_args::ModelArgs;
#[path = "common/csv.rs"]
mod csv_args;
use csv_args::CsvArgs;

use burn::tensor::{Int, Tensor, TensorData};
use clap::Parser;
use diffclip::data::files::{first_repeat, printable_line};
use diffclip::clip::files::{F32Tensor, check_output, resolve_output, write_safetensors};
use diffclip::LoadedModel;
use diffclip::clip::check_finite_rows;
use diffclip::data::Pipeline;
use diffclip::data::datasets::{BadSamplePolicy, CsvConfig, CsvDataset, DataSpec, ImageLoader, WebDatasetConfig, expand_braces, list_image_files};
use diffclip::eval::shards::{EmbedRow, Embedding, RowImage, ShardJob, ShardReport};

#[derive(Parser, Debug)]
#[command(about = "Embed images and token ids with a CLIP / DiffCLIP checkpoint")]
#[command(group(clap::ArgGroup::new("input").required(true).multiple(true).args(["inputs", "images", "texts", "data"])))]
struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// safetensors with `image` and/or `text` (pre-processed tensors).
    #[arg(long, conflicts_with_all = ["images", "texts", "data"])]
    inputs: Option<PathBuf>,
    /// Image–caption pairs: csv:PATH or wds:PATTERN (e.g. 'wds:cc3m/{00000..00331}.tar').
    #[arg(long, conflicts_with_all = ["images", "texts"])]
    data: Option<String>,
    /// With --data: embed both (default), images or texts.
    #[arg(long, default_value = "both", value_parser = ["both", "images", "texts"])]
    embed: String,
    #[command(flatten)]
    csv: CsvArgs,
    /// Image files and/or folders (recursive) to embed into shards under --output.
    #[arg(long, num_args = 1..)]
    images: Vec<PathBuf>,
    /// A text file, one caption per line (blank lines skipped), to embed into shards under
    /// --output/texts.
    #[arg(long)]
    texts: Option<PathBuf>,
    /// Preprocessing of --images: openai, slip, square-imagenet (default: slip for the timm
    /// layout DiffCLIP uses, openai for the OpenAI layout).
    #[arg(long)]
    preprocess: Option<String>,
    /// Over-long captions: keep-eot (open_clip) or drop-eot (the DiffCLIP authors'); default:
    /// the model's (keep-eot without --model).
    #[arg(long)]
    truncate: Option<String>,
    /// L2-normalise the embeddings.
    #[arg(long)]
    normalize: bool,
    /// Rows per shard (WebDataset input: one shard per tar).
    #[arg(long, default_value_t = 4096, value_parser = diffclip::cli::at_least_one)]
    rows_per_shard: usize,
    /// Samples decoded and encoded together; decoding runs one batch ahead of the model.
    #[arg(long, default_value_t = 64, value_parser = diffclip::cli::at_least_one)]
    batch_size: usize,
    /// This job's part I/N of the shards (e.g. a SLURM array index), 0-based.
    #[arg(long, default_value = "0/1")]
    shard: String,
    /// Unreadable images: skip and list them, or stop.
    #[arg(long, default_value = "skip", value_parser = ["skip", "fail"])]
    bad_samples: String,
    /// Where to write: a safetensors file for --inputs, a folder of shards for --images/--texts.
    #[arg(long)]
    output: PathBuf,
    /// Write embeddings that hold NaN or infinity instead of stopping with an error.
    #[arg(long)]
    allow_non_finite: bool,
}

fn main() -> ExitCode {
    diffclip::cli::run_main(|| run(Args::parse()))
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let inputs: Vec<&std::path::Path> = [args.model.checkpoint.as_deref(), args.inputs.as_deref(), args.model.config.as_deref(), args.texts.as_deref()].into_iter().flatten().collect();
    if args.inputs.is_some() {
        check_output(&resolve_output(&args.output)?, &inputs)?;
    }
    let loaded = args.model.load()?;
    diffclip::cli::check_batch(&loaded.config, args.batch_size, diffclip::clip::Workload::Inference, "--batch-size", &loaded.device)?;
    let Some(inputs_path) = &args.inputs else { return embed_files(&args, &loaded) };
    let (model, config, device) = (&loaded.model, &loaded.config, &loaded.device);

    // The layout from the header first: a file that is not one is refused before it is read whole.
    diffclip::clip::checkpoint::check_safetensors(inputs_path)?;
    let bytes = diffclip::clip::files::read_regular(inputs_path).map_err(|e| format!("{}: {e}", inputs_path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| format!("{}: {}", inputs_path.display(), diffclip::clip::checkpoint::safetensors_problem(&bytes).unwrap_or_else(|| e.to_string())))?;
    let name = inputs_path.display().to_string();
    // A file diffclip wrote carries its tensors' checksums: damage is named, not embedded.
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| format!("{name}: {e}"))?;
    diffclip::clip::checksum::Checksums::check_file(header.metadata().as_ref(), &st, |n| n == "image" || n == "text").map_err(|e| format!("{name}: {e}"))?;
    let mut outputs: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut found = false;
    if let Ok(view) = st.tensor("image") {
        found = true;
        let data = floats(&view).ok_or_else(|| format!("{name}: 'image' must be f32, found {:?}", view.dtype()))?;
        config.check_images(view.shape()).map_err(|e| format!("{name}: 'image': {e}"))?;
        let images: Tensor<4> = Tensor::from_data(TensorData::new(data, view.shape().to_vec()), device);
        let embed = model.encode_image(images);
        outputs.push(("image_embed".into(), embed.dims().to_vec(), embed.into_data().try_to_vec::<f32>().map_err(|e| format!("{e:?}"))?));
    }
    if let Ok(view) = st.tensor("text") {
        found = true;
        let ids = integers(&view).ok_or_else(|| format!("{name}: 'text' must hold integer ids, found {:?}", view.dtype()))?;
        config.check_tokens(view.shape(), &ids).map_err(|e| format!("{name}: 'text': {e}"))?;
        let text: Tensor<2, Int> = Tensor::from_data(TensorData::new(ids, view.shape().to_vec()), device);
        let embed = model.encode_text(text);
        outputs.push(("text_embed".into(), embed.dims().to_vec(), embed.into_data().try_to_vec::<f32>().map_err(|e| format!("{e:?}"))?));
    }
    if !found {
        return Err(format!("{name}: holds neither 'image' nor 'text'").into());
    }
    let scale = model.logit_scale_exp().into_data().try_to_vec::<f32>().map_err(|e| format!("{e:?}"))?;
    outputs.push(("logit_scale".into(), vec![], scale));

    if !args.allow_non_finite {
        for (k, shape, v) in &outputs {
            check_finite_rows(k, v, shape.get(1).copied().unwrap_or(1))?;
        }
    }
    let tensors: Vec<F32Tensor> = outputs.iter().map(|(k, s, v)| F32Tensor { name: k.clone(), shape: s.clone(), data: v }).collect();
    let meta: HashMap<String, String> = HashMap::from([("checkpoint".into(), loaded.checkpoint.display().to_string())]);
    write_safetensors(&args.output, &tensors, meta)?;
    eprintln!("wrote {}", args.output.display());
    Ok(())
}

fn floats(view: &safetensors::tensor::TensorView) -> Option<Vec<f32>> {
    match view.dtype() {
        safetensors::Dtype::F32 => Some(view.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()),
        _ => None,
    }
}

fn integers(view: &safetensors::tensor::TensorView) -> Option<Vec<i64>> {
    let d = view.data();
    Some(match view.dtype() {
        safetensors::Dtype::I64 => d.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect(),
        safetensors::Dtype::I32 => d.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64).collect(),
        safetensors::Dtype::U32 => d.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap()) as i64).collect(),
        _ => return None,
    })
}

/// Skipped samples said on standard error, one line each up to this many (a broken collection
/// can skip hundreds of thousands); the rest are counted.
const SKIPPED_SHOWN: usize = 20;

/// Says the samples a job skipped: the first [`SKIPPED_SHOWN`] this run skipped on standard
/// error, and, in `list` when given, every sample the job's shards leave out (those of shards
/// kept from an earlier run too, as they record them), `path<TAB>why` a line each. A list is
/// the whole job's, so one that would be empty is removed.
fn say_skipped(report: &ShardReport, list: Option<&std::path::Path>) -> Result<(), Box<dyn std::error::Error>> {
    let skipped = &report.skipped;
    for (file, why) in skipped.iter().take(SKIPPED_SHOWN) {
        eprintln!("skipped {}: {}", printable_line(file), printable_line(why));
    }
    let more = skipped.len().saturating_sub(SKIPPED_SHOWN);
    let Some(list) = list else {
        if more > 0 {
            eprintln!("… and {more} more skipped");
        }
        return Ok(());
    };
    let all: Vec<&(String, String)> = report.skipped_before.iter().chain(skipped).collect();
    if all.is_empty() {
        return match std::fs::remove_file(list) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!("{}: {e}", list.display()).into()),
            _ => Ok(()),
        };
    }
    let lines: String = all.iter().map(|(file, why)| format!("{}\t{}\n", printable_line(file), printable_line(why))).collect();
    diffclip::clip::files::write_atomic(list, lines.as_bytes())?;
    let more = if more > 0 { format!("… and {more} more; ") } else { String::new() };
    let before = match report.skipped_before.len() {
        0 => String::new(),
        b => format!(" ({b} of them by the run that wrote the kept shards)"),
    };
    eprintln!("{more}all {} samples left out are listed in {}{before}", all.len(), list.display());
    Ok(())
}

/// `--images`/`--texts`/`--data`: shards of embeddings under `--output`.
fn embed_files(args: &Args, loaded: &LoadedModel) -> Result<(), Box<dyn std::error::Error>> {
    let (i, n) = args.shard.split_once('/').and_then(|(i, n)| Some((i.parse::<usize>().ok()?, n.parse::<usize>().ok()?))).filter(|&(i, n)| i < n).ok_or_else(|| format!("--shard must be I/N with 0 <= I < N, not {}", args.shard))?;
    let job = ShardJob {
        rows_per_shard: args.rows_per_shard,
        normalize: args.normalize,
        allow_non_finite: args.allow_non_finite,
        fail_on_bad: args.bad_samples == "fail",
        batch_size: args.batch_size,
        ..ShardJob::new(&args.output).with_part(i, n)
    };
    // As given (stamped into the shards: an earlier run's stamp holds the spelling it was given).
    let truncate = args.truncate.clone().unwrap_or_else(|| loaded.truncation().to_string());
    let encoder = loaded.encoder()?.with_truncation(truncate.parse()?)?;
    let preprocess = args.preprocess.as_deref().unwrap_or(loaded.preprocess);
    // Stored in every shard: a re-run with another model (the file as it is now, its config,
    // the dtype) or preprocessing must not mix rows.
    let model_key = loaded.key()?;
    // Products of f32 weights in bf16 or f16 (`--dtype` on the CPU) give other rows than f32
    // ones. Written as before `with_precision` chose them: the weights' type, then the products.
    let products = loaded.model.visual.products();
    let source = format!(
        "{} (model key {}), dtype {:?}{}, preprocess {preprocess}, truncate {truncate}",
        loaded.checkpoint.display(),
        &model_key.as_str()[..16],
        diffclip::clip::Precision::of(loaded.model.image_projection.val().dtype()),
        // `Bf16` as before F16 existed: shards stamped then still match.
        if products == diffclip::attention::MatmulPrecision::F32 { String::new() } else { format!(" with {products:?} products") },
    );
    let job = ShardJob { source, model_key: Some(model_key.as_str().to_string()), ..job };
    // An output folder this run creates goes again when nothing could be embedded into it.
    let output_existed = args.output.exists();
    // One job writes the folder, from its first shard to its list of skipped samples. A folder
    // made only to be held goes again when the job ends with nothing written into it.
    // The parts of a split job share the folder: one that fails leaves it to the others.
    let made = (n == 1).then(|| diffclip::cli::RemovedIfEmpty::made_by(&args.output));
    let _held = match job.hold() {
        Ok(held) => held,
        // Refused, the folder is the holder's, which may have made it a moment ago.
        Err(e) => {
            std::mem::forget(made);
            return Err(e.into());
        }
    };
    let _made = made;
    let pipeline = Pipeline::from_name(preprocess, loaded.config.vision.image_size as u32)?;
    // Read first: a bad caption file must not fail the run after the image shards are written.
    let captions = args.texts.as_deref().map(caption_lines).transpose()?;
    let mut report = ShardReport::default();
    if let Some(spec) = &args.data {
        let images = args.embed != "texts";
        let what = Embedding { pipeline: images.then_some(&pipeline), texts: args.embed != "images", unit: "rows" };
        report = match spec.parse::<DataSpec>()? {
            DataSpec::Csv(path) => {
                let policy = if job.fail_on_bad { BadSamplePolicy::Fail } else { BadSamplePolicy::Skip };
                // A row embedded for its image alone may have a blank caption.
                let config = CsvConfig { require_caption: what.texts, ..args.csv.config()? };
                let table = CsvDataset::open(&path, &config, ImageLoader::new(pipeline.clone()).with_policy(policy))?;
                // As `train` says it: an index of nothing is no success.
                if table.rows().is_empty() {
                    let why = table.skip_counter().last_error().map(|e| format!(" ({} malformed, the last: {})", table.skip_counter().skipped(), printable_line(&e))).unwrap_or_default();
                    return Err(format!("{}: no usable rows{why}", path.display()).into());
                }
                if table.skip_counter().skipped() > 0 {
                    let last = table.skip_counter().last_error().unwrap_or_default();
                    eprintln!("{}: skipped {} malformed rows (the last: {})", path.display(), table.skip_counter().skipped(), printable_line(&last));
                }
                let rows: Vec<EmbedRow> = table.rows().iter().map(|r| EmbedRow { id: r.image.display().to_string(), image: Some(RowImage::File(r.image.clone())), caption: Some(r.caption.clone()) }).collect();
                eprintln!("{} image–caption pairs, {preprocess} preprocessing", rows.len());
                job.embed_rows(&encoder, what.pipeline, what.texts, &rows)?
            }
            DataSpec::WebDataset(pattern) => {
                let tars: Vec<PathBuf> = expand_braces(&pattern)?.into_iter().map(PathBuf::from).collect();
                if let Some((first, again)) = first_repeat(&tars) {
                    return Err(format!("--data wds:{pattern}: shard {} is listed twice (shards {} and {} of {}): its rows would be indexed twice", tars[first].display(), first + 1, again + 1, tars.len()).into());
                }
                eprintln!("{} tar shards, {preprocess} preprocessing", tars.len());
                job.embed_webdataset(&encoder, what, &tars, &WebDatasetConfig::default())?
            }
            other => return Err(format!("--data {}: embed reads csv:PATH or wds:PATTERN (use --images for a folder)", other.describe()).into()),
        };
    }
    if !args.images.is_empty() {
        let files = list_image_files(&args.images)?;
        if let Some((_, again)) = first_repeat(&files) {
            return Err(format!("--images: {} is listed twice (the same file given twice, or a folder and a file or folder inside it): it would be indexed twice", files[again].display()).into());
        }
        if files.is_empty() {
            return Err(format!("no image files in {}", args.images.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")).into());
        }
        eprintln!("{} images, {preprocess} preprocessing", files.len());
        report = job.embed_images(&encoder, &pipeline, &files)?;
    }
    let list = args.output.join(match n {
        1 => "skipped.txt".to_string(),
        n => format!("skipped-{i}-of-{n}.txt"),
    });
    // Not one row embedded though samples were tried (every image or sample of the job
    // unreadable): no index, not an empty one that a re-run would keep. A part of a split job
    // goes on: the other parts may hold rows, and its empty shards keep the numbering whole.
    if n == 1 && !report.skipped.is_empty() && rows_in(report.written.iter().chain(&report.kept)) == 0 {
        // Past what standard error shows, or in a folder there before, the list is kept in the
        // folder (which then stays).
        let listed = if output_existed || report.skipped.len() > SKIPPED_SHOWN {
            say_skipped(&report, Some(&list))?;
            format!("all listed in {}", list.display())
        } else {
            say_skipped(&report, None)?;
            "listed above".to_string()
        };
        for shard in &report.written {
            std::fs::remove_file(shard).map_err(|e| format!("{}: {e}", shard.display()))?;
        }
        // Only when empty (remove_dir refuses otherwise), and not while other parts of a split
        // job may be writing there.
        if !output_existed && n == 1 {
            let _ = std::fs::remove_dir(&args.output);
        }
        return Err(format!("no sample of this job could be read ({} skipped, {listed})", report.skipped.len()).into());
    }
    if let Some(lines) = captions {
        let text_job = ShardJob { dir: job.dir.join("texts"), ..job.clone() };
        report.extend(text_job.embed_texts(&encoder, &lines)?);
    }
    say_skipped(&report, Some(&list))?;
    if n > 1 && !report.skipped.is_empty() && rows_in(report.written.iter().chain(&report.kept)) == 0 {
        eprintln!("warning: part {i} of {n} embedded no row (every sample of it is unreadable): its shards are empty");
    }
    eprintln!("wrote {} shards, kept {} finished ones, skipped {} unreadable samples; output {}", report.written.len(), report.kept.len(), report.skipped.len(), args.output.display());
    // Shards of another job beside this one's would be searched with them. Rows no shard holds
    // yet are only news when this job is the whole of it. Only the folders this job wrote to.
    let dirs: std::collections::BTreeSet<&std::path::Path> = report.written.iter().chain(&report.kept).filter_map(|s| s.parent()).collect();
    for dir in dirs {
        for problem in diffclip::eval::shards::folder_problems(dir, n == 1) {
            eprintln!("warning: {}: {problem}", dir.display());
        }
    }
    Ok(())
}

/// The captions of `--texts`, one per line with its line number (blank lines are not captions;
/// the rows keep their numbers); a line not UTF-8 is an error naming it.
fn caption_lines(path: &std::path::Path) -> Result<Vec<(usize, String)>, Box<dyn std::error::Error>> {
    let file = diffclip::data::files::open_regular(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = diffclip::data::files::TextLines::new(std::io::BufReader::new(file), path).keep_spaces();
    let mut captions = Vec::new();
    while let Some(line) = lines.next() {
        captions.push((lines.line() as usize, line?));
    }
    if captions.is_empty() {
        return Err(format!("{}: no captions (every line is blank)", path.display()).into());
    }
    Ok(captions)
}

/// Rows held by `shards` (the ids each records in its `paths` metadata).
fn rows_in<'a>(shards: impl Iterator<Item = &'a PathBuf>) -> usize {
    let ids = |p: &PathBuf| -> Option<usize> {
        let header = diffclip::clip::checkpoint::safetensors_header(p).ok()??;
        let paths = header.get("__metadata__")?.get("paths")?.as_str()?;
        serde_json::from_str::<Vec<String>>(paths).ok().map(|v| v.len())
    };
    shards.filter_map(ids).sum()
}
