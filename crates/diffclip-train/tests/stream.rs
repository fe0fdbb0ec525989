//! Streaming training (`Trainer::fit_stream`): same results as the map-style loop on the same
//! order, resume past consumed entries, bad entries skipped, and WebDataset shards.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use diffclip_data::datasets::{ClipDataset, ImageLoader, WebDataset, WebDatasetConfig};
use diffclip_data::preprocess::Pipeline;
use diffclip_data::synthetic::ContrastiveView;
use diffclip_data::DataError;
use common::{batcher, serial, synthetic, tiny_model};
use diffclip_train::{
    ClipStream, SampleStream, TrainConfig, TrainError, Trainer, WdsStream, epoch_order, RunOptions};

fn data() -> diffclip_data::synthetic::ContrastiveView {
    synthetic(80)
}

fn trainer(steps: u64, out: Option<PathBuf>) -> Trainer {
    trainer_with(steps, RunOptions { output: out, ..RunOptions::default() })
}

fn trainer_with(steps: u64, options: RunOptions) -> Trainer {
    let device = Device::flex().autodiff();
    device.seed(7);
    let model = tiny_model().init(&device).unwrap();
    let config = TrainConfig {
        steps,
        batch_size: 16,
        lr: 1e-3,
        warmup_steps: 2,
        progress: false,
        ..TrainConfig::default()
    };
    Trainer::new(model, tiny_model(), config, options)
}

/// The synthetic set streamed in the trainer's own epoch order, with every `bad_every`-th
/// entry broken.
struct Synthetic {
    data: ContrastiveView,
    seed: u64,
    bad_every: Option<usize>,
}

impl ClipStream for Synthetic {
    fn open(&self, epoch: u64, skip: usize) -> Result<SampleStream<'_>, TrainError> {
        self.data.set_epoch(epoch);
        let order = epoch_order(self.data.num_items(), self.seed, epoch);
        let bad = self.bad_every;
        Ok(Box::new(order.into_iter().enumerate().skip(skip).map(
            move |(pos, i)| match bad {
                Some(n) if pos % n == n - 1 => Err(DataError::Config(format!("broken sample {i}"))),
                _ => self.data.get_item(i),
            },
        )))
    }
}

fn tmpdir(name: &str) -> diffclip_testkit::TestDir {
    diffclip_testkit::TestDir::new(&format!("stream-{name}"))
}

#[test]
fn a_stream_in_the_map_order_trains_like_fit() {
    let _s = serial();
    let data = data();
    let map = trainer(7, None).fit(&data, &batcher(), None).unwrap();
    let stream = Synthetic {
        data: data.clone(),
        seed: 0,
        bad_every: None,
    };
    let mut t = trainer(7, None);
    let streamed = t.fit_stream(&stream, &batcher(), None).unwrap();
    assert_eq!(map.losses, streamed.losses);
    // 7 steps of 16 over 80 samples: one epoch and 32 samples of the next.
    assert_eq!((t.state.epoch, t.state.position), (1, 32));
}

#[test]
fn a_killed_stream_run_resumes_past_the_consumed_entries() {
    let _s = serial();
    let stream = Synthetic {
        data: data(),
        seed: 0,
        bad_every: Some(7),
    };
    let full = trainer(10, None)
        .fit_stream(&stream, &batcher(), None)
        .unwrap();
    assert!(full.skipped_samples > 0);

    let dir = tmpdir("resume");
    // The last checkpoint is step 3.
    let mut killed = trainer_with(10, RunOptions { output: Some(dir.to_path_buf()), stop_after: Some(5), ..RunOptions::default() });
    killed.config.checkpoint_every = 3;
    killed.fit_stream(&stream, &batcher(), None).unwrap();
    let mut resumed = Trainer::resume(
        dir.join("checkpoint-latest.safetensors"),
        Device::flex().autodiff(),
        RunOptions { output: Some(dir.to_path_buf()), ..RunOptions::default() },
    )
    .unwrap();
    assert_eq!(resumed.state.step, 3);
    assert!(resumed.state.position > 0);
    let rest = resumed.fit_stream(&stream, &batcher(), None).unwrap();
    assert_eq!(rest.losses.len(), 7);
    for (i, (a, b)) in full.losses[3..].iter().zip(&rest.losses).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * a.abs().max(1.0),
            "step {}: {a} vs {b}",
            i + 4
        );
    }
    assert_eq!(resumed.state.skipped_samples, full.skipped_samples);
}

#[test]
fn a_stream_of_only_bad_samples_is_an_error() {
    let _s = serial();
    let stream = Synthetic {
        data: data(),
        seed: 0,
        bad_every: Some(1),
    };
    let err = trainer(2, None)
        .fit_stream(&stream, &batcher(), None)
        .unwrap_err();
    assert!(matches!(err, TrainError::EmptyBatch { .. }), "{err}");
    assert!(err.to_string().contains("broken sample"), "{err}");
}

/// A stream whose epoch holds fewer samples than a batch would fill every batch with the same
/// few, repeated: refused, as a dataset that small is.
#[test]
fn a_stream_smaller_than_a_batch_is_an_error() {
    let _s = serial();
    let stream = Synthetic { data: synthetic(8), seed: 0, bad_every: Some(4) };
    let err = trainer(2, None).fit_stream(&stream, &batcher(), None).unwrap_err();
    assert!(matches!(err, TrainError::UnusableData(_)) && err.to_string().contains("has 6 usable samples, fewer than one batch of 16"), "{err}");
}

/// A pattern that names a folder (or nothing) has no shard to train on, said before training.
#[test]
fn a_pattern_of_folders_is_no_data() {
    let dir = tmpdir("folder-shard");
    let spec = diffclip_data::datasets::DataSpec::WebDataset(dir.to_str().unwrap().to_string());
    let options = diffclip_train::SourceOptions { image_size: 32, ..Default::default() };
    let err = diffclip_train::TrainSource::open(&spec, &options).err().expect("a folder is no shard").to_string();
    assert!(err.contains("none of the 1 shards is a file"), "{err}");
}

/// A PNG of `size`x`size` RGB with one colour.
fn png(rgb: [u8; 3], size: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, size, size);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().unwrap();
    w.write_image_data(&rgb.repeat((size * size) as usize))
        .unwrap();
    w.finish().unwrap();
    out
}

fn write_shard(path: &Path, first: usize, n: usize, broken: Option<usize>) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for i in first..first + n {
        let key = format!("{i:06}");
        let img = if broken == Some(i) {
            b"not a png".to_vec()
        } else {
            png([(i * 37 % 256) as u8, (i * 91 % 256) as u8, 128], 40)
        };
        let caption = format!("sample number {i}");
        for (name, bytes) in [
            (format!("{key}.png"), img),
            (format!("{key}.txt"), caption.into_bytes()),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, bytes.as_slice()).unwrap();
        }
    }
    b.into_inner().unwrap().flush().unwrap();
}

#[test]
fn webdataset_shards_stream_in_items_order_and_restart_anywhere() {
    let _s = serial();
    let dir = tmpdir("wds");
    write_shard(&dir.join("000.tar"), 0, 12, Some(5));
    write_shard(&dir.join("001.tar"), 12, 12, None);
    let pattern = format!("{}/{{000..001}}.tar", dir.display());
    let loader = ImageLoader::new(Pipeline::from_name("slip-train", 32).unwrap()).with_seed(3);
    let config = WebDatasetConfig {
        shuffle_shards: true,
        shuffle_buffer: 8,
        ..Default::default()
    };
    let wds = WebDataset::new(&pattern, config, loader).unwrap();
    let stream = WdsStream::new(wds.clone()).with_chunk(5).with_workers(2);
    for epoch in [0, 1] {
        wds.set_epoch(epoch);
        let reference: Vec<String> = wds.items().map(|r| r.unwrap().caption).collect();
        assert_eq!(reference.len(), 23);
        let all: Vec<Result<_, _>> = stream.open(epoch, 0).unwrap().collect();
        assert_eq!(all.len(), 24, "every entry, the broken one included");
        assert_eq!(all.iter().filter(|r| r.is_err()).count(), 1);
        let good: Vec<String> = all
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|i| i.caption.clone())
            .collect();
        assert_eq!(
            good, reference,
            "epoch {epoch}: same order as WebDataset::items"
        );
        let tail: Vec<Option<String>> = stream
            .open(epoch, 9)
            .unwrap()
            .map(|r| r.ok().map(|i| i.caption))
            .collect();
        let want: Vec<Option<String>> = all[9..]
            .iter()
            .map(|r| r.as_ref().ok().map(|i| i.caption.clone()))
            .collect();
        assert_eq!(tail, want, "epoch {epoch}: restart at 9");
        // Random crops are a function of (seed, epoch, position): identical pixels on restart.
        let first_tail = stream.open(epoch, 9).unwrap().find_map(|r| r.ok()).unwrap();
        let from_all = all[9..].iter().find_map(|r| r.as_ref().ok()).unwrap();
        assert_eq!(first_tail.image, from_all.image);
    }
    // Training on it: a few steps, resumable.
    let mut t = trainer(3, None);
    t.config.batch_size = 8;
    let report = t.fit_stream(&stream, &batcher(), None).unwrap();
    assert_eq!(report.losses.len(), 3);
    assert_eq!(report.skipped_samples, 1);
}
