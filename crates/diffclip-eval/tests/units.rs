//! Unit checks of the pieces: metadata, ranking, cache, solver, sampling, pairs.

use diffclip_eval::cache::data_key;
use diffclip_eval::metadata::{self, ImageNetSubset};
use diffclip_eval::pairs::pair_metrics;
use diffclip_eval::probe::{LbfgsOptions, lbfgs, sample_shots, stratified_split};
use diffclip_eval::ranking::{pairwise_sum, rank_of};
use diffclip_eval::stats::mean;
use diffclip_eval::{
    EmbeddingCache, EvalError, Matrix, ModelKey, retrieval_recall, zero_shot_metrics,
};

#[test]
fn shipped_metadata_is_complete() {
    let m = metadata::metadata();
    let inet = &m.imagenet1k;
    assert_eq!((inet.classnames.len(), inet.wnids.len()), (1000, 1000));
    assert_eq!(
        (inet.templates_openai.len(), inet.templates_simple.len()),
        (80, 7)
    );
    for s in [ImageNetSubset::A, ImageNetSubset::R, ImageNetSubset::O] {
        let idx = s.class_indices();
        assert_eq!(idx.len(), 200);
        assert!(idx.iter().all(|&i| i < 1000) && idx.windows(2).all(|w| w[0] < w[1]));
    }
    let mut w = inet.wnids.clone();
    w.sort();
    assert_eq!(
        w, inet.wnids,
        "WordNet ids are sorted: class-index order = folder order"
    );
    assert!(m.datasets.len() >= 30);
    assert!(inet.templates_openai.iter().all(|t| t.contains("{c}")));
    assert_eq!(metadata::classnames("flowers").unwrap().len(), 102);
    assert_eq!(metadata::templates("cifar10").unwrap().len(), 18);
    let e = metadata::templates("nope").unwrap_err().to_string();
    assert!(e.contains("openai") && e.contains("cifar10"), "{e}");
}

#[test]
fn numpy_summation_order() {
    // 0.1 * k sums differ between naive and pairwise order; pairwise_sum follows numpy's.
    let v: Vec<f64> = (0..300)
        .map(|k| 0.1 * k as f64 + 1.0 / (k as f64 + 3.0))
        .collect();
    let naive: f64 = v.iter().sum();
    assert!((pairwise_sum(&v) - naive).abs() < 1e-9);
    assert_eq!(pairwise_sum(&v[..5]), v[..5].iter().sum::<f64>());
    assert!(mean(&[]).is_nan());
    // numpy 2.4: np.mean([1 / (k + 1) for k in range(300)]) (the naive sum gives ...673).
    let harmonic: Vec<f64> = (0..300).map(|k| 1.0 / (k as f64 + 1.0)).collect();
    assert_eq!(mean(&harmonic), 0.02094221293433168);
}

#[test]
fn metric_errors_and_ties() {
    let logits = Matrix::new(2, 3, vec![1.0, 1.0, 0.0, 0.0, 2.0, 2.0]).unwrap();
    // Row 0: label 1 ties with class 0, which ranks first; row 1: label 1 ranks first.
    let m = zero_shot_metrics(&logits, &[1, 1]).unwrap();
    assert_eq!(m.top1_correct, 1);
    assert!(matches!(
        zero_shot_metrics(&logits, &[0, 3]),
        Err(EvalError::Label {
            index: 1,
            label: 3,
            ..
        })
    ));
    assert!(zero_shot_metrics(&logits, &[0]).is_err());
    let nan = Matrix::new(1, 2, vec![f32::NAN, 0.0]).unwrap();
    assert!(matches!(
        zero_shot_metrics(&nan, &[0]),
        Err(EvalError::NonFinite { .. })
    ));
    assert_eq!(rank_of(&[0.5, 0.5, 0.5], 2), 2);
    let img = Matrix::new(1, 2, vec![1.0, 0.0]).unwrap();
    assert!(retrieval_recall(&img, &img, &[0], &[0]).is_err());
    assert!(retrieval_recall(&img, &img, &[1], &[1]).is_err());
}

#[test]
fn cache_round_trip_and_invalidation() {
    let dir = tempfile::tempdir().unwrap();
    let m = Matrix::new(2, 3, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    let cache = EmbeddingCache::new(dir.path(), ModelKey::from_identity("a"));
    let key = data_key("t", ["x", "y"]);
    let mut calls = 0;
    for _ in 0..2 {
        let got = cache.get_or_compute("images", &key, 2, || {
            calls += 1;
            Ok(m.clone())
        });
        assert_eq!(got.unwrap(), m);
    }
    assert_eq!(calls, 1, "second call served from disk");
    assert!(
        cache.load("images", &key, 3).is_none(),
        "row count must match"
    );
    let other = EmbeddingCache::new(dir.path(), ModelKey::from_identity("b"));
    assert!(
        other.load("images", &key, 2).is_none(),
        "another model misses"
    );
    std::fs::write(cache.path("images", &key), b"garbage").unwrap();
    assert!(
        cache.load("images", &key, 2).is_none(),
        "corrupt file is a miss"
    );
    assert_ne!(data_key("t", ["xy"]), data_key("t", ["x", "y"]));
}

#[test]
fn a_cache_entry_that_is_no_file_or_far_too_large_is_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let cache = EmbeddingCache::new(dir.path(), ModelKey::from_identity("a"));
    let key = data_key("t", ["special"]);
    let m = Matrix::new(2, 2, vec![0.5, 1.0, 2.0, 3.0]).unwrap();
    cache.store("texts", &key, &m).unwrap();
    let path = cache.path("texts", &key);
    // A FIFO would block a reader forever, /dev/zero read without end, a sparse file of 4 GiB
    // cost 4 GiB of memory: each is a miss at once.
    std::fs::remove_file(&path).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(&path).status().unwrap().success());
    assert!(cache.load("texts", &key, 2).is_none());
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
    assert!(cache.load("texts", &key, 2).is_none());
    std::fs::remove_file(&path).unwrap();
    std::fs::File::create(&path).unwrap().set_len(4 << 30).unwrap();
    assert!(cache.load("texts", &key, 2).is_none());
    // And is replaced by the recomputed entry.
    assert_eq!(cache.get_or_compute("texts", &key, 2, || Ok(m.clone())).unwrap(), m);
    assert_eq!(cache.load("texts", &key, 2).unwrap(), m);
}

#[test]
fn image_files_replaced_keeping_size_and_time_get_another_identity() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.png"), dir.path().join("b.png"));
    std::fs::write(&a, [1u8; 64]).unwrap();
    std::fs::write(&b, [2u8; 64]).unwrap();
    let pipeline = diffclip_data::Pipeline::from_name("openai", 32).unwrap();
    let identity = || diffclip_eval::ImageSource::files(vec![a.clone()], &pipeline).identity().unwrap().to_string();
    let before = identity();
    assert_eq!(identity(), before, "the same file, the same identity");
    // `cp -p b a`: other bytes, the same size and modification time.
    let time = std::fs::metadata(&a).unwrap().modified().unwrap();
    std::fs::copy(&b, &a).unwrap();
    std::fs::File::options().write(true).open(&a).unwrap().set_modified(time).unwrap();
    assert_eq!(std::fs::metadata(&a).unwrap().modified().unwrap(), time);
    assert_ne!(identity(), before, "a cache would serve the old image's embedding");
}

#[test]
fn a_cache_entry_holding_nan_is_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = EmbeddingCache::new(dir.path(), ModelKey::from_identity("a"));
    let key = data_key("t", ["nan"]);
    let poisoned = Matrix::new(2, 2, vec![f32::NAN, 1.0, 2.0, 3.0]).unwrap();
    cache.store("texts", &key, &poisoned).unwrap();
    assert!(cache.load("texts", &key, 2).is_none(), "a NaN entry must not be served");
    let good = Matrix::new(2, 2, vec![0.5, 1.0, 2.0, 3.0]).unwrap();
    let mut calls = 0;
    let got = cache.get_or_compute("texts", &key, 2, || {
        calls += 1;
        Ok(good.clone())
    });
    assert_eq!(got.unwrap(), good);
    assert_eq!(calls, 1, "recomputed");
    assert_eq!(cache.load("texts", &key, 2).unwrap(), good, "and overwritten with the good values");
}

#[test]
fn lbfgs_minimises_rosenbrock() {
    let r = lbfgs(
        |x, g| {
            let (a, b) = (x[0], x[1]);
            g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
            g[1] = 200.0 * (b - a * a);
            (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
        },
        vec![-1.2, 1.0],
        &LbfgsOptions {
            gtol: 1e-9,
            ..Default::default()
        },
    );
    assert!(
        (r.x[0] - 1.0).abs() < 1e-5 && (r.x[1] - 1.0).abs() < 1e-5,
        "{:?}",
        r
    );
}

#[test]
fn sampling_is_stratified_and_reproducible() {
    let labels: Vec<usize> = (0..100).map(|i| i % 4).collect();
    let (train, val) = stratified_split(&labels, 4, 0.2, 1);
    assert_eq!((train.len(), val.len()), (80, 20));
    assert!((0..4).all(|c| val.iter().filter(|&&i| labels[i] == c).count() == 5));
    assert_eq!(stratified_split(&labels, 4, 0.2, 1), (train, val));
    let s = sample_shots(&labels, 4, 3, 9);
    assert_eq!(s.len(), 12);
    assert_ne!(s, sample_shots(&labels, 4, 3, 10));
}

#[test]
fn pairs_need_both_members_right() {
    let images = Matrix::new(4, 2, vec![1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.9, 0.1]).unwrap();
    let texts = Matrix::new(4, 2, vec![1.0, 0.1, 0.1, 1.0, 1.0, 0.0, 0.0, 1.0]).unwrap();
    let cats = ["a".to_string(), "b".to_string()];
    let m = pair_metrics(&images, &texts, &cats).unwrap();
    assert_eq!(
        (m.categories[0].text_to_image, m.categories[1].text_to_image),
        (1.0, 1.0)
    );
    // Pair 2: image 1 prefers statement 1, image 2 ([0.9, 0.1]) prefers statement 1 too.
    assert_eq!(m.categories[1].image_to_text, 0.0);
    assert_eq!(m.overall.n_pairs, 2);
    assert!(pair_metrics(&images, &texts, &cats[..1]).is_err());
}

#[test]
fn probes_refuse_labels_they_would_silently_drop() {
    use diffclip_eval::probe::{FewShotConfig, LinearProbeConfig, Split, few_shot, linear_probe};
    let x = diffclip_eval::Matrix::new(4, 2, vec![1.0, 0.0, 0.9, 0.1, 0.0, 1.0, 0.1, 0.9]).unwrap();
    let (good, bad): (&'static [usize], &'static [usize]) = (&[0, 0, 1, 1], &[0, 0, 1, 2]);
    let split = |labels: &'static [usize]| Split { features: &x, labels };
    let fs = FewShotConfig { shots: vec![1], seeds: vec![0], ..FewShotConfig::default() };
    let lp = LinearProbeConfig { c_grid: vec![1.0], refine_steps: 0, ..LinearProbeConfig::default() };
    // A test label outside the classes was a silent miss; a training one was never sampled.
    for (train, test) in [(good, bad), (bad, good)] {
        let e = few_shot(split(train), Some(split(good)), split(test), 2, &fs).unwrap_err().to_string();
        assert!(e.contains("label 2 at position 3 is outside 0..2"), "{e}");
        let e = linear_probe(split(train), Some(split(good)), split(test), 2, &lp).unwrap_err().to_string();
        assert!(e.contains("label 2 at position 3 is outside 0..2"), "{e}");
    }
    let e = few_shot(split(good), None, split(&good[..3]), 2, &fs).unwrap_err().to_string();
    assert!(e.contains("test: 4 feature rows and 3 labels"), "{e}");
    // Two samples per class leave none for validation at this fraction: C cannot be chosen.
    let e = few_shot(split(good), None, split(good), 2, &FewShotConfig { probe: LinearProbeConfig { val_fraction: 0.1, ..fs.probe.clone() }, ..fs.clone() }).unwrap_err().to_string();
    assert!(e.contains("no validation samples"), "{e}");
    // More shots than a class has: all its samples are used, and the point says how many.
    let ncm = FewShotConfig { shots: vec![1, 2, 5], classifier: diffclip_eval::probe::FewShotClassifier::NearestClassMean { cosine: true }, ..fs.clone() };
    let points = few_shot(split(good), None, split(good), 2, &ncm).unwrap();
    assert_eq!(points.iter().map(|p| (p.shots, p.fewest_shots)).collect::<Vec<_>>(), [(1, Some(1)), (2, Some(2)), (5, Some(2))]);
    assert_eq!(points[1].accuracies, points[2].accuracies);
    // One class scores 100 % by naming it everywhere: refused, not reported.
    let one: &'static [usize] = &[0, 0, 0, 0];
    let e = linear_probe(split(one), None, split(one), 1, &lp).unwrap_err().to_string();
    assert!(e.contains("at least 2 classes, found 1"), "{e}");
    let e = few_shot(split(one), None, split(good), 2, &ncm).unwrap_err().to_string();
    assert!(e.contains("at least 2 classes, found 1"), "{e}");
}

#[test]
fn a_misspelt_probe_setting_is_an_error_not_a_default() {
    use diffclip_eval::probe::{FewShotConfig, LinearProbeConfig, LogRegOptions};
    for (what, err) in [
        ("linear probe", serde_json::from_str::<LinearProbeConfig>(r#"{"c_grid": [1.0], "seeed": 3}"#).map(drop)),
        ("few-shot", serde_json::from_str::<FewShotConfig>(r#"{"shot": [1]}"#).map(drop)),
        ("logistic regression", serde_json::from_str::<LogRegOptions>(r#"{"lamda": 1.0}"#).map(drop)),
    ] {
        let err = err.unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{what}: {err}");
    }
    // What they write reads back.
    let probe = serde_json::to_string(&LinearProbeConfig::default()).unwrap();
    assert_eq!(serde_json::from_str::<LinearProbeConfig>(&probe).unwrap(), LinearProbeConfig::default());
}

#[test]
fn a_probe_says_how_many_validation_samples_and_classes_chose_c() {
    use diffclip_eval::probe::{LinearProbeConfig, Split, linear_probe};
    // Six samples of class 0, one of class 1: the held-out fifth holds class 0 alone.
    let x = Matrix::new(7, 2, vec![1.0, 0.1, 0.9, 0.2, 1.0, 0.0, 0.8, 0.1, 0.9, 0.0, 1.0, 0.2, 0.1, 1.0]).unwrap();
    let y = [0, 0, 0, 0, 0, 0, 1];
    let cfg = LinearProbeConfig { c_grid: vec![0.1, 1.0], refine_steps: 0, val_fraction: 0.2, ..Default::default() };
    let r = linear_probe(Split { features: &x, labels: &y }, None, Split { features: &x, labels: &y }, 2, &cfg).unwrap();
    assert_eq!((r.n_val, r.val_classes), (1, 1), "{r:?}");
}

#[test]
fn a_recall_cut_off_reaching_every_candidate_is_not_shown() {
    // Three images, three captions: R@5 and R@10 are met by any model.
    let emb = Matrix::new(3, 2, vec![1.0, 0.0, 0.0, 1.0, 0.7, 0.7]).unwrap();
    let r = retrieval_recall(&emb, &emb, &[0, 1, 2], &[1, 5, 10]).unwrap();
    assert_eq!(r.text_to_image[1].recall, 1.0, "kept in the metrics");
    let table = diffclip_eval::report::retrieval_table("retrieval", &r).to_string();
    let row = table.lines().find(|l| l.starts_with("text -> image")).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[cells.len() - 3..], ["100.0", "-", "-"], "{table}");
}
