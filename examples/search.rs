//! Search a folder of embedding shards written by `embed --images/--texts` with a text or an
//! image query: exact top-k by cosine similarity, one shard in memory at a time; or, with
//! `--approximate`, through an HNSW index saved beside the shards (built on first use and
//! whenever the shards change, with its recall@10 against exact search printed).
//!
//! ```text
//! cargo run --release --example embed -- --preset diffclip_tiny --checkpoint m.safetensors \
//!     --images photos/ --output index/
//! cargo run --release --example search -- --preset diffclip_tiny --checkpoint m.safetensors \
//!     --index index/ --text "a dog on a beach" --top-k 10
//! cargo run --release --example search -- --preset diffclip_tiny --checkpoint m.safetensors \
//!     --index index/ --queries queries.txt --approximate --json
//! ```
//! `--queries FILE` runs one text query per line against one opened index (where the
//! approximate index pays off: opening it costs more than one exact scan). `--queries -` serves
//! standard input: the model and index stay open and each line is answered (and flushed) as it
//! arrives, until the input ends; `--image -` does the same with one image file per line.
//! Exact search then holds every row in memory (read once); `--approximate` answers large
//! collections faster.
//!
//! ```text
//! some-producer | cargo run --release --example search -- --preset diffclip_tiny \
//!     --checkpoint m.safetensors --index index/ --queries - --approximate --json
//! ```
//! Output going to a closed pipe (`| head`) ends the program quietly with exit 0.
//!
//! `--listen ADDR` serves the same searches over HTTP (endpoints in `diffclip::serve` and
//! `docs/eval.md`), exact from memory or with `--approximate`, until the program is stopped:
//!
//! ```text
//! cargo run --release --example search -- --preset diffclip_tiny --checkpoint m.safetensors \
//!     --index index/ --listen 127.0.0.1:8080
//! curl --data-binary 'a dog on a beach' 'http://127.0.0.1:8080/search/text?top_k=5'
//! curl --data-binary @photo.jpg http://127.0.0.1:8080/search/image
//! ```
//! Without `--index`, `--listen` serves only `/embed/text`, `/embed/image` and `/health`: an
//! embedding server.

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
use diffclip::data::files::printable_line;
use diffclip::data::Pipeline;
use diffclip::data::files::read_lines;
use diffclip::eval::ann::{AnnConfig, AnnIndex, IndexError};
use diffclip::eval::shards::{ExactIndex, Hit, search_many};
use diffclip::eval::ImageSource;
use diffclip::serve::{Endpoints, Index};

#[derive(Parser, Debug)]
#[command(about = "Search embedding shards by text or image")]
#[command(group(clap::ArgGroup::new("query").required(true).args(["text", "queries", "image", "listen"])))]
struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// The folder `embed --output` wrote (image shards; caption shards are in its `texts/`, or
    /// beside the image shards for `embed --data`). Without it, `--listen` serves only the
    /// embedding endpoints.
    #[arg(long, required_unless_present = "listen")]
    index: Option<PathBuf>,
    /// A text query (searches the image shards).
    #[arg(long, conflicts_with_all = ["image", "queries", "listen"], value_parser = diffclip::cli::non_blank)]
    text: Option<String>,
    /// A file of text queries, one per line (blank lines skipped); each hit names its query.
    /// `-`: standard input, each line answered as it arrives.
    #[arg(long, conflicts_with_all = ["image", "listen"])]
    queries: Option<PathBuf>,
    /// An image query (searches the image shards; with --texts, the caption shards). `-`: one
    /// image file per line of standard input, each answered as it arrives (an unreadable one is
    /// reported and skipped).
    #[arg(long, conflicts_with = "listen")]
    image: Option<PathBuf>,
    /// HTTP: POST /search/text, /search/image, /embed/text, /embed/image; GET /health.
    #[command(flatten)]
    listen: serve::ListenArgs,
    /// Search the caption embeddings (`INDEX/texts`, or INDEX's own `text_embed`) instead of
    /// the image embeddings.
    #[arg(long, requires = "index")]
    texts: bool,
    /// Hits to show.
    #[arg(long, default_value_t = 10)]
    top_k: usize,
    /// Preprocessing of an image query (default: slip for the timm layout, openai for OpenAI's).
    #[arg(long)]
    preprocess: Option<String>,
    /// Over-long text queries: keep-eot (open_clip) or drop-eot (the DiffCLIP authors'); default:
    /// the model's. Use what `embed --truncate` used.
    #[arg(long)]
    truncate: Option<String>,
    /// One JSON object per hit.
    #[arg(long)]
    json: bool,
    /// Search the approximate (HNSW) index saved beside the shards (`index.hnsw.*`; with
    /// --texts `index-text_embed.hnsw.*`), building
    /// it first when it is missing or the shards changed (then recall@10 against exact search
    /// is printed on stderr). Exact search is the default.
    #[arg(long, requires = "index")]
    approximate: bool,
    /// Rebuild the approximate index even when it is current (implies --approximate).
    #[arg(long, requires = "index")]
    rebuild_index: bool,
    /// Candidates examined per approximate query (default: the index's, 64); higher finds more
    /// true neighbours, slower. With --approximate or --rebuild-index only.
    #[arg(long, requires = "index", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    ef_search: Option<u32>,
    /// HNSW links per row when building the index (M), 2 to 255. A value other than the default
    /// needs --approximate or --rebuild-index.
    #[arg(long, default_value_t = AnnConfig::default().m as u16, value_parser = clap::value_parser!(u16).range(2..=255))]
    hnsw_m: u16,
    /// Candidates examined per row when building the index (ef_construction), --hnsw-m to 100000.
    /// A value other than the default needs --approximate or --rebuild-index.
    #[arg(long, default_value_t = AnnConfig::default().ef_construction as u32, value_parser = clap::value_parser!(u32).range(2..=100_000))]
    ef_construction: u32,
}

fn main() -> ExitCode {
    diffclip::cli::run_main(|| diffclip::cli::closed_output_is_success(run(Args::parse())))
}

type Error = Box<dyn std::error::Error>;

fn run(args: Args) -> Result<(), Error> {
    if args.top_k == 0 {
        return Err("--top-k must be at least 1".into());
    }
    if args.ef_construction < u32::from(args.hnsw_m) {
        return Err(format!("--ef-construction {} is below --hnsw-m {}: each row needs at least M candidates", args.ef_construction, args.hnsw_m).into());
    }
    // The index's settings without the index: nothing would read them.
    let defaults = AnnConfig::default();
    let index_flags = [("--ef-search", args.ef_search.is_some()), ("--hnsw-m", usize::from(args.hnsw_m) != defaults.m), ("--ef-construction", args.ef_construction as usize != defaults.ef_construction)];
    if let Some((flag, _)) = index_flags.iter().find(|(_, given)| *given).filter(|_| !args.approximate && !args.rebuild_index) {
        return Err(format!("{flag} applies to the approximate index: add --approximate").into());
    }
    let stdin = Some(Path::new("-"));
    let serving = args.image.as_deref() == stdin || args.queries.as_deref() == stdin || args.listen.listen.is_some();
    // A query file is read, and the index found, before the model loads.
    let query_lines = match (&args.text, &args.image, &args.queries) {
        (None, None, Some(file)) if !serving => {
            let lines = read_lines(file)?;
            // Blank lines, control characters alone included, are skipped as they are read.
            if lines.is_empty() {
                return Err(format!("{}: no queries (only blank lines)", file.display()).into());
            }
            Some(lines)
        }
        _ => None,
    };
    // `embed --texts` writes caption shards to INDEX/texts; `embed --data` writes both kinds
    // into INDEX itself.
    let shards = match &args.index {
        Some(folder) => {
            let texts_dir = folder.join("texts");
            let (dir, tensor) = match args.texts {
                true if texts_dir.is_dir() => (texts_dir.clone(), "text_embed"),
                true => (folder.clone(), "text_embed"),
                false => (folder.clone(), "image_embed"),
            };
            let listed = diffclip::eval::shards::list_shards(&dir).map_err(|e| format!("--index {}: {e}", dir.display()))?;
            if listed.is_empty() {
                let hint = match !args.texts && texts_dir.is_dir() {
                    true => format!("; {} holds caption shards: search them with --texts", texts_dir.display()),
                    false => String::new(),
                };
                return Err(format!("--index {}: no embeddings-NNNNN.safetensors shards (embed writes them){hint}", dir.display()).into());
            }
            Some((dir, tensor))
        }
        None => None,
    };
    let loaded = args.model.load()?;
    let mut encoder = loaded.encoder()?.with_progress(false);
    if let Some(truncate) = args.truncate.as_deref() {
        encoder = encoder.with_truncation(truncate.parse()?)?;
    }
    let serving_images = args.image.as_deref() == stdin;
    let pipeline = || Pipeline::from_name(args.preprocess.as_deref().unwrap_or(loaded.preprocess), loaded.config.vision.image_size as u32);
    // The queries of one call are embedded before any index is opened or built.
    let batch = match (&args.text, &args.image, query_lines) {
        _ if serving => None,
        (Some(text), _, _) => Some((vec![text.clone()], encoder.encode_texts(&[text.as_str()])?)),
        (None, Some(image), _) => Some((vec![image.display().to_string()], encoder.encode_source(&ImageSource::files(vec![image.clone()], &pipeline()?))?)),
        (None, None, Some(lines)) => {
            let embeds = encoder.encode_texts(&lines)?;
            Some((lines, embeds))
        }
        (None, None, None) => return Err("give --text, --image or --queries".into()),
    };
    let Some((dir, tensor)) = shards else {
        // Only --listen goes without an index (clap): it serves embeddings alone.
        let pipeline = pipeline()?;
        let endpoints = Endpoints::new(&encoder, &pipeline);
        return args.listen.serve("embeddings only: no --index", |requests| endpoints.answer(requests));
    };
    // Rows embedded by another model rank meaninglessly (same width) or not at all: said once.
    let key = loaded.key()?;
    if let Some(by) = diffclip::eval::shards::embedded_by(&dir)
        && !by.is_model(key.as_str())
    {
        eprintln!(
            "warning: {} was embedded by {}; this model ({}) has key {}: another model, or the same checkpoint moved or changed since, so the hits may mean nothing",
            dir.display(),
            by.source,
            loaded.checkpoint.display(),
            &key.as_str()[..16]
        );
    }
    // A folder mixing jobs answers with repeated, missing or incomparable rows: said once.
    for problem in diffclip::eval::shards::folder_problems(&dir, true) {
        eprintln!("warning: {}: {problem}", dir.display());
    }
    let index = if args.approximate || args.rebuild_index { Some(approximate(&args, &dir, tensor)?) } else { None };
    // Serving searches exactly from memory (the shards read once); otherwise exact search reads
    // every shard once for all the queries of the call.
    let in_memory = if serving && index.is_none() { Some(ExactIndex::open(&dir, tensor)?) } else { None };
    let non_finite_said = std::cell::Cell::new(false);
    if let Some(n) = in_memory.as_ref().map(ExactIndex::non_finite_rows).filter(|&n| n > 0) {
        eprintln!("warning: {}: {n} rows hold NaN or infinity; they score NaN and rank last", dir.display());
        non_finite_said.set(true);
    }
    let search = |rows: &[&[f32]], k: usize| -> Result<Vec<Vec<Hit>>, Error> {
        let hits = match (&index, &in_memory) {
            (Some(index), _) => rows.iter().map(|q| index.search(q, k)).collect::<Result<_, _>>()?,
            (None, Some(exact)) => exact.search_many(rows, k)?,
            (None, None) => search_many(&dir, tensor, rows, k)?,
        };
        // Exact search ranks such rows last; said once, the first time one is answered.
        if !non_finite_said.get() && hits.iter().flatten().any(|h: &Hit| h.score.is_nan()) {
            eprintln!("warning: {}: some rows hold NaN or infinity (written by embed --allow-non-finite?); they score NaN and rank last", dir.display());
            non_finite_said.set(true);
        }
        Ok(hits)
    };
    let mut out = std::io::stdout().lock();
    if let Some((names, queries)) = batch {
        let rows: Vec<&[f32]> = (0..names.len()).map(|i| queries.row(i)).collect();
        let several = names.len() > 1;
        for (name, hits) in names.iter().zip(search(&rows, args.top_k)?) {
            print_hits(&mut out, several.then_some(name.as_str()), &hits, args.json)?;
        }
        return Ok(());
    }
    let pipeline = pipeline()?;
    if args.listen.listen.is_some() {
        let served: &dyn Index = match (&index, &in_memory) {
            (Some(index), _) => index,
            (None, Some(exact)) => exact,
            (None, None) => return Err("no index was opened to serve".into()),
        };
        let endpoints = Endpoints::new(&encoder, &pipeline).with_index(served, args.top_k);
        return args.listen.serve(&format!("{} rows of {}", served.rows(), dir.display()), |requests| endpoints.answer(requests));
    }
    let lines = if serving_images { diffclip::cli::StdinLines::Paths } else { diffclip::cli::StdinLines::Texts };
    diffclip::cli::serve_stdin(lines, |query| {
        let embed = match serving_images {
            // An unreadable image is reported and the program goes on.
            true => match encoder.encode_source(&ImageSource::files(vec![PathBuf::from(&query)], &pipeline)) {
                Ok(embed) => embed,
                Err(e) => {
                    eprintln!("skipped {}: {}", printable_line(&query), printable_line(&e.to_string()));
                    return Ok(false);
                }
            },
            // Nothing the tokenizer reads: it would rank every row, meaninglessly.
            false if diffclip::cli::non_blank(&query).is_err() => {
                eprintln!("skipped {}: empty (only white space or control characters)", printable_line(&query));
                return Ok(false);
            }
            false => encoder.encode_texts(&[query.as_str()])?,
        };
        let hits = search(&[embed.row(0)], args.top_k)?;
        print_hits(&mut out, Some(&query), &hits[0], args.json)?;
        out.flush()?;
        Ok(true)
    })
}

/// Writes `hits`: as text, under the query's name when there is one; with `--json`, one object
/// per hit, naming the query when there is one.
fn print_hits(out: &mut impl Write, query: Option<&str>, hits: &[Hit], json: bool) -> std::io::Result<()> {
    // Text output is one line per hit: a name with a newline or escape sequence must not break it.
    if let (Some(name), false) = (query, json) {
        writeln!(out, "{}", printable_line(name))?;
    }
    for (rank, hit) in hits.iter().enumerate() {
        match (json, query) {
            (true, Some(name)) => writeln!(out, "{}", serde_json::json!({ "query": name, "rank": rank + 1, "score": hit.score, "path": hit.path }))?,
            (true, None) => writeln!(out, "{}", serde_json::json!({ "rank": rank + 1, "score": hit.score, "path": hit.path }))?,
            (false, _) => writeln!(out, "{:>3}  {:.4}  {}", rank + 1, hit.score, printable_line(&hit.path))?,
        }
    }
    Ok(())
}

/// The approximate index, opened or (re)built as the flags say.
fn approximate(args: &Args, dir: &Path, tensor: &str) -> Result<AnnIndex, Error> {
    let ef_search = args.ef_search.map(|ef| ef as usize);
    let config = AnnConfig { m: args.hnsw_m.into(), ef_construction: args.ef_construction as usize, ef_search: ef_search.unwrap_or(AnnConfig::default().ef_search), ..AnnConfig::default() };
    let (mut index, why) = if args.rebuild_index {
        (AnnIndex::build(dir, tensor, config)?, Some("--rebuild-index".to_string()))
    } else {
        let (index, why) = AnnIndex::open_or_build(dir, tensor, config)?;
        let why = why.map(|e| match e {
            IndexError::Missing { .. } => "there was none".to_string(),
            IndexError::Stale { message, .. } => format!("stale: {message}"),
            e => e.to_string(),
        });
        (index, why)
    };
    if let Some(why) = why {
        let c = index.config();
        eprintln!("built the approximate index of {} ({why}): {} rows, M {}, ef_construction {}, {:.1} s", dir.display(), index.rows(), c.m, c.ef_construction, index.build_seconds());
        if let Some(r) = index.build_recall() {
            eprintln!("recall@10 against exact search: {r:.4} ({} stored rows as queries, ef_search {})", c.recall_queries.min(index.rows()), c.ef_search);
        }
    }
    // Build settings asked for that an index kept from before does not have: they need a rebuild.
    let (c, defaults) = (index.config(), AnnConfig::default());
    let asked = (config.m, config.ef_construction);
    if asked != (c.m, c.ef_construction) && asked != (defaults.m, defaults.ef_construction) {
        eprintln!("note: the index kept was built with M {}, ef_construction {}; --hnsw-m {} --ef-construction {} apply to a rebuild (--rebuild-index)", c.m, c.ef_construction, config.m, config.ef_construction);
    }
    if let Some(ef) = ef_search {
        index.set_ef_search(ef)?;
    }
    Ok(index)
}
