//! Standard multi-head attention with separate q/k/v/out projections.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Int, Tensor};

use crate::AttentionConfig;
use crate::error::AttentionError;
use crate::queries::{gather_rows, keys_after};
use crate::mask::{AttnMask, full_mask, fused_mask};
use crate::maps::softmax_maps;
use crate::{AttentionMaps, AttentionPath};

/// Standard scaled dot-product multi-head attention. Input and output `[B, N, D]`.
///
/// ```
/// use burn::tensor::{Device, Distribution, Tensor};
/// use diffclip_attention::AttentionConfig;
/// let device = Device::flex();
/// let layer = AttentionConfig { causal: true, ..AttentionConfig::new(32, 4) }.init_standard(&device).unwrap();
/// let x = Tensor::<3>::random([1, 4, 32], Distribution::Default, &device);
/// // Causal: changing the last token leaves the earlier outputs as they were.
/// let later = x.clone().slice_assign([0..1, 3..4, 0..32], Tensor::zeros([1, 1, 32], &device));
/// let (a, b) = (layer.forward(x, None), layer.forward(later, None));
/// let gap = (a.slice([0..1, 0..3, 0..32]) - b.slice([0..1, 0..3, 0..32])).abs().max().into_scalar::<f32>();
/// assert!(gap < 1e-6, "{gap}");
/// ```
#[derive(Module, Debug)]
pub struct StandardAttention {
    /// Query projection `D -> D`, split into `num_heads` heads of `head_dim`.
    pub q_proj: Linear,
    /// Key projection `D -> D`, split like the queries.
    pub k_proj: Linear,
    /// Value projection `D -> D`, split like the queries.
    pub v_proj: Linear,
    /// Output projection `D -> D` (always with bias).
    pub out_proj: Linear,
    /// Dropout on the map (training, reference path).
    pub attn_drop: Dropout,
    /// Dropout after `out_proj` (training).
    pub proj_drop: Dropout,
    /// Head count.
    pub num_heads: usize,
    /// Size of one head.
    pub head_dim: usize,
    /// Mask keys after the query.
    pub causal: bool,
    /// Fused or reference computation.
    #[module(skip)]
    pub path: AttentionPath,
}

impl StandardAttention {
    /// Build from a checked config (see [`AttentionConfig::init_standard`]).
    pub(crate) fn new(c: &AttentionConfig, device: &Device) -> Result<Self, AttentionError> {
        let head_dim = c.check()?;
        let d = c.d_model;
        let lin = |bias| LinearConfig::new(d, d).with_bias(bias).init(device);
        Ok(StandardAttention {
            q_proj: lin(c.qkv_bias),
            k_proj: lin(c.qkv_bias),
            v_proj: lin(c.qkv_bias),
            out_proj: lin(true),
            attn_drop: DropoutConfig::new(c.attn_dropout).init(),
            proj_drop: DropoutConfig::new(c.proj_dropout).init(),
            num_heads: c.num_heads,
            head_dim,
            causal: c.causal,
            path: c.path,
        })
    }
}

impl StandardAttention {
    /// Attention of `x [B, N, D]` with an optional extra mask (`true` = masked out).
    pub fn forward(&self, x: Tensor<3>, mask: Option<AttnMask>) -> Tensor<3> {
        let use_reference = self.path == AttentionPath::Reference || (self.attn_drop.prob > 0.0 && x.device().is_autodiff());
        if use_reference {
            return self.forward_with_maps(x, mask).0;
        }
        let [b, n, _] = x.dims();
        let [q, k, v] = crate::linears([&self.q_proj, &self.k_proj, &self.v_proj], x);
        #[cfg(feature = "flex")]
        if mask.is_none() {
            let scale = (self.head_dim as f32).powf(-0.5);
            let single = crate::cpu::Combine::Single;
            let o = crate::cpu::attention(&q, &k, &v, self.num_heads, scale, self.causal, single, None)
                .or_else(|| crate::cpu::attention_tracked(&q, &k, &v, None, self.num_heads, scale, self.causal));
            if let Some(o) = o {
                return self.proj_drop.forward(crate::linear(&self.out_proj, o));
            }
        }
        // Training on wgpu / CUDA (and inference when asked): the CubeCL kernel keeps no
        // [B, h, N, N] maps for the backward.
        #[cfg(feature = "cube")]
        if mask.is_none() {
            let scale = (self.head_dim as f32).powf(-0.5);
            if let Some(o) = crate::gpu::attention(&q, &k, &v, None, self.num_heads, scale, self.causal) {
                return self.proj_drop.forward(crate::linear(&self.out_proj, o));
            }
        }
        let (q, k, v) = (self.split(q), self.split(k), self.split(v));
        let (mask, is_causal) = fused_mask(self.causal, mask, [b, self.num_heads, n, n]);
        let options = AttentionModuleOptions {
            // 1/√hd, Burn's default: an explicit scale sends CubeCL backends to the fallback
            // that materialises the maps instead of their flash kernel.
            scale: None,
            softcap: None,
            is_causal,
        };
        let o = attention(q, k, v, mask, None, options);
        self.finish(o, b, n)
    }

    /// The reference path, returning the softmax map `[B, H, N, N]`.
    pub fn forward_with_maps(&self, x: Tensor<3>, mask: Option<AttnMask>) -> (Tensor<3>, AttentionMaps) {
        let mask = full_mask(self.causal, mask, x.dims()[1], &x.device());
        self.reference(x.clone(), x, mask)
    }

    /// The output `[B, 1, D]` at each item's position `at[b]`, as
    /// [`DiffAttention::forward_at`](crate::DiffAttention::forward_at).
    pub fn forward_at(&self, x: Tensor<3>, at: Tensor<2, Int>) -> Tensor<3> {
        let mask = keys_after(self.causal, &at, x.dims()[1]);
        self.reference(gather_rows(x.clone(), at), x, mask).0
    }

    /// Queries from `rows [B, M, D]` against keys and values from `x [B, N, D]`, `mask`
    /// broadcast to `[B, H, M, N]`: the output `[B, M, D]` and the map `[B, H, M, N]`.
    fn reference(&self, rows: Tensor<3>, x: Tensor<3>, mask: Option<AttnMask>) -> (Tensor<3>, AttentionMaps) {
        let [b, m, _] = rows.dims();
        let q = self.split(crate::linear(&self.q_proj, rows));
        let [k, v] = crate::linears([&self.k_proj, &self.v_proj], x).map(|t| self.split(t));
        let attn = softmax_maps(q, k, self.head_dim, mask);
        let out = self.finish(self.attn_drop.forward(attn.clone()).matmul(v), b, m);
        (out, AttentionMaps { first: attn, second: None, lambda: None })
    }

    /// `[B, len, D]` → `[B, h, len, hd]`.
    fn split(&self, t: Tensor<3>) -> Tensor<4> {
        let [b, len, _] = t.dims();
        t.reshape([b, len, self.num_heads, self.head_dim]).swap_dims(1, 2)
    }

    fn finish(&self, o: Tensor<4>, b: usize, n: usize) -> Tensor<3> {
        let o = o.swap_dims(1, 2).reshape([b, n, self.num_heads * self.head_dim]);
        self.proj_drop.forward(crate::linear(&self.out_proj, o))
    }
}
