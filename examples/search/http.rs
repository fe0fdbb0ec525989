//! `search --listen ADDR`: the model and the index served over HTTP (`diffclip::http`).
//!
//! | request | body | answer |
//! |---|---|---|
//! | `POST /search/text?top_k=N` | the query text (UTF-8) | `{"query": …, "hits": [{"rank", "score", "path"}, …]}` |
//! | `POST /search/image?top_k=N` | an image file's bytes | `{"hits": […]}` |
//! | `POST /embed/text?normalize=true` | the text | `{"embedding": [f32, …]}` |
//! | `POST /embed/image?normalize=true` | an image file's bytes | `{"embedding": […]}` |
//! | `GET /health` | | `{"status": "ok", "rows": N}` |
//!
//! Errors are `{"error": "…"}` with a 4xx status for a bad request (not UTF-8, an empty query,
//! an image that cannot be decoded, a bad parameter) and 500 for a failure of the model or index.

use diffclip::data::Pipeline;
use diffclip::eval::shards::Hit;
use diffclip::eval::{Encoder, ImageSource, Matrix};
use diffclip::http::{Request, Response};
use serde_json::{Value, json};

/// Most hits one request may ask for.
const MAX_TOP_K: usize = 10_000;

/// What the endpoints answer with.
pub struct Endpoints<'a, S> {
    pub encoder: &'a Encoder<'a>,
    pub pipeline: &'a Pipeline,
    /// Exact or approximate search: `k` hits for each query.
    pub search: S,
    pub top_k: usize,
    pub rows: usize,
}

impl<S: Fn(&[&[f32]], usize) -> Result<Vec<Vec<Hit>>, Box<dyn std::error::Error>>> Endpoints<'_, S> {
    /// The answer to `request`.
    pub fn answer(&self, request: Request) -> Response {
        let endpoint = request.path.as_str();
        let known = ["/search/text", "/search/image", "/embed/text", "/embed/image", "/health"];
        match (request.method.as_str(), endpoint) {
            ("GET", "/health") => Response::json(200, &json!({ "status": "ok", "rows": self.rows })),
            ("POST", "/health") => Response::error(405, "GET /health"),
            ("POST", _) if known.contains(&endpoint) => self.post(&request).unwrap_or_else(|e| e),
            (method, _) if known.contains(&endpoint) => Response::error(405, format!("{method} {endpoint}: use POST with a body")),
            _ => Response::error(404, format!("no endpoint {endpoint}; there are {}", known.join(", "))),
        }
    }

    fn post(&self, request: &Request) -> Result<Response, Response> {
        let (action, kind) = request.path[1..].split_once('/').unwrap_or_default();
        let (query, embedding) = self.embed(kind, &request.body)?;
        let row = embedding.row(0);
        if action == "embed" {
            let normalize = parse_param(request, "normalize", false)?;
            return Ok(Response::json(200, &json!({ "embedding": if normalize { unit(row) } else { row.to_vec() } })));
        }
        let k: usize = parse_param(request, "top_k", self.top_k)?;
        if k == 0 || k > MAX_TOP_K {
            return Err(Response::error(400, format!("top_k must be 1 to {MAX_TOP_K}, got {k}")));
        }
        let hits = (self.search)(&[row], k).map_err(|e| Response::error(500, e))?;
        let hits: Vec<Value> = hits[0].iter().enumerate().map(|(i, h)| json!({ "rank": i + 1, "score": h.score, "path": h.path })).collect();
        Ok(Response::json(200, &match query {
            Some(query) => json!({ "query": query, "hits": hits }),
            None => json!({ "hits": hits }),
        }))
    }

    /// The body's embedding, and the query text for a text.
    fn embed(&self, kind: &str, body: &[u8]) -> Result<(Option<String>, Matrix), Response> {
        if kind == "text" {
            let text = std::str::from_utf8(body).map_err(|e| Response::error(400, format!("the body is not UTF-8 text: {e}")))?.trim();
            if text.is_empty() {
                return Err(Response::error(400, "the body holds no query text"));
            }
            let embedding = self.encoder.encode_texts(&[text]).map_err(|e| Response::error(400, e))?;
            return Ok((Some(text.to_string()), embedding));
        }
        if body.is_empty() {
            return Err(Response::error(400, "the body holds no image"));
        }
        let pixels = self.pipeline.process_bytes(body, "request body", 0).map_err(|e| Response::error(422, e))?;
        let source = ImageSource::new(1, self.pipeline.size(), None, move |_| Ok(pixels.clone()));
        Ok((None, self.encoder.encode_source(&source).map_err(|e| Response::error(500, e))?))
    }
}

/// Query parameter `name` parsed, `default` when absent.
fn parse_param<T: std::str::FromStr>(request: &Request, name: &str, default: T) -> Result<T, Response> {
    match request.param(name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| Response::error(400, format!("query parameter {name}={v:?} is not valid"))),
    }
}

/// `v` scaled to unit length (sum of squares in f64); a zero vector stays zero.
fn unit(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
    v.iter().map(|&x| if norm > 0.0 { (f64::from(x) / norm) as f32 } else { 0.0 }).collect()
}
