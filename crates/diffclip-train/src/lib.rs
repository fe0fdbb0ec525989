//! diffclip-train
