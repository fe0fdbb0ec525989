//! Data parallelism over several devices in one process.
//!
//! One global batch is split into shards, one per device. Each device holds a replica of the
//! model (a [`Module::fork`] of the master weights), encodes its shard, and the image and text
//! features of every replica are gathered onto the main device *with their autodiff graph*
//! ([`gather_features`], open_clip's `gather_with_grad`), so the contrastive loss sees the whole
//! global batch as negatives. One backward pass through the gathered loss sends each replica the
//! gradient of its own shard; the per-replica gradients are then moved to the main device and
//! summed by parameter path in a [`GradBuffer`], the master takes one AdamW step, and the next
//! step forks the new weights to the replicas again (the broadcast).
//!
//! The gradients are *summed*, not averaged: the loss is the mean over the global batch, so each
//! replica's gradient already carries only its shard's share of it. (open_clip averages because
//! every rank computes the full global loss and `all_gather`'s backward sums the copies; the
//! result is the same full-batch gradient.) A data-parallel step is therefore the single-device
//! step on the full batch, up to float round-off (tested on CPU).
//!
//! The gather uses [`Tensor::to_device`], which Burn 0.22 differentiates (also across
//! backends, e.g. flex ↔ wgpu through host memory, tested). The gradient sum is [`GradSync`]: Burn's
//! collective `all_reduce` where the devices' runtime has a transport between them (CUDA with
//! NCCL), otherwise copies to the main device added there (every CPU backend, wgpu, ROCm).
//!
//! Mixed precision works as on one device: each replica computes from the f32 weights it was
//! forked from taken to bf16 / f16 by `Clip::with_precision` (products of the f32 weights on the
//! CPU, a cast elsewhere, whose recorded casts bring the gradients back to the f32 weights).

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use diffclip_clip::{Clip, Precision};
use diffclip_clip::loss::{MAX_LOGIT_SCALE, clip_loss_normalized, siglip_loss};

pub use crate::grad_sync::GradSync;
use crate::{AdamW, GradBuffer, LossKind, TrainError};

/// Concatenate per-replica features `[B_i, E]` onto `device` as `[Σ B_i, E]`, keeping the
/// autodiff graph: the gradient of each row flows back to the replica (and device) it came from.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// let device = Device::flex().autodiff();
/// let a = Tensor::<2>::ones([2, 4], &device).require_grad();
/// let b = Tensor::<2>::ones([3, 4], &device).require_grad();
/// let all = diffclip_train::parallel::gather_features(vec![a.clone(), b.clone()], &device);
/// assert_eq!(all.dims(), [5, 4]);
/// let grads = (all * 2.0).sum().backward();
/// assert_eq!(b.grad(&grads).unwrap().sum().into_scalar::<f32>(), 24.0);
/// ```
pub fn gather_features(parts: Vec<Tensor<2>>, device: &Device) -> Tensor<2> {
    let parts: Vec<Tensor<2>> = parts
        .into_iter()
        .map(|p| {
            if &p.device() == device {
                p
            } else {
                p.to_device(device)
            }
        })
        .collect();
    Tensor::cat(parts, 0)
}

/// Contrastive loss of gathered features with the master's `logit_scale` (clamped to 100) and,
/// for SigLIP, its bias (0 for a model without one; [`Trainer`](crate::Trainer) refuses to
/// train such a model with SigLIP, since it cannot learn the bias).
pub fn contrastive_loss(
    master: &Clip,
    kind: LossKind,
    image: Tensor<2>,
    text: Tensor<2>,
) -> Tensor<1> {
    let scale = master.logit_scale_exp().clamp_max(MAX_LOGIT_SCALE);
    match kind {
        LossKind::Siglip => {
            let bias = master.logit_bias.as_ref().map_or_else(|| Tensor::zeros([1], &scale.device()), |b| b.val());
            siglip_loss(image, text, scale, bias)
        }
        LossKind::Clip => clip_loss_normalized(image, text, scale),
    }
}

/// Sizes of `n` samples split over `k` shards as evenly as possible (larger shards first).
///
/// ```
/// assert_eq!(diffclip_train::parallel::shard_sizes(10, 3), vec![4, 3, 3]);
/// ```
pub fn shard_sizes(n: usize, k: usize) -> Vec<usize> {
    let k = k.max(1);
    (0..k).map(|i| n / k + usize::from(i < n % k)).collect()
}

/// Replicas of one model on several autodiff devices; `devices[0]` is the main device, which
/// holds the master weights, the optimizer state and the loss.
#[derive(Debug, Clone)]
pub struct DataParallel {
    devices: Vec<Device>,
    sync: GradSync,
}

/// What one data-parallel forward/backward produced.
#[derive(Debug, Clone)]
pub struct ParallelGrads {
    /// The loss value (already multiplied by the requested factor).
    pub loss: f32,
    /// Gradients summed over replicas, by parameter path, on the main device.
    pub grads: GradBuffer,
}

impl DataParallel {
    /// Data parallelism over `devices` (at least one; each must be an autodiff device, e.g.
    /// `Device::wgpu(..).autodiff()`). The same device may appear twice (two replicas on it).
    /// Gradients are summed with [`GradSync::available`]'s choice for these devices.
    pub fn new(devices: Vec<Device>) -> Result<Self, TrainError> {
        if devices.is_empty() {
            return Err(TrainError::Config(
                "data parallelism needs at least one device".into(),
            ));
        }
        if let Some(d) = devices.iter().find(|d| !d.is_autodiff()) {
            return Err(TrainError::Config(format!(
                "device {d:?} is not an autodiff device (call .autodiff())"
            )));
        }
        let sync = GradSync::available(&devices);
        Ok(Self { devices, sync })
    }

    /// Sum the gradients with `sync` instead: [`GradSync::Merge`] always works;
    /// [`GradSync::AllReduce`] is a configuration error where the devices have no transport.
    pub fn with_grad_sync(mut self, sync: GradSync) -> Result<Self, TrainError> {
        self.sync = GradSync::check(sync, &self.devices)?;
        Ok(self)
    }

    /// How the replicas' gradients are summed.
    pub fn grad_sync(&self) -> GradSync {
        self.sync
    }

    /// The devices, main first.
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// The main device.
    pub fn main(&self) -> &Device {
        &self.devices[0]
    }

    /// The replicas of `master` (on the main device): the master itself first, then forks of
    /// its current weights onto the other devices, each with its own autodiff leaves.
    pub fn replicate(&self, master: &Clip) -> Vec<Clip> {
        let mut out = vec![master.clone()];
        out.extend(self.devices[1..].iter().map(|d| master.clone().fork(d)));
        out
    }

    /// Forward the global batch (`images`/`texts` on any device) split across the replicas in
    /// `precision` (as [`TrainConfig::precision`](crate::TrainConfig::precision) says; the
    /// features are f32 either way), gather the features on the main device, compute the loss
    /// there (times `factor`, e.g. `1 / accum_steps`, or an f16 loss scale), backpropagate,
    /// and sum the replicas' gradients by parameter path. A `precision` the devices lack is a
    /// configuration error; a batch the model cannot take ([`Clip::check_pairs`]) is
    /// [`TrainError::Input`].
    pub fn loss_and_grads(
        &self,
        master: &Clip,
        images: Tensor<4>,
        texts: Tensor<2, Int>,
        kind: LossKind,
        factor: f64,
        precision: Precision,
    ) -> Result<ParallelGrads, TrainError> {
        master.check_pairs(&images.dims(), &texts.dims())?;
        let n = images.dims()[0];
        let main = self.main();
        let mut replicas: Vec<Clip> = Vec::with_capacity(self.devices.len());
        let mut image_parts = Vec::with_capacity(self.devices.len());
        let mut text_parts = Vec::with_capacity(self.devices.len());
        let mut start = 0;
        for (i, (device, size)) in self
            .devices
            .iter()
            .zip(shard_sizes(n, self.devices.len()))
            .enumerate()
        {
            // Fork after the master's own forward: a model built with `init_lazy` draws a
            // parameter on its first read, so this keeps the draw order (hence the random
            // weights) of a single-device run with the same seed.
            let replica = if i == 0 {
                master.clone()
            } else {
                master.clone().fork(device)
            };
            if size > 0 {
                let imgs = images.clone().narrow(0, start, size).to_device(device);
                let txts = texts.clone().narrow(0, start, size).to_device(device);
                start += size;
                let model = replica.clone().with_precision(precision)?;
                image_parts.push(model.encode_image(imgs));
                text_parts.push(model.encode_text(txts));
            }
            replicas.push(replica);
        }
        let image = gather_features(image_parts, main);
        let text = gather_features(text_parts, main);
        let loss = contrastive_loss(master, kind, image, text) * factor;
        let value = loss.clone().into_scalar::<f32>();
        let grads = loss.backward();
        let per_replica = replicas
            .iter()
            .map(|replica| {
                let mut g = GradBuffer::default();
                g.accumulate(replica, &grads);
                g
            })
            .collect();
        let inner: Vec<Device> = self.devices.iter().map(|d| d.clone().inner()).collect();
        let grads = crate::grad_sync::sum_replicas(self.sync, per_replica, &inner);
        Ok(ParallelGrads { loss: value, grads })
    }

    /// One full optimizer step on a global batch in f32: [`loss_and_grads`](Self::loss_and_grads),
    /// optional global-norm clipping, AdamW on the master, `logit_scale` clamped to
    /// `[0, ln 100]`. Returns the updated master, the loss and the gradient norm before clipping.
    /// A batch the model cannot take is an error before anything runs (`master` is consumed:
    /// clone it, a cheap copy of handles, to keep it).
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &self,
        master: Clip,
        optim: &mut AdamW,
        lr: f64,
        images: Tensor<4>,
        texts: Tensor<2, Int>,
        kind: LossKind,
        grad_clip: Option<f64>,
    ) -> Result<(Clip, f32, f64), TrainError> {
        let ParallelGrads { loss, grads } = self.loss_and_grads(&master, images, texts, kind, 1.0, Precision::F32)?;
        let norm = grads.norm();
        let clip = GradBuffer::clip_factor(norm, grad_clip);
        let model = crate::trainer::clamp_logit_scale(optim.step_scaled(master, lr, &grads, clip));
        Ok((model, loss, norm))
    }
}
