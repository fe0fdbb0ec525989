//! Parity of the metric functions with CLIP_benchmark / scikit-learn reference values
//! (`../shared/fixtures/metrics/expected.json` documents every case).

mod common;

use common::Fixture;
use diffclip_eval::probe::{LogRegOptions, LogisticRegression, nearest_class_mean};
use diffclip_eval::ranking::top_k;
use diffclip_eval::{retrieval_recall, zero_shot_metrics};

const ZS_CASES: [&str; 5] = ["zs_c37", "zs_c1000", "zs_c3", "zs_c5", "zs_ties"];
const RET_CASES: [&str; 4] = ["ret_even", "ret_uneven", "ret_uncaptioned", "ret_ties"];

#[test]
fn zero_shot_matches_clip_benchmark_exactly() {
    let fx = Fixture::load();
    for case in ZS_CASES {
        let exp = &fx.expected["zeroshot"][case];
        let logits = fx.matrix(&format!("{case}/logits"));
        let labels = fx.indices(&format!("{case}/labels"));
        let m = zero_shot_metrics(&logits, &labels).unwrap();
        let cb = &exp["clip_benchmark"];
        // Mean per-class recall uses argmax (first maximal index), exactly as CLIP_benchmark,
        // and numpy's summation order: bit-exact in every case, ties included.
        assert_eq!(
            m.mean_per_class_recall,
            cb["mean_per_class_recall"].as_f64().unwrap(),
            "{case}"
        );
        // Top-k: on exact ties torch.topk's order is unspecified; we rank lower indices first,
        // which the fixture records as `acc_lowest_index_first`.
        let ties = exp["extra"]["n_rows_with_tie_at_label"].as_u64().unwrap() > 0;
        let reference = if ties {
            &exp["extra"]["acc_lowest_index_first"]
        } else {
            cb
        };
        assert_eq!(m.top1, reference["acc1"].as_f64().unwrap(), "{case} top1");
        match reference["acc5"].as_f64() {
            Some(a5) => assert_eq!(m.top5, Some(a5), "{case} top5"),
            None => assert_eq!(m.top5, None, "{case}: no top-5 below 5 classes"),
        }
        assert_eq!(
            m.top1,
            exp["extra"]["acc1_argmax_first_index"].as_f64().unwrap(),
            "{case}"
        );
        if !ties {
            // Without ties our top-5 is torch.topk's, index for index.
            let topk = fx.indices(&format!("{case}/torch_topk_indices"));
            let k = topk.len() / labels.len();
            for i in 0..labels.len() {
                assert_eq!(
                    top_k(logits.row(i), k),
                    topk[i * k..(i + 1) * k],
                    "{case} row {i}"
                );
            }
        }
    }
}

#[test]
fn retrieval_matches_clip_benchmark_exactly() {
    let fx = Fixture::load();
    for case in RET_CASES {
        let exp = &fx.expected["retrieval"][case];
        let images = fx.matrix(&format!("{case}/image_emb"));
        let texts = fx.matrix(&format!("{case}/text_emb"));
        let index = fx.indices(&format!("{case}/text_image_index"));
        let m = retrieval_recall(&images, &texts, &index, &[1, 5, 10]).unwrap();
        assert_eq!(
            m.images_without_caption as u64,
            exp["n_images_without_caption"].as_u64().unwrap()
        );
        let ties = case == "ret_ties";
        for (name, recalls) in [
            ("image_retrieval", &m.text_to_image),
            ("text_retrieval", &m.image_to_text),
        ] {
            for r in recalls {
                let key = format!("{name}_recall@{}", r.k);
                let extra = &exp["extra"][&key];
                assert_eq!(
                    r.n as u64,
                    extra["n_rows"].as_u64().unwrap(),
                    "{case} {key}"
                );
                // Our tie rule (lower index first) is the fixture's `hits_lowest_index_first`;
                // without ties every convention agrees with CLIP_benchmark.
                let want = if ties {
                    "hits_lowest_index_first"
                } else {
                    "clip_benchmark_hits"
                };
                assert_eq!(r.hits as u64, extra[want].as_u64().unwrap(), "{case} {key}");
                if !ties {
                    // CLIP_benchmark's value is a float32 mean of the hits.
                    let f32_mean = (r.hits as f32 / r.n as f32) as f64;
                    assert_eq!(
                        f32_mean,
                        exp["clip_benchmark"][&key].as_f64().unwrap(),
                        "{case} {key}"
                    );
                }
                let (lo, hi) = (
                    extra["hits_pessimistic"].as_u64().unwrap(),
                    extra["hits_optimistic"].as_u64().unwrap(),
                );
                assert!((lo..=hi).contains(&(r.hits as u64)), "{case} {key}");
            }
        }
    }
}

#[test]
fn logistic_regression_matches_sklearn_within_two_samples() {
    let fx = Fixture::load();
    let lp = &fx.expected["linear_probe"];
    let (train_x, train_y) = (fx.matrix("lp/train_x"), fx.indices("lp/train_y"));
    let (test_x, test_y) = (fx.matrix("lp/test_x"), fx.indices("lp/test_y"));
    for (c, tag) in [
        (0.01, "C=0.01"),
        (0.1, "C=0.1"),
        (1.0, "C=1"),
        (10.0, "C=10"),
    ] {
        let opts = LogRegOptions {
            c,
            ..LogRegOptions::default()
        };
        let model = LogisticRegression::fit(&train_x, &train_y, 10, &opts, None).unwrap();
        assert!(
            model.converged,
            "C={c}: L-BFGS did not converge in {} iterations",
            model.iterations
        );
        let pred = model.predict(&test_x).unwrap();
        let correct = pred.iter().zip(&test_y).filter(|(p, y)| p == y).count() as i64;
        let want = lp["logreg"][tag]["n_correct"].as_i64().unwrap();
        // The same predictions as scikit-learn's, prediction for prediction, up to 2 samples.
        let ref_pred = fx.indices(&format!("lp/logreg_{}_pred", tag.replace('=', "")));
        let differ = pred.iter().zip(&ref_pred).filter(|(a, b)| a != b).count();
        eprintln!(
            "C={c}: {correct}/300 correct (sklearn {want}), {differ} predictions differ, {} iterations",
            model.iterations
        );
        assert!(
            (correct - want).abs() <= 2,
            "C={c}: {correct} correct vs sklearn's {want}"
        );
        assert!(
            differ <= 2,
            "C={c}: {differ} predictions differ from sklearn's"
        );
        let train_pred = model.predict(&train_x).unwrap();
        let train_acc = train_pred
            .iter()
            .zip(&train_y)
            .filter(|(p, y)| p == y)
            .count() as f64
            / 600.0;
        assert!(
            (train_acc - lp["logreg"][tag]["train_acc"].as_f64().unwrap()).abs()
                <= 2.0 / 600.0 + 1e-12
        );
    }
}

#[test]
fn nearest_class_mean_matches_reference() {
    let fx = Fixture::load();
    let ncm = &fx.expected["linear_probe"]["ncm"];
    let (train_x, train_y) = (fx.matrix("lp/train_x"), fx.indices("lp/train_y"));
    let (test_x, test_y) = (fx.matrix("lp/test_x"), fx.indices("lp/test_y"));
    for shots in ["1shot", "5shot"] {
        let idx = fx.indices(&format!("lp/ncm_{shots}_support_idx"));
        let sx = train_x.select_rows(&idx).unwrap();
        let sy: Vec<usize> = idx.iter().map(|&i| train_y[i]).collect();
        for (cosine, key) in [(false, "acc_euclidean"), (true, "acc_cosine")] {
            let pred = nearest_class_mean(&sx, &sy, 10, &test_x, cosine).unwrap();
            let correct = pred.iter().zip(&test_y).filter(|(p, y)| p == y).count();
            let want = (ncm[shots][key].as_f64().unwrap() * 300.0).round() as usize;
            assert_eq!(correct, want, "{shots} {key}");
        }
    }
}
