//! Attention maps: class-token attention of a vision layer (both differential maps and λ) and a
//! text-query relevance map, as numbers and as a PNG overlay.

mod maps;
mod render;

pub use maps::{AttentionHeatmaps, attention_heatmaps};
pub use render::{panel_names, render_overlay, save_overlay_png};
