//! A model's answers to HTTP requests, for programs of your own over [`crate::http`]: the
//! endpoints `search --listen` serves ([`Endpoints`]: embeddings of texts and images, and
//! searches of any [`Index`]), and the pieces `classify --listen` builds its own from
//! ([`image_embeddings`], [`top_k`], [`known_params`], [`unrouted`]).
//!
//! ```no_run
//! use diffclip::burn::tensor::Device;
//! use diffclip::clip::{ClipConfig, load_checkpoint};
//! use diffclip::data::Pipeline;
//! use diffclip::eval::{Encoder, shards::ExactIndex};
//! use diffclip::http::{Limits, serve_batches};
//! use diffclip::serve::Endpoints;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut model = ClipConfig::diffclip_vit_b16().init(&Device::flex())?;
//! load_checkpoint(&mut model, "checkpoint_best.pt")?;
//! let encoder = Encoder::new(&model)?;
//! let pipeline = Pipeline::from_name("slip", 224)?;
//! let index = ExactIndex::open("index/".as_ref(), "image_embed")?; // what `embed` wrote
//! let endpoints = Endpoints::new(&encoder, &pipeline).with_index(&index, 10);
//! let listener = std::net::TcpListener::bind("127.0.0.1:8080")?;
//! serve_batches(listener, Limits::default(), 8, |requests| endpoints.answer(requests))?;
//! # Ok(()) }
//! ```

mod embed;
mod endpoints;
#[cfg(test)]
mod tests;

pub use embed::{image_embeddings, text_embeddings};
pub use endpoints::{ENDPOINTS, Endpoints};

use diffclip_eval::ann::AnnIndex;
use diffclip_eval::shards::{ExactIndex, Hit};

use crate::http::{Request, Response};

/// Rows searched by embedding: the `k` nearest rows of each query, best first. `Sync`, so that
/// [`Endpoints`] can be shared between threads.
pub trait Index: Sync {
    /// How many rows it holds.
    fn rows(&self) -> usize;
    /// The hits of each of `queries`.
    fn search_many(&self, queries: &[&[f32]], k: usize) -> Result<Vec<Vec<Hit>>, Box<dyn std::error::Error + Send + Sync>>;
}

/// Exact search from memory: the rows are read once for all the queries.
impl Index for ExactIndex {
    fn rows(&self) -> usize {
        ExactIndex::rows(self)
    }
    fn search_many(&self, queries: &[&[f32]], k: usize) -> Result<Vec<Vec<Hit>>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ExactIndex::search_many(self, queries, k)?)
    }
}

/// Approximate search through the HNSW graph, query by query.
impl Index for AnnIndex {
    fn rows(&self) -> usize {
        AnnIndex::rows(self)
    }
    fn search_many(&self, queries: &[&[f32]], k: usize) -> Result<Vec<Vec<Hit>>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(queries.iter().map(|q| self.search(q, k)).collect::<Result<_, _>>()?)
    }
}

/// Most hits or labels one request may ask for.
pub const MAX_TOP_K: usize = 10_000;

/// Query parameter `name` parsed, `default` when absent; `400` naming it when it does not parse
/// or is given twice (which of two values was meant cannot be known).
pub fn param<T: std::str::FromStr>(request: &Request, name: &str, default: T) -> Result<T, Response> {
    let mut values = request.query.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
    match (values.next(), values.next()) {
        (None, _) => Ok(default),
        (Some(a), Some(b)) => Err(Response::error(400, format!("query parameter {name} is given twice ({a:?} and {b:?})"))),
        (Some(v), None) => v.parse().map_err(|_| Response::error(400, format!("query parameter {name}={v:?} is not valid"))),
    }
}

/// `400` naming the first query parameter of `request` that is not one of `known`: a misspelt
/// `topk=3` must not be answered as if it were not there.
///
/// ```
/// use diffclip::http::Request;
/// use diffclip::serve::known_params;
/// let request = Request { method: "POST".into(), path: "/classify".into(), query: vec![("topk".into(), "3".into())], body: vec![] };
/// let refused = known_params(&request, &["top_k"]).unwrap_err();
/// assert_eq!(refused.status, 400);
/// assert!(String::from_utf8_lossy(&refused.body).contains("topk"));
/// ```
pub fn known_params(request: &Request, known: &[&str]) -> Result<(), Response> {
    match request.query.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some((k, _)) if known.is_empty() => Err(Response::error(400, format!("{} takes no query parameters, got {k:?}", request.path))),
        Some((k, _)) => Err(Response::error(400, format!("unknown query parameter {k:?}: {} takes {}", request.path, known.join(", ")))),
    }
}

/// `top_k` of `request` (default `default`), checked to be 1 to [`MAX_TOP_K`] (`400`
/// otherwise), then clamped to `available`, the hits or labels there are: asking for more than
/// there are gets them all, as on the command line.
pub fn top_k(request: &Request, default: usize, available: usize) -> Result<usize, Response> {
    match param(request, "top_k", default)? {
        k if (1..=MAX_TOP_K).contains(&k) => Ok(k.min(available.max(1))),
        k => Err(Response::error(400, format!("top_k must be 1 to {MAX_TOP_K}, got {k}"))),
    }
}

/// The answer for a path that is not one of `endpoints` (`(method, path)` pairs): `404` naming
/// them, or `405` with `Allow` for a method other than the one its path takes (`HEAD` reaches
/// handlers as `GET`).
pub fn unrouted(request: &Request, endpoints: &[(&str, &str)]) -> Response {
    match endpoints.iter().find(|(_, path)| *path == request.path) {
        Some((method, path)) => {
            let allow = if *method == "GET" { "GET, HEAD" } else { method };
            Response::error(405, format!("{} {path}: use {method}", request.method)).with_header("Allow", allow)
        }
        None => {
            let all: Vec<String> = endpoints.iter().map(|(m, p)| format!("{m} {p}")).collect();
            Response::error(404, format!("no endpoint {}; there are {}", request.path, all.join(", ")))
        }
    }
}
