//! Key layouts of the checkpoints people have, and their conversion to our module paths.
//!
//! Canonical keys are our module paths with PyTorch conventions (Linear weights `[out, in]`,
//! norm `weight`/`bias`); Burn's PyTorch adapter does the rest when the tensors are applied.

use regex::Regex;

use super::state_dict::{StateDict, StateTensor};
use super::CheckpointError;

/// Which family of checkpoint a state dict comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointFormat {
    /// The DiffCLIP authors' layout (timm vision tower, `q_proj/k_proj/v_proj`), also what
    /// [`save_safetensors`](super::save_safetensors) writes.
    DiffClip,
    /// open_clip / OpenAI CLIP (`visual.conv1`, fused `in_proj_weight`).
    OpenClip,
    /// HuggingFace transformers `CLIPModel`.
    HuggingFace,
    /// Burn's burnpack, written by [`save_burnpack`](super::save_burnpack).
    Burnpack,
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Op {
    Rename,
    Transpose,
    /// Drop leading size-1 dimensions (timm's `[1, 1, W]` class token is OpenAI's `[W]`).
    Squeeze,
    Drop,
}

/// `(pattern, replacement, operation)`: every matching rule applies, in order.
pub(super) type Rule = (&'static str, &'static str, Op);

const COMMON: &[Rule] = &[(r"^module\.", "", Op::Rename)];

const TEXT_OPENAI: &[Rule] = &[
    (r"^token_embedding\.", "text.token_embedding.", Op::Rename),
    (r"^positional_embedding$", "text.positional_embedding", Op::Rename),
    (r"^ln_final\.", "text.ln_final.", Op::Rename),
    (r"^transformer\.resblocks\.", "text.blocks.", Op::Rename),
];

const VISION_OPENAI: &[Rule] = &[
    (r"^visual\.conv1\.", "visual.patch_embed.proj.", Op::Rename),
    (r"^visual\.class_embedding$", "visual.cls_token", Op::Rename),
    (r"^visual\.positional_embedding$", "visual.pos_embed", Op::Rename),
    (r"^visual\.transformer\.resblocks\.", "visual.blocks.", Op::Rename),
    (r"^visual\.ln_post\.", "visual.norm.", Op::Rename),
    (r"^visual\.proj$", "image_projection", Op::Rename),
];

const BLOCK_OPENAI: &[Rule] = &[
    (r"\.ln_1\.", ".norm1.", Op::Rename),
    (r"\.ln_2\.", ".norm2.", Op::Rename),
    (r"\.mlp\.c_fc\.", ".mlp.fc1.", Op::Rename),
    (r"\.mlp\.c_proj\.", ".mlp.fc2.", Op::Rename),
    // timm's standard attention (SLIP's CLIP baseline): `attn.proj`; its `attn.qkv` is split later.
    (r"\.attn\.proj\.", ".attn.out_proj.", Op::Rename),
];

const HUGGINGFACE: &[Rule] = &[
    (r"\.position_ids$", "", Op::Drop),
    (r"^text_model\.embeddings\.token_embedding\.", "text.token_embedding.", Op::Rename),
    (r"^text_model\.embeddings\.position_embedding\.weight$", "text.positional_embedding", Op::Rename),
    (r"^text_model\.encoder\.layers\.", "text.blocks.", Op::Rename),
    (r"^text_model\.final_layer_norm\.", "text.ln_final.", Op::Rename),
    (r"^vision_model\.embeddings\.class_embedding$", "visual.cls_token", Op::Rename),
    (r"^vision_model\.embeddings\.patch_embedding\.", "visual.patch_embed.proj.", Op::Rename),
    (r"^vision_model\.embeddings\.position_embedding\.weight$", "visual.pos_embed", Op::Rename),
    (r"^vision_model\.pre_layrnorm\.", "visual.ln_pre.", Op::Rename),
    (r"^vision_model\.encoder\.layers\.", "visual.blocks.", Op::Rename),
    (r"^vision_model\.post_layernorm\.", "visual.norm.", Op::Rename),
    (r"\.layer_norm1\.", ".norm1.", Op::Rename),
    (r"\.layer_norm2\.", ".norm2.", Op::Rename),
    (r"\.self_attn\.", ".attn.", Op::Rename),
    // HF projections are bias-free Linears `[E, W]`; ours are raw `[W, E]` matrices.
    (r"^visual_projection\.weight$", "image_projection", Op::Transpose),
    (r"^text_projection\.weight$", "text_projection", Op::Transpose),
];

/// Guess the layout from the keys.
///
/// ```
/// use diffclip_clip::checkpoint::{CheckpointFormat, StateDict, StateTensor, detect_format, to_canonical};
/// let t = |n: usize| StateTensor { shape: vec![n], data: vec![0.0; n] };
/// // A HuggingFace `CLIPModel` is told by its tower prefixes; its keys map to canonical ones.
/// let hf: StateDict = [("text_model.final_layer_norm.weight".to_string(), t(4))].into();
/// assert_eq!(detect_format(&hf), CheckpointFormat::HuggingFace);
/// let canonical = to_canonical(hf, CheckpointFormat::HuggingFace, "memory").unwrap();
/// assert!(canonical.contains_key("text.ln_final.weight"), "{:?}", canonical.keys());
/// ```
pub fn detect_format(sd: &StateDict) -> CheckpointFormat {
    let has = |f: &dyn Fn(&str) -> bool| sd.keys().any(|k| f(k.trim_start_matches("module.")));
    if has(&|k| k.starts_with("vision_model.") || k.starts_with("text_model.")) {
        CheckpointFormat::HuggingFace
    } else if has(&|k| k.ends_with("in_proj_weight") || k.starts_with("visual.conv1.") || k.starts_with("visual.transformer.")) {
        CheckpointFormat::OpenClip
    } else {
        CheckpointFormat::DiffClip
    }
}

fn rules_for(format: CheckpointFormat) -> Vec<Rule> {
    let mut rules: Vec<Rule> = COMMON.to_vec();
    match format {
        CheckpointFormat::DiffClip | CheckpointFormat::OpenClip | CheckpointFormat::Burnpack => {
            rules.extend_from_slice(TEXT_OPENAI);
            rules.extend_from_slice(VISION_OPENAI);
            rules.extend_from_slice(BLOCK_OPENAI);
        }
        CheckpointFormat::HuggingFace => rules.extend_from_slice(HUGGINGFACE),
    }
    rules
}

pub(super) fn apply_rules(sd: StateDict, rules: &[Rule], path: &str) -> Result<StateDict, CheckpointError> {
    let compiled: Vec<(Regex, &str, Op)> = rules
        .iter()
        .map(|(p, r, op)| (Regex::new(p).expect("static regex"), *r, *op))
        .collect();
    let mut out = StateDict::new();
    'keys: for (key, mut t) in sd {
        let mut name = key.clone();
        for (re, rep, op) in &compiled {
            if !re.is_match(&name) {
                continue;
            }
            match op {
                Op::Drop => continue 'keys,
                Op::Rename => {}
                Op::Transpose => t = transpose(t, &key, path)?,
                Op::Squeeze => {
                    let ones = t.shape.iter().take_while(|&&d| d == 1).count();
                    t.shape.drain(..ones.min(t.shape.len().saturating_sub(1)));
                }
            }
            name = re.replace(&name, *rep).into_owned();
        }
        insert_unique(&mut out, name, t, &key, path)?;
    }
    Ok(out)
}

/// Insert `t` under `name`, converted from `key`; a second key onto one name is an error.
fn insert_unique(out: &mut StateDict, name: String, t: StateTensor, key: &str, path: &str) -> Result<(), CheckpointError> {
    if out.contains_key(&name) {
        return Err(CheckpointError::Transform { path: path.into(), key: key.into(), message: format!("maps onto '{name}', which another key already took") });
    }
    out.insert(name, t);
    Ok(())
}

fn transpose(t: StateTensor, key: &str, path: &str) -> Result<StateTensor, CheckpointError> {
    let [r, c] = t.shape[..] else {
        return Err(CheckpointError::Transform { path: path.into(), key: key.into(), message: format!("expected a matrix, found shape {:?}", t.shape) });
    };
    if r.checked_mul(c) != Some(t.data.len()) {
        return Err(CheckpointError::Transform { path: path.into(), key: key.into(), message: format!("shape {:?} does not match its {} values", t.shape, t.data.len()) });
    }
    let mut data = vec![0.0; r * c];
    for i in 0..r {
        for j in 0..c {
            data[j * r + i] = t.data[i * c + j];
        }
    }
    Ok(StateTensor { shape: vec![c, r], data })
}

/// Split fused q/k/v into `q_proj`, `k_proj`, `v_proj`: `nn.MultiheadAttention`'s
/// `in_proj_weight [3W, W]` / `in_proj_bias [3W]` and timm's `attn.qkv.{weight,bias}` (the
/// standard-attention ViT of SLIP's CLIP baseline), rows stacked q, k, v. A fused tensor beside a
/// separate projection of the same layer is an error, not a silent mix.
fn split_in_proj(sd: StateDict, path: &str) -> Result<StateDict, CheckpointError> {
    let mut out = StateDict::new();
    for (key, t) in sd {
        let Some((prefix, suffix)) = fused_qkv(&key) else {
            insert_unique(&mut out, key.clone(), t, &key, path)?;
            continue;
        };
        let (prefix, suffix) = (prefix.to_string(), suffix.to_string());
        let Some(&rows) = t.shape.first() else {
            return Err(CheckpointError::Transform { path: path.into(), key, message: "fused q/k/v is a scalar".into() });
        };
        if rows % 3 != 0 || t.data.len() % 3 != 0 {
            return Err(CheckpointError::Transform { path: path.into(), key, message: format!("fused q/k/v has {rows} rows, not a multiple of 3") });
        }
        let per = t.data.len() / 3;
        let mut shape = t.shape.clone();
        shape[0] = rows / 3;
        for (i, name) in ["q_proj", "k_proj", "v_proj"].iter().enumerate() {
            let data = t.data[i * per..(i + 1) * per].to_vec();
            insert_unique(&mut out, format!("{prefix}.{name}.{suffix}"), StateTensor { shape: shape.clone(), data }, &key, path)?;
        }
    }
    Ok(out)
}

/// `(PREFIX.attn, weight|bias)` of a fused q/k/v key: `PREFIX.attn.in_proj_weight` or
/// `PREFIX.attn.qkv.weight`.
fn fused_qkv(key: &str) -> Option<(&str, &str)> {
    if let Some(split) = key.rsplit_once(".in_proj_") {
        return Some(split);
    }
    let (head, suffix) = key.rsplit_once('.')?;
    let prefix = head.strip_suffix(".qkv")?;
    prefix.ends_with(".attn").then_some((prefix, suffix))
}

/// Convert a state dict of the given layout to canonical keys.
pub fn to_canonical(sd: StateDict, format: CheckpointFormat, path: &str) -> Result<StateDict, CheckpointError> {
    let sd = apply_rules(sd, &rules_for(format), path)?;
    split_in_proj(sd, path)
}
