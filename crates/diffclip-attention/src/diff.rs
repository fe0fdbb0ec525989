//! Differential attention (Differential Transformer / DiffCLIP): the `h` baseline heads pair up
//! interleaved (heads `2i` and `2i+1` form differential head `i`), each pair's second softmax
//! map is subtracted from its first with a learned scalar λ, and each differential head's
//! `2 * head_dim` outputs go through a shared RMSNorm scaled by `1 - lambda_init`.

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Initializer, Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Int, Tensor};

use crate::AttentionConfig;
use crate::error::AttentionError;
use crate::mask::{AttnMask, full_mask, fused_mask};
use crate::queries::{gather_rows, keys_after};
use crate::maps::softmax_maps;
use crate::{AttentionMaps, AttentionPath};

/// Differential multi-head attention. Input and output `[B, N, D]`.
///
/// ```
/// use burn::tensor::{Device, Distribution, Tensor};
/// use diffclip_attention::AttentionConfig;
/// let device = Device::flex();
/// let layer = AttentionConfig::new(64, 4).init_differential(&device).unwrap(); // 2 head pairs
/// let x = Tensor::<3>::random([2, 10, 64], Distribution::Default, &device);
/// let fused = layer.forward(x.clone(), None);
/// // The reference path (two softmax maps, A1 − λ·A2) gives the same values, and its maps.
/// let (reference, maps) = layer.forward_with_maps(x, None);
/// assert_eq!(maps.first.dims(), [2, 2, 10, 10]);
/// let gap = (fused - reference).abs().max().into_scalar::<f32>();
/// assert!(gap < 1e-4, "{gap}");
/// ```
#[derive(Module, Debug)]
pub struct DiffAttention {
    /// Query projection `D -> D`, split into `h` heads of `head_dim` (heads `2i`, `2i+1` pair up).
    pub q_proj: Linear,
    /// Key projection `D -> D`, split like the queries.
    pub k_proj: Linear,
    /// Value projection `D -> D`, split into `h / 2` heads of `2 * head_dim`.
    pub v_proj: Linear,
    /// Output projection `D -> D` (always with bias).
    pub out_proj: Linear,
    /// λ's first query vector, `[head_dim]` (see [`DiffAttention::lambda_full`]).
    pub lambda_q1: Param<Tensor<1>>,
    /// λ's first key vector, `[head_dim]`.
    pub lambda_k1: Param<Tensor<1>>,
    /// λ's second query vector, `[head_dim]`.
    pub lambda_q2: Param<Tensor<1>>,
    /// λ's second key vector, `[head_dim]`.
    pub lambda_k2: Param<Tensor<1>>,
    /// RMSNorm over each differential head's `2 * head_dim` outputs, shared across heads.
    pub diff_norm: RmsNorm,
    /// Dropout on the maps (training, reference path).
    pub attn_drop: Dropout,
    /// Dropout after `out_proj` (training).
    pub proj_drop: Dropout,
    /// Baseline head count `h` (`h / 2` differential heads).
    pub num_heads: usize,
    /// Size of one query/key head; a differential head's values are `2 * head_dim` wide.
    pub head_dim: usize,
    /// The constant added to λ (and `1 - lambda_init` scales the normed output).
    pub lambda_init: f64,
    /// Mask keys after the query.
    pub causal: bool,
    /// Fused or reference computation.
    #[module(skip)]
    pub path: AttentionPath,
}

impl DiffAttention {
    /// Build from a checked config (see [`AttentionConfig::init_differential`]).
    pub(crate) fn new(c: &AttentionConfig, device: &Device) -> Result<Self, AttentionError> {
        let head_dim = c.check()?;
        let d = c.d_model;
        let lin = |bias| LinearConfig::new(d, d).with_bias(bias).init(device);
        let lambda = || Initializer::Normal { mean: 0.0, std: c.lambda_std }.init([head_dim], device);
        Ok(DiffAttention {
            q_proj: lin(c.qkv_bias),
            k_proj: lin(c.qkv_bias),
            v_proj: lin(c.qkv_bias),
            out_proj: lin(true),
            lambda_q1: lambda(),
            lambda_k1: lambda(),
            lambda_q2: lambda(),
            lambda_k2: lambda(),
            diff_norm: RmsNormConfig::new(2 * head_dim).with_epsilon(1e-5).init(device),
            attn_drop: DropoutConfig::new(c.attn_dropout).init(),
            proj_drop: DropoutConfig::new(c.proj_dropout).init(),
            num_heads: c.num_heads,
            head_dim,
            lambda_init: c.lambda_init,
            causal: c.causal,
            path: c.path,
        })
    }
}

impl DiffAttention {
    /// `λ = exp(Σ λq1·λk1) − exp(Σ λq2·λk2) + λ_init`, shape `[1]`. Never clamped.
    pub fn lambda_full(&self) -> Tensor<1> {
        let l1 = (self.lambda_q1.val() * self.lambda_k1.val()).sum().exp();
        let l2 = (self.lambda_q2.val() * self.lambda_k2.val()).sum().exp();
        l1 - l2 + self.lambda_init
    }

    /// Attention of `x [B, N, D]` with an optional extra mask (`true` = masked out), of shape
    /// `[B or 1, num_heads / 2 or 1, N, N]`: one per differential head (both of its maps take
    /// it) or one for all.
    pub fn forward(&self, x: Tensor<3>, mask: Option<AttnMask>) -> Tensor<3> {
        let use_reference = self.path == AttentionPath::Reference || (self.attn_drop.prob > 0.0 && x.device().is_autodiff());
        if use_reference {
            return self.forward_with_maps(x, mask).0;
        }
        self.forward_fused(x, mask)
    }

    /// The fused path: diffclip's kernel on flex (and on CubeCL backends in training, or when
    /// asked), else two `attention` calls whose value head size is `2 * head_dim`.
    pub fn forward_fused(&self, x: Tensor<3>, mask: Option<AttnMask>) -> Tensor<3> {
        let [b, n, _] = x.dims();
        let rows = self.project(x);
        #[cfg(feature = "flex")]
        if mask.is_none()
            && let Some(o) = self.attention_cpu(&rows)
        {
            return self.proj_drop.forward(crate::linear(&self.out_proj, o));
        }
        #[cfg(feature = "cube")]
        if mask.is_none()
            && let Some(o) = self.attention_gpu(&rows)
        {
            return self.proj_drop.forward(crate::linear(&self.out_proj, o));
        }
        let (q, k, v) = self.split_heads(rows);
        let (hp, hd) = (self.num_heads / 2, self.head_dim);
        // Interleaved pairing: heads 2i and 2i+1 form differential head i.
        let pair = |t: Tensor<4>, i: usize| {
            let [_, _, len, _] = t.dims();
            t.reshape([b, hp, 2, len, hd]).narrow(2, i, 1).reshape([b, hp, len, hd])
        };
        let (mask, is_causal) = fused_mask(self.causal, mask, [b, hp, n, n]);
        let options = AttentionModuleOptions {
            // 1/√hd, Burn's default: an explicit scale sends CubeCL backends to the fallback
            // that materialises the maps instead of their flash kernel.
            scale: None,
            softcap: None,
            is_causal,
        };
        let o1 = attention(pair(q.clone(), 0), pair(k.clone(), 0), v.clone(), mask.clone(), None, options);
        let o2 = attention(pair(q, 1), pair(k, 1), v, mask, None, options);
        let o = o1 - o2 * self.lambda_per_head(b, hp);
        self.finish(o, b, n)
    }

    /// The fused path as one CPU kernel on flex (inference, or training through the kernel's
    /// own backward): no head transposes, one GEMM with V per pair, the RMSNorm folded in.
    /// `None` (nothing computed) for tensors on other backends.
    #[cfg(feature = "flex")]
    fn attention_cpu(&self, (q, k, v): &(Tensor<3>, Tensor<3>, Tensor<3>)) -> Option<Tensor<3>> {
        let plain = crate::cpu::is_plain_flex(q);
        if !plain && !crate::cpu::is_autodiff_flex(q) {
            return None;
        }
        let scale = (self.head_dim as f32).powf(-0.5);
        let gamma = self.diff_norm.gamma.val();
        let (eps, out_scale) = (self.diff_norm.epsilon as f32, (1.0 - self.lambda_init) as f32);
        if plain {
            let lambda = self.lambda_full().into_scalar::<f32>();
            let combine = crate::cpu::Combine::Diff { lambda, norm: Some((eps, out_scale)) };
            return crate::cpu::attention(q, k, v, self.num_heads, scale, self.causal, combine, Some(&gamma));
        }
        let lambda = self.lambda_full();
        let diff = crate::cpu::DiffArgs { lambda: &lambda, gamma: &gamma, eps, out_scale };
        crate::cpu::attention_tracked(q, k, v, Some(diff), self.num_heads, scale, self.causal)
    }

    /// The fused path as one CubeCL op with its own backward under autodiff (training on wgpu
    /// or CUDA: no `[B, h, N, N]` maps kept), the RMSNorm folded in; for inference too when
    /// [`crate::set_gpu_inference_kernel`] is on. `None` elsewhere.
    #[cfg(feature = "cube")]
    fn attention_gpu(&self, (q, k, v): &(Tensor<3>, Tensor<3>, Tensor<3>)) -> Option<Tensor<3>> {
        let scale = (self.head_dim as f32).powf(-0.5);
        // λ and γ in one buffer: wgpu gives a kernel few storage buffers.
        let params = Tensor::cat(vec![self.lambda_full(), self.diff_norm.gamma.val()], 0);
        let (eps, out_scale) = (self.diff_norm.epsilon as f32, (1.0 - self.lambda_init) as f32);
        let diff = crate::gpu::DiffArgs { params: &params, eps, out_scale };
        crate::gpu::attention(q, k, v, Some(diff), self.num_heads, scale, self.causal)
    }

    /// The reference path: materialises both softmax maps and returns them.
    pub fn forward_with_maps(&self, x: Tensor<3>, mask: Option<AttnMask>) -> (Tensor<3>, AttentionMaps) {
        // A differential head's mask applies to both of its maps (heads 2i and 2i+1).
        let mask = mask.map(|m| match m.dims() {
            [mb, mh, mq, mk] if mh > 1 && mh == self.num_heads / 2 => {
                m.reshape([mb, mh, 1, mq, mk]).expand([mb, mh, 2, mq, mk]).reshape([mb, 2 * mh, mq, mk])
            }
            _ => m,
        });
        let mask = full_mask(self.causal, mask, x.dims()[1], &x.device());
        self.reference(x.clone(), x, mask)
    }

    /// The output `[B, 1, D]` at position `at[b]` (`[B, 1]`) of each item of `x [B, N, D]`,
    /// attending to every key (or, causal, to keys `0..=at[b]`): `forward(x, None)` gathered at
    /// `at`, without the other positions' queries, maps and output projection. For an
    /// encoder's last block, whose only use is its pooled position; any backend, with autodiff.
    ///
    /// ```no_run
    /// # use burn::tensor::{Device, Distribution, Int, Tensor};
    /// # fn run(device: Device) -> Result<(), diffclip_attention::AttentionError> {
    /// let attn = diffclip_attention::AttentionConfig::new(64, 4).init_differential(&device)?;
    /// let x = Tensor::<3>::random([2, 17, 64], Distribution::Default, &device);
    /// let at = Tensor::<2, Int>::from_ints([[16], [9]], &device); // e.g. each caption's end
    /// let pooled = attn.forward_at(x, at); // [2, 1, 64]
    /// # Ok(()) }
    /// ```
    pub fn forward_at(&self, x: Tensor<3>, at: Tensor<2, Int>) -> Tensor<3> {
        let mask = keys_after(self.causal, &at, x.dims()[1]);
        self.reference(gather_rows(x.clone(), at), x, mask).0
    }

    /// Queries from `rows [B, M, D]` against keys and values from `x [B, N, D]`, `mask`
    /// broadcast to `[B, h, M, N]`, both maps materialised: the output `[B, M, D]` and the maps.
    fn reference(&self, rows: Tensor<3>, x: Tensor<3>, mask: Option<AttnMask>) -> (Tensor<3>, AttentionMaps) {
        let ([b, m, _], n) = (rows.dims(), x.dims()[1]);
        let q = crate::linear(&self.q_proj, rows);
        let [k, v] = crate::linears([&self.k_proj, &self.v_proj], x);
        let (q, k, v) = self.split_heads((q, k, v));
        let hp = self.num_heads / 2;
        let attn = softmax_maps(q, k, self.head_dim, mask).reshape([b, hp, 2, m, n]);
        let a1 = attn.clone().narrow(2, 0, 1).reshape([b, hp, m, n]);
        let a2 = attn.narrow(2, 1, 1).reshape([b, hp, m, n]);
        let lambda = self.lambda_full();
        let diff = a1.clone() - a2.clone() * self.lambda_per_head(b, hp);
        let out = self.finish(self.attn_drop.forward(diff).matmul(v), b, m);
        let maps = AttentionMaps { first: a1, second: Some(a2), lambda: Some(lambda) };
        (out, maps)
    }

    /// λ as `[B, h/2, 1, 1]`, to multiply `[B, h/2, N, ·]` tensors with.
    ///
    /// Broadcasting `[1, 1, 1, 1]` instead makes λ's gradient one reduction over every element,
    /// and Burn 0.22.1's wgpu backend (lavapipe) returns wrong sums when one reduction spans 2^18
    /// elements or more (`docs/performance.md`); this way each reduction spans one head's map.
    fn lambda_per_head(&self, b: usize, hp: usize) -> Tensor<4> {
        self.lambda_full().reshape([1, 1, 1, 1]).expand([b, hp, 1, 1])
    }

    /// The q, k and v projections of `x`, `[B, N, D]` each.
    fn project(&self, x: Tensor<3>) -> (Tensor<3>, Tensor<3>, Tensor<3>) {
        let [q, k, v] = crate::linears([&self.q_proj, &self.k_proj, &self.v_proj], x);
        (q, k, v)
    }

    /// q, k as `[B, h, len, hd]`, v as `[B, h/2, N, 2hd]` (each keeps its own length).
    fn split_heads(&self, (q, k, v): (Tensor<3>, Tensor<3>, Tensor<3>)) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        let (h, hd) = (self.num_heads, self.head_dim);
        let heads = |t: Tensor<3>, h: usize, hd: usize| {
            let [b, len, _] = t.dims();
            t.reshape([b, len, h, hd]).swap_dims(1, 2)
        };
        (heads(q, h, hd), heads(k, h, hd), heads(v, h / 2, 2 * hd))
    }

    /// RMSNorm per head, `(1 - λ_init)` scale, heads back to `[B, N, D]`, output projection.
    fn finish(&self, o: Tensor<4>, b: usize, n: usize) -> Tensor<3> {
        let o = self.diff_norm.forward(o) * (1.0 - self.lambda_init);
        let o = o.swap_dims(1, 2).reshape([b, n, self.num_heads * self.head_dim]);
        self.proj_drop.forward(crate::linear(&self.out_proj, o))
    }
}
