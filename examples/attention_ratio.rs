//! Differential vs standard attention time, measured interleaved (one call of each in turn), so
//! drift on a shared machine hits both alike. One JSON line per sequence length.
//!
//! ```sh
//! cargo run --release --example attention_ratio -- --n 50,77,197,577 --batch 8
//! cargo run --release --example attention_ratio -- --n 197 --backward      # forward + backward
//! cargo run --release --example attention_ratio --features wgpu -- --backend wgpu --gpu-kernel
//! ```
//!
//! Width 768, 12 heads, fused path (the CPU kernel on flex), random weights and inputs; the
//! median over `--iters` timed pairs after `--warmup` untimed ones.

use std::time::Instant;

use clap::Parser;
use diffclip::attention::AttentionConfig;
use diffclip::burn::tensor::{Device, Distribution, Tensor};

#[path = "common/machine.rs"]
mod machine;

#[derive(Parser, Debug)]
#[command(about = "Differential / standard attention time, interleaved, as JSON lines")]
struct Args {
    /// Sequence lengths, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "50,77,197,577")]
    n: Vec<usize>,
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Timed pairs per length (at most a million: the timings are kept).
    #[arg(long, default_value_t = 40, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    iters: usize,
    /// Untimed pairs per length before timing (at most a million).
    #[arg(long, default_value_t = 5, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=1_000_000))]
    warmup: usize,
    /// Time forward + backward of `out.sum()` (autodiff device) instead of forward.
    #[arg(long)]
    backward: bool,
    /// flex, ndarray or wgpu.
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Inference on wgpu / CUDA through diffclip's attention kernel instead of Burn's
    /// (`set_gpu_inference_kernel(true)`; the backward always takes the kernel).
    #[arg(long)]
    gpu_kernel: bool,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Seconds of one call of `layer` on `x`, waiting for the result.
/// A device that fails the call (out of memory, a buffer past its limits) is an error, not a panic.
fn time_one(device: &Device, backward: bool, x: &Tensor<3>, layer: &dyn Fn(Tensor<3>) -> Tensor<3>) -> Result<f64, String> {
    let start = Instant::now();
    let out = if backward {
        let x = x.clone().require_grad();
        let grads = layer(x.clone()).sum().backward();
        x.grad(&grads).ok_or("no input gradient")?.sum()
    } else {
        layer(x.clone()).sum()
    };
    out.try_into_scalar::<f32>().map_err(|e| format!("the device failed the call: {e:?}"))?;
    device.sync().map_err(|e| format!("the device failed the call: {e:?}"))?;
    Ok(start.elapsed().as_secs_f64())
}

fn main() -> std::process::ExitCode {
    // `run_main` tunes the allocator first; a closed pipe (`| head`) ends the program quietly.
    diffclip::cli::run_main(|| diffclip::cli::closed_output_is_success(run(Args::parse())))
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.batch == 0 || args.n.contains(&0) {
        return Err("--batch and every --n must be positive".into());
    }
    if args.gpu_kernel && matches!(args.backend.as_str(), "flex" | "ndarray") {
        return Err(format!("--gpu-kernel applies to wgpu and cuda; {} runs diffclip's CPU kernels", args.backend).into());
    }
    diffclip::attention::set_gpu_inference_kernel(args.gpu_kernel);
    let base = diffclip::backend::device(&args.backend)?;
    let device = if args.backward { base.autodiff() } else { base };
    let diff = AttentionConfig::new(768, 12).init_differential(&device)?;
    let standard = AttentionConfig::new(768, 12).init_standard(&device)?;
    for &n in &args.n {
        // Burn's attention (the reference path) holds the maps.
        diffclip::cli::check_attention_size(args.batch, n, 768, 12, true, args.backward, &device)?;
    }
    for &n in &args.n {
        let x = Tensor::<3>::random([args.batch, n, 768], Distribution::Default, &device);
        let (mut td, mut ts) = (Vec::new(), Vec::new());
        for i in 0..args.warmup + args.iters {
            let d = time_one(&device, args.backward, &x, &|x| diff.forward(x, None))?;
            let s = time_one(&device, args.backward, &x, &|x| standard.forward(x, None))?;
            if i >= args.warmup {
                td.push(d);
                ts.push(s);
            }
        }
        let (d, s) = (median(td), median(ts));
        diffclip::cli::print_line(
            serde_json::json!({
                "backend": args.backend, "batch": args.batch, "n": n, "backward": args.backward,
                "cpu_kernels": diffclip::attention::cpu_kernels_enabled(),
                "gpu_kernel": diffclip::attention::gpu_inference_kernel_enabled(),
                "diff_ms": d * 1e3, "standard_ms": s * 1e3, "ratio": d / s,
                "adapter": machine::adapter(&device),
            }),
        )?;
    }
    Ok(())
}
