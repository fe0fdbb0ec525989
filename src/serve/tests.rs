//! The endpoints answering requests directly, with a tiny random model and an index of their own.

use std::sync::Mutex;

use burn::tensor::Device;
use diffclip_clip::ClipConfig;
use diffclip_data::Pipeline;
use diffclip_eval::Encoder;
use diffclip_eval::shards::Hit;

use super::{Endpoints, Index};
use crate::http::{Request, Response};

/// Three rows; records the queries and `k` of each call.
#[derive(Default)]
struct Recorder(Mutex<Vec<(usize, usize)>>);

impl Index for Recorder {
    fn rows(&self) -> usize {
        3
    }
    fn search_many(&self, queries: &[&[f32]], k: usize) -> Result<Vec<Vec<Hit>>, Box<dyn std::error::Error + Send + Sync>> {
        self.0.lock().unwrap().push((queries.len(), k));
        Ok(queries.iter().map(|q| (0..k.min(3)).map(|i| Hit { score: q[0] - i as f32, path: format!("row{i}") }).collect()).collect())
    }
}

/// An index that answers one query fewer than asked.
struct Short;

impl Index for Short {
    fn rows(&self) -> usize {
        1
    }
    fn search_many(&self, queries: &[&[f32]], _: usize) -> Result<Vec<Vec<Hit>>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(vec![Vec::new(); queries.len() - 1])
    }
}

fn post(path: &str, body: &[u8]) -> Request {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let query = query.split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).unwrap()).collect();
    Request { method: "POST".into(), path: path.into(), query, body: body.to_vec() }
}

fn json(response: &Response) -> serde_json::Value {
    serde_json::from_slice(&response.body).unwrap()
}

#[test]
fn endpoints_embed_search_and_refuse() {
    let config = ClipConfig::diffclip_tiny();
    let model = config.init(&Device::flex()).unwrap();
    let encoder = Encoder::new(&model).unwrap();
    let pipeline = Pipeline::from_name("slip", config.vision.image_size as u32).unwrap();
    let png = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/preprocess/images/rgba_300x200.png")).unwrap();

    // Without an index: embeddings only.
    let alone = Endpoints::new(&encoder, &pipeline);
    let answers = alone.answer(&[post("/embed/text", b"a dog"), post("/search/text", b"a dog"), post("/embed/image", &png), post("/embed/image", b"junk")]);
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [200, 404, 200, 422], "{answers:?}");
    let text = json(&answers[0])["embedding"].as_array().unwrap().len();
    assert_eq!(text, config.embed_dim);
    let health = alone.answer(&[Request { method: "GET".into(), path: "/health".into(), query: vec![], body: vec![] }]);
    assert_eq!(json(&health[0]), serde_json::json!({ "status": "ok" }));

    // With one: searches asking for the same k go through one call; the default k is the
    // index's; a bad top_k costs no search.
    let index = Recorder::default();
    let endpoints = Endpoints::new(&encoder, &pipeline).with_index(&index, 2);
    let answers = endpoints.answer(&[post("/search/text?top_k=1", b"a dog"), post("/search/text", b" a cat "), post("/search/image?top_k=1", &png), post("/search/text?top_k=0", b"x")]);
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [200, 200, 200, 400], "{answers:?}");
    assert_eq!(*index.0.lock().unwrap(), [(2, 1), (1, 2)], "one call per k");
    let cat = json(&answers[1]);
    assert_eq!((cat["query"].as_str(), cat["hits"].as_array().unwrap().len()), (Some("a cat"), 2));
    // The hits are those of the query's own embedding (the recorder scores by its first value).
    let embedded = json(&endpoints.answer(&[post("/embed/text", b"a cat")])[0])["embedding"][0].as_f64().unwrap();
    assert!((cat["hits"][0]["score"].as_f64().unwrap() - embedded).abs() < 1e-6, "{cat}");
    let health = endpoints.answer(&[Request { method: "GET".into(), path: "/health".into(), query: vec![], body: vec![] }]);
    assert_eq!(json(&health[0]), serde_json::json!({ "status": "ok", "rows": 3 }));

    // More hits than rows asks for the rows there are; a parameter given twice or not the
    // endpoint's is refused before any embedding.
    assert_eq!(endpoints.answer(&[post("/search/text?top_k=7", b"a dog")])[0].status, 200);
    assert_eq!(index.0.lock().unwrap().last(), Some(&(1, 3)));
    let refused = endpoints.answer(&[post("/search/text?top_k=1&top_k=2", b"a dog"), post("/search/image?topk=1", &png), post("/embed/text?normalise=true", b"a")]);
    let said: Vec<(u16, String)> = refused.iter().map(|a| (a.status, json(a)["error"].as_str().unwrap().to_string())).collect();
    assert_eq!(said[0], (400, r#"query parameter top_k is given twice ("1" and "2")"#.to_string()));
    assert_eq!(said[1], (400, r#"unknown query parameter "topk": /search/image takes top_k"#.to_string()));
    assert_eq!(said[2], (400, r#"unknown query parameter "normalise": /embed/text takes normalize"#.to_string()));
    assert_eq!(index.0.lock().unwrap().len(), 3, "no search for a refused request");

    // An index that miscounts fails its searches (500), not the server.
    let short = Endpoints::new(&encoder, &pipeline).with_index(&Short, 2);
    let answers = short.answer(&[post("/search/text", b"a dog"), post("/search/text", b"a cat"), post("/embed/text", b"a dog")]);
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [500, 500, 200], "{answers:?}");
}
