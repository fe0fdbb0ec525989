//! AdamW with decoupled weight decay applied only to matrices (≥ 2-D parameters), as in the
//! paper's recipe: norm gains, biases, λ vectors and `logit_scale` (all 1-D) are not decayed.
//! Gradients are gathered by parameter path, which also keys the optimizer state, so state
//! survives a save/load round trip of the model.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Gradients, Tensor};
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// AdamW hyper-parameters: the paper's betas 0.9/0.98 and wd 0.5, and open_clip's eps 1e-6
/// (the SLIP code the paper trained with uses eps 1e-8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamWConfig {
    /// Decay rate of the first-moment (mean) estimate.
    pub beta1: f64,
    /// Decay rate of the second-moment (uncentred variance) estimate.
    pub beta2: f64,
    /// Added to the square root of the second moment, for numerical stability.
    pub eps: f64,
    /// Decoupled weight decay coefficient (multiplied by the learning rate), matrices only.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self { beta1: 0.9, beta2: 0.98, eps: 1e-6, weight_decay: 0.5 }
    }
}

/// First and second moments of one parameter, flattened.
#[derive(Debug, Clone)]
pub struct Moments {
    /// First moment (running mean of the gradient), one value per parameter element.
    pub m: Tensor<1>,
    /// Second moment (running mean of the squared gradient), one value per parameter element.
    pub v: Tensor<1>,
}

/// Summed gradients by parameter path (flattened), for accumulation over micro-batches.
#[derive(Debug, Default, Clone)]
pub struct GradBuffer {
    /// Flattened gradient sums keyed by parameter path (e.g. `visual.blocks.0.attn.q_proj.weight`).
    pub grads: BTreeMap<String, Tensor<1>>,
}

impl GradBuffer {
    /// Add the gradients of `model`'s parameters from one backward pass.
    pub fn accumulate<M: Module>(&mut self, model: &M, grads: &Gradients) {
        let mut v = Collect { path: Vec::new(), grads, out: &mut self.grads };
        model.visit(&mut v);
    }

    /// Global L2 norm of the buffered gradients. The per-parameter sums of squares stay on the
    /// device and are read back together: one device read per step, not one per parameter
    /// (each read is a round trip on a GPU). They are added in f64, in key order. On flex each
    /// sum is one pass over the gradient (no squared copy), accumulated in f64.
    pub fn norm(&self) -> f64 {
        let mut total = 0.0f64;
        let mut sums: Vec<Tensor<1>> = Vec::new();
        for g in self.grads.values() {
            #[cfg(feature = "flex")]
            if let Some(s) = crate::adamw_cpu::sum_of_squares(g) {
                total += s;
                continue;
            }
            sums.push(sum_in_blocks(g.clone().square()));
        }
        if !sums.is_empty() {
            let sums = Tensor::cat(sums, 0).into_data().convert::<f32>();
            total += sums.as_slice::<f32>().expect("converted to f32").iter().map(|&s| s as f64).sum::<f64>();
        }
        total.sqrt()
    }

    /// Multiply every gradient by `factor` (clipping, averaging accumulated micro-batches);
    /// a factor of 1 leaves them as they are without touching them. Each gradient is moved
    /// into the product, so a backend that can (flex) scales it in place.
    pub fn scale(&mut self, factor: f64) {
        if factor == 1.0 {
            return;
        }
        self.grads = std::mem::take(&mut self.grads).into_iter().map(|(key, g)| (key, g * factor)).collect();
    }

    /// The factor that clips gradients of global norm `norm` to at most `max`
    /// (`max / (norm + 1e-6)`, as PyTorch's `clip_grad_norm_`), or 1 when they are within it
    /// or there is no limit: the `grad_scale` of [`AdamW::step_scaled`].
    ///
    /// ```
    /// use diffclip_train::GradBuffer;
    /// assert_eq!(GradBuffer::clip_factor(0.5, Some(1.0)), 1.0);
    /// assert!((GradBuffer::clip_factor(4.0, Some(1.0)) - 0.25).abs() < 1e-6);
    /// ```
    pub fn clip_factor(norm: f64, max: Option<f64>) -> f64 {
        match max {
            Some(max) if norm > max => max / (norm + 1e-6),
            _ => 1.0,
        }
    }

    /// No gradient has been buffered.
    pub fn is_empty(&self) -> bool {
        self.grads.is_empty()
    }

    /// Add `other`'s gradients into this buffer by parameter path, moving them to `device`
    /// first (summing the replicas of a data-parallel step).
    pub fn merge(&mut self, other: GradBuffer, device: &burn::tensor::Device) {
        for (key, g) in other.grads {
            let g = if &g.device() == device { g } else { g.to_device(device) };
            let sum = match self.grads.remove(&key) {
                Some(prev) => prev + g,
                None => g,
            };
            self.grads.insert(key, sum);
        }
    }
}

/// Elements per row of [`sum_in_blocks`]'s first stage.
const BLOCK: usize = 4096;

/// `x.sum()` as rows of [`BLOCK`] elements summed first, then the row sums: no single
/// reduction spans more than 2^18 elements. Burn 0.22.1's wgpu backend on Mesa's lavapipe
/// returns wrong sums above that (with autotune on, `sum()` of 2^20 elements came out at a
/// quarter of the true value), and a parameter's gradient can be far larger (the token
/// embedding: 49 408 × width).
fn sum_in_blocks(x: Tensor<1>) -> Tensor<1> {
    let n = x.dims()[0];
    let full = n / BLOCK * BLOCK;
    if full == 0 {
        return x.sum();
    }
    let rows = x.clone().narrow(0, 0, full).reshape([full / BLOCK, BLOCK]).sum_dim(1).reshape([full / BLOCK]);
    let head = sum_in_blocks(rows);
    if full == n { head } else { head + x.narrow(0, full, n - full).sum() }
}

struct Collect<'a> {
    path: Vec<String>,
    grads: &'a Gradients,
    out: &'a mut BTreeMap<String, Tensor<1>>,
}

impl ModuleVisitor for Collect<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(g) = param.val().grad(self.grads) else { return };
        let n = g.shape().num_elements();
        let g = g.reshape([n]);
        let key = self.path.join(".");
        let sum = match self.out.remove(&key) {
            Some(prev) => prev + g,
            None => g,
        };
        self.out.insert(key, sum);
    }
}

/// AdamW state: step count and moments by parameter path.
#[derive(Debug, Clone, Default)]
pub struct AdamW {
    /// Hyper-parameters.
    pub config: AdamWConfig,
    /// Updates done so far (drives the bias correction).
    pub step: u64,
    /// Moments keyed by parameter path, created on a parameter's first update.
    pub moments: BTreeMap<String, Moments>,
}

impl AdamW {
    /// A fresh optimizer: step 0, no moments.
    pub fn new(config: AdamWConfig) -> Self {
        Self { config, step: 0, moments: BTreeMap::new() }
    }

    /// One update of `model` with learning rate `lr` from the buffered gradients.
    ///
    /// Never panics on state that does not fit the model: a moment whose length differs from
    /// its parameter's (possible only when `moments` was edited by hand, since
    /// [`load_training_checkpoint`](crate::load_training_checkpoint) refuses such files) is
    /// restarted from zero, and a gradient of the wrong length leaves its parameter as it
    /// is. [`try_step`](Self::try_step) reports both as an error instead.
    pub fn step<M: Module>(&mut self, model: M, lr: f64, grads: &GradBuffer) -> M {
        self.step_scaled(model, lr, grads, 1.0)
    }

    /// [`step`](Self::step) with every gradient multiplied by `grad_scale` (global-norm
    /// clipping): the same update as [`GradBuffer::scale`] followed by `step`, without a pass
    /// over the gradients to scale them first.
    ///
    /// ```
    /// # use burn::tensor::{Device, Tensor};
    /// # use diffclip_train::{AdamW, AdamWConfig, GradBuffer};
    /// # fn f(model: diffclip_clip::Clip, grads: GradBuffer) -> diffclip_clip::Clip {
    /// let mut optim = AdamW::new(AdamWConfig::default());
    /// let clip = GradBuffer::clip_factor(grads.norm(), Some(1.0));
    /// optim.step_scaled(model, 5e-4, &grads, clip)
    /// # }
    /// ```
    pub fn step_scaled<M: Module>(&mut self, model: M, lr: f64, grads: &GradBuffer, grad_scale: f64) -> M {
        self.step += 1;
        let mut mapper = Update { path: Vec::new(), lr, grad_scale, opt: self, grads };
        model.map(&mut mapper)
    }

    /// [`step`](Self::step), after checking that every buffered gradient and every moment
    /// has exactly as many elements as the parameter it belongs to. On error nothing is
    /// changed (neither the model nor the optimizer state).
    pub fn try_step<M: Module>(&mut self, model: M, lr: f64, grads: &GradBuffer) -> Result<M, TrainError> {
        self.check(&model, grads)?;
        Ok(self.step(model, lr, grads))
    }

    /// Check the optimizer state and `grads` against `model`'s parameters (see
    /// [`try_step`](Self::try_step)); moments for parameters the model lacks are refused too.
    pub fn check<M: Module>(&self, model: &M, grads: &GradBuffer) -> Result<(), TrainError> {
        let sizes = parameter_sizes(model);
        let bad = |message: String| TrainError::Resume { path: "<optimizer>".into(), message };
        for (key, g) in &grads.grads {
            let Some(&n) = sizes.get(key) else { return Err(bad(format!("gradient for '{key}', which the model has no parameter for"))) };
            let len = g.dims()[0];
            if len != n {
                return Err(bad(format!("gradient for '{key}' has {len} elements, but the parameter has {n}")));
            }
        }
        for (key, mom) in &self.moments {
            let Some(&n) = sizes.get(key) else { return Err(bad(format!("optimizer state for '{key}', which the model has no parameter for"))) };
            for (what, len) in [("m", mom.m.dims()[0]), ("v", mom.v.dims()[0])] {
                if len != n {
                    return Err(bad(format!("optimizer state optim.{what}.{key} has {len} elements, but the parameter has {n}")));
                }
            }
        }
        Ok(())
    }
}

/// Number of elements of every float parameter of `model`, keyed by the path the optimizer
/// state and [`GradBuffer`] use.
pub fn parameter_sizes<M: Module>(model: &M) -> BTreeMap<String, usize> {
    let mut v = Sizes { path: Vec::new(), out: BTreeMap::new() };
    model.visit(&mut v);
    v.out
}

struct Sizes {
    path: Vec<String>,
    out: BTreeMap<String, usize>,
}

impl ModuleVisitor for Sizes {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.out.insert(self.path.join("."), param.lazy_shape().num_elements());
    }
}

struct Update<'a> {
    path: Vec<String>,
    lr: f64,
    grad_scale: f64,
    opt: &'a mut AdamW,
    grads: &'a GradBuffer,
}

impl ModuleMapper for Update<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let key = self.path.join(".");
        let Some(g) = self.grads.grads.get(&key) else { return param };
        // A gradient that does not fit its parameter is skipped, not a panic (see `step`).
        if g.dims()[0] != param.lazy_shape().num_elements() {
            return param;
        }
        let (id, tensor, mapper) = param.consume();
        let require_grad = tensor.is_require_grad();
        let dims = tensor.dims();
        let n: usize = dims.iter().product();
        let p = tensor.inner().reshape([n]);
        let c = &self.opt.config;
        let (b1, b2) = (c.beta1, c.beta2);
        let t = self.opt.step as i32;
        // A moment that does not fit its parameter is restarted rather than a panic (see `step`).
        let moments = self.opt.moments.remove(&key).filter(|s| s.m.dims()[0] == n && s.v.dims()[0] == n);
        let bc1 = 1.0 - b1.powi(t);
        let bc2 = 1.0 - b2.powi(t);
        // Decoupled decay on matrices only: 1-D tensors are gains, biases, λ and logit_scale.
        let decay = if D >= 2 { c.weight_decay } else { 0.0 };
        let moments = moments.map(|s| (s.m, s.v));
        #[cfg(feature = "flex")]
        let fused = crate::adamw_cpu::step(p, g, moments, crate::adamw_cpu::Coeffs { b1, b2, eps: c.eps, bc1, bc2, lr: self.lr, decay, grad_scale: self.grad_scale });
        #[cfg(not(feature = "flex"))]
        let fused: Result<(Tensor<1>, Tensor<1>, Tensor<1>), _> = Err((p, moments));
        let (p, m, v) = match fused {
            Ok(pmv) => pmv,
            Err((p, moments)) => {
                let g = &if self.grad_scale == 1.0 { g.clone() } else { g.clone() * self.grad_scale };
                let (m, v) = match moments {
                    Some((m, v)) => (m * b1 + g.clone() * (1.0 - b1), v * b2 + g.clone().square() * (1.0 - b2)),
                    None => (g.clone() * (1.0 - b1), g.clone().square() * (1.0 - b2)),
                };
                let denom = (v.clone() / bc2).sqrt() + c.eps;
                (p * (1.0 - self.lr * decay) - m.clone() / denom * (self.lr / bc1), m, v)
            }
        };
        self.opt.moments.insert(key, Moments { m, v });
        let mut updated = Tensor::from_inner(p.reshape(dims));
        if require_grad {
            updated = updated.require_grad();
        }
        Param::from_mapped_value(id, updated, mapper)
    }
}
