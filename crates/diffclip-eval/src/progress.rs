//! Progress bars (`indicatif`) for long passes; silent when disabled or when stderr is no terminal.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps labelled `label`, or a hidden one when `enabled` is false.
pub(crate) fn bar(len: usize, label: &str, enabled: bool) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    let style =
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(label.to_string());
    bar
}
