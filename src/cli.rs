//! What the example programs share: turning a run's result into an exit code.

use std::process::ExitCode;

/// 0 for `Ok`; for `Err`, the error printed to stderr as `error: …` and exit code 1.
///
/// ```
/// let ok: Result<(), String> = Ok(());
/// assert_eq!(diffclip::cli::exit_code(ok), std::process::ExitCode::SUCCESS);
/// ```
pub fn exit_code<E: std::fmt::Display>(result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
