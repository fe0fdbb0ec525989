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
//! Errors are `{"error": "…"}`: 400 for a text that is not UTF-8, empty or not tokenizable,
//! and for a bad parameter; 413 for a text over 64 KiB; 422 for an image that does not decode;
//! 500 for a failure of the model or the index.

use diffclip::data::Pipeline;
use diffclip::eval::shards::Hit;
use diffclip::eval::{Encoder, EvalError, Matrix};
use diffclip::http::{Request, Response};
use serde_json::{Value, json};

use crate::serve::{image_embedding, param, top_k, unrouted};

/// Most hits one request may ask for.
const MAX_TOP_K: usize = 10_000;

/// Longest text query: the model reads 77 tokens, so this is ample, and it bounds the query
/// echoed in the answer.
const MAX_TEXT_BYTES: usize = 64 << 10;

const ENDPOINTS: [(&str, &str); 5] = [("POST", "/search/text"), ("POST", "/search/image"), ("POST", "/embed/text"), ("POST", "/embed/image"), ("GET", "/health")];

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
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/health") => Response::json(200, &json!({ "status": "ok", "rows": self.rows })),
            ("POST", "/search/text" | "/embed/text") => self.post(&request, "text").unwrap_or_else(|e| e),
            ("POST", "/search/image" | "/embed/image") => self.post(&request, "image").unwrap_or_else(|e| e),
            _ => unrouted(&request, &ENDPOINTS),
        }
    }

    fn post(&self, request: &Request, kind: &str) -> Result<Response, Response> {
        // Parameters first: a bad one costs no embedding.
        let embed_only = request.path.starts_with("/embed/");
        let (normalize, k) = match embed_only {
            true => (param(request, "normalize", false)?, 0),
            false => (false, top_k(request, self.top_k.min(MAX_TOP_K), MAX_TOP_K)?),
        };
        let (query, embedding) = match kind {
            "text" => self.text(&request.body)?,
            _ => (None, image_embedding(self.encoder, self.pipeline, &request.body)?),
        };
        let row = embedding.row(0);
        if embed_only {
            return Ok(Response::json(200, &json!({ "embedding": if normalize { unit(row) } else { row.to_vec() } })));
        }
        let hits = (self.search)(&[row], k).map_err(|e| Response::error(500, e))?;
        let hits: Vec<Value> = hits[0].iter().enumerate().map(|(i, h)| json!({ "rank": i + 1, "score": h.score, "path": h.path })).collect();
        Ok(Response::json(200, &match query {
            Some(query) => json!({ "query": query, "hits": hits }),
            None => json!({ "hits": hits }),
        }))
    }

    /// The body as a query text (trimmed), and its embedding.
    fn text(&self, body: &[u8]) -> Result<(Option<String>, Matrix), Response> {
        if body.len() > MAX_TEXT_BYTES {
            return Err(Response::error(413, format!("a text query of {} bytes is over the limit of {MAX_TEXT_BYTES}", body.len())));
        }
        let text = std::str::from_utf8(body).map_err(|e| Response::error(400, format!("the body is not UTF-8 text: {e}")))?.trim();
        if text.is_empty() {
            return Err(Response::error(400, "the body holds no query text"));
        }
        let embedding = self.encoder.encode_texts(&[text]).map_err(|e| match e {
            EvalError::Tokenizer(_) => Response::error(400, e),
            e => Response::error(500, e),
        })?;
        Ok((Some(text.to_string()), embedding))
    }
}

/// `v` scaled to unit length (sum of squares in f64); a zero vector stays zero.
fn unit(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
    v.iter().map(|&x| if norm > 0.0 { (f64::from(x) / norm) as f32 } else { 0.0 }).collect()
}
