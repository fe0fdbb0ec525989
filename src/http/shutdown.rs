//! Stopping a server cleanly: no new connections, the requests in hand answered, then return.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Stops a server started with [`serve_batches_until`](super::serve_batches_until): it stops
/// accepting (new connections are refused), answers the requests it holds (within
/// [`Limits::shutdown_grace`](super::Limits::shutdown_grace)), closes its idle connections and
/// those that have sent nothing, and returns. Clone it to stop the server from another thread;
/// [`Shutdown::on_signals`] stops it on Ctrl-C, `SIGTERM` or `SIGHUP`.
///
/// ```
/// let shutdown = diffclip::http::Shutdown::new();
/// let stopper = shutdown.clone();
/// stopper.stop();
/// assert!(shutdown.is_stopping());
/// ```
#[derive(Clone, Debug, Default)]
pub struct Shutdown(Arc<Asked>);

/// Whether a stop was asked for, and when it was first seen (a signal handler can only set the
/// flag).
#[derive(Debug, Default)]
struct Asked {
    flag: AtomicBool,
    seen: OnceLock<Instant>,
}

impl Shutdown {
    /// A shutdown not asked for yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the server to stop.
    pub fn stop(&self) {
        self.0.flag.store(true, Ordering::SeqCst);
        self.stopped_at();
    }

    /// Whether it was asked to stop.
    pub fn is_stopping(&self) -> bool {
        self.0.flag.load(Ordering::SeqCst)
    }

    /// When the stop was asked for (first seen), or `None`.
    pub(super) fn stopped_at(&self) -> Option<Instant> {
        self.is_stopping().then(|| *self.0.seen.get_or_init(Instant::now))
    }

    /// The shutdown asked for by the process's first `SIGINT` (Ctrl-C), `SIGTERM` (what
    /// `kill`, systemd and container runtimes send) or `SIGHUP` (a terminal or SSH session that
    /// closed); a second one ends the process at once (exit code 130). A signal the process
    /// ignores (`SIGINT` of a background job started by a script, `SIGHUP` under `nohup`)
    /// stays ignored. The same one on
    /// every call. On platforms other than Unix, none is ever asked for.
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

/// A connection's view of the shutdown: once it is asked for, every wait ends by `grace` after
/// it was (the accepting thread sees it within 100 ms).
pub(super) struct Grace<'a> {
    shutdown: &'a Shutdown,
    grace: Duration,
}

impl<'a> Grace<'a> {
    pub(super) fn new(shutdown: &'a Shutdown, grace: Duration) -> Self {
        Self { shutdown, grace }
    }

    pub(super) fn is_stopping(&self) -> bool {
        self.shutdown.is_stopping()
    }

    /// `deadline`, or sooner when the server is stopping.
    pub(super) fn cap(&self, deadline: Instant) -> Instant {
        match self.shutdown.stopped_at() {
            Some(at) => deadline.min(at.checked_add(self.grace).unwrap_or(deadline)),
            None => deadline,
        }
    }
}

#[cfg(unix)]
mod signals {
    use std::sync::atomic::Ordering;
    use std::sync::{Arc, OnceLock};

    use super::Asked;

    static ASKED: OnceLock<Arc<Asked>> = OnceLock::new();

    /// Only an atomic load, an atomic swap and `_exit`: what a signal handler may do.
    extern "C" fn on_signal(_: libc::c_int) {
        if let Some(asked) = ASKED.get()
            && asked.flag.swap(true, Ordering::SeqCst)
        {
            unsafe { libc::_exit(130) }
        }
    }

    pub(super) fn install(asked: Arc<Asked>) {
        if ASKED.set(asked).is_err() {
            return;
        }
        for signum in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: sigaction with a zeroed (then filled) struct and a handler that only does
            // async-signal-safe work; a signal the process ignores is left ignored.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(signum, std::ptr::null(), &mut old) != 0 || old.sa_sigaction == libc::SIG_IGN {
                    continue;
                }
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signum, &action, std::ptr::null_mut());
            }
        }
    }
}
