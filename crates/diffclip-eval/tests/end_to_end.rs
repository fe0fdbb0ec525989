//! End to end with a randomly initialised `diffclip_tiny` (32 px, differential attention) on the
//! built-in synthetic dataset and on small generated image files.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use diffclip_clip::{Clip, ClipConfig};
use diffclip_data::{DataError, Pipeline};
use diffclip_data::synthetic::{ClassTask, Split, SyntheticConfig, SyntheticDataset};
use diffclip_eval::attention::{TITLE_HEIGHT, attention_heatmaps, panel_names, panel_titles, save_comparison_png, save_overlay_png};
use diffclip_eval::dataset::{CaptionSet, ImageFolder, PairSet};
use diffclip_eval::probe::{FewShotConfig, LinearProbeConfig};
use diffclip_eval::robustness::imagenet_variant;
use diffclip_eval::{
    EmbeddingCache, Encoder, EvalError, Evaluator, ImageSource, Labelled, ModelKey,
};
use image::{Rgb, RgbImage};

fn model() -> Clip {
    ClipConfig::diffclip_tiny().init(&Device::flex()).unwrap()
}

fn pipeline() -> Pipeline {
    Pipeline::from_name("square-imagenet", 32).unwrap()
}

/// A 40x40 PNG mostly of `color`, with a per-image pattern.
fn write_png(path: &Path, color: [u8; 3], variant: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = RgbImage::from_fn(40, 40, |x, y| {
        let n = ((x * 7 + y * 13 + variant * 31) % 23) as u8;
        Rgb(color.map(|c| c.saturating_add(n)))
    });
    img.save(path).unwrap();
}

const COLORS: [[u8; 3]; 3] = [[220, 30, 30], [30, 200, 40], [40, 40, 210]];

/// `root/{train,test}/{red,green,blue}/*.png`.
fn write_folders(root: &Path, train_per_class: u32, test_per_class: u32) {
    for (split, n) in [("train", train_per_class), ("test", test_per_class)] {
        for (c, name) in ["red", "green", "blue"].iter().enumerate() {
            for i in 0..n {
                write_png(
                    &root.join(split).join(name).join(format!("{i}.png")),
                    COLORS[c],
                    i + 100 * c as u32,
                );
            }
        }
    }
}

#[test]
fn synthetic_zero_shot_and_retrieval() {
    let model = model();
    let config = SyntheticConfig {
        image_size: 32,
        test_size: 24,
        ..Default::default()
    };
    let test = SyntheticDataset::new(config, Split::Test).unwrap();
    let eval = Evaluator::new(
        Encoder::new(&model)
            .unwrap()
            .with_progress(false)
            .with_batch_size(10),
    );
    for task in ClassTask::ALL {
        let m = eval
            .zero_shot_dataset(&test.classification(task), None)
            .unwrap();
        assert_eq!(m.n_samples, 24);
        assert!((0.0..=1.0).contains(&m.top1) && (0.0..=1.0).contains(&m.mean_per_class_recall));
        assert_eq!(m.top5.is_some(), m.n_classes >= 5, "{task:?}");
    }
    let r = eval
        .retrieval_dataset(&test.retrieval(), None, &[1, 5, 10])
        .unwrap();
    assert_eq!((r.n_images, r.n_texts), (24, 72));
    for (a, b) in r.text_to_image.iter().zip(r.text_to_image.iter().skip(1)) {
        assert!(a.hits <= b.hits, "recall grows with k");
    }
    assert_eq!(r.image_to_text[2].n, 24);
}

/// Images in a tensor go through the same batches as `encode_images`, on every backend, and a
/// tensor that is not `[N, 3, S, S]` or an index past the end is an error, not a panic.
#[test]
fn images_in_a_tensor_are_an_image_source() {
    use burn::tensor::{Distribution, Tensor};
    for (name, device) in diffclip_testkit::devices() {
        let model = ClipConfig::diffclip_tiny().init(&device).unwrap();
        let encoder = Encoder::new(&model).unwrap().with_progress(false).with_batch_size(3);
        let images = Tensor::<4>::random([5, 3, 32, 32], Distribution::Default, &device);
        let direct = encoder.encode_images(images.clone()).unwrap();
        let source = ImageSource::from_tensor(images).unwrap();
        assert_eq!((source.len(), source.size(), source.identity()), (5, 32, None));
        let via_source = encoder.encode_source(&source).unwrap();
        assert_eq!((via_source.rows(), via_source.cols()), (direct.rows(), direct.cols()));
        let diff = direct.data().iter().zip(via_source.data()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(diff <= 1e-5, "{name}: {diff}");
        let eval = Evaluator::new(encoder.clone());
        let m = eval
            .zero_shot(Labelled { images: &source, labels: &[0, 1, 0, 1, 1] }, &["cat", "dog"], &["a {c}"])
            .unwrap();
        assert_eq!((m.n_samples, m.n_classes), (5, 2));
        assert!(matches!(source.load(5), Err(EvalError::Invalid(m)) if m.contains("image 5") && m.contains("5 images")));
        for dims in [[2, 1, 32, 32], [2, 3, 32, 16]] {
            let bad = Tensor::<4>::zeros(dims, &device);
            let err = ImageSource::from_tensor(bad).unwrap_err();
            assert!(matches!(&err, EvalError::Shape(m) if m.contains(&format!("{dims:?}"))), "{err}");
        }
    }
}

#[test]
fn probe_fewshot_pairs_robustness_and_cache_on_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_folders(root, 6, 4);
    let model = model();
    let key = ModelKey::from_identity("end-to-end random diffclip_tiny");
    let cache_dir = root.join("cache");
    let encoder = Encoder::new(&model).unwrap().with_progress(false);
    let eval = Evaluator::new(encoder).with_cache(EmbeddingCache::new(&cache_dir, key));
    let p = pipeline();

    let train = ImageFolder::open(root.join("train")).unwrap();
    let test = ImageFolder::open(root.join("test")).unwrap();
    assert_eq!(train.classes, ["blue", "green", "red"]);
    let train_src = ImageSource::files(train.images.clone(), &p);
    let test_src = ImageSource::files(test.images.clone(), &p);
    let tr = Labelled {
        images: &train_src,
        labels: &train.labels,
    };
    let te = Labelled {
        images: &test_src,
        labels: &test.labels,
    };

    // Zero-shot on files; the second pass reads the cache and agrees exactly.
    let names = train.class_names.clone();
    let templates = ["a photo of something {c}."];
    let z1 = eval.zero_shot(te, &names, &templates).unwrap();
    let cached = std::fs::read_dir(
        cache_dir
            .read_dir()
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path(),
    )
    .unwrap()
    .count();
    assert_eq!(cached, 2, "image and text features stored");
    let z2 = eval.zero_shot(te, &names, &templates).unwrap();
    assert_eq!(z1, z2);
    let f1 = eval.image_features(&test_src).unwrap();
    assert_eq!(f1, eval.encoder().encode_source(&test_src).unwrap());

    // Linear probe: solid colours are separable even with random weights.
    let cfg = LinearProbeConfig {
        c_grid: vec![0.1, 1.0, 10.0, 100.0],
        refine_steps: 1,
        val_fraction: 0.34,
        ..Default::default()
    };
    let lp = eval.linear_probe(tr, None, te, 3, &cfg).unwrap();
    assert_eq!((lp.n_test, lp.n_train, lp.val_classes), (12, 18, 3));
    assert!(lp.n_val >= 3 && lp.n_val < 18, "{}", lp.n_val);
    assert!(
        lp.test_accuracy >= 0.5,
        "probe accuracy {}",
        lp.test_accuracy
    );
    assert_eq!(lp.sweep.len(), 4 + 2);

    let fs_cfg = FewShotConfig {
        shots: vec![1, 2],
        seeds: vec![0, 1],
        probe: cfg.clone(),
        ..Default::default()
    };
    let fs = eval.few_shot(tr, None, te, 3, &fs_cfg).unwrap();
    assert_eq!(fs.len(), 2);
    assert!(fs.iter().all(|p| p.accuracies.len() == 2 && p.c.len() == 2));

    // Robustness: the same images as two ImageNet-style sets (WordNet ids and class indices).
    for (set, folders) in [
        ("imagenet", ["n01440764", "n01443537"]),
        ("imagenet-v2", ["0", "1"]),
    ] {
        for (c, f) in folders.iter().enumerate() {
            for i in 0..2 {
                write_png(
                    &root.join(set).join(f).join(format!("{i}.png")),
                    COLORS[c],
                    i,
                );
            }
        }
    }
    let sets = vec![
        imagenet_variant("imagenet", &root.join("imagenet"), &p).unwrap(),
        imagenet_variant("imagenet-v2", &root.join("imagenet-v2"), &p).unwrap(),
    ];
    assert_eq!(sets[1].labels, [0, 0, 1, 1]);
    let names = diffclip_eval::metadata::classnames("imagenet1k").unwrap();
    let classifier = eval.classifier(&names, &["a photo of a {c}."]).unwrap();
    assert_eq!(classifier.rows(), 1000);
    let rep = eval.robustness(&classifier, &sets).unwrap();
    assert_eq!(rep.sets.len(), 2);
    assert_eq!(
        rep.sets[0].metrics, rep.sets[1].metrics,
        "same images and labels give the same metrics"
    );
    assert!(
        imagenet_variant("imagenet-a", &root.join("imagenet"), &p).is_err(),
        "class 0 is not in ImageNet-A"
    );
    let Err(err) = imagenet_variant("imagenet-aa", &root.join("imagenet"), &p) else { panic!("a misspelt set name was accepted") };
    assert!(err.to_string().contains("unknown ImageNet variant \"imagenet-aa\""), "{err}");

    // Pairs and captions from CSV.
    std::fs::write(
        root.join("pairs.csv"),
        "category,image1,image2,statement1,statement2\n\
         color,train/red/0.png,train/green/0.png,a red square,a green square\n\
         color,train/blue/0.png,train/red/1.png,\"a blue square\",a red square\n\
         texture,train/green/1.png,train/blue/1.png,a green square,a blue square\n",
    )
    .unwrap();
    let pairs = PairSet::open(root).unwrap();
    let pm = eval.pairs(&pairs, &p).unwrap();
    assert_eq!(pm.overall.n_pairs, 3);
    assert_eq!(
        pm.categories.iter().map(|c| c.n_pairs).collect::<Vec<_>>(),
        [2, 1]
    );

    // One image however it is spelled: `../` detours and absolute paths are the same file.
    let absolute = std::fs::canonicalize(root.join("train/red/0.png")).unwrap();
    std::fs::write(root.join("captions.csv"), format!("image,caption\ntrain/red/0.png,a red image\ntrain/../train/red/0.png,red\ntrain/blue/0.png,a blue image\ntest/green/0.png,\n{},crimson\n", absolute.display())).unwrap();
    let caps = CaptionSet::open(root).unwrap();
    assert_eq!(caps.text_to_image, [0, 0, 1, 0]);
    assert_eq!(caps.images.len(), 3);
    let src = ImageSource::files(caps.images.clone(), &p);
    let r = eval
        .retrieval(&src, &caps.captions, &caps.text_to_image, &[1, 2])
        .unwrap();
    assert_eq!((r.n_images, r.images_without_caption), (3, 1));
    assert!(
        r.image_to_text.iter().all(|x| x.hits <= 2),
        "the uncaptioned image is a miss"
    );
}

/// `encode_texts` batches texts by length (and tokenizes 32 batches at a time) but gives every
/// text's row in the input order: each, bit for bit, as the text encoded alone.
#[test]
fn texts_batched_by_length_come_back_in_input_order() {
    let model = model();
    let words = ["dog", "a small red house by the lake", "cat", "two", "a photo of a very large and rather old sailing ship"];
    let texts: Vec<String> = (0..40).map(|i| format!("{} {i}", words[i % words.len()].repeat(1 + i % 3))).collect();
    let alone = Encoder::new(&model).unwrap().with_progress(false);
    let expected: Vec<Vec<f32>> = texts.iter().map(|t| alone.encode_texts(&[t]).unwrap().row(0).to_vec()).collect();
    assert!(expected[0].iter().zip(&expected[1]).any(|(a, b)| (a - b).abs() > 1e-3), "different texts, different rows");
    // Batches of 3: one window, sorted batches; batches of 1: two windows (32 and 8 texts).
    for batch in [3, 1] {
        let got = Encoder::new(&model).unwrap().with_progress(false).with_batch_size(batch).encode_texts(&texts).unwrap();
        assert_eq!(got.rows(), texts.len());
        for (i, want) in expected.iter().enumerate() {
            let d = got.row(i).iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(got.row(i) == &want[..], "batch {batch}, text {i}: {d:e} from the text alone");
        }
    }
}

/// A tokenizer that gives rows shorter than it declares.
#[derive(Debug)]
struct ShortRows(diffclip_data::ClipTokenizer);

impl diffclip_data::tokenizer::TextTokenizer for ShortRows {
    fn config(&self) -> &diffclip_data::TokenizerConfig {
        self.0.config()
    }
    fn tokenize(&self, text: &str) -> Result<Vec<u32>, diffclip_data::tokenizer::TokenizerError> {
        Ok(self.0.tokenize(text)[..5].to_vec())
    }
    fn reconfigured(&self, _: diffclip_data::TokenizerConfig) -> Result<std::sync::Arc<dyn diffclip_data::tokenizer::TextTokenizer>, diffclip_data::tokenizer::TokenizerError> {
        Ok(std::sync::Arc::new(ShortRows(self.0.clone())))
    }
    fn fingerprint(&self) -> String {
        "short".into()
    }
}

/// A tokenizer of the caller's own that breaks its declared length is an error, not a panic
/// building the batch.
#[test]
fn a_tokenizer_giving_rows_of_another_length_is_an_error() {
    let model = model();
    let short = ShortRows(diffclip_data::ClipTokenizer::new());
    let encoder = Encoder::new(&model).unwrap().with_progress(false).with_tokenizer(std::sync::Arc::new(short)).unwrap();
    let err = encoder.encode_texts(&["a dog", "a cat"]).unwrap_err().to_string();
    assert!(err.contains("gave text 0 5 ids, not its context length 77"), "{err}");
}

#[test]
fn attention_maps_and_png() {
    let dir = tempfile::tempdir().unwrap();
    let file: PathBuf = dir.path().join("img.png");
    write_png(&file, COLORS[0], 3);
    let model = model();
    let encoder = Encoder::new(&model).unwrap().with_progress(false);
    let p = pipeline();
    let decoded = diffclip_data::preprocess::decode_file(&file, &p.config().decode).unwrap();
    let rgb = p.process_image_u8(&decoded, 0);
    let maps = attention_heatmaps(&encoder, p.normalize(&rgb), Some("a red square"), None).unwrap();
    assert_eq!((maps.layer, maps.grid), (1, 4));
    // A bf16 model (eval --dtype bf16) gives the same maps to its rounding.
    let half = model.clone().with_precision(diffclip_clip::Precision::Bf16).unwrap();
    let half_maps = attention_heatmaps(&Encoder::new(&half).unwrap().with_progress(false), p.normalize(&rgb), Some("a red square"), None).unwrap();
    let d = maps.effective.iter().zip(&half_maps.effective).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(d < 2e-2, "bf16 maps differ by {d}");
    assert_eq!(maps.first.len(), 16);
    let (second, lambda) = (maps.second.as_ref().unwrap(), maps.lambda.unwrap());
    // A1 and A2 are softmax rows: the class token's weights on the 16 patches sum to at most 1.
    for m in [&maps.first, second] {
        let s: f32 = m.iter().sum();
        assert!(
            m.iter().all(|&v| v >= 0.0) && s > 0.0 && s <= 1.0 + 1e-5,
            "{s}"
        );
    }
    for ((e, f), s) in maps.effective.iter().zip(&maps.first).zip(second) {
        assert!((e - (f - lambda * s)).abs() < 1e-5);
    }
    assert!(maps.similarity.unwrap().abs() <= 1.0 + 1e-5);
    assert_eq!(maps.text_relevance.as_ref().unwrap().len(), 16);
    let png = dir.path().join("attention.png");
    save_overlay_png(&png, &rgb, 32, &maps).unwrap();
    let back = image::open(&png).unwrap();
    let panels = panel_names(&maps).len() as u32;
    assert_eq!(panels, 5);
    assert_eq!(
        (back.width(), back.height()),
        (panels * 224 + (panels - 1) * 4, 224 + TITLE_HEIGHT as u32)
    );
    let titles = panel_titles(&maps);
    assert_eq!(titles.len(), 5);
    assert!(titles[2][0].contains("subtracted") && titles[3][1].contains("λ ="), "{titles:?}");
    // Title strip: some dark (text) pixels above the first map panel.
    let strip_dark = (0..TITLE_HEIGHT as u32)
        .flat_map(|y| (228..452).map(move |x| (x, y)))
        .filter(|&(x, y)| back.to_rgb8().get_pixel(x, y).0[0] < 128)
        .count();
    assert!(strip_dark > 20, "no title text drawn ({strip_dark} dark pixels)");
    // The same image's maps from a standard and a differential model in one figure.
    let mut standard = maps.clone();
    (standard.second, standard.lambda, standard.effective) = (None, None, standard.first.clone());
    let cmp = dir.path().join("compare.png");
    save_comparison_png(&cmp, &rgb, 32, &[("clip", &standard), ("diffclip", &maps)], Some("a red square")).unwrap();
    let back = image::open(&cmp).unwrap();
    assert_eq!(back.width(), 5 * 224 + 4 * 4);
    assert!(back.height() > 2 * (224 + TITLE_HEIGHT as u32));
    assert!(attention_heatmaps(&encoder, vec![0.0; 10], None, None).is_err());
    // A template without the class name would give every class the same prompt.
    let e = Evaluator::new(encoder.clone()).classifier(&["a dog", "a cat"], &["a photo."]).unwrap_err().to_string();
    assert!(e.contains("has no {c}"), "{e}");
    assert!(attention_heatmaps(&encoder, p.normalize(&rgb), None, Some(7)).is_err());
}

#[test]
fn malformed_datasets_are_errors_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_png(&root.join("a.png"), COLORS[0], 0);
    std::fs::write(
        root.join("captions.csv"),
        "image,caption\na.png,ok\nmissing.png,a caption\n",
    )
    .unwrap();
    let e = CaptionSet::open(root).unwrap_err();
    assert!(
        matches!(&e, EvalError::Data(DataError::Csv { line: 3, .. })),
        "{e}"
    );
    assert!(e.to_string().contains("captions.csv:3"), "{e}");

    std::fs::write(
        root.join("captions.csv"),
        "image,caption\na.png,\"unterminated\n",
    )
    .unwrap();
    assert!(
        CaptionSet::open(root)
            .unwrap_err()
            .to_string()
            .contains(":2:")
    );
    std::fs::write(root.join("captions.csv"), "picture,text\na.png,x\n").unwrap();
    assert!(
        CaptionSet::open(root)
            .unwrap_err()
            .to_string()
            .contains("no column \"image\"")
    );

    std::fs::create_dir_all(root.join("folder/empty")).unwrap();
    write_png(&root.join("folder/full/x.png"), COLORS[1], 0);
    let e = ImageFolder::open(root.join("folder")).unwrap_err();
    assert!(
        e.to_string().contains("empty") && e.to_string().contains("no images"),
        "{e}"
    );
    assert!(ImageFolder::open(root.join("nope")).is_err());

    std::fs::write(
        root.join("pairs.csv"),
        "category,image1,image2,statement1,statement2\nc,a.png,a.png,one\n",
    )
    .unwrap();
    assert!(
        PairSet::open(root)
            .unwrap_err()
            .to_string()
            .contains("pairs.csv:2")
    );

    // A corrupt image is an error naming the file, not a panic.
    std::fs::write(root.join("bad.png"), b"not a png").unwrap();
    let model = model();
    let encoder = Encoder::new(&model).unwrap().with_progress(false);
    let src = ImageSource::files(vec![root.join("bad.png")], &pipeline());
    assert!(
        encoder
            .encode_source(&src)
            .unwrap_err()
            .to_string()
            .contains("bad.png")
    );
    // Wrong preprocessing size for the model.
    let src = ImageSource::files(vec![root.join("a.png")], &Pipeline::from_name("openai", 64).unwrap());
    assert!(encoder.encode_source(&src).is_err());
}

#[test]
fn mmvp_questions_are_read_by_their_header_and_degenerate_pairs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let images = root.join("MLLM_VLM Images/Color");
    for i in 0..4 {
        write_png(&images.join(format!("{}.jpg", i + 1)), COLORS[i % 3], i as u32);
    }
    let questions = |body: &str| std::fs::write(root.join("Questions.csv"), body).unwrap();
    questions("Question ID,Type,Statement\n1,Color,a red square\n2,Color,a green square\n3,Color,a blue square\n4,Color,a white square\n");
    let set = PairSet::open(root).unwrap();
    assert_eq!(set.pairs.len(), 2);
    assert_eq!(set.pairs[1].statements, ["a photo of a blue square", "a photo of a white square"]);
    // Without its header the first question would be lost to it.
    questions("1,Color,a red square\n2,Color,a green square\n3,Color,a blue square\n4,Color,a white square\n");
    let e = PairSet::open(root).unwrap_err().to_string();
    assert!(e.contains("the first line is a question"), "{e}");
    questions("ID,Kind,Text\n1,Color,a\n2,Color,b\n");
    let e = PairSet::open(root).unwrap_err().to_string();
    assert!(e.contains("no column \"question id\""), "{e}");
    // A pair no model can tell apart.
    questions("Question ID,Type,Statement\n1,Color,a square\n2,Color,a square\n");
    let e = PairSet::open(root).unwrap_err().to_string();
    assert!(e.contains("line 2: its two statements are the same"), "{e}");
    questions("Question ID,Type,Statement\n1,Color,a red square\n1,Color,a green square\n");
    let e = PairSet::open(root).unwrap_err().to_string();
    assert!(e.contains("its two images are the same file"), "{e}");
    // Two layouts in one root: which one is meant is asked, not guessed.
    std::fs::write(root.join("pairs.csv"), "category,image1,image2,statement1,statement2\n").unwrap();
    let e = PairSet::open(root).unwrap_err().to_string();
    assert!(e.contains("holds both pairs.csv and Questions.csv"), "{e}");
}

#[test]
fn a_karpathy_json_is_a_caption_set_of_its_test_split() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_png(&root.join("val2014/a.png"), COLORS[0], 0);
    write_png(&root.join("b.png"), COLORS[1], 1);
    let json = r#"{"images": [
        {"filepath": "val2014", "filename": "a.png", "split": "test", "sentences": [{"raw": "a red square"}, {"raw": "red"}]},
        {"filename": "b.png", "split": "test", "sentences": [{"raw": "a green square"}]},
        {"filename": "c.png", "split": "train", "sentences": [{"raw": "not read"}]}
    ]}"#;
    std::fs::write(root.join("dataset_coco.json"), json).unwrap();
    let set = CaptionSet::open(&root.join("dataset_coco.json")).unwrap();
    assert_eq!(set.images, [root.join("val2014/a.png"), root.join("b.png")]);
    assert_eq!((set.captions.len(), set.text_to_image.clone()), (3, vec![0, 0, 1]));
    // A test image that is not there is named.
    std::fs::write(root.join("dataset_coco.json"), json.replace("b.png", "gone.png")).unwrap();
    let e = CaptionSet::open(&root.join("dataset_coco.json")).unwrap_err().to_string();
    assert!(e.contains("gone.png is not a file"), "{e}");
}
