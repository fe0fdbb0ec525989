//! Stopping a server cleanly: no new connections, the requests it has answered, then return.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// Stops a server started with [`serve_batches_until`](super::serve_batches_until): it stops
/// accepting (new connections are refused), answers the requests it holds, closes its idle
/// connections and those that have sent nothing yet, and returns. Clone it to stop the server
/// from another thread; [`Shutdown::on_signals`] stops it on Ctrl-C or `SIGTERM`.
///
/// ```
/// let shutdown = diffclip::http::Shutdown::new();
/// let stopper = shutdown.clone();
/// stopper.stop();
/// assert!(shutdown.is_stopping());
/// ```
#[derive(Clone, Debug, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    /// A shutdown not asked for yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the server to stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether it was asked to stop.
    pub fn is_stopping(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// The shutdown asked for by the process's first `SIGINT` (Ctrl-C) or `SIGTERM` (what
    /// `kill` and container runtimes send); a second one ends the process at once (exit code
    /// 130). The same one on every call. On platforms other than Unix, none is ever asked for.
    pub fn on_signals() -> Self {
        static SIGNALLED: OnceLock<Shutdown> = OnceLock::new();
        SIGNALLED
            .get_or_init(|| {
                let shutdown = Shutdown::new();
                #[cfg(unix)]
                signals::install(shutdown.0.clone());
                shutdown
            })
            .clone()
    }
}

#[cfg(unix)]
mod signals {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, OnceLock};

    // The C library's; std has no signal handling. (SIGINT and SIGTERM are 2 and 15 on Linux
    // and the BSDs; glibc's and musl's `signal` restart interrupted calls.)
    unsafe extern "C" {
        fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
        fn _exit(status: i32) -> !;
    }

    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

    /// Only atomic operations here: a signal handler may do little else.
    extern "C" fn on_signal(_: i32) {
        if let Some(flag) = FLAG.get()
            && flag.swap(true, Ordering::SeqCst)
        {
            unsafe { _exit(130) }
        }
    }

    pub(super) fn install(flag: Arc<AtomicBool>) {
        if FLAG.set(flag).is_ok() {
            for signum in [2, 15] {
                unsafe { signal(signum, on_signal) };
            }
        }
    }
}
