//! Search a folder of embedding shards written by `embed --images/--texts` with a text or an
//! image query: exact top-k by cosine similarity, one shard in memory at a time.
//!
//! ```text
//! cargo run --release --example embed -- --preset diffclip_tiny --checkpoint m.safetensors \
//!     --images photos/ --output index/
//! cargo run --release --example search -- --preset diffclip_tiny --checkpoint m.safetensors \
//!     --index index/ --text "a dog on a beach" --top-k 10
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

#[path = "common/model.rs"]
mod model_args;
use model_args::ModelArgs;

use clap::Parser;
use diffclip::data::Pipeline;
use diffclip::eval::shards::search;
use diffclip::eval::{Encoder, ImageSource};

#[derive(Parser, Debug)]
#[command(about = "Search embedding shards by text or image")]
struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// The folder `embed --output` wrote (image shards; caption shards are in its `texts/`).
    #[arg(long)]
    index: PathBuf,
    /// A text query (searches the image shards).
    #[arg(long, conflicts_with = "image", required_unless_present = "image")]
    text: Option<String>,
    /// An image query (searches the image shards; with --texts, the caption shards).
    #[arg(long)]
    image: Option<PathBuf>,
    /// Search the caption shards (`INDEX/texts`) instead of the image shards.
    #[arg(long)]
    texts: bool,
    /// Hits to show.
    #[arg(long, default_value_t = 10)]
    top_k: usize,
    /// Preprocessing of an image query (default: slip for the timm layout, openai for OpenAI's).
    #[arg(long)]
    preprocess: Option<String>,
    /// One JSON object per hit.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    diffclip::cli::exit_code(run(Args::parse()))
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let loaded = args.model.load()?;
    let encoder = Encoder::new(&loaded.model)?.with_truncation(loaded.truncate.parse()?)?.with_progress(false);
    let query = match (&args.text, &args.image) {
        (Some(text), _) => encoder.encode_texts(&[text.as_str()])?,
        (None, Some(image)) => {
            let pipeline = Pipeline::from_name(args.preprocess.as_deref().unwrap_or(loaded.preprocess), loaded.config.vision.image_size as u32)?;
            encoder.encode_source(&ImageSource::files(vec![image.clone()], &pipeline)?)?
        }
        (None, None) => return Err("give --text or --image".into()),
    };
    let (dir, tensor) = if args.texts { (args.index.join("texts"), "text_embed") } else { (args.index.clone(), "image_embed") };
    for (rank, hit) in search(&dir, tensor, query.row(0), args.top_k)?.iter().enumerate() {
        if args.json {
            println!("{}", serde_json::json!({ "rank": rank + 1, "score": hit.score, "path": hit.path }));
        } else {
            println!("{:>3}  {:.4}  {}", rank + 1, hit.score, hit.path);
        }
    }
    Ok(())
}
