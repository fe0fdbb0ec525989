//! Attention maps: class-token attention of a vision layer (both differential maps and λ) and a
//! text-query relevance map, as numbers and as a PNG overlay.

mod font;
mod maps;
mod render;

pub use maps::{AttentionHeatmaps, attention_heatmaps};
pub use render::{TITLE_HEIGHT, panel_names, panel_titles, render_comparison, render_overlay, save_comparison_png, save_overlay_png, save_rgb_png};
