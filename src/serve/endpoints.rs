//! The endpoints of `search --listen`: a model's embeddings, and searches of an index.
//!
//! | request | body | answer |
//! |---|---|---|
//! | `POST /search/text?top_k=N` | the query text (UTF-8) | `{"query": …, "hits": [{"rank", "score", "path"}, …]}` |
//! | `POST /search/image?top_k=N` | an image file's bytes | `{"hits": […]}` |
//! | `POST /embed/text?normalize=true` | the text | `{"embedding": [f32, …]}` |
//! | `POST /embed/image?normalize=true` | an image file's bytes | `{"embedding": […]}` |
//! | `GET /health` | | `{"status": "ok", "rows": N}` |
//!
//! Without an index ([`Endpoints::new`] alone) only the embedding endpoints are served
//! (`/search/*` is 404, and `/health` has no `rows`).
//!
//! Requests that arrive together are embedded as one batch (texts with texts, images with
//! images). Errors are `{"error": "…"}`: 400 for a text that is not UTF-8, empty or not
//! tokenizable, and for a parameter that does not parse, is given twice or is not the
//! endpoint's (`top_k` above the rows there are is clamped to them, not refused); 413 for a text over 64 KiB; 422 for an image that does
//! not decode; 500 for a failure of the model or the index.

use diffclip_data::Pipeline;
use diffclip_eval::shards::Hit;
use diffclip_eval::{Encoder, Matrix};
use serde_json::{Value, json};

use super::{Index, MAX_TOP_K, image_embeddings, known_params, param, text_embeddings, top_k, unrouted};
use crate::http::{Request, Response};

/// Longest text query: the model reads 77 tokens, so this is ample, and it bounds the query
/// echoed in the answer.
const MAX_TEXT_BYTES: usize = 64 << 10;

/// What is served: `(method, path)`.
pub const ENDPOINTS: [(&str, &str); 5] = [("POST", "/search/text"), ("POST", "/search/image"), ("POST", "/embed/text"), ("POST", "/embed/image"), ("GET", "/health")];

/// The endpoints: embeddings from `encoder` (images through `pipeline`), and searches of an
/// index when there is one.
pub struct Endpoints<'a> {
    encoder: &'a Encoder<'a>,
    pipeline: &'a Pipeline,
    /// The index searched, and the hits a search returns when it does not say.
    index: Option<(&'a dyn Index, usize)>,
}

/// A request checked and ready to embed: its text or image, and what to answer with it.
struct Query<'r> {
    input: Input<'r>,
    action: Action,
}

enum Input<'r> {
    Text(&'r str),
    Image(&'r [u8]),
}

enum Action {
    Search { k: usize },
    Embed { normalize: bool },
}

impl<'a> Endpoints<'a> {
    /// The embedding endpoints (`/search/*` answers `404`, `/health` has no `rows`).
    pub fn new(encoder: &'a Encoder<'a>, pipeline: &'a Pipeline) -> Self {
        Self { encoder, pipeline, index: None }
    }

    /// The endpoints with searches of `index`, `top_k` hits unless a request asks otherwise.
    pub fn with_index(self, index: &'a dyn Index, top_k: usize) -> Self {
        Self { index: Some((index, top_k.max(1))), ..self }
    }

    /// The answers to `requests`, in order: every text embedded in one batch, every image in
    /// another, and the searches asking for the same `k` made in one call (exact search then
    /// reads the rows once for all of them).
    pub fn answer(&self, requests: &[Request]) -> Vec<Response> {
        let queries: Vec<Result<Query, Response>> = requests.iter().map(|r| self.check(r)).collect();
        let texts: Vec<&str> = queries.iter().filter_map(|q| match q {
            Ok(Query { input: Input::Text(t), .. }) => Some(*t),
            _ => None,
        }).collect();
        let images: Vec<&[u8]> = queries.iter().filter_map(|q| match q {
            Ok(Query { input: Input::Image(b), .. }) => Some(*b),
            _ => None,
        }).collect();
        let (mut text_rows, mut image_rows) = (text_embeddings(self.encoder, &texts).into_iter(), image_embeddings(self.encoder, self.pipeline, &images).into_iter());
        let embedded: Vec<Result<(Query, Vec<f32>), Response>> = queries
            .into_iter()
            .map(|query| {
                let query = query?;
                let row = match query.input {
                    Input::Text(_) => text_rows.next(),
                    Input::Image(_) => image_rows.next(),
                };
                Ok((query, row.expect("one embedding per query")?))
            })
            .collect();
        let mut hits = self.search_all(&embedded).into_iter();
        embedded.into_iter().map(|e| e.and_then(|(query, row)| self.respond(&query, &row, hits.next().flatten())).unwrap_or_else(|e| e)).collect()
    }

    /// The hits of each embedded search query (`None` for the others), one search call per `k`.
    fn search_all(&self, embedded: &[Result<(Query, Vec<f32>), Response>]) -> Vec<Option<Result<Vec<Hit>, Response>>> {
        let k_of = |e: &Result<(Query, Vec<f32>), Response>| match e {
            Ok((Query { action: Action::Search { k }, .. }, _)) => Some(*k),
            _ => None,
        };
        let mut ks: Vec<usize> = embedded.iter().filter_map(k_of).collect();
        ks.sort_unstable();
        ks.dedup();
        let mut hits: Vec<Option<Result<Vec<Hit>, Response>>> = embedded.iter().map(|_| None).collect();
        let Some((index, _)) = self.index else { return hits }; // no search passes `check` then
        for k in ks {
            let asking: Vec<usize> = (0..embedded.len()).filter(|&i| k_of(&embedded[i]) == Some(k)).collect();
            let rows: Vec<&[f32]> = asking.iter().filter_map(|&i| embedded[i].as_ref().ok()).map(|(_, row)| row.as_slice()).collect();
            match index.search_many(&rows, k) {
                Ok(found) if found.len() == asking.len() => asking.iter().zip(found).for_each(|(&i, h)| hits[i] = Some(Ok(h))),
                Ok(found) => asking.iter().for_each(|&i| hits[i] = Some(Err(Response::error(500, format!("the index gave {} answers to {} queries", found.len(), rows.len()))))),
                Err(e) => asking.iter().for_each(|&i| hits[i] = Some(Err(Response::error(500, &e)))),
            }
        }
        hits
    }

    /// The request routed, its parameters and body checked (a bad one costs no embedding);
    /// `Err` is the answer when none is needed (`/health`, a bad request).
    fn check<'r>(&self, request: &'r Request) -> Result<Query<'r>, Response> {
        let action = match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/health") => {
                known_params(request, &[])?;
                let health = match self.index {
                    Some((index, _)) => json!({ "status": "ok", "rows": index.rows() }),
                    None => json!({ "status": "ok" }),
                };
                return Err(Response::json(200, &health));
            }
            ("POST", "/search/text" | "/search/image") => match self.index {
                Some((index, default)) => {
                    known_params(request, &["top_k"])?;
                    Action::Search { k: top_k(request, default.min(MAX_TOP_K), index.rows())? }
                }
                None => return Err(Response::error(404, "this server has no index to search: only /embed/text and /embed/image are served")),
            },
            ("POST", "/embed/text" | "/embed/image") => {
                known_params(request, &["normalize"])?;
                Action::Embed { normalize: param(request, "normalize", false)? }
            }
            _ => return Err(unrouted(request, &ENDPOINTS)),
        };
        let body = request.body.as_slice();
        let input = match request.path.ends_with("/text") {
            true if body.len() > MAX_TEXT_BYTES => return Err(Response::error(413, format!("a text query of {} bytes is over the limit of {MAX_TEXT_BYTES}", body.len()))),
            true => {
                let text = std::str::from_utf8(body).map_err(|e| Response::error(400, format!("the body is not UTF-8 text: {e}")))?.trim();
                // Control characters are cleaned away before tokenizing: they are no query either.
                if diffclip_data::tokenizer::clean_text(text).is_empty() {
                    return Err(Response::error(400, "the body holds no query text"));
                }
                Input::Text(text)
            }
            false if body.is_empty() => return Err(Response::error(400, "the body holds no image")),
            false => Input::Image(body),
        };
        Ok(Query { input, action })
    }

    /// The answer to `query`, whose embedding is `row` and, for a search, whose hits are `hits`.
    fn respond(&self, query: &Query, row: &[f32], hits: Option<Result<Vec<Hit>, Response>>) -> Result<Response, Response> {
        if let Action::Embed { normalize } = query.action {
            // Normalised as `embed --normalize` writes rows.
            let embedding = match normalize {
                true => Matrix::new(1, row.len(), row.to_vec()).map_err(|e| Response::error(500, e))?.l2_normalized().row(0).to_vec(),
                false => row.to_vec(),
            };
            return Ok(Response::json(200, &json!({ "embedding": embedding })));
        }
        let hits = hits.ok_or_else(|| Response::error(500, "no search was made for this query"))??;
        let hits: Vec<Value> = hits.iter().enumerate().map(|(i, h)| json!({ "rank": i + 1, "score": h.score, "path": h.path })).collect();
        Ok(Response::json(200, &match query.input {
            Input::Text(text) => json!({ "query": text, "hits": hits }),
            Input::Image(_) => json!({ "hits": hits }),
        }))
    }
}
