//! CLIP tokenizer against the reference fixtures (open_clip 3.3.0 and the DiffCLIP authors'
//! tokenizer), plus property tests.

use std::collections::BTreeMap;
use std::path::PathBuf;

use diffclip_data::tokenizer::{
    ClipTokenizer, EOT_ID, PAD_ID, SOT_ID, TokenizerConfig, TokenizerError, Truncation, VOCAB_SIZE,
    clean_text,
};
use proptest::prelude::*;
use serde_json::Value;

struct Case {
    id: u64,
    category: String,
    text: String,
    clean: String,
    bpe: Vec<u32>,
    authors_bpe: Vec<u32>,
    openclip77: Vec<u32>,
    authors77: Vec<u32>,
    special_literal: bool,
}

fn ids(v: &Value, key: &str) -> Vec<u32> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("case field {key} missing"))
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

fn fixture() -> (Value, Vec<Case>) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/tokenizer/cases.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "tokenizer fixture {} is required but unreadable: {e}",
            path.display()
        )
    });
    let json: Value = serde_json::from_str(&text).expect("cases.json is valid JSON");
    let cases = json["cases"]
        .as_array()
        .expect("cases array")
        .iter()
        .map(|c| Case {
            id: c["id"].as_u64().expect("id"),
            category: c["category"].as_str().expect("category").to_owned(),
            text: c["text"].as_str().expect("text").to_owned(),
            clean: c["authors_clean"]
                .as_str()
                .expect("authors_clean")
                .to_owned(),
            bpe: ids(c, "bpe_ids"),
            authors_bpe: ids(c, "authors_bpe_ids"),
            openclip77: ids(c, "openclip_tokens77"),
            authors77: ids(c, "authors_tokens77"),
            special_literal: c["diff_reasons"]
                .as_array()
                .expect("diff_reasons")
                .iter()
                .any(|r| r == "special_token_literal"),
        })
        .collect();
    (json["meta"].clone(), cases)
}

fn tokenizer(truncation: Truncation) -> ClipTokenizer {
    ClipTokenizer::with_config(TokenizerConfig {
        context_length: 77,
        truncation,
    })
    .unwrap()
}

/// Collects mismatches so one run reports every failing case.
fn check_all(what: &str, cases: &[Case], f: impl Fn(&Case) -> Option<String>) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| f(c).map(|m| format!("  case {} [{}] {:?}: {m}", c.id, c.category, c.text)))
        .collect();
    assert!(
        failures.is_empty(),
        "{what}: {} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn diff<T: std::fmt::Debug + PartialEq>(got: T, want: T) -> Option<String> {
    (got != want).then(|| format!("got {got:?}, want {want:?}"))
}

#[test]
fn fixture_meta_matches_constants() {
    let (meta, cases) = fixture();
    assert_eq!(meta["sot_id"], SOT_ID);
    assert_eq!(meta["eot_id"], EOT_ID);
    assert_eq!(meta["pad_id"], PAD_ID);
    assert_eq!(meta["vocab_size"], VOCAB_SIZE);
    assert_eq!(meta["context_length"], 77);
    assert_eq!(meta["n_cases"].as_u64(), Some(cases.len() as u64));
    // Every category listed in the meta has its stated number of cases here.
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for c in &cases {
        *counts.entry(c.category.as_str()).or_default() += 1;
    }
    let listed = meta["categories"].as_object().expect("categories");
    assert_eq!(counts.len(), listed.len());
    for (cat, n) in listed {
        assert_eq!(
            counts.get(cat.as_str()).copied(),
            n.as_u64(),
            "category {cat}"
        );
    }
}

#[test]
fn fixture_cleaning_matches_reference() {
    let (_, cases) = fixture();
    check_all("clean_text", &cases, |c| {
        diff(clean_text(&c.text), c.clean.clone())
    });
}

#[test]
fn fixture_bpe_ids_match() {
    let (_, cases) = fixture();
    let tok = ClipTokenizer::new();
    check_all("encode vs authors_bpe_ids", &cases, |c| {
        diff(tok.encode(&c.text), c.authors_bpe.clone())
    });
    let plain: Vec<Case> = cases.into_iter().filter(|c| !c.special_literal).collect();
    check_all("encode vs bpe_ids (open_clip)", &plain, |c| {
        diff(tok.encode(&c.text), c.bpe.clone())
    });
}

#[test]
fn fixture_keep_eot_matches_open_clip() {
    let (_, cases) = fixture();
    let tok = tokenizer(Truncation::KeepEot);
    let plain: Vec<Case> = cases.into_iter().filter(|c| !c.special_literal).collect();
    assert!(plain.len() >= 140);
    check_all("KeepEot vs openclip_tokens77", &plain, |c| {
        diff(tok.tokenize(&c.text), c.openclip77.clone())
    });
}

#[test]
fn fixture_drop_eot_matches_authors() {
    let (_, cases) = fixture();
    let tok = tokenizer(Truncation::DropEot);
    check_all("DropEot vs authors_tokens77", &cases, |c| {
        diff(tok.tokenize(&c.text), c.authors77.clone())
    });
}

/// Literal `<|startoftext|>` / `<|endoftext|>` become special ids (the authors' behaviour);
/// open_clip 3.3.0's `<start_of_text>` / `<end_of_text>` are plain text.
#[test]
fn literal_special_tokens_follow_authors() {
    let (_, cases) = fixture();
    let keep = tokenizer(Truncation::KeepEot);
    let special: Vec<Case> = cases.into_iter().filter(|c| c.special_literal).collect();
    assert!(
        !special.is_empty(),
        "fixture has literal special-token cases"
    );
    check_all("KeepEot on literal specials", &special, |c| {
        let mut want = vec![SOT_ID];
        want.extend(&c.authors_bpe);
        want.push(EOT_ID);
        if want.len() > 77 {
            want.truncate(77);
            want[76] = EOT_ID;
        }
        want.resize(77, PAD_ID);
        diff(keep.tokenize(&c.text), want)
    });
    let tok = ClipTokenizer::new();
    assert_eq!(tok.encode("<|startoftext|>"), vec![SOT_ID]);
    assert_eq!(tok.encode("A <|EndOfText|> b"), vec![320, EOT_ID, 321]);
    assert_eq!(
        &tok.tokenize("<|endoftext|>")[..4],
        &[SOT_ID, EOT_ID, EOT_ID, PAD_ID]
    );
    let split = tok.encode("<end_of_text>");
    assert!(split.len() > 1 && !split.contains(&EOT_ID), "{split:?}");
}

#[test]
fn truncation_policies() {
    let long = "word ".repeat(200);
    let keep = tokenizer(Truncation::KeepEot).tokenize(&long);
    let drop = tokenizer(Truncation::DropEot).tokenize(&long);
    assert_eq!(keep.len(), 77);
    assert_eq!(keep[76], EOT_ID);
    assert_eq!(&keep[..76], &drop[..76]);
    assert!(!drop.contains(&EOT_ID));
    // Exactly full: both policies agree and keep the real EOT.
    let tok = tokenizer(Truncation::DropEot);
    let fits = "a ".repeat(75);
    assert_eq!(tok.tokenize(&fits)[76], EOT_ID);
    assert_eq!(
        tokenizer(Truncation::KeepEot).tokenize(&fits),
        tok.tokenize(&fits)
    );
}

#[test]
fn context_length_is_configurable_and_validated() {
    for n in [0, 1] {
        let err = ClipTokenizer::with_config(TokenizerConfig {
            context_length: n,
            ..Default::default()
        });
        assert!(matches!(err, Err(TokenizerError::ContextLength(m)) if m == n));
    }
    let two = |truncation| {
        ClipTokenizer::with_config(TokenizerConfig {
            context_length: 2,
            truncation,
        })
        .unwrap()
    };
    assert_eq!(
        two(Truncation::KeepEot).tokenize("a photo"),
        vec![SOT_ID, EOT_ID]
    );
    assert_eq!(
        two(Truncation::DropEot).tokenize("a photo"),
        vec![SOT_ID, 320]
    );
    let tok = ClipTokenizer::with_config(TokenizerConfig {
        context_length: 5,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(tok.tokenize("a"), vec![SOT_ID, 320, EOT_ID, 0, 0]);
    assert!("sideways".parse::<Truncation>().is_err());
    assert_eq!(
        "DROP_EOT".parse::<Truncation>().unwrap(),
        Truncation::DropEot
    );
}

#[test]
fn batch_and_tensor() {
    let tok = ClipTokenizer::new();
    let texts = ["a photo of a dog", "", "&amp; ﬁsh"];
    let batch = tok.tokenize_batch(&texts);
    assert_eq!(batch.len(), 3);
    assert_eq!(batch[0], tok.tokenize(texts[0]));
    let device = burn::tensor::Device::flex();
    let tensor = tok.tokenize_tensor(&texts, &device);
    assert_eq!(tensor.dims(), [3, 77]);
    let flat: Vec<i64> = tensor
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .unwrap();
    let want: Vec<i64> = batch.concat().into_iter().map(i64::from).collect();
    assert_eq!(flat, want);
    let owned: Vec<String> = texts.iter().map(|s| s.to_string()).collect();
    assert_eq!(tok.tokenize_batch(&owned), batch);
}

#[test]
fn decode_round_trips_simple_text() {
    let tok = ClipTokenizer::new();
    for text in [
        "a photo of a cat",
        "satellite imagery of farmland",
        "zürich café 東京 🐱",
        "itap of a dog",
    ] {
        assert_eq!(tok.decode(&tok.encode(text)), text);
        assert_eq!(tok.decode(&tok.tokenize(text)), text);
    }
    assert_eq!(
        tok.decode(&tok.tokenize(&"cat ".repeat(100))),
        "cat ".repeat(75).trim_end()
    );
}

#[test]
fn shared_across_threads() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<ClipTokenizer>();
    let tok = ClipTokenizer::new();
    let want = tok.tokenize("a photo of a dog on the beach");
    std::thread::scope(|s| {
        for _ in 0..4 {
            let tok = tok.clone();
            let want = want.clone();
            s.spawn(move || assert_eq!(tok.tokenize("a photo of a dog on the beach"), want));
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_text_gives_context_ids(text in any::<String>(), drop in any::<bool>()) {
        let truncation = if drop { Truncation::DropEot } else { Truncation::KeepEot };
        let ids = tokenizer(truncation).tokenize(&text);
        prop_assert_eq!(ids.len(), 77);
        prop_assert_eq!(ids[0], SOT_ID);
        prop_assert!(ids.iter().all(|&i| (i as usize) < VOCAB_SIZE));
        if !drop {
            prop_assert!(ids.contains(&EOT_ID));
        }
    }

    #[test]
    fn decode_recovers_cleaned_text(text in "[a-zA-Z0-9 .,!?'&;éüß東京🐱\u{201C}\u{201D}\u{FB01}\u{FF21}-\u{FF3A}\n\t]{0,60}") {
        let tok = ClipTokenizer::new();
        let cleaned = clean_text(&text);
        let decoded = tok.decode(&tok.encode(&text));
        prop_assert_eq!(decoded.replace(' ', ""), cleaned.replace(' ', ""));
    }
}

#[test]
fn a_huge_word_keeps_the_ids_that_survive_the_context() {
    // 200 KB of letters with no space: BPE of the whole word would be wasted past 77 ids.
    let mut state = 12345u64;
    let word: String = (0..200_000)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (b'a' + (state >> 59) as u8 % 26) as char
        })
        .collect();
    let tokenizer = ClipTokenizer::new();
    let whole = tokenizer.encode(&word);
    let ids = tokenizer.tokenize(&format!("A photo of {word}"));
    let head = tokenizer.encode("A photo of");
    assert_eq!(ids.len(), 77);
    assert_eq!(&ids[1..1 + head.len()], &head[..]);
    assert_eq!(&ids[1 + head.len()..76], &whole[..76 - 1 - head.len()], "the surviving ids are the whole word's");
}
