//! Peak memory of one attention call, fused vs reference path, one configuration per process.
//!
//! ```sh
//! cargo run --release --example attention_memory -- --all --n 4097          # table, one child per row
//! cargo run --release --example attention_memory -- --kind diff --path reference --n 4097
//! ```
//!
//! A single run builds the layer (width 768, 12 heads) and a random `[batch, N, 768]` input,
//! records resident memory (`VmRSS`), runs one forward (or forward+backward with `--backward`),
//! reads the result, and prints one JSON line with the peak (`VmHWM`) and the peak minus that
//! baseline: the working memory of the call. `--all` runs each of the four kind/path pairs in a
//! child process of its own (so peaks cannot mix) and prints their lines. Linux only (`/proc`).

use std::process::Command;
use std::time::Instant;

#[path = "common/machine.rs"]
mod machine;
use machine::status_mb;

use clap::Parser;
use diffclip::attention::{AttentionConfig, AttentionPath};
use diffclip::burn::tensor::{Distribution, Tensor};

#[derive(Parser, Debug)]
#[command(about = "Peak memory of one attention call (fused vs reference path), as JSON lines")]
struct Args {
    /// Sequence length.
    #[arg(long, default_value_t = 4097)]
    n: usize,
    /// Batch size.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// `diff` (differential) or `standard`.
    #[arg(long, default_value = "diff")]
    kind: String,
    /// `fused` or `reference`.
    #[arg(long, default_value = "fused")]
    path: String,
    /// Also run backward of `out.sum()` (autodiff device).
    #[arg(long)]
    backward: bool,
    /// flex, ndarray or wgpu.
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Run all four kind/path pairs, each in its own process.
    #[arg(long, conflicts_with_all = ["kind", "path"])]
    all: bool,
}

fn one(args: &Args) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let mut device = diffclip::backend::device(&args.backend)?;
    if args.backward {
        device = device.autodiff();
    }
    let path = match args.path.as_str() {
        "fused" => AttentionPath::Fused,
        "reference" => AttentionPath::Reference,
        p => return Err(format!("--path must be fused or reference, not {p}").into()),
    };
    let diff = match args.kind.as_str() {
        "diff" => true,
        "standard" => false,
        k => return Err(format!("--kind must be diff or standard, not {k}").into()),
    };
    let (d, h) = (768, 12);
    if args.n == 0 || args.batch == 0 {
        return Err("--n and --batch must be at least 1".into());
    }
    // The reference path holds maps of batch × heads × n² floats: refused from that count
    // rather than aborted in the allocator.
    diffclip::cli::check_attention_size(args.batch, args.n, d, h, path == AttentionPath::Reference, args.backward, &device)?;
    let mut x = Tensor::<3>::random([args.batch, args.n, d], Distribution::Default, &device);
    if args.backward {
        x = x.require_grad();
    }
    let forward: Box<dyn Fn(Tensor<3>) -> Tensor<3>> = if diff {
        let l = AttentionConfig::new(d, h).init_differential(&device)?;
        match path {
            AttentionPath::Fused => Box::new(move |x| l.forward_fused(x, None)),
            AttentionPath::Reference => Box::new(move |x| l.forward_with_maps(x, None).0),
        }
    } else {
        let l = AttentionConfig { path, ..AttentionConfig::new(d, h) }.init_standard(&device)?;
        Box::new(move |x| l.forward(x, None))
    };
    // Parameters initialise lazily: a call on a 2-token input creates them before the baseline.
    let warm = Tensor::<3>::random([1, 2, d], Distribution::Default, &device);
    // A device may fail these too (no room for the input): an error, not a panic.
    let failed = |e| format!("{} {} N={}: the input could not be made on {}: {e:?}", args.kind, args.path, args.n, args.backend);
    forward(warm).sum().try_into_scalar::<f32>().map_err(failed)?;
    x.clone().sum().try_into_scalar::<f32>().map_err(failed)?;
    device.sync()?;
    let baseline = status_mb("VmRSS:");
    let start = Instant::now();
    let out = forward(x.clone());
    // A device may fail the call (wgpu refuses buffers past its binding limit): an error, not a panic.
    let check = if args.backward {
        let grads = out.sum().backward();
        x.grad(&grads).ok_or("no input gradient")?.sum().try_into_scalar::<f32>()
    } else {
        out.sum().try_into_scalar::<f32>()
    };
    let check = check.map_err(|e| format!("{} {} N={}: the call failed on {}: {e:?}", args.kind, args.path, args.n, args.backend))?;
    device.sync()?;
    let seconds = start.elapsed().as_secs_f64();
    let peak = status_mb("VmHWM:");
    Ok(serde_json::json!({
        "kind": args.kind, "path": args.path, "n": args.n, "batch": args.batch,
        "backward": args.backward, "backend": args.backend, "seconds": seconds,
        "baseline_rss_mb": baseline, "peak_rss_mb": peak,
        "call_peak_mb": peak.zip(baseline).map(|(p, b)| p - b),
        "one_map_mb": (args.batch * h * args.n * args.n * 4) as f64 / (1 << 20) as f64,
        "finite": check.is_finite(),
    }))
}

fn all(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let exe = std::env::current_exe()?;
    for kind in ["diff", "standard"] {
        for path in ["fused", "reference"] {
            let mut cmd = Command::new(&exe);
            cmd.args([
                "--n",
                &args.n.to_string(),
                "--batch",
                &args.batch.to_string(),
            ]);
            cmd.args(["--kind", kind, "--path", path, "--backend", &args.backend]);
            if args.backward {
                cmd.arg("--backward");
            }
            let out = cmd.output()?;
            if !out.status.success() {
                eprint!("{}", String::from_utf8_lossy(&out.stderr));
                return Err(format!("{kind}/{path} failed ({})", out.status).into());
            }
            diffclip::cli::print_line(String::from_utf8_lossy(&out.stdout).trim_end())?;
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Some(problem) = diffclip::cli::environment_problem() {
        return diffclip::cli::exit_code(Err(problem));
    }
    let result = if args.all {
        all(&args)
    } else {
        one(&args).and_then(|j| Ok(diffclip::cli::print_line(j)?))
    };
    diffclip::cli::exit_code(diffclip::cli::closed_output_is_success(result))
}
