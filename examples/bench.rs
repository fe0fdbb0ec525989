//! Throughput of a model's image and text encoders, as one JSON line.
//!
//! ```sh
//! cargo run --release --example bench -- --preset diffclip_vit_b16 --batch 8 --text-batch 32 --iters 5
//! cargo run --release --example bench --features x86-v4 -- --preset clip_vit_b16 --batch 2 --image-only
//! cargo run --release --example bench --features wgpu -- --backend wgpu --batch 8
//! ```
//!
//! Weights are random (`"weights": "random"`): throughput does not depend on their values.
//! After `--warmup` untimed calls, each encoder is timed `--iters` times; every call waits for
//! its result (one value read back, then `device.sync()`, since wgpu's reads return early).
//! Printed: the `machine` (`cpu` model, vector `isa`, `threads`), the `adapter` (a GPU backend's
//! device as it names itself, null on CPU backends), `images_per_s` /
//! `texts_per_s` from the median seconds per call, the medians and minima themselves, and
//! `peak_rss_mb`, the process's peak resident memory (Linux `VmHWM`,
//! model and inputs included; `null` elsewhere). Run one configuration per process to compare
//! peaks. Inference only (no autodiff), float32. glibc's malloc keeps freed buffers
//! (`diffclip::allocator::keep_freed_memory`, `"malloc_tuned"`) unless `--default-malloc`;
//! `--generic-ops` turns diffclip's flex CPU kernels off (`"cpu_kernels"`); `--gpu-kernel`
//! runs inference on wgpu / CUDA through diffclip's attention kernel instead of Burn's
//! (`"gpu_kernel"`). `--text-tokens N` gives every text N tokens, end-of-text last and zeros
//! after (default: the whole context): the text tower computes up to the batch's last
//! end-of-text token only, so real captions cost their own length.
//! `--train` times `benches/train_step.rs`'s training step instead (the small DiffCLIP and
//! CLIP, batch 32, autodiff): one line per model with `step_ms_median`, like
//! `benches/pytorch/diffclip_reference.py --train`.

use std::time::Instant;

#[path = "common/machine.rs"]
mod machine;
#[path = "../benches/common/train_step.rs"]
mod small;

use clap::Parser;
use diffclip::burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use diffclip::clip::{Clip, ClipConfig, Precision, Workload};

/// Images per call unless `--batch` says otherwise.
const DEFAULT_BATCH: usize = 8;

#[derive(Parser, Debug)]
#[command(
    about = "Image/text encoding throughput of a CLIP/DiffCLIP model, printed as one JSON line"
)]
struct Args {
    /// Model preset (see `examples/config.rs`).
    #[arg(long, default_value = "diffclip_vit_b16")]
    preset: String,
    /// Model JSON instead of a preset.
    #[arg(long, conflicts_with = "preset")]
    config: Option<std::path::PathBuf>,
    /// Images per call (default 8); with `--train`, the batch of `--train-model vit_b16`.
    #[arg(long)]
    batch: Option<usize>,
    /// Texts per call (default: the image batch).
    #[arg(long, conflicts_with = "image_only")]
    text_batch: Option<usize>,
    /// Timed calls per encoder (at most a million: the timings are kept).
    #[arg(long, default_value_t = 5, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=1_000_000))]
    iters: usize,
    /// Untimed calls per encoder before timing (at most a million).
    #[arg(long, default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=1_000_000))]
    warmup: usize,
    /// flex, ndarray or wgpu (the feature must be compiled in).
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Attention computation: fused (default) or reference.
    #[arg(long)]
    path: Option<String>,
    /// Time the image encoder only.
    #[arg(long, conflicts_with = "text_only")]
    image_only: bool,
    /// Time the text encoder only.
    #[arg(long)]
    text_only: bool,
    /// Tokens per text, end-of-text included, padded with zeros to the context length (default:
    /// the whole context, as PyTorch's CLIP always computes).
    #[arg(long, conflicts_with = "image_only")]
    text_tokens: Option<usize>,
    /// Leave glibc's malloc at its defaults (see `diffclip::allocator::keep_freed_memory`).
    #[arg(long)]
    default_malloc: bool,
    /// Run Burn's generic ops instead of diffclip's flex CPU kernels (`set_cpu_kernels(false)`).
    #[arg(long)]
    generic_ops: bool,
    /// Inference on wgpu / CUDA through diffclip's attention kernel instead of Burn's
    /// (`set_gpu_inference_kernel(true)`; training always takes the kernel).
    #[arg(long, conflicts_with = "train")]
    gpu_kernel: bool,
    /// Time the training step of benches/train_step.rs's small models instead of the encoders.
    #[arg(long, conflicts_with_all = ["image_only", "text_only", "config", "preset"])]
    train: bool,
    /// The models `--train` times: `small` (batch 32, 64² images) or `vit_b16` (ViT-B/16 and
    /// its CLIP twin at `--batch`, 224² images).
    #[arg(long, default_value = "small", value_parser = ["small", "vit_b16"], requires = "train")]
    train_model: String,
    /// Compute in f32, bf16 or f16 (the embeddings come back as f32): on the CPU (flex) bf16
    /// and f16 keep the weights f32 and multiply in that type (bf16 on AMX on Intel Xeons, on
    /// AVX512-BF16 on AMD),
    /// otherwise the model is cast after it is built. With `--train`: mixed precision, computing in that type
    /// from f32 weights (f16 with a fixed loss scale).
    #[arg(long, default_value = "f32")]
    dtype: Precision,
}

impl Args {
    /// Images per call.
    fn batch(&self) -> usize {
        self.batch.unwrap_or(DEFAULT_BATCH)
    }

    /// Both encoders of `config` on `--path`, when given.
    fn set_path(&self, config: &mut ClipConfig) -> Result<(), String> {
        if let Some(path) = &self.path {
            let path: diffclip::attention::AttentionPath = serde_json::from_value(serde_json::json!(path))
                .map_err(|_| format!("--path must be fused or reference, not {path}"))?;
            config.vision.path = path;
            config.text.path = path;
        }
        Ok(())
    }
}

/// Seconds of each of `iters` timed calls after `warmup` untimed ones.
fn time_calls(
    warmup: usize,
    iters: usize,
    device: &Device,
    mut call: impl FnMut() -> Tensor<2>,
) -> Result<Vec<f64>, String> {
    let mut run = || {
        let start = Instant::now();
        // Read the whole (small) result back and sync: the work has surely run. A device that
        // fails the call (out of memory, a buffer past its limits) is an error, not a panic.
        let values = call()
            .try_into_data()
            .map_err(|e| format!("the device failed the call: {e:?}"))?
            .try_to_vec::<f32>()
            .map_err(|e| format!("the embeddings are not f32: {e:?}"))?;
        device.sync().map_err(|e| format!("the device failed the call: {e:?}"))?;
        std::hint::black_box(values);
        Ok(start.elapsed().as_secs_f64())
    };
    for _ in 0..warmup {
        run()?;
    }
    (0..iters).map(|_| run()).collect()
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn min(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::INFINITY, f64::min)
}

/// Token ids of `batch` texts of `tokens` tokens: in-vocabulary ids, end-of-text (the largest
/// id) last, zeros after it up to the context length.
fn texts(config: &ClipConfig, batch: usize, tokens: usize, device: &Device) -> Tensor<2, Int> {
    let (len, vocab) = (config.text.context_length, config.text.vocab_size as i64);
    let mut ids: Vec<i64> = (0..batch * len)
        .map(|i| (i as i64 * 7919) % (vocab - 2) + 1)
        .collect();
    for row in ids.chunks_mut(len) {
        row[tokens - 1] = vocab - 1;
        row[tokens..].fill(0);
    }
    Tensor::from_data(TensorData::new(ids, [batch, len]), device)
}

/// The training step of each small (or ViT-B/16) model, timed `iters` times after `warmup` steps.
fn run_train(args: &Args, device: &Device) -> Result<Vec<serde_json::Value>, Box<dyn std::error::Error>> {
    let device = device.clone().autodiff();
    args.dtype.check(&device)?;
    // The training step runs whole texts of its own batch: these would be ignored.
    for (given, flag) in [(args.text_batch.is_some(), "--text-batch"), (args.text_tokens.is_some(), "--text-tokens")] {
        if given {
            return Err(format!("{flag} applies to the encoders' timing, not --train").into());
        }
    }
    let (models, batch) = match args.train_model.as_str() {
        "vit_b16" => (small::vit_b16_models(), args.batch()),
        // The small models' step is timed at their own batch.
        _ if args.batch.is_some() => return Err(format!("--batch applies to --train-model vit_b16; the small models train at batch {}", small::BATCH).into()),
        _ => (small::small_models(), small::BATCH),
    };
    let mut models = models;
    for (_, config) in &mut models {
        args.set_path(config)?;
        diffclip::cli::check_batch(config, batch, Workload::Training, "--batch", &device)?;
    }
    let size = models[0].1.vision.image_size;
    let (images, text) = small::inputs_of(batch, size, &device);
    let mut lines = Vec::new();
    for (name, config) in models {
        let mut model = Some(config.init(&device)?);
        let mut optim = diffclip::train::AdamW::new(Default::default());
        let mut times = Vec::new();
        for i in 0..args.warmup + args.iters {
            let start = Instant::now();
            let (next, loss) = small::step_in(model.take().expect("model"), &mut optim, &images, &text, args.dtype);
            let elapsed = start.elapsed().as_secs_f64();
            if !loss.is_finite() {
                return Err(format!("{name}: loss {loss} at step {i}").into());
            }
            model = Some(next);
            if i >= args.warmup {
                times.push(elapsed);
            }
        }
        lines.push(serde_json::json!({
            "work": "train_step",
            "model": name,
            "backend": args.backend,
            "dtype": args.dtype.to_string(),
            "bf16_engine": diffclip::attention::bf16_matmul_engine(),
            "x86_v4": cfg!(feature = "x86-v4"),
            "cpu_kernels": diffclip::attention::cpu_kernels_enabled(),
            "path": config.vision.path,
            "batch": batch,
            "warmup": args.warmup,
            "iters": args.iters,
            "step_ms_median": median(&times) * 1e3,
            "step_ms_min": min(&times) * 1e3,
            "peak_rss_mb": machine::status_mb("VmHWM:"),
        }));
    }
    Ok(lines)
}

fn run(args: &Args) -> Result<Vec<serde_json::Value>, Box<dyn std::error::Error>> {
    if args.iters == 0 || args.batch == Some(0) || args.text_batch == Some(0) {
        return Err("--iters, --batch and --text-batch must be positive".into());
    }
    let device = diffclip::backend::device(&args.backend)?;
    diffclip::attention::set_cpu_kernels(!args.generic_ops);
    if args.gpu_kernel && matches!(args.backend.as_str(), "flex" | "ndarray") {
        return Err(format!("--gpu-kernel applies to wgpu and cuda; {} runs diffclip's CPU kernels (see --generic-ops)", args.backend).into());
    }
    if args.generic_ops && !matches!(args.backend.as_str(), "flex") {
        return Err(format!("--generic-ops applies to flex, whose CPU kernels it turns off; {} has none", args.backend).into());
    }
    diffclip::attention::set_gpu_inference_kernel(args.gpu_kernel);
    let mut lines = if args.train { run_train(args, &device)? } else { run_inference(args, &device)? };
    for line in &mut lines {
        line["adapter"] = machine::adapter(&device);
    }
    Ok(lines)
}

fn run_inference(args: &Args, device: &Device) -> Result<Vec<serde_json::Value>, Box<dyn std::error::Error>> {
    let mut config = ClipConfig::select(args.config.as_deref(), Some(&args.preset), None)?;
    args.set_path(&mut config)?;
    let text_batch = args.text_batch.unwrap_or(args.batch());
    if !args.text_only {
        diffclip::cli::check_batch(&config, args.batch(), Workload::Images, "--batch", device)?;
    }
    if !args.image_only {
        diffclip::cli::check_batch(&config, text_batch, Workload::Texts, if args.text_batch.is_some() { "--text-batch" } else { "--batch" }, device)?;
    }
    let text_tokens = args.text_tokens.unwrap_or(config.text.context_length);
    if text_tokens == 0 || text_tokens > config.text.context_length {
        return Err(format!("--text-tokens must be 1..={}", config.text.context_length).into());
    }
    // Synthetic texts use ids 1..vocab-2 and end-of-text vocab-1.
    if !args.image_only && config.text.vocab_size < 3 {
        return Err(format!("a text vocabulary of {} ids is too small to benchmark (at least 3)", config.text.vocab_size).into());
    }
    let model: Clip = config.init(device)?.with_precision(args.dtype)?;
    let size = config.vision.image_size;

    let (mut image_s, mut text_s) = (None, None);
    if !args.text_only {
        let images = Tensor::<4>::random(
            [args.batch(), config.vision.in_chans, size, size],
            Distribution::Default,
            device,
        );
        image_s = Some(time_calls(args.warmup, args.iters, device, || {
            model.encode_image(images.clone())
        })?);
    }
    if !args.image_only {
        let tokens = texts(&config, text_batch, text_tokens, device);
        text_s = Some(time_calls(args.warmup, args.iters, device, || {
            model.encode_text(tokens.clone())
        })?);
    }
    let per_s = |n: usize, s: &Option<Vec<f64>>| s.as_ref().map(|s| n as f64 / median(s));
    Ok(vec![serde_json::json!({
        "preset": args.config.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| args.preset.clone()),
        "backend": args.backend,
        "path": config.vision.path,
        "weights": "random",
        "dtype": args.dtype.to_string(),
        "matmul": model.visual.products().to_string(),
        "bf16_engine": diffclip::attention::bf16_matmul_engine(),
        "x86_v4": cfg!(feature = "x86-v4"),
        "cpu_kernels": diffclip::attention::cpu_kernels_enabled(),
        "gpu_kernel": diffclip::attention::gpu_inference_kernel_enabled(),
        "batch": args.batch(),
        "text_batch": text_batch,
        "text_tokens": text_tokens,
        "warmup": args.warmup,
        "iters": args.iters,
        "images_per_s": per_s(args.batch(), &image_s),
        "texts_per_s": per_s(text_batch, &text_s),
        "image_s_median": image_s.as_deref().map(median),
        "image_s_min": image_s.as_deref().map(min),
        "text_s_median": text_s.as_deref().map(median),
        "text_s_min": text_s.as_deref().map(min),
        "peak_rss_mb": machine::status_mb("VmHWM:"),
    })])
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Some(problem) = diffclip::cli::environment_problem() {
        return diffclip::cli::exit_code(Err(problem));
    }
    let malloc_tuned = !args.default_malloc && diffclip::allocator::keep_freed_memory();
    let printed = run(&args).and_then(|lines| {
        for mut json in lines {
            json["malloc_tuned"] = malloc_tuned.into();
            json["machine"] = machine::machine();
            diffclip::cli::print_line(json)?;
        }
        Ok(())
    });
    diffclip::cli::exit_code(diffclip::cli::closed_output_is_success(printed))
}
