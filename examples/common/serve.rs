//! What the programs that serve HTTP (`search --listen`, `classify --listen`) share.

use diffclip::data::Pipeline;
use diffclip::eval::{Encoder, ImageSource};
use diffclip::http::{Limits, Request, Response, serve_batches};

/// `--listen` and what it accepts, shared by the programs that serve HTTP.
#[derive(clap::Args, Debug)]
pub struct ListenArgs {
    /// Serve HTTP on this address (`127.0.0.1:8080`; port 0 picks a free one, printed on
    /// stderr) until stopped. No TLS and no authentication: bind to a loopback address, or put
    /// it behind a proxy.
    #[arg(long)]
    pub listen: Option<String>,
    /// A host name accepted in requests' `Host` header besides IP addresses and `localhost`
    /// (e.g. the name a proxy forwards); repeatable. Others get 403, so that a web page cannot
    /// reach the server by rebinding its own name.
    #[arg(long, requires = "listen")]
    pub allow_host: Vec<String>,
    /// Most requests embedded together: those that arrive while the model is busy wait and are
    /// then answered as one batch (a batch is faster per item than its items one by one).
    #[arg(long, default_value_t = 8, requires = "listen")]
    pub max_batch: usize,
    /// A web page origin (`https://app.example`) whose requests are served; repeatable. By
    /// default requests from web pages (with an `Origin` header) get 403.
    #[arg(long, requires = "listen")]
    pub allow_origin: Vec<String>,
}

impl ListenArgs {
    /// Binds `--listen`, says where it listens (and `what` it serves) on stderr, and serves
    /// `handle` (batches of at most `--max-batch` requests) until the program is stopped.
    pub fn serve(&self, what: &str, handle: impl FnMut(&[Request]) -> Vec<Response>) -> Result<(), Box<dyn std::error::Error>> {
        let address = self.listen.as_deref().ok_or("--listen is missing")?;
        if self.max_batch == 0 {
            return Err("--max-batch must be at least 1".into());
        }
        let listener = std::net::TcpListener::bind(address).map_err(|e| format!("--listen {address}: {e}"))?;
        eprintln!("listening on http://{} ({what})", listener.local_addr()?);
        let limits = Limits { hosts: self.allow_host.clone(), origins: self.allow_origin.clone(), ..Limits::default() };
        Ok(serve_batches(listener, limits, self.max_batch, handle)?)
    }
}

/// The embeddings of image files' bytes, decoded in parallel and embedded as one batch: each
/// one's row, or its answer when it does not decode (422); every one is a 500 when the model fails.
/// Decoding is bounded per image by the pipeline's pixel limit; a batch decodes as many images
/// at once as there are cores.
pub fn image_embeddings(encoder: &Encoder<'_>, pipeline: &Pipeline, bodies: &[&[u8]]) -> Vec<Result<Vec<f32>, Response>> {
    if bodies.is_empty() {
        return Vec::new();
    }
    let source = ImageSource::new(bodies.len(), pipeline.size(), None, |i| Ok(pipeline.process_bytes(bodies[i], "request body", 0)?));
    let out = match encoder.encode_source_skipping(&source) {
        Ok(out) => out,
        Err(e) => return bodies.iter().map(|_| Err(Response::error(500, &e))).collect(),
    };
    let mut rows: Vec<Result<Vec<f32>, Response>> = bodies.iter().map(|_| Err(Response::error(500, "no embedding"))).collect();
    for (row, &i) in out.embeddings.row_iter().zip(&out.kept) {
        rows[i] = Ok(row.to_vec());
    }
    for (i, why) in out.skipped {
        rows[i] = Err(Response::error(422, why));
    }
    rows
}

/// Query parameter `name` parsed, `default` when absent; 400 naming it when it does not parse.
pub fn param<T: std::str::FromStr>(request: &Request, name: &str, default: T) -> Result<T, Response> {
    match request.param(name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| Response::error(400, format!("query parameter {name}={v:?} is not valid"))),
    }
}

/// `top_k` of `request` (default `default`), checked to be 1 to `max`.
pub fn top_k(request: &Request, default: usize, max: usize) -> Result<usize, Response> {
    match param(request, "top_k", default)? {
        k if (1..=max).contains(&k) => Ok(k),
        k => Err(Response::error(400, format!("top_k must be 1 to {max}, got {k}"))),
    }
}

/// The answer for a path that is not one of `endpoints` (404), or a method other than the one
/// each of them takes (405, with `Allow`; `HEAD` reaches handlers as `GET`).
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
