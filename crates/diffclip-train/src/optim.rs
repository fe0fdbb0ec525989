//! AdamW with decoupled weight decay applied only to matrices (≥ 2-D parameters), as in the
//! paper's recipe: norm gains, biases, λ vectors and `logit_scale` (all 1-D) are not decayed.
//! Gradients are gathered by parameter path, which also keys the optimizer state, so state
//! survives a save/load round trip of the model.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Gradients, Tensor};
use serde::{Deserialize, Serialize};

/// AdamW hyper-parameters (paper defaults: lr 5e-4, betas 0.9/0.98, eps 1e-6, wd 0.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
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
    pub m: Tensor<1>,
    pub v: Tensor<1>,
}

/// Summed gradients by parameter path (flattened), for accumulation over micro-batches.
#[derive(Debug, Default, Clone)]
pub struct GradBuffer {
    pub grads: BTreeMap<String, Tensor<1>>,
}

impl GradBuffer {
    /// Add the gradients of `model`'s parameters from one backward pass.
    pub fn accumulate<M: Module>(&mut self, model: &M, grads: &Gradients) {
        let mut v = Collect { path: Vec::new(), grads, out: &mut self.grads };
        model.visit(&mut v);
    }

    /// Global L2 norm of the buffered gradients.
    pub fn norm(&self) -> f64 {
        let mut total = 0.0f64;
        for g in self.grads.values() {
            total += g.clone().square().sum().into_scalar::<f32>() as f64;
        }
        total.sqrt()
    }

    /// Multiply every gradient by `factor` (clipping, averaging accumulated micro-batches).
    pub fn scale(&mut self, factor: f64) {
        for g in self.grads.values_mut() {
            *g = g.clone() * factor;
        }
    }

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
    pub config: AdamWConfig,
    pub step: u64,
    pub moments: BTreeMap<String, Moments>,
}

impl AdamW {
    pub fn new(config: AdamWConfig) -> Self {
        Self { config, step: 0, moments: BTreeMap::new() }
    }

    /// One update of `model` with learning rate `lr` from the buffered gradients.
    pub fn step<M: Module>(&mut self, model: M, lr: f64, grads: &GradBuffer) -> M {
        self.step += 1;
        let mut mapper = Update { path: Vec::new(), lr, opt: self, grads };
        model.map(&mut mapper)
    }
}

struct Update<'a> {
    path: Vec<String>,
    lr: f64,
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
        let (id, tensor, mapper) = param.consume();
        let require_grad = tensor.is_require_grad();
        let dims = tensor.dims();
        let n: usize = dims.iter().product();
        let p = tensor.inner().reshape([n]);
        let c = &self.opt.config;
        let (b1, b2) = (c.beta1, c.beta2);
        let t = self.opt.step as i32;
        let (m, v) = match self.opt.moments.remove(&key) {
            Some(s) => (s.m * b1 + g.clone() * (1.0 - b1), s.v * b2 + g.clone().square() * (1.0 - b2)),
            None => (g.clone() * (1.0 - b1), g.clone().square() * (1.0 - b2)),
        };
        let bc1 = 1.0 - b1.powi(t);
        let bc2 = 1.0 - b2.powi(t);
        let denom = (v.clone() / bc2).sqrt() + c.eps;
        // Decoupled decay on matrices only: 1-D tensors are gains, biases, λ and logit_scale.
        let decay = if D >= 2 { c.weight_decay } else { 0.0 };
        let p = p * (1.0 - self.lr * decay) - m.clone() / denom * (self.lr / bc1);
        self.opt.moments.insert(key, Moments { m, v });
        let mut updated = Tensor::from_inner(p.reshape(dims));
        if require_grad {
            updated = updated.require_grad();
        }
        Param::from_mapped_value(id, updated, mapper)
    }
}
