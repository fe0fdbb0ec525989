//! Summing the data-parallel replicas' gradients onto the main device: by copy and add, or by
//! Burn's collective `all_reduce` where the devices' runtime moves data between them itself.
//!
//! Burn 0.22.1 / CubeCL 0.11.3 have such a transport only between CUDA devices (NCCL, when
//! `libnccl` is found at run time); on wgpu, ROCm, Metal and the CubeCL CPU runtime a collective
//! panics, and the CPU backends (flex, ndarray) have none. So the collective is chosen per
//! device list, from what the runtime reports ([`GradSync::available`]), and everything else
//! keeps the copy-and-add path. Burn's `DistributedContext` (its automatic DDP gradient sync)
//! is not used: it expects one backward per device, and a data-parallel step here runs a single
//! backward through the gathered loss, which would never reach its barrier.

use std::collections::BTreeMap;

use burn::tensor::distributed::{CollectiveTensor, ReduceOperation, all_reduce};
use burn::tensor::{Device, Tensor};

use crate::{GradBuffer, TrainError};

/// How the replicas' gradients reach the main device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GradSync {
    /// Each replica's gradients are moved to the main device (through host memory where the
    /// runtime has no device transport) and added there, in replica order.
    Merge,
    /// One `all_reduce(Sum)` per parameter across the replicas' devices (NCCL on CUDA), then the
    /// main device's copy is used: no gradient passes through device 0 one replica at a time.
    AllReduce,
}

impl GradSync {
    /// The collective where `devices` (autodiff or not) can use it, [`Merge`](Self::Merge)
    /// otherwise: at least two *distinct* devices (a collective over the same device twice
    /// would wait for a rank that never joins), all on a CubeCL runtime with a device transport.
    ///
    /// ```
    /// use burn::tensor::Device;
    /// use diffclip_train::parallel::GradSync;
    /// let d = Device::flex().autodiff();
    /// assert_eq!(GradSync::available(&[d.clone(), d]), GradSync::Merge);
    /// ```
    pub fn available(devices: &[Device]) -> Self {
        let distinct = devices.iter().enumerate().all(|(i, d)| !devices[..i].contains(d));
        if devices.len() >= 2 && distinct && devices.iter().all(has_device_transport) {
            Self::AllReduce
        } else {
            Self::Merge
        }
    }

    /// `requested` if `devices` allow it, else a configuration error saying why not.
    pub(crate) fn check(requested: Self, devices: &[Device]) -> Result<Self, TrainError> {
        if requested == Self::AllReduce && Self::available(devices) != Self::AllReduce {
            return Err(TrainError::Config(format!(
                "all_reduce needs two or more distinct devices whose runtime moves data between them (CUDA with NCCL); {devices:?} have no such transport"
            )));
        }
        Ok(requested)
    }
}

/// Whether `device`'s runtime has a transport between its devices (Burn's collectives work).
fn has_device_transport(device: &Device) -> bool {
    #[cfg(feature = "cube")]
    if let burn::backend::DispatchDevice::Cube(cube) = device.clone().inner().as_dispatch() {
        return cube.client().has_device_transport();
    }
    let _ = device;
    false
}

/// Each parameter's gradient from every replica (`None` where a replica has none: only the
/// master gets `logit_scale`'s, and a replica with an empty shard gets nothing).
type Aligned = BTreeMap<String, Vec<Option<Tensor<1>>>>;

fn align(replicas: Vec<GradBuffer>) -> Aligned {
    let count = replicas.len();
    let mut out = Aligned::new();
    for (i, buffer) in replicas.into_iter().enumerate() {
        for (key, g) in buffer.grads {
            out.entry(key).or_insert_with(|| vec![None; count])[i] = Some(g);
        }
    }
    out
}

/// The sum over replicas of each parameter's gradient, on `devices[0]` (the inner, non-autodiff
/// devices, one per replica in `replicas`' order).
pub(crate) fn sum_replicas(sync: GradSync, replicas: Vec<GradBuffer>, devices: &[Device]) -> GradBuffer {
    let aligned = align(replicas);
    let grads = match sync {
        GradSync::Merge => aligned
            .into_iter()
            .map(|(key, parts)| {
                let sum = parts
                    .into_iter()
                    .flatten()
                    .map(|g| if g.device() == devices[0] { g } else { g.to_device(&devices[0]) })
                    .reduce(|a, b| a + b)
                    .expect("a key comes from at least one replica");
                (key, sum)
            })
            .collect(),
        GradSync::AllReduce => all_reduced(aligned, devices),
    };
    GradBuffer { grads }
}

/// Every parameter all-reduced across `devices`, main device's copies returned. The collectives
/// are issued in key order on every device (NCCL pairs them by order), then each device's
/// collective stream is fenced once, through its last tensor: a fence covers everything issued
/// on that device before it.
fn all_reduced(aligned: Aligned, devices: &[Device]) -> BTreeMap<String, Tensor<1>> {
    let group = devices.to_vec();
    let mut pending: Vec<Vec<(String, CollectiveTensor<1>)>> = devices.iter().map(|_| Vec::new()).collect();
    for (key, parts) in aligned {
        let len = parts.iter().flatten().next().expect("a key comes from at least one replica").dims()[0];
        for (i, part) in parts.into_iter().enumerate() {
            let g = part.unwrap_or_else(|| Tensor::zeros([len], &devices[i]));
            pending[i].push((key.clone(), all_reduce(g, ReduceOperation::Sum, group.clone())));
        }
    }
    let mut main = BTreeMap::new();
    for (i, mut issued) in pending.into_iter().enumerate() {
        let Some((last_key, last)) = issued.pop() else { continue };
        let last = last.resolve();
        if i == 0 {
            for (key, c) in issued {
                // SAFETY: `resolve` above ran this device's `sync_collective` after all of
                // these were issued on it.
                main.insert(key, unsafe { c.assume_resolved() });
            }
            main.insert(last_key, last);
        }
    }
    main
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffer(entries: &[(&str, &[f32])], device: &Device) -> GradBuffer {
        let grads = entries.iter().map(|(k, v)| (k.to_string(), Tensor::<1>::from_floats(*v, device))).collect();
        GradBuffer { grads }
    }

    #[test]
    fn missing_gradients_are_aligned_by_key_and_replica() {
        let d = Device::flex();
        let a = buffer(&[("w", &[1.0, 2.0]), ("logit_scale", &[0.5])], &d);
        let b = buffer(&[("w", &[3.0, 4.0])], &d);
        let aligned = align(vec![a, GradBuffer::default(), b]);
        assert_eq!(aligned.keys().collect::<Vec<_>>(), ["logit_scale", "w"]);
        let present = |k: &str| aligned[k].iter().map(Option::is_some).collect::<Vec<_>>();
        assert_eq!(present("w"), [true, false, true]);
        assert_eq!(present("logit_scale"), [true, false, false]);
    }

    #[test]
    fn merging_adds_each_parameter_over_the_replicas_that_have_it() {
        let d = Device::flex();
        let a = buffer(&[("w", &[1.0, 2.0]), ("logit_scale", &[0.5])], &d);
        let b = buffer(&[("w", &[3.0, 4.0])], &d);
        let sum = sum_replicas(GradSync::Merge, vec![a, GradBuffer::default(), b], &[d.clone(), d.clone(), d]);
        let values = |k: &str| sum.grads[k].clone().into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(values("w"), [4.0, 6.0]);
        assert_eq!(values("logit_scale"), [0.5]);
    }

    #[test]
    fn cpu_devices_have_no_collective() {
        let d = Device::flex();
        assert_eq!(GradSync::available(std::slice::from_ref(&d)), GradSync::Merge, "one device");
        assert_eq!(GradSync::available(&[d.clone(), d.clone()]), GradSync::Merge, "the same device twice");
        let (other, device) = diffclip_testkit::other_device();
        let pair = [d.clone(), device];
        assert_eq!(GradSync::available(&pair), GradSync::Merge, "flex and {other} have no transport");
        let err = GradSync::check(GradSync::AllReduce, &pair).unwrap_err();
        assert!(err.to_string().contains("transport"), "{err}");
        assert_eq!(GradSync::check(GradSync::Merge, &pair).unwrap(), GradSync::Merge);
    }
}
