//! `examples/eval.rs`: the tasks on the built-in synthetic dataset, and attention maps.

use diffclip::data::synthetic::{ClassTask, Split, SyntheticDataset};
use diffclip::clip::{ClipConfig, load_checkpoint};
use diffclip::eval::Encoder;
use diffclip::eval::attention::{attention_heatmaps, panel_names, panel_titles, save_comparison_png, save_overlay_png};
use diffclip::eval::report::{self, Table};
use diffclip::eval::synthetic::{synthetic_robustness_sets, synthetic_variants};
use diffclip::eval::{ImageSource, Labelled, dataset_labels};
use serde_json::{Value, json};

use super::{Ctx, Outcome, Res, probe_run, synthetic_key};

pub(crate) fn zeroshot_synthetic(ctx: &Ctx<'_>) -> Res<Outcome> {
    let test = SyntheticDataset::new(ctx.synth.clone(), Split::Test)?;
    let mut out = serde_json::Map::new();
    let mut rows = Vec::new();
    for task in ClassTask::ALL {
        let m = ctx.eval.zero_shot_dataset(
            &test.classification(task),
            synthetic_key(&ctx.synth, Split::Test, "eval"),
        )?;
        out.insert(
            format!("{task:?}").to_lowercase(),
            serde_json::to_value(&m)?,
        );
        rows.push((format!("synthetic {task:?}").to_lowercase(), m));
    }
    let refs: Vec<_> = rows.iter().map(|(n, m)| (n.clone(), m)).collect();
    Ok(Some((
        Value::Object(out),
        vec![report::zero_shot_table(
            "zero-shot classification (synthetic)",
            &refs,
        )],
    )))
}

pub(crate) fn retrieval_synthetic(ctx: &Ctx<'_>) -> Res<Outcome> {
    let test = SyntheticDataset::new(ctx.synth.clone(), Split::Test)?;
    let r = ctx.eval.retrieval_dataset(
        &test.retrieval(),
        synthetic_key(&ctx.synth, Split::Test, "eval"),
        &[1, 5, 10],
    )?;
    let title = format!(
        "retrieval, synthetic ({} images, {} captions)",
        r.n_images, r.n_texts
    );
    Ok(Some((
        serde_json::to_value(&r)?,
        vec![report::retrieval_table(&title, &r)],
    )))
}

pub(crate) fn probe_synthetic(ctx: &Ctx<'_>, fewshot: bool) -> Res<Outcome> {
    let train = SyntheticDataset::new(ctx.synth.clone(), Split::Train)?;
    let test = SyntheticDataset::new(ctx.synth.clone(), Split::Test)?;
    let task = ClassTask::Shape;
    let (trv, tev) = (train.classification(task), test.classification(task));
    let (trl, tel) = (dataset_labels(&trv)?, dataset_labels(&tev)?);
    let trs = ImageSource::classification(&trv, synthetic_key(&ctx.synth, Split::Train, "eval"));
    let tes = ImageSource::classification(&tev, synthetic_key(&ctx.synth, Split::Test, "eval"));
    let k = task.class_names(ctx.synth.max_objects).len();
    probe_run(
        ctx,
        "synthetic shape",
        Labelled {
            images: &trs,
            labels: &trl,
        },
        None,
        Labelled {
            images: &tes,
            labels: &tel,
        },
        k,
        fewshot,
    )
}

pub(crate) fn robustness_synthetic(ctx: &Ctx<'_>) -> Res<Outcome> {
    let variants = synthetic_variants(&ctx.synth)?;
    let task = ClassTask::Shape;
    let sets = synthetic_robustness_sets(&variants, task, ctx.synth.max_objects)?;
    let classifier = ctx
        .eval
        .classifier(&task.class_names(ctx.synth.max_objects), &task.templates())?;
    let report = ctx.eval.robustness(&classifier, &sets)?;
    Ok(Some((
        serde_json::to_value(&report)?,
        vec![report::robustness_table(&report)],
    )))
}

pub(crate) fn pairs_synthetic(ctx: &Ctx<'_>) -> Res<Outcome> {
    let test = SyntheticDataset::new(ctx.synth.clone(), Split::Test)?;
    let m = ctx.eval.synthetic_pairs(&test, test.len(), 50)?;
    Ok(Some((
        serde_json::to_value(&m)?,
        vec![report::pairs_table(&m)],
    )))
}

pub(crate) fn attention(ctx: &Ctx<'_>) -> Res<Outcome> {
    let s = ctx.eval.encoder().image_size();
    // Without --image, --data's own first image (the synthetic set's when no --data).
    let picture = match (&ctx.args.image, ctx.args.data.as_deref()) {
        (Some(path), _) => Some((path.clone(), None)),
        (None, Some(data)) => match super::disk::first_image(ctx, data)? {
            Some((path, query)) => Some((path, Some(query))),
            None if ctx.args.task == super::Task::Attention => {
                return Err(format!("--data {}: no image found for the attention figure (layouts in docs/eval.md); give one with --image", data.display()).into());
            }
            None => return Ok(None),
        },
        (None, None) => None,
    };
    let picture_path = picture.as_ref().map(|(path, _)| path.clone());
    let (rgb, chw, query) = match picture {
        Some((path, data_query)) => {
            let img = diffclip::data::preprocess::decode_file(&path, &ctx.pipeline.config().decode)?;
            let rgb = ctx.pipeline.process_image_u8(&img, 0);
            let chw = ctx.pipeline.normalize(&rgb);
            (rgb, chw, ctx.args.query.clone().or(data_query))
        }
        None => {
            let test = SyntheticDataset::new(ctx.synth.clone(), Split::Test)?;
            let q = ctx
                .args
                .query
                .clone()
                .or_else(|| test.captions(0).into_iter().next());
            (test.image_rgb(0), test.image_eval(0), q)
        }
    };
    let maps = attention_heatmaps(ctx.eval.encoder(), chw.clone(), query.as_deref(), ctx.args.layer)?;
    save_overlay_png(&ctx.args.heatmap(), &rgb, s, &maps)?;
    let compare = match &ctx.args.compare {
        Some(other) => Some(compare_png(ctx, other, &rgb, chw, query.as_deref(), &maps)?),
        None => None,
    };
    let mut t = Table::new(
        "attention maps",
        &["layer", "grid", "lambda", "similarity", "png"],
    );
    let opt = |v: Option<f32>| v.map_or("-".into(), |v| format!("{v:.4}"));
    t.row(vec![
        maps.layer.to_string(),
        maps.grid.to_string(),
        opt(maps.lambda),
        opt(maps.similarity),
        ctx.args.heatmap().display().to_string(),
    ]);
    // Paths as text (a name that is not UTF-8 would make the JSON value panic).
    let text = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let value = json!({ "image": picture_path.as_deref().map(text), "query": query, "png": text(&ctx.args.heatmap()), "compare_png": compare.as_deref().map(text), "panels": panel_names(&maps), "titles": panel_titles(&maps), "maps": maps });
    Ok(Some((value, vec![t])))
}

/// The same image's maps from `other` (a checkpoint carrying its config) beside this model's in
/// one figure, `<heatmap>-compare.png`; each model's last layer (or `--layer`).
fn compare_png(ctx: &Ctx<'_>, other: &std::path::Path, rgb: &[u8], chw: Vec<f32>, query: Option<&str>, maps: &diffclip::eval::attention::AttentionHeatmaps) -> Res<std::path::PathBuf> {
    let s = ctx.eval.encoder().image_size();
    // --config/--preset describe the first model: the compared one must carry its own config.
    let config = ClipConfig::select(None, None, Some(other)).map_err(|e| {
        format!("--compare: {e}; the compared checkpoint must carry its own model config (a file written by save_safetensors or save_burnpack, such as train's model.safetensors), since --config and --preset describe the first model")
    })?;
    let mut model = config.init(ctx.eval.encoder().device())?;
    load_checkpoint(&mut model, other)?;
    let encoder = Encoder::new(&model)?.with_progress(false);
    if encoder.image_size() != s {
        return Err(format!("{}: takes {} px images, the first model {s} px", other.display(), encoder.image_size()).into());
    }
    let theirs = attention_heatmaps(&encoder, chw, query, ctx.args.layer).map_err(|e| format!("--compare {}: {e}", other.display()))?;
    let name = |p: Option<&std::path::Path>| p.and_then(|p| p.file_stem()).map_or("model".into(), |n| n.to_string_lossy().into_owned());
    let a = ctx.args.model.clone().unwrap_or_else(|| name(ctx.args.checkpoint.as_deref()));
    let b = name(Some(other));
    let path = compare_path(&ctx.args.heatmap());
    let caption = query.map(|q| format!("query: \"{q}\""));
    save_comparison_png(&path, rgb, s, &[(&a, maps), (&b, &theirs)], caption.as_deref())?;
    Ok(path)
}

/// Where `--compare`'s figure goes: `<heatmap>-compare.png` beside the heatmap.
pub fn compare_path(heatmap: &std::path::Path) -> std::path::PathBuf {
    heatmap.with_file_name(format!("{}-compare.png", heatmap.file_stem().map_or("attention".into(), |n| n.to_string_lossy())))
}
