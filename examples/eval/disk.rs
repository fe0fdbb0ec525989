//! `examples/eval.rs`: the tasks on data from disk (layouts in docs/eval.md).

use diffclip::eprintln;
use std::path::{Path, PathBuf};

use diffclip::data::datasets::names_for_folders;
use diffclip::eval::dataset::{CaptionSet, ImageFolder, PairSet};
use diffclip::eval::report;
use diffclip::eval::robustness::{IMAGENET_VARIANTS, imagenet_variant, imagenet_variant_name};
use diffclip::eval::{ImageSource, Labelled, metadata};

use super::{Ctx, Outcome, Res, default_templates, probe_run};

/// Where `--task all` finds zero-shot's class folders: `ROOT/test`, else ROOT itself when it
/// holds two or more folders and nothing else but `classnames.txt` and hidden entries (a loose
/// file says ROOT is some other layout). `--task zeroshot` reads ROOT without that test.
pub(crate) fn class_folders(data: &Path) -> Option<PathBuf> {
    if data.join("test").is_dir() {
        return Some(data.join("test"));
    }
    if ["train", "val"].iter().any(|n| data.join(n).exists()) || IMAGENET_VARIANTS.iter().any(|n| data.join(n).is_dir()) {
        return None;
    }
    let (mut folders, mut files) = (0, 0);
    for entry in std::fs::read_dir(data).ok()?.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') || name == "classnames.txt" {
            continue;
        }
        if entry.path().is_dir() { folders += 1 } else { files += 1 }
    }
    (files == 0 && folders >= 2).then(|| data.to_path_buf())
}

/// The retrieval set of `data`: `data/captions.csv`, or `data` itself when it is a `.csv` or
/// `.tsv` or Karpathy `.json` file other than the pairs' `pairs.csv` and `Questions.csv`.
fn has_captions(data: &Path) -> bool {
    let caption_file = data.is_file()
        && data.extension().is_some_and(|e| ["csv", "tsv", "json"].iter().any(|x| e.eq_ignore_ascii_case(x)))
        && !is_pairs_file(data);
    caption_file || data.join("captions.csv").is_file()
}

/// `pairs.csv` or MMVP's `Questions.csv`, given as the data itself.
fn is_pairs_file(data: &Path) -> bool {
    data.is_file() && data.file_name().is_some_and(|n| n == "pairs.csv" || n == "Questions.csv")
}

/// Zero-shot's class names for `folder`: `--classnames` (a shipped list in class-index order:
/// numbered folders, as ImageNet-V2's, take names by number), else the folder's own.
fn class_names(ctx: &Ctx<'_>, folder: &ImageFolder) -> Res<Vec<String>> {
    let names = match &ctx.args.classnames {
        Some(spec) => names_for_folders(metadata::classnames_from(spec)?, &folder.classes),
        None => folder.class_names.clone(),
    };
    if names.len() != folder.classes.len() {
        return Err(format!("{}: {} class folders but {} class names", folder.root.display(), folder.classes.len(), names.len()).into());
    }
    // Some lists repeat a name for two senses (ImageNet's "crane"): said, not refused.
    if let Some((j, i)) = diffclip::data::tokenizer::first_read_alike(&names) {
        eprintln!("warning: classes {} and {} ({} and {}) are named {:?} and {:?}, which the CLIP tokenizer reads alike: zero-shot cannot tell them apart", j, i, folder.classes[j], folder.classes[i], names[j], names[i]);
    }
    Ok(names)
}

/// The picture `--task attention` draws from `--data` when no `--image` is given, with a query:
/// the first zero-shot test image with its class's prompt, else the first captioned image with
/// its first caption.
pub(crate) fn first_image(ctx: &Ctx<'_>, data: &Path) -> Res<Option<(PathBuf, String)>> {
    if let Some(root) = class_folders(data) {
        let folder = ImageFolder::open(&root)?;
        let names = class_names(ctx, &folder)?;
        let first = folder.images.first().zip(folder.labels.first().and_then(|&l| names.get(l)));
        return Ok(first.map(|(path, name)| (path.clone(), format!("a photo of a {name}."))));
    }
    if !has_captions(data) {
        return Ok(None);
    }
    let set = CaptionSet::open(data)?;
    let caption = set.text_to_image.iter().position(|&i| i == 0).map(|t| set.captions[t].clone());
    Ok(set.images.first().cloned().zip(caption))
}

pub(crate) fn zeroshot_files(ctx: &Ctx<'_>, data: &Path, explicit: bool) -> Res<Outcome> {
    let root = match class_folders(data) {
        Some(root) => root,
        None if explicit => data.to_path_buf(),
        None => return Ok(None),
    };
    let folder = ImageFolder::open(&root)?;
    let names = class_names(ctx, &folder)?;
    // One class is always right: its 100 % would say nothing.
    if folder.classes.len() < 2 {
        return Err(format!("{}: zero-shot classification needs at least 2 class folders, found {}", root.display(), folder.classes.len()).into());
    }
    let templates = default_templates(ctx)?;
    let images = ImageSource::files(folder.images.clone(), &ctx.pipeline);
    let m = ctx.eval.zero_shot(
        Labelled {
            images: &images,
            labels: &folder.labels,
        },
        &names,
        &templates,
    )?;
    let table = report::zero_shot_table(
        "zero-shot classification",
        &[(root.display().to_string(), &m)],
    );
    Ok(Some((serde_json::to_value(&m)?, vec![table])))
}

pub(crate) fn retrieval_files(ctx: &Ctx<'_>, data: &Path, explicit: bool) -> Res<Outcome> {
    if !explicit && !has_captions(data) {
        return Ok(None);
    }
    let set = CaptionSet::open(data)?;
    // One image is always retrieved first: its recall would say nothing.
    if set.images.len() < 2 {
        return Err(format!("{}: retrieval needs at least 2 images, found {}", data.display(), set.images.len()).into());
    }
    let images = ImageSource::files(set.images.clone(), &ctx.pipeline);
    let r = ctx
        .eval
        .retrieval(&images, &set.captions, &set.text_to_image, &[1, 5, 10])?;
    let title = format!("retrieval ({} images, {} captions)", r.n_images, r.n_texts);
    Ok(Some((
        serde_json::to_value(&r)?,
        vec![report::retrieval_table(&title, &r)],
    )))
}

pub(crate) fn probe_files(
    ctx: &Ctx<'_>,
    data: &Path,
    fewshot: bool,
    explicit: bool,
) -> Res<Outcome> {
    let has_splits = data.join("train").is_dir() && data.join("test").is_dir();
    if !explicit && !has_splits {
        return Ok(None);
    }
    let open = |s: &str| ImageFolder::open(data.join(s));
    let (train, test) = (open("train")?, open("test")?);
    let val = if data.join("val").is_dir() {
        Some(open("val")?)
    } else {
        None
    };
    for f in std::iter::once(&test).chain(val.as_ref()) {
        if f.classes != train.classes {
            let only = |a: &[String], b: &[String]| a.iter().filter(|c| !b.contains(c)).take(5).cloned().collect::<Vec<_>>().join(", ");
            let (here, there) = (only(&f.classes, &train.classes), only(&train.classes, &f.classes));
            return Err(format!(
                "{}: class folders differ from {} (only here: [{here}]; only there: [{there}])",
                f.root.display(),
                train.root.display()
            )
            .into());
        }
    }
    let src = |f: &ImageFolder| ImageSource::files(f.images.clone(), &ctx.pipeline);
    let (trs, tes) = (src(&train), src(&test));
    let vas = val.as_ref().map(src);
    let va = vas.as_ref().zip(val.as_ref()).map(|(s, f)| Labelled {
        images: s,
        labels: &f.labels,
    });
    let tr = Labelled {
        images: &trs,
        labels: &train.labels,
    };
    probe_run(
        ctx,
        &data.display().to_string(),
        tr,
        va,
        Labelled {
            images: &tes,
            labels: &test.labels,
        },
        train.classes.len(),
        fewshot,
    )
}

/// The `--set NAME=PATH` flags, checked (run before any model is built, and by the task).
pub(crate) fn named_sets(sets: &[String]) -> Res<Vec<(String, PathBuf)>> {
    let mut named: Vec<(String, PathBuf)> = Vec::new();
    for s in sets {
        let (n, p) = s
            .split_once('=')
            .ok_or_else(|| format!("--set {s}: expected NAME=PATH"))?;
        // A misspelt imagenet-a would be scored over all 1000 classes instead of its 200.
        let Some(variant) = imagenet_variant_name(n) else {
            return Err(format!("--set {s}: unknown set {n:?} (known: {})", IMAGENET_VARIANTS.join(", ")).into());
        };
        if p.is_empty() {
            return Err(format!("--set {s}: no PATH after '='").into());
        }
        if named.iter().any(|(m, _)| imagenet_variant_name(m) == Some(variant)) {
            return Err(format!("--set {s}: {n} is given twice").into());
        }
        named.push((n.to_string(), PathBuf::from(p)));
    }
    Ok(named)
}

pub(crate) fn robustness_files(ctx: &Ctx<'_>, data: Option<&Path>, explicit: bool) -> Res<Outcome> {
    let mut named = named_sets(&ctx.args.sets)?;
    if named.is_empty() {
        let d = data.ok_or("robustness needs --set NAME=PATH or --data")?;
        named = IMAGENET_VARIANTS
            .iter()
            .map(|n| (n.to_string(), d.join(n)))
            .filter(|(_, p)| p.is_dir())
            .collect();
    }
    if named.is_empty() {
        return if explicit {
            Err("no --set given and no imagenet* folders under --data".into())
        } else {
            Ok(None)
        };
    }
    let sets = named
        .iter()
        .map(|(n, p)| imagenet_variant(n, p, &ctx.pipeline))
        .collect::<Result<Vec<_>, _>>()?;
    let names = metadata::classnames("imagenet1k")?;
    let templates = metadata::templates_from(ctx.args.templates.as_deref().unwrap_or("openai"))?;
    let report = ctx
        .eval
        .robustness(&ctx.eval.classifier(&names, &templates)?, &sets)?;
    Ok(Some((
        serde_json::to_value(&report)?,
        vec![report::robustness_table(&report)],
    )))
}

pub(crate) fn pairs_files(ctx: &Ctx<'_>, data: &Path, explicit: bool) -> Res<Outcome> {
    if !explicit && !is_pairs_file(data) && !data.join("pairs.csv").is_file() && !data.join("Questions.csv").is_file() {
        return Ok(None);
    }
    let m = ctx.eval.pairs(&PairSet::open(data)?, &ctx.pipeline)?;
    Ok(Some((
        serde_json::to_value(&m)?,
        vec![report::pairs_table(&m)],
    )))
}
