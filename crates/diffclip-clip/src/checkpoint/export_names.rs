//! Canonical keys back to the names of the code that trains such a model, for export: the
//! DiffCLIP authors' (timm vision tower) or, for a model in the OpenAI layout, open_clip's.

use super::CheckpointError;
use super::layout::{Op, Rule, apply_rules};
use super::state_dict::{StateDict, StateTensor};

/// The text tower in both exports: OpenAI's names, at the top level.
const EXPORT_TEXT: &[Rule] = &[
    (r"^text\.blocks\.", "transformer.resblocks.", Op::Rename),
    (r"^text\.", "", Op::Rename),
];

/// The vision tower as open_clip's `VisionTransformer` names it.
const EXPORT_VISION_OPENAI: &[Rule] = &[
    (
        r"^visual\.blocks\.",
        "visual.transformer.resblocks.",
        Op::Rename,
    ),
    (r"^visual\.patch_embed\.proj\.", "visual.conv1.", Op::Rename),
    (
        r"^visual\.cls_token$",
        "visual.class_embedding",
        Op::Squeeze,
    ),
    (
        r"^visual\.pos_embed$",
        "visual.positional_embedding",
        Op::Squeeze,
    ),
    (r"^visual\.norm\.", "visual.ln_post.", Op::Rename),
    (r"^image_projection$", "visual.proj", Op::Rename),
];

/// Inside every OpenAI-named block (`resblocks`, after the tower rules above), in either tower.
const EXPORT_RESBLOCK: &[Rule] = &[
    (
        r"resblocks\.(\d+)\.norm1\.",
        "resblocks.$1.ln_1.",
        Op::Rename,
    ),
    (
        r"resblocks\.(\d+)\.norm2\.",
        "resblocks.$1.ln_2.",
        Op::Rename,
    ),
    (
        r"resblocks\.(\d+)\.mlp\.fc1\.",
        "resblocks.$1.mlp.c_fc.",
        Op::Rename,
    ),
    (
        r"resblocks\.(\d+)\.mlp\.fc2\.",
        "resblocks.$1.mlp.c_proj.",
        Op::Rename,
    ),
];

/// Whether canonical keys describe the OpenAI layout (`ln_pre`, a patch conv without bias),
/// which exports under open_clip's names.
pub fn is_openai_layout(sd: &StateDict) -> bool {
    sd.contains_key("visual.ln_pre.weight") && !sd.contains_key("visual.patch_embed.proj.bias")
}

/// Convert canonical keys to the DiffCLIP authors' names. Differential layers keep separate
/// `q_proj/k_proj/v_proj`; standard-attention layers are fused as the SLIP/DiffCLIP code builds
/// them: timm's `attn.qkv` + `attn.proj` in the vision tower, `nn.MultiheadAttention`'s
/// `attn.in_proj_*` + `attn.out_proj` in the text tower.
pub fn to_diffclip_names(sd: StateDict, path: &str) -> Result<StateDict, CheckpointError> {
    let sd = apply_rules(sd, &[EXPORT_TEXT, EXPORT_RESBLOCK].concat(), path)?;
    Ok(fuse_standard_attention(sd, |p| p.starts_with("visual.")))
}

/// Convert canonical keys of a model in the OpenAI layout to open_clip's `CLIP` state dict:
/// `visual.conv1`, `visual.class_embedding [W]`, `visual.positional_embedding [N, W]`,
/// `visual.transformer.resblocks.*`, `visual.ln_post`, `visual.proj`, and
/// `nn.MultiheadAttention`'s `in_proj_*` + `out_proj` in both towers. Differential layers keep
/// their separate projections and λ vectors (open_clip has no such layer; we read them back).
pub fn to_openclip_names(sd: StateDict, path: &str) -> Result<StateDict, CheckpointError> {
    let rules = [EXPORT_TEXT, EXPORT_VISION_OPENAI, EXPORT_RESBLOCK].concat();
    Ok(fuse_standard_attention(
        apply_rules(sd, &rules, path)?,
        |_| false,
    ))
}

/// The inverse of the import's q/k/v split for the layers without differential λ vectors:
/// timm's `qkv` + `proj` where `timm(prefix)`, else `in_proj_*` (`out_proj` kept).
fn fuse_standard_attention(mut sd: StateDict, timm: impl Fn(&str) -> bool) -> StateDict {
    let standard: Vec<String> = sd
        .keys()
        .filter_map(|k| k.strip_suffix(".q_proj.weight"))
        .filter(|p| p.ends_with(".attn") && !sd.contains_key(&format!("{p}.lambda_q1")))
        .map(str::to_string)
        .collect();
    for p in standard {
        let timm = timm(&p);
        for suffix in ["weight", "bias"] {
            let names = ["q_proj", "k_proj", "v_proj"].map(|n| format!("{p}.{n}.{suffix}"));
            if !names.iter().all(|n| sd.contains_key(n)) {
                continue;
            }
            let parts = names.map(|n| sd.remove(&n).expect("checked above"));
            let mut shape = parts[0].shape.clone();
            shape[0] *= 3;
            let data = parts.into_iter().flat_map(|t| t.data).collect();
            let fused = if timm {
                format!("{p}.qkv.{suffix}")
            } else {
                format!("{p}.in_proj_{suffix}")
            };
            sd.insert(fused, StateTensor { shape, data });
            if timm && let Some(t) = sd.remove(&format!("{p}.out_proj.{suffix}")) {
                sd.insert(format!("{p}.proj.{suffix}"), t);
            }
        }
    }
    sd
}
