//! diffclip-eval
