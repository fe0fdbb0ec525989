//! The zero-shot classifier: class names × prompt templates -> one unit vector per class.

use crate::metadata::{MAX_PROMPTS_TOTAL_BYTES, check_prompt, fill_template, filled_len};
use crate::{EvalError, Matrix};

/// The prompts of every class under every template, class-major: row `c * T + t` is class `c`
/// under template `t`. An error when there is no class or no template, or a template without
/// the class name (every class would get the same prompt, so every image the first class).
///
/// ```
/// let p = diffclip_eval::class_prompts(&["cat", "dog"], &["a {c}.", "a photo of a {c}."]).unwrap();
/// assert_eq!(p, ["a cat.", "a photo of a cat.", "a dog.", "a photo of a dog."]);
/// assert!(diffclip_eval::class_prompts(&["cat", "dog"], &["a photo."]).is_err());
/// // A prompt past 64 KiB is refused before it is made.
/// let long = "b".repeat(1000);
/// let err = diffclip_eval::class_prompts(&[long.as_str()], &["{c}".repeat(100)]).unwrap_err().to_string();
/// assert!(err.contains("100000 bytes"), "{err}");
/// // So are prompts past 256 MiB together, each within its own limit.
/// let names: Vec<String> = (0..6000).map(|i| format!("class {i}")).collect();
/// let err = diffclip_eval::class_prompts(&names, &["{c}".repeat(5000)]).unwrap_err().to_string();
/// assert!(err.contains("6000 classes x 1 templates"), "{err}");
/// ```
pub fn class_prompts<S: AsRef<str>, T: AsRef<str>>(classnames: &[S], templates: &[T]) -> Result<Vec<String>, EvalError> {
    if let Some(t) = templates.iter().find(|t| !diffclip_data::metadata::is_template(t.as_ref())) {
        return Err(EvalError::Invalid(format!("prompt template {:?} has no {{c}} (or {{}}) for the class name", t.as_ref())));
    }
    if classnames.is_empty() || templates.is_empty() {
        return Err(EvalError::Invalid("a classifier needs at least one class and one template".into()));
    }
    let mut total = 0usize;
    for c in classnames {
        for t in templates {
            check_prompt(t.as_ref(), c.as_ref()).map_err(EvalError::Invalid)?;
            total = total.saturating_add(filled_len(t.as_ref(), c.as_ref()));
        }
    }
    if total > MAX_PROMPTS_TOTAL_BYTES {
        return Err(EvalError::Invalid(format!(
            "{} classes x {} templates make {total} bytes of prompts; at most {MAX_PROMPTS_TOTAL_BYTES}",
            classnames.len(),
            templates.len()
        )));
    }
    Ok(classnames.iter().flat_map(|c| templates.iter().map(move |t| fill_template(t.as_ref(), c.as_ref()))).collect())
}

/// The classifier from prompt embeddings laid out as [`class_prompts`] makes them
/// (`[C * T, E]`): each prompt embedding is L2-normalised, the `T` of a class are averaged, and
/// the mean is L2-normalised again (OpenAI CLIP / CLIP_benchmark). Returns `[C, E]`.
///
/// ```
/// use diffclip_eval::{Matrix, classifier_from_text_embeddings};
/// let prompts = Matrix::new(4, 2, vec![2.0, 0.0, 0.0, 5.0, 1.0, 0.0, 3.0, 0.0]).unwrap();
/// let w = classifier_from_text_embeddings(&prompts, 2, 2).unwrap();
/// let s = 0.5f32.sqrt();
/// assert!((w.row(0)[0] - s).abs() < 1e-6 && (w.row(0)[1] - s).abs() < 1e-6);
/// assert_eq!(w.row(1), &[1.0, 0.0]);
/// ```
pub fn classifier_from_text_embeddings(
    prompt_emb: &Matrix,
    n_classes: usize,
    n_templates: usize,
) -> Result<Matrix, EvalError> {
    if n_classes == 0 || n_templates == 0 {
        return Err(EvalError::Invalid(format!(
            "a classifier of {n_classes} classes x {n_templates} templates"
        )));
    }
    if prompt_emb.rows() != n_classes * n_templates {
        return Err(EvalError::Shape(format!(
            "{} prompt embeddings for {n_classes} classes x {n_templates} templates",
            prompt_emb.rows()
        )));
    }
    prompt_emb.check_finite("prompt embeddings")?;
    let unit = prompt_emb.l2_normalized();
    let dim = unit.cols();
    let mut data = vec![0f32; n_classes * dim];
    for (c, out) in data
        .chunks_exact_mut(dim.max(1))
        .enumerate()
        .take(n_classes)
    {
        for t in 0..n_templates {
            for (o, v) in out.iter_mut().zip(unit.row(c * n_templates + t)) {
                *o += v;
            }
        }
        out.iter_mut().for_each(|o| *o /= n_templates as f32);
    }
    Ok(Matrix::new(n_classes, dim, data)?.l2_normalized())
}
