//! Resuming from a damaged training checkpoint: bytes that differ from their checksum, a value
//! no training writes or a data position past the epoch is an error naming it, never a run that
//! trains on silently.

mod common;

use burn::tensor::Device;
use common::{batcher, serial, synthetic, tiny_model};
use diffclip_train::{RunOptions, TrainConfig, Trainer};

/// `path` rewritten with `edit` applied to its tensors' bytes and metadata, as `to`, without
/// the tensors' checksums (as a checkpoint written before they existed), so that the checks
/// behind them are reached.
fn rewrite(path: &std::path::Path, to: &std::path::Path, edit: impl Fn(&str, &mut Vec<u8>, &mut std::collections::HashMap<String, String>)) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = header.metadata().clone().unwrap();
    assert!(meta.remove(diffclip_clip::checksum::CHECKSUM_KEY).is_some(), "train writes checksums");
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = st.tensors().into_iter().map(|(k, v)| (k, v.shape().to_vec(), v.data().to_vec())).collect();
    for (k, _, data) in &mut owned {
        edit(k, data, &mut meta);
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = owned.iter().map(|(k, shape, data)| (k.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data).unwrap())).collect();
    std::fs::write(to, safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
}

#[test]
fn a_damaged_checkpoint_is_refused_by_name() {
    let _serial = serial();
    let dir = diffclip_testkit::TestDir::new("train-damaged");
    let device = Device::flex().autodiff();
    device.seed(7);
    let config = TrainConfig { steps: 2, batch_size: 16, warmup_steps: 1, checkpoint_every: 2, progress: false, ..TrainConfig::default() };
    let mut t = Trainer::new(tiny_model().init(&device).unwrap(), tiny_model(), config, RunOptions { output: Some(dir.to_path_buf()), ..RunOptions::default() });
    t.fit(&synthetic(64), &batcher(), None).unwrap();
    let good = dir.join("checkpoint-latest.safetensors");
    let bad = dir.join("bad.safetensors");
    let resume = || Trainer::resume(&bad, Device::flex().autodiff(), RunOptions::default()).err().map(|e| e.to_string());

    // One bit of one weight flipped on disk: a value like any other, caught by its checksum.
    let bytes = std::fs::read(&good).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let at = |k: &str| st.tensor(k).unwrap().data().as_ptr() as usize - bytes.as_ptr() as usize;
    let names = st.names();
    let largest = names.iter().filter(|k| k.starts_with("model.")).max_by_key(|k| st.tensor(k).unwrap().data().len()).unwrap();
    let lambda = names.iter().find(|k| k.starts_with("model.") && k.ends_with("lambda_q1")).unwrap();
    for (k, byte) in [(*largest, 4 * 10), (*lambda, 0), ("optim.v.logit_scale", 0)] {
        let mut flipped = bytes.clone();
        flipped[at(k) + byte] ^= 1;
        std::fs::write(&bad, &flipped).unwrap();
        let e = resume().expect("a flipped bit must be refused");
        assert!(e.contains("bad.safetensors") && e.contains(&format!("tensor '{k}': its bytes do not match the checksum")), "{e}");
    }
    // A tensor whose checksum was removed, as an edit of the header would leave it.
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize]).unwrap();
    let sums = header["__metadata__"][diffclip_clip::checksum::CHECKSUM_KEY].as_str().unwrap().to_string();
    let mut sums: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&sums).unwrap();
    sums.remove("model.logit_scale").unwrap();
    header["__metadata__"][diffclip_clip::checksum::CHECKSUM_KEY] = serde_json::Value::String(serde_json::to_string(&sums).unwrap());
    let mut json = serde_json::to_vec(&header).unwrap();
    json.resize(json.len().next_multiple_of(8), b' ');
    let data = &bytes[8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize..];
    std::fs::write(&bad, [&(json.len() as u64).to_le_bytes()[..], &json, data].concat()).unwrap();
    let e = resume().expect("a tensor without its checksum must be refused");
    assert!(e.contains("tensor 'model.logit_scale' has no checksum"), "{e}");
    // One digit of the stored step changed in place: the metadata's checksum tells.
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let at = bytes[8..8 + len].windows(8).position(|w| w == b"step\\\":2").expect("the stored step") + 8 + 7;
    let mut edited = bytes.clone();
    edited[at] = b'7';
    std::fs::write(&bad, &edited).unwrap();
    let e = resume().expect("an edited step must be refused");
    assert!(e.contains("bad.safetensors") && e.contains("its metadata (settings beside the tensors) does not match the checksum"), "{e}");
    // The good file resumes (its checksums hold).
    Trainer::resume(&good, Device::flex().autodiff(), RunOptions::default()).unwrap();

    // A NaN in a first moment (a row no batch looks up would keep the loss finite).
    rewrite(&good, &bad, |k, data, _| {
        if k == "optim.m.text.token_embedding.weight" {
            data[40..44].copy_from_slice(&f32::NAN.to_le_bytes());
        }
    });
    let e = resume().expect("a NaN moment must be refused");
    assert!(e.contains("bad.safetensors") && e.contains("tensor 'optim.m.text.token_embedding.weight' holds NaN at element 10"), "{e}");
    // A negative second moment (a mean of squares).
    rewrite(&good, &bad, |k, data, _| {
        if k == "optim.v.logit_scale" {
            data[0..4].copy_from_slice(&(-1.0f32).to_le_bytes());
        }
    });
    let e = resume().expect("a negative second moment must be refused");
    assert!(e.contains("tensor 'optim.v.logit_scale' holds -1 at element 0"), "{e}");
    // Stored settings no run could have are refused on resuming, naming the field.
    rewrite(&good, &bad, |_, _, meta| {
        let mut training: serde_json::Value = serde_json::from_str(&meta["diffclip_training"]).unwrap();
        training["train"]["batch_size"] = 0.into();
        meta.insert("diffclip_training".into(), training.to_string());
    });
    let e = resume().expect("must be refused");
    assert!(e.contains("bad.safetensors") && e.contains("stored training settings are invalid: batch_size (--batch-size) must be at least 2"), "{e}");
    // Counters no run writes: an epoch of 2^64 - 1, more samples than the steps hold.
    for (field, value) in [("epoch", u64::MAX), ("samples_seen", 33)] {
        rewrite(&good, &bad, |_, _, meta| {
            let mut training: serde_json::Value = serde_json::from_str(&meta["diffclip_training"]).unwrap();
            training["state"][field] = value.into();
            meta.insert("diffclip_training".into(), training.to_string());
        });
        let e = resume().expect("must be refused");
        assert!(e.contains("bad.safetensors") && e.contains("which no run writes: the checkpoint is damaged"), "{field}: {e}");
    }
    // A data position past the epoch: resumed, then refused before any step.
    rewrite(&good, &bad, |_, _, meta| {
        let mut training: serde_json::Value = serde_json::from_str(&meta["diffclip_training"]).unwrap();
        training["state"]["position"] = (1u64 << 40).into();
        training["train"]["steps"] = 4.into();
        meta.insert("diffclip_training".into(), training.to_string());
    });
    let mut t = Trainer::resume(&bad, Device::flex().autodiff(), RunOptions::default()).unwrap();
    let e = t.fit(&synthetic(64), &batcher(), None).expect_err("a position past the epoch must be refused").to_string();
    assert!(e.contains("data position 1099511627776 is past the dataset's 64 samples"), "{e}");
    assert_eq!(t.state.step, 2, "no step was taken");
}
