//! The built-in synthetic dataset: determinism, caption/label consistency, splits, views.

use std::collections::HashSet;

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::Dataset;
use burn::tensor::{DType, Device};
use diffclip_data::datasets::{ClassificationDataset, ClipBatcher, ClipDataset, RetrievalDataset};
use diffclip_data::preprocess::{IMAGENET_MEAN, IMAGENET_STD, Preset};
use diffclip_data::synthetic::*;

fn small(n_train: usize, n_test: usize) -> SyntheticConfig {
    SyntheticConfig {
        train_size: n_train,
        test_size: n_test,
        ..Default::default()
    }
}

fn ds(config: SyntheticConfig, split: Split) -> SyntheticDataset {
    SyntheticDataset::new(config, split).unwrap()
}

#[test]
fn same_seed_gives_identical_bytes_and_captions() {
    let a = ds(SyntheticConfig::default(), Split::Train);
    let b = ds(SyntheticConfig::default(), Split::Train);
    for i in [0, 1, 17, 19_999] {
        let (x, y) = (a.sample(i), b.sample(i));
        assert_eq!(x.image, y.image);
        assert_eq!(x.captions, y.captions);
        assert_eq!(x.labels, y.labels);
        let (fx, fy) = (a.image_chw(i, 0), b.image_chw(i, 0));
        assert!(fx.iter().zip(&fy).all(|(p, q)| p.to_bits() == q.to_bits()));
    }
    // Random access: order does not matter.
    let view = a.contrastive();
    let forward: Vec<_> = (0..6).map(|i| Dataset::get(&view, i).unwrap()).collect();
    let backward: Vec<_> = (0..6)
        .rev()
        .map(|i| Dataset::get(&view, i).unwrap())
        .collect();
    assert!(forward.iter().eq(backward.iter().rev()));
    // Pinned fingerprint of the first samples: the generator (and the RNG behind it) must not
    // change silently, or results across sessions stop being comparable.
    let fingerprint = |d: &SyntheticDataset| {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for i in 0..4 {
            let s = d.sample(i);
            for b in s.image.iter().chain(s.captions.concat().as_bytes()) {
                h = (h ^ *b as u64).wrapping_mul(0x100_0000_01b3);
            }
        }
        h
    };
    assert_eq!(fingerprint(&a), fingerprint(&b));
    assert_eq!(fingerprint(&a), PINNED_FINGERPRINT);
}

/// FNV-1a of the images and captions of train samples 0..4 at the default config.
const PINNED_FINGERPRINT: u64 = 0x13de_204b_adac_bdf3;

#[test]
fn different_indices_and_seeds_give_different_samples() {
    let a = ds(SyntheticConfig::default(), Split::Train);
    let images: HashSet<Vec<u8>> = (0..200).map(|i| a.image_rgb(i)).collect();
    assert_eq!(images.len(), 200);
    let other = ds(
        SyntheticConfig {
            seed: 1,
            ..Default::default()
        },
        Split::Train,
    );
    assert_ne!(a.image_rgb(0), other.image_rgb(0));
    assert_ne!(a.sample_seed(0), other.sample_seed(0));
}

#[test]
fn train_and_test_are_disjoint() {
    let config = SyntheticConfig::default();
    let (train, test) = (ds(config.clone(), Split::Train), ds(config, Split::Test));
    assert_eq!((train.len(), test.len()), (20_000, 1_000));
    let test_seeds: HashSet<u64> = (0..test.len()).map(|i| test.sample_seed(i)).collect();
    assert!((0..train.len()).all(|i| !test_seeds.contains(&train.sample_seed(i))));
    let test_images: HashSet<Vec<u8>> = (0..200).map(|i| test.image_rgb(i)).collect();
    assert!((0..500).all(|i| !test_images.contains(&train.image_rgb(i))));
}

#[test]
fn captions_name_the_labelled_object() {
    let test = ds(small(10, 300), Split::Test);
    let count_words = ["one", "two", "three"];
    for i in 0..test.len() {
        let s = test.sample(i);
        let (shape, color) = (
            Shape::ALL[s.labels.shape].name(),
            Color::ALL[s.labels.color].name(),
        );
        assert_eq!(s.captions.len(), 3);
        assert_eq!(
            s.captions.iter().collect::<HashSet<_>>().len(),
            3,
            "distinct captions: {:?}",
            s.captions
        );
        for c in &s.captions {
            assert!(
                c.contains(&format!("{color} {shape}")),
                "{c:?} vs {color} {shape}"
            );
            assert!(!c.contains(" a orange"), "{c}");
            for (k, w) in count_words.iter().enumerate() {
                if c.starts_with(&format!("{w} shape")) {
                    assert_eq!(k + 1, s.labels.count, "{c}");
                }
            }
            if c.starts_with("the only shape") || c.starts_with("a single") {
                assert_eq!(s.labels.count, 1, "{c}");
            }
        }
        let main = s.scene.salient();
        assert_eq!(
            (main.shape.index(), main.color.index()),
            (s.labels.shape, s.labels.color)
        );
        assert!(
            s.scene.objects[1..]
                .iter()
                .all(|o| o.radius < main.radius && o.color != main.color)
        );
    }
}

#[test]
fn the_salient_object_has_its_colour_in_the_image() {
    let test = ds(small(10, 200), Split::Test);
    let size = test.image_size();
    for i in 0..test.len() {
        let s = test.sample(i);
        let main = s.scene.salient();
        let (cx, cy) = (
            (main.center[0] * size as f32) as usize,
            (main.center[1] * size as f32) as usize,
        );
        let mut mean = [0f32; 3];
        for y in cy - 1..=cy + 1 {
            for x in cx - 1..=cx + 1 {
                for (c, m) in mean.iter_mut().enumerate() {
                    *m += s.image[(y * size + x) * 3 + c] as f32 / 9.0;
                }
            }
        }
        let nominal = main.color.rgb();
        // Nearest named colour to the centre patch is the label's colour.
        let nearest = Color::ALL
            .iter()
            .min_by_key(|c| {
                c.rgb()
                    .iter()
                    .zip(&mean)
                    .map(|(&p, &q)| ((p as f32 - q).powi(2)) as u32)
                    .sum::<u32>()
            })
            .unwrap();
        assert_eq!(
            *nearest, main.color,
            "sample {i}: centre {mean:?}, nominal {nominal:?}"
        );
    }
}

#[test]
fn labels_cover_every_class() {
    let test = ds(SyntheticConfig::default(), Split::Test);
    let mut shapes = [0usize; 6];
    let mut colors = [0usize; 8];
    let mut counts = [0usize; 3];
    for i in 0..test.len() {
        let l = test.labels(i);
        shapes[l.shape] += 1;
        colors[l.color] += 1;
        counts[l.count - 1] += 1;
    }
    assert!(shapes.iter().all(|&n| n > 100), "{shapes:?}");
    assert!(colors.iter().all(|&n| n > 70), "{colors:?}");
    assert!(counts.iter().all(|&n| n > 200), "{counts:?}");
}

#[test]
fn classification_view_for_zero_shot() {
    let test = ds(small(10, 50), Split::Test);
    for task in ClassTask::ALL {
        let view = test.classification(task);
        let names = view.class_names();
        assert_eq!(names.len(), [6, 8, 3][task as usize]);
        assert!(view.templates().iter().all(|t| t.contains("{c}")));
        for i in 0..view.num_items() {
            let item = view.get_item(i).unwrap();
            let label = item.label.unwrap();
            assert_eq!(label, view.label(i).unwrap());
            assert_eq!(label, test.labels(i).get(task));
            assert!(item.caption.contains(&names[label]), "{}", item.caption);
            assert_eq!(item.image, test.image_eval(i));
        }
        assert!(view.get_item(50).is_err());
    }
}

#[test]
fn retrieval_view_lists_all_captions() {
    let test = ds(
        SyntheticConfig {
            test_size: 20,
            captions_per_image: 5,
            ..Default::default()
        },
        Split::Test,
    );
    let r = test.retrieval();
    assert_eq!(r.num_images(), 20);
    assert_eq!(r.captions().len(), 100);
    for i in 0..20 {
        let idx: Vec<usize> = (0..100).filter(|&c| r.caption_to_image()[c] == i).collect();
        assert_eq!(idx, (5 * i..5 * i + 5).collect::<Vec<_>>());
        assert_eq!(&r.captions()[5 * i..5 * i + 5], test.captions(i).as_slice());
    }
    let x = r.load_image(3).unwrap();
    assert_eq!(x.len(), 3 * 64 * 64);
    assert_eq!(x, test.image_eval(3));
}

#[test]
fn contrastive_view_picks_one_caption_per_epoch() {
    let train = ds(small(100, 10), Split::Train);
    let view = train.contrastive();
    let epoch0: Vec<String> = (0..100)
        .map(|i| view.get_item(i).unwrap().caption)
        .collect();
    view.set_epoch(1);
    let shared = view.clone();
    let epoch1: Vec<String> = (0..100)
        .map(|i| shared.get_item(i).unwrap().caption)
        .collect();
    assert_eq!(view.epoch(), 1);
    for i in 0..100 {
        assert!(train.captions(i).contains(&epoch0[i]));
        assert_eq!(epoch0[i], train.caption_for_epoch(i, 0));
        assert_eq!(epoch1[i], train.caption_for_epoch(i, 1));
    }
    assert!(epoch0.iter().zip(&epoch1).filter(|(a, b)| a != b).count() > 30);
    // Every caption of a sample is used over some epochs.
    let used: HashSet<String> = (0..20).map(|e| train.caption_for_epoch(0, e)).collect();
    assert_eq!(used.len(), 3);
    assert_eq!(view.get_item(0).unwrap().label, Some(train.labels(0).shape));
    // Through the trait object a training loop holds.
    let dynamic: &dyn ClipDataset = &view;
    dynamic.set_epoch(5);
    assert_eq!(view.epoch(), 5);
    assert_eq!(
        dynamic.get_item(9).unwrap().caption,
        train.caption_for_epoch(9, 5)
    );
}

#[test]
fn images_are_normalised_with_the_preset() {
    let test = ds(small(1, 4), Split::Test);
    let rgb = test.image_rgb(0);
    let x = test.image_chw(0, 0);
    let n = 64 * 64;
    for (p, c) in [(0usize, 0usize), (100, 1), (4095, 2)] {
        let expected = (rgb[p * 3 + c] as f32 / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
        assert_eq!(x[c * n + p], expected);
    }
    // A random-crop preset varies by epoch, deterministically.
    let aug = ds(
        SyntheticConfig {
            preset: Preset::SlipTrain,
            ..small(4, 4)
        },
        Split::Train,
    );
    assert_eq!(aug.image_chw(1, 0), aug.image_chw(1, 0));
    assert_ne!(aug.image_chw(1, 0), aug.image_chw(1, 1));
    assert_eq!(aug.image_chw(1, 0).len(), 3 * n);
    assert_eq!(
        aug.image_eval(1),
        aug.pipeline().normalize(&aug.image_rgb(1))
    );
}

#[test]
fn batches_through_a_burn_data_loader() {
    let config = SyntheticConfig {
        image_size: 32,
        ..small(40, 10)
    };
    let train = ds(config, Split::Train).contrastive();
    let dl = DataLoaderBuilder::new(ClipBatcher::default())
        .batch_size(16)
        .shuffle(7)
        .num_workers(2)
        .set_device(Device::flex())
        .build(train.clone());
    let batches: Vec<_> = dl.iter().map(Result::unwrap).collect();
    let sizes: Vec<usize> = batches.iter().map(|b| b.images.dims()[0]).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 40);
    let b = &batches[0];
    assert_eq!(b.images.dims()[1..], [3, 32, 32]);
    assert_eq!(b.images.dtype(), DType::F32);
    assert_eq!(b.texts.dims()[1], 77);
    let labels = b
        .labels
        .clone()
        .unwrap()
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .unwrap();
    assert!(labels.iter().all(|&l| (0..6).contains(&l)));
    let x = b.images.clone().into_data().try_to_vec::<f32>().unwrap();
    assert!(x.iter().all(|v| v.is_finite() && v.abs() < 3.0));

    let direct = ClipBatcher::default()
        .batch_indices(&train, &[3, 1, 4], &Device::flex())
        .unwrap();
    assert_eq!(direct.images.dims(), [3, 3, 32, 32]);
    let first = direct
        .images
        .narrow(0, 0, 1)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert_eq!(first, train.get_item(3).unwrap().image);
}

#[test]
fn config_is_validated_and_serialisable() {
    let c = SyntheticConfig::default();
    assert_eq!(
        (
            c.image_size,
            c.train_size,
            c.test_size,
            c.seed,
            c.captions_per_image
        ),
        (64, 20_000, 1_000, 0, 3)
    );
    let json = serde_json::to_string(&c).unwrap();
    assert_eq!(serde_json::from_str::<SyntheticConfig>(&json).unwrap(), c);
    assert!(serde_json::from_str::<SyntheticConfig>(r#"{"image_sise": 32}"#).is_err());
    for bad in [
        SyntheticConfig {
            image_size: 4,
            ..Default::default()
        },
        SyntheticConfig {
            captions_per_image: 9,
            ..Default::default()
        },
        SyntheticConfig {
            max_objects: 0,
            ..Default::default()
        },
        SyntheticConfig {
            distractors: [5, 2],
            ..Default::default()
        },
    ] {
        assert!(SyntheticDataset::new(bad, Split::Train).is_err());
    }
    let one = ds(
        SyntheticConfig {
            max_objects: 1,
            distractors: [0, 0],
            ..small(50, 1)
        },
        Split::Train,
    );
    assert!(
        (0..50).all(|i| one.scene(i).objects.len() == 1 && one.scene(i).distractors.is_empty())
    );
    assert_eq!(
        one.classification(ClassTask::Count).class_names(),
        ["one shape"]
    );
}
