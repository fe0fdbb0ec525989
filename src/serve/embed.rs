//! Embeddings of request bodies, batched, each failure its own request's answer.

use diffclip_data::Pipeline;
use diffclip_eval::{Encoder, EvalError, ImageSource, Matrix};

use crate::http::Response;

/// The embeddings of image files' bytes, decoded in parallel and embedded as one batch: each
/// one's row, or its answer when it does not decode (422); every one is a 500 when the model fails.
/// Decoding is bounded per image by the pipeline's pixel limit; a batch decodes as many images
/// at once as there are cores.
pub fn image_embeddings(encoder: &Encoder<'_>, pipeline: &Pipeline, bodies: &[&[u8]]) -> Vec<Result<Vec<f32>, Response>> {
    if bodies.is_empty() {
        return Vec::new();
    }
    let source = ImageSource::new(bodies.len(), pipeline.size(), None, |i| Ok(pipeline.process_bytes(bodies[i], "request body", 0)?));
    let out = match encoder.encode_source_skipping(&source) {
        Ok(out) => out,
        Err(e) => return bodies.iter().map(|_| Err(Response::error(500, &e))).collect(),
    };
    let mut rows: Vec<Result<Vec<f32>, Response>> = bodies.iter().map(|_| Err(Response::error(500, "no embedding"))).collect();
    for (row, &i) in out.embeddings.row_iter().zip(&out.kept) {
        rows[i] = Ok(row.to_vec());
    }
    for (i, why) in out.skipped {
        rows[i] = Err(Response::error(422, why));
    }
    rows
}

/// The embeddings of `texts` as one batch; when a text cannot be tokenized, each alone, so that
/// it fails only its own request (400). A failure of the model is a 500 for all.
pub fn text_embeddings(encoder: &Encoder<'_>, texts: &[&str]) -> Vec<Result<Vec<f32>, Response>> {
    if texts.is_empty() {
        return Vec::new();
    }
    let rows = |m: Matrix| m.row_iter().map(<[f32]>::to_vec).collect::<Vec<_>>();
    match encoder.encode_texts(texts) {
        Ok(m) => rows(m).into_iter().map(Ok).collect(),
        Err(EvalError::Tokenizer(_)) => texts
            .iter()
            .map(|t| match encoder.encode_texts(&[*t]) {
                Ok(m) => Ok(rows(m).remove(0)),
                Err(e @ EvalError::Tokenizer(_)) => Err(Response::error(400, e)),
                Err(e) => Err(Response::error(500, e)),
            })
            .collect(),
        Err(e) => texts.iter().map(|_| Err(Response::error(500, &e))).collect(),
    }
}
