//! What the programs that serve HTTP (`search --listen`, `classify --listen`) share.

use diffclip::eprintln;
use diffclip::http::{Limits, Request, Response, Shutdown, serve_batches_until};

/// `--listen` and what it accepts, shared by the programs that serve HTTP.
#[derive(clap::Args, Debug)]
pub struct ListenArgs {
    /// Serve HTTP on this address (`127.0.0.1:8080`; port 0 picks a free one, printed on
    /// stderr) until stopped. No TLS (`--token-file` requires a secret): bind to a loopback address, or put
    /// it behind a proxy.
    #[arg(long)]
    pub listen: Option<String>,
    /// A host name accepted in requests' `Host` header besides IP addresses and `localhost`
    /// (e.g. the name a proxy forwards); repeatable. Others get 403, so that a web page cannot
    /// reach the server by rebinding its own name.
    #[arg(long, requires = "listen", value_parser = diffclip::cli::host_name)]
    pub allow_host: Vec<String>,
    /// Most requests embedded together: those that arrive while the model is busy wait and are
    /// then answered as one batch (a batch is faster per item than its items one by one).
    #[arg(long, default_value_t = 8, requires = "listen")]
    pub max_batch: usize,
    /// A web page origin (`https://app.example`) whose requests are served; repeatable. By
    /// default requests from web pages (with an `Origin` header) get 403.
    #[arg(long, requires = "listen", value_parser = diffclip::cli::web_origin)]
    pub allow_origin: Vec<String>,
    /// A file holding a secret (16 characters or more) every request must send as
    /// `Authorization: Bearer SECRET`; others get 401. In a file, not on the command line,
    /// which other users of the machine can read. Still no TLS: over a network, put a proxy
    /// with TLS in front.
    #[arg(long, requires = "listen")]
    pub token_file: Option<std::path::PathBuf>,
}

impl ListenArgs {
    /// Binds `--listen`, says where it listens (and `what` it serves) on stderr, and serves
    /// `handle` (batches of at most `--max-batch` requests) until Ctrl-C, `SIGTERM` or `SIGHUP`: then it
    /// answers the requests in hand and returns (a second signal ends the program at once).
    pub fn serve(&self, what: &str, handle: impl FnMut(&[Request]) -> Vec<Response>) -> Result<(), Box<dyn std::error::Error>> {
        let address = self.listen.as_deref().ok_or("--listen is missing")?;
        if self.max_batch == 0 {
            return Err("--max-batch must be at least 1".into());
        }
        let token = self.token_file.as_deref().map(diffclip::cli::read_token).transpose()?;
        let listener = std::net::TcpListener::bind(address).map_err(|e| format!("--listen {address}: {e}"))?;
        let needs = if token.is_some() { ", a token needed" } else { "" };
        eprintln!("listening on http://{} ({what}{needs})", listener.local_addr()?);
        let limits = Limits { hosts: self.allow_host.clone(), origins: self.allow_origin.clone(), token, ..Limits::default() };
        // Returns after a clean stop, having logged `stopped: …`.
        Ok(serve_batches_until(listener, limits, self.max_batch, &Shutdown::on_signals(), handle)?)
    }
}
