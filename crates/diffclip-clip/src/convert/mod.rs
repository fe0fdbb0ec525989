//! Turning a trained standard-attention CLIP into a DiffCLIP of the same shape, to fine-tune it
//! instead of training a DiffCLIP from scratch.
//!
//! Each pair of standard heads `(2i, 2i+1)` becomes differential head `i` (spec §1): head
//! `2i`'s query/key projections give the first map `A1`, head `2i+1`'s the subtracted map `A2`,
//! the value channels of both heads are concatenated (they already are, in `v_proj`'s output
//! order), and `out_proj` is kept. Every weight is copied unchanged; the new parameters are the
//! four λ vectors and the RMSNorm gain of each layer. By default ([`Pairing::Matched`]) the
//! heads are first reordered so that the heads paired are those whose maps are most alike on a
//! calibration batch (reordering heads does not change a standard layer).
//!
//! **How close it can be.** A standard layer gives head `2i`'s values the map `A_{2i}` and head
//! `2i+1`'s values the map `A_{2i+1}`; a differential head applies one map, `A1 − λ A2`, to the
//! values of both, and then normalises each token's head output (RMSNorm) before scaling it by
//! `1 − λ_init`. So no setting of the new parameters reproduces the original in general. The
//! conversion comes as close as these parameters allow:
//!
//! - λ starts at 0 ([`LambdaStart::Zero`], the default): the first map acts alone, so head
//!   `2i`'s half of the values is exactly the original, up to the normalisation, and head
//!   `2i+1`'s half is attended with head `2i`'s map instead of its own (hence
//!   [`Pairing::Matched`], which pairs and orders the heads to make that error smallest). The λ vectors are set so
//!   that `exp(λq1·λk1) − exp(λq2·λk2) + λ_init = 0` with non-zero vectors, so all of them
//!   receive gradients from the first step and λ can grow from 0 during fine-tuning.
//! - The RMSNorm gain ([`NormInit::Calibrated`]) is fitted per channel by least squares on a
//!   calibration batch: `w_c = Σ u_c t_c / Σ u_c² / (1 − λ_init)`, where `u` is the normalised
//!   differential head output and `t` the original heads' output, over all tokens, heads and
//!   images of the batch (layer by layer, each layer's input taken from the already converted
//!   layers below it). These gains are the least-squares best on that batch for the heads'
//!   output before `out_proj`, so never worse there than unit gains (reported per layer in
//!   [`LayerReport`], after `out_proj`, where a non-orthogonal projection could in principle
//!   reverse the order).
//!
//! **Bound.** The conversion is exact (to float round-off; the test checks 1e-4 relative) when
//! each head pair attends identically and every pair's output has the same RMS at every token;
//! otherwise the per-layer relative error of the attention output on the calibration batch is
//! reported ([`LayerReport::rel_error`]) beside that of unit gains
//! ([`LayerReport::rel_error_unit_gain`]), which the fitted gains beat before `out_proj`. End to end, the embedding cosine to the original and
//! the zero-shot accuracy before fine-tuning are measured by `examples/convert.rs` and reported
//! in `docs/reproduction.md`.

use burn::module::Param;
use burn::tensor::{Device, Int, Tensor, TensorData};
use diffclip_attention::{Attention, AttentionConfig, AttentionKind, DiffAttention, LambdaInit, StandardAttention};
use diffclip_encoders::ResidualBlock;
use serde::Serialize;

use crate::{Clip, ClipConfig};

mod pairing;
use pairing::matched_order;
pub use pairing::permute_heads;

/// Where λ starts in the converted layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub enum LambdaStart {
    /// `λ = 0`: only the first map acts (closest to the original).
    #[default]
    Zero,
    /// As in a freshly initialised DiffCLIP: `λ ≈ λ_init` (λ vectors drawn from N(0, 0.1)). The
    /// second map is then subtracted with weight ≈ 0.8 from the first step: the naive
    /// conversion, for comparison.
    Fresh,
}

/// How the RMSNorm gain of each converted layer is initialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub enum NormInit {
    /// Least squares on a calibration batch (needs [`Calibration`]).
    #[default]
    Calibrated,
    /// All ones, as in a fresh DiffCLIP.
    Unit,
}

/// How standard heads are grouped into the pairs that become differential heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub enum Pairing {
    /// Heads `(2i, 2i+1)`, as they are stored.
    Interleaved,
    /// The pairs, and the first head of each, that minimise `Σ ‖(A_a − A_b) V_b‖²` on the
    /// calibration batch (`a` the first head of a pair, `b` the second: the error of giving head
    /// `b`'s values head `a`'s map); exhaustive up to 12 heads, greedy beyond. The heads are
    /// reordered to that pairing first ([`permute_heads`]), which leaves a standard layer's output
    /// unchanged. Needs a [`Calibration`].
    #[default]
    Matched,
}

/// What to convert and how.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConvertOptions {
    /// Convert the vision tower's layers.
    pub vision: bool,
    /// Convert the text tower's layers (`false`: a DiffCLIP† with standard text attention).
    pub text: bool,
    /// `lambda_init` of the converted layers (the DiffCLIP's config value).
    pub lambda_init: LambdaInit,
    /// Where λ starts.
    pub lambda_start: LambdaStart,
    /// How the RMSNorm gains start.
    pub norm: NormInit,
    /// Which standard heads are paired.
    pub pairing: Pairing,
    /// Seeds the directions of the λ vectors.
    pub seed: u64,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        Self { vision: true, text: true, lambda_init: LambdaInit::default(), lambda_start: LambdaStart::Zero, norm: NormInit::Calibrated, pairing: Pairing::Matched, seed: 0 }
    }
}

/// Inputs the conversion runs through the model to fit the RMSNorm gains: preprocessed images
/// `[B, 3, S, S]` and token ids `[B, L]` (e.g. one training batch).
pub struct Calibration {
    /// Preprocessed images `[B, 3, S, S]`.
    pub images: Tensor<4>,
    /// Token ids `[B, L]`.
    pub texts: Tensor<2, Int>,
}

/// One converted layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerReport {
    /// `vision` or `text`.
    pub tower: &'static str,
    /// 0-based layer index in its tower.
    pub layer: usize,
    /// `lambda_init` of the layer.
    pub lambda_init: f64,
    /// λ of the converted layer.
    pub lambda: f64,
    /// The standard heads of each differential head, first map first.
    pub pairs: Vec<[usize; 2]>,
    /// Mean RMSNorm gain.
    pub gain_mean: f64,
    /// `‖converted − original‖ / ‖original‖` of the attention output (after `out_proj`) on the
    /// calibration batch (`NaN` without one).
    pub rel_error: f64,
    /// The same with unit RMSNorm gains (`NaN` without calibration).
    pub rel_error_unit_gain: f64,
    /// `‖O − T‖ / ‖T‖` before `out_proj` and before the RMSNorm: the differential heads' output
    /// `O` against the original heads' `T` on the calibration batch, the part of the error due to
    /// the shared map of each pair (and λ), whatever the gains (`NaN` without calibration).
    pub pairing_error: f64,
}

/// What [`convert_to_diffclip`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConvertReport {
    /// One entry per converted layer, vision tower first.
    pub layers: Vec<LayerReport>,
}

/// Why a conversion is refused. `tower` is `vision` or `text`, `layer` the 0-based layer.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // the fields are named by the messages
pub enum ConvertError {
    /// The layer is already differential.
    #[error("{tower} layer {layer} is already differential; only standard layers are converted")]
    NotStandard { tower: &'static str, layer: usize },
    /// Heads cannot be paired.
    #[error("{tower} layer {layer} has {heads} heads; a differential layer pairs them, so the count must be even")]
    OddHeads { tower: &'static str, layer: usize, heads: usize },
    /// [`NormInit::Calibrated`] or [`Pairing::Matched`] without a [`Calibration`].
    #[error("calibrated RMSNorm gains and matched head pairs need a calibration batch (or use NormInit::Unit and Pairing::Interleaved)")]
    NoCalibration,
    /// λ cannot start at 0 with this `lambda_init`.
    #[error("{tower} layer {layer}: lambda_init {lambda_init} cannot be converted ({why})")]
    LambdaInit { tower: &'static str, layer: usize, lambda_init: f64, why: &'static str },
    /// The calibration produced a non-finite gain.
    #[error("{tower} layer {layer}: the calibrated RMSNorm gain is not finite (degenerate calibration batch?)")]
    NonFiniteGain { tower: &'static str, layer: usize },
    /// The converted layer's config is invalid.
    #[error("invalid converted config: {0}")]
    Config(String),
    /// The calibration batch does not fit the model (shape, length, token ids).
    #[error("calibration batch: {0}")]
    Calibration(#[from] crate::InputError),
}

/// The DiffCLIP config of the same shape as `config` with the towers chosen in `options`
/// converted to differential attention.
pub fn converted_config(config: &ClipConfig, options: &ConvertOptions) -> ClipConfig {
    let mut c = config.clone();
    for (on, att) in [(options.vision, &mut c.vision.attention), (options.text, &mut c.text.attention)] {
        if on {
            att.kind = AttentionKind::Differential;
            att.per_layer = None;
            att.lambda_init = options.lambda_init;
        }
    }
    c
}

/// Convert the standard-attention `model` (built from `config`) into a DiffCLIP of the same
/// shape (see the module documentation for the mapping and how close it is). The returned model
/// is on `model`'s device; to train it, move it with `model.fork(&autodiff_device).train()`.
///
/// ```
/// use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
/// use diffclip_clip::ClipConfig;
/// use diffclip_clip::convert::{Calibration, ConvertOptions, convert_to_diffclip};
/// let device = Device::flex();
/// let config = ClipConfig::clip_tiny(); // standard attention, as a released CLIP
/// let clip = config.init(&device).unwrap();
/// // One batch fits the RMSNorm gains and chooses the head pairs.
/// let (s, l) = (config.vision.image_size, config.text.context_length);
/// let images = Tensor::<4>::random([2, 3, s, s], Distribution::Default, &device);
/// let mut ids = vec![0i64; 2 * l]; // "a dog", "a cat", padded with zeros
/// ids[..4].copy_from_slice(&[49406, 320, 1929, 49407]);
/// ids[l..l + 4].copy_from_slice(&[49406, 320, 2368, 49407]);
/// let texts = Tensor::<2, Int>::from_data(TensorData::new(ids, [2, l]), &device);
/// let (diff, diff_config, report) = convert_to_diffclip(&clip, &config, &ConvertOptions::default(), Some(&Calibration { images, texts })).unwrap();
/// assert_eq!(report.layers.len(), config.vision.layers + config.text.layers);
/// // Each layer's error against the original on the calibration batch is reported.
/// assert!(report.layers.iter().all(|l| l.rel_error.is_finite() && l.rel_error_unit_gain.is_finite()));
/// assert_eq!(diff_config.vision.attention.kind, diffclip_clip::attention::AttentionKind::Differential);
/// # let _ = diff;
/// ```
pub fn convert_to_diffclip(
    model: &Clip,
    config: &ClipConfig,
    options: &ConvertOptions,
    calibration: Option<&Calibration>,
) -> Result<(Clip, ClipConfig, ConvertReport), ConvertError> {
    if (options.norm == NormInit::Calibrated || options.pairing == Pairing::Matched) && calibration.is_none() {
        return Err(ConvertError::NoCalibration);
    }
    // The batch reaches the towers unchecked otherwise, where a misfit panics.
    if let Some(c) = calibration {
        config.check_images(&c.images.dims())?;
        let ids = c.texts.clone().into_data().convert::<i64>().try_into_vec::<i64>().unwrap_or_default();
        config.check_tokens(&c.texts.dims(), &ids)?;
    }
    let new_config = converted_config(config, options);
    let mut out = model.clone();
    let mut layers = Vec::new();
    if options.vision {
        let x = calibration.map(|c| out.visual.embed(c.images.clone()));
        convert_blocks(&mut out.visual.blocks, "vision", x, options, &mut layers)?;
    }
    if options.text {
        let x = calibration.map(|c| out.text.embed(c.texts.clone()));
        convert_blocks(&mut out.text.blocks, "text", x, options, &mut layers)?;
    }
    Ok((out, new_config, ConvertReport { layers }))
}

fn convert_blocks(
    blocks: &mut [ResidualBlock],
    tower: &'static str,
    mut x: Option<Tensor<3>>,
    options: &ConvertOptions,
    report: &mut Vec<LayerReport>,
) -> Result<(), ConvertError> {
    for (layer, block) in blocks.iter_mut().enumerate() {
        let Attention::Standard(s) = &block.attn else { return Err(ConvertError::NotStandard { tower, layer }) };
        let attn_in = x.as_ref().map(|x| block.norm1.forward(x.clone()));
        let seed = options.seed.wrapping_mul(1_000_003).wrapping_add(if tower == "vision" { 0 } else { 1 << 20 }).wrapping_add(layer as u64);
        let (diff, rep) = convert_layer(s, tower, layer, options.lambda_init.value(layer), options, attn_in, seed)?;
        block.attn = Attention::Differential(diff);
        report.push(rep);
        if let Some(h) = x.take() {
            x = Some(block.forward(h, None));
        }
    }
    Ok(())
}

fn convert_layer(
    s: &StandardAttention,
    tower: &'static str,
    layer: usize,
    lambda_init: f64,
    options: &ConvertOptions,
    x: Option<Tensor<3>>,
    seed: u64,
) -> Result<(DiffAttention, LayerReport), ConvertError> {
    let (h, d) = (s.num_heads, s.head_dim);
    if h % 2 != 0 {
        return Err(ConvertError::OddHeads { tower, layer, heads: h });
    }
    let device: Device = s.q_proj.weight.val().device();
    let mut order: Vec<usize> = (0..h).collect();
    if let (Pairing::Matched, Some(x)) = (options.pairing, &x) {
        order = matched_order(s, x.clone());
    }
    let permuted = permute_heads(s, &order);
    let s = &permuted;
    let pairs = order.chunks(2).map(|p| [p[0], p[1]]).collect();
    let mut diff = AttentionConfig {
        qkv_bias: s.q_proj.bias.is_some(),
        lambda_init,
        causal: s.causal,
        attn_dropout: s.attn_drop.prob,
        proj_dropout: s.proj_drop.prob,
        path: s.path,
        ..AttentionConfig::new(h * d, h)
    }
    .init_differential(&device)
    .map_err(|e| ConvertError::Config(e.to_string()))?;
    diff.q_proj = s.q_proj.clone();
    diff.k_proj = s.k_proj.clone();
    diff.v_proj = s.v_proj.clone();
    diff.out_proj = s.out_proj.clone();
    let [q1, k1, q2, k2] = lambda_vectors(d, lambda_init, options.lambda_start, seed).map_err(|why| ConvertError::LambdaInit { tower, layer, lambda_init, why })?;
    let param = |v: Vec<f32>| Param::from_data(TensorData::new(v, [d]), &device);
    (diff.lambda_q1, diff.lambda_k1, diff.lambda_q2, diff.lambda_k2) = (param(q1), param(k1), param(q2), param(k2));
    let lambda = diff.lambda_full().into_scalar::<f32>() as f64;

    let (mut rel_error, mut rel_error_unit_gain, mut pairing_error) = (f64::NAN, f64::NAN, f64::NAN);
    if let Some(x) = x {
        let original = s.forward(x.clone(), None);
        let mut unit = diff.clone();
        unit.diff_norm.gamma = Param::from_tensor(Tensor::ones([2 * d], &device));
        rel_error_unit_gain = relative_error(unit.forward(x.clone(), None), original.clone());
        let (gain, before_norm) = calibrated_gain(s, &diff, x.clone(), lambda as f32, lambda_init);
        pairing_error = before_norm;
        if options.norm == NormInit::Calibrated {
            let values = gain.clone().into_data().try_to_vec::<f32>().unwrap_or_default();
            if values.iter().any(|v| !v.is_finite()) {
                return Err(ConvertError::NonFiniteGain { tower, layer });
            }
            diff.diff_norm.gamma = Param::from_tensor(gain);
        }
        rel_error = relative_error(diff.forward(x, None), original);
    }
    let gain_mean = diff.diff_norm.gamma.val().mean().into_scalar::<f32>() as f64;
    Ok((diff, LayerReport { tower, layer, lambda_init, lambda, pairs, gain_mean, rel_error, rel_error_unit_gain, pairing_error }))
}

/// Least-squares RMSNorm gain `[2·head_dim]` (see the module documentation).
/// Also returns `‖O − T‖ / ‖T‖` of the differential heads' output before the normalisation
/// (`O`) against the original heads' (`T`): the error that the pairing and λ alone cause.
fn calibrated_gain(s: &StandardAttention, diff: &DiffAttention, x: Tensor<3>, lambda: f32, lambda_init: f64) -> (Tensor<1>, f64) {
    let [b, n, _] = x.dims();
    let (h, d) = (s.num_heads, s.head_dim);
    let device = x.device();
    let (_, maps) = s.forward_with_maps(x.clone(), None);
    let a = maps.first; // [b, h, n, n]
    let v = s.v_proj.forward(x).reshape([b, n, h, d]).swap_dims(1, 2); // [b, h, n, d]
    // Heads 2i and 2i+1 side by side: [b, h/2, n, 2d], the differential head layout.
    let pair = |t: Tensor<4>| t.reshape([b, h / 2, 2, n, d]).swap_dims(2, 3).reshape([b, h / 2, n, 2 * d]);
    let target = pair(a.clone().matmul(v.clone()));
    let a = a.reshape([b, h / 2, 2, n, n]);
    let a1 = a.clone().narrow(2, 0, 1).reshape([b, h / 2, n, n]);
    let a2 = a.narrow(2, 1, 1).reshape([b, h / 2, n, n]);
    let o = (a1 - a2 * lambda).matmul(pair(v));
    let pairing_error = {
        let num = (o.clone() - target.clone()).square().sum().into_scalar::<f32>() as f64;
        (num / (target.clone().square().sum().into_scalar::<f32>() as f64).max(f64::MIN_POSITIVE)).sqrt()
    };
    let eps = diff.diff_norm.epsilon;
    let u = o.clone() / (o.square().mean_dim(3) + eps).sqrt();
    let rows = b * (h / 2) * n;
    let host = |t: Tensor<2>| t.sum_dim(0).into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
    let num = host((u.clone() * target).reshape([rows, 2 * d]));
    let den = host(u.square().reshape([rows, 2 * d]));
    // A channel that is zero in every calibration output has no say in the fit: gain 1.
    let gain: Vec<f32> = num.iter().zip(&den).map(|(n, m)| if *m > 0.0 { n / m } else { 1.0 } / (1.0 - lambda_init) as f32).collect();
    (Tensor::from_data(TensorData::new(gain, [2 * d]), &device), pairing_error)
}

fn relative_error(a: Tensor<3>, b: Tensor<3>) -> f64 {
    let num = (a - b.clone()).square().sum().into_scalar::<f32>() as f64;
    let den = b.square().sum().into_scalar::<f32>() as f64;
    (num / den.max(f64::MIN_POSITIVE)).sqrt()
}

/// `[λq1, λk1, λq2, λk2]` of length `d`, drawn from N(0, 0.1) (seeded), with `λk2` rescaled for
/// [`LambdaStart::Zero`] so that `λ = exp(λq1·λk1) − exp(λq2·λk2) + λ_init = 0`.
fn lambda_vectors(d: usize, lambda_init: f64, start: LambdaStart, seed: u64) -> Result<[Vec<f32>; 4], &'static str> {
    let mut rng = seed ^ 0x5DEE_CE66_D1CE_4E5B;
    let mut next = || {
        rng = rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut normal = || {
        // Box–Muller; 1 - u keeps the logarithm finite.
        let (u1, u2) = (1.0 - next(), next());
        0.1 * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    };
    let mut draw = || (0..d).map(|_| normal()).collect::<Vec<f64>>();
    let (q1, k1, q2, mut k2) = (draw(), draw(), draw(), draw());
    if start == LambdaStart::Zero {
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let c = dot(&q1, &k1).exp() + lambda_init;
        if !(c > 0.0 && c.is_finite()) {
            return Err("exp(λq1·λk1) + λ_init must be positive to start λ at 0");
        }
        let target = c.ln();
        let norm2 = dot(&q2, &q2);
        if norm2 <= 0.0 {
            return Err("degenerate λ vector");
        }
        k2 = q2.iter().map(|v| v * target / norm2).collect();
    }
    let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
    Ok([f(q1), f(k1), f(q2), f(k2)])
}

/// Mean cosine similarity between two models' image embeddings and between their text
/// embeddings of the same inputs (how close a converted model is to its original).
pub fn embedding_cosine(a: &Clip, b: &Clip, images: Tensor<4>, texts: Tensor<2, Int>) -> (f64, f64) {
    let cos = |x: Tensor<2>, y: Tensor<2>| {
        let (x, y) = (crate::normalize(x), crate::normalize(y));
        (x * y).sum_dim(1).mean().into_scalar::<f32>() as f64
    };
    let img = cos(a.encode_image(images.clone()), b.encode_image(images));
    let txt = cos(a.encode_text(texts.clone()), b.encode_text(texts));
    (img, txt)
}
