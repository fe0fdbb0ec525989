//! Linear layers' weights packed for reduced-precision products once, not on every call.
//!
//! Packing a `k × n` weight reads it whole; for a few rows (a pooled token, a short caption)
//! that costs more than the product. Inference reuses the packed copy while the weight lives:
//! an entry holds a reference to the weight's buffer, so the buffer can be neither freed nor
//! changed in place (flex copies a shared buffer before writing), and an entry whose weight
//! nothing else holds any more (the model was dropped) is removed on the next miss. One
//! packing per weight: threads running one model in bf16 and in f16 at once repack each call.

use std::sync::{Arc, Mutex};

use burn::backend::flex::FlexTensor;

use super::bf16::{Engine, PackedRhs};

struct Entry {
    /// The weight, `k × n` contiguous f32: its buffer's address is the key.
    weight: FlexTensor,
    packed: Arc<PackedRhs>,
}

static CACHE: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

fn key(weight: &FlexTensor) -> *const f32 {
    weight.storage::<f32>().as_ptr()
}

/// `weight` (contiguous `k × n` f32 from offset 0) packed for [`super::bf16::gemm_packed`] on
/// `engine`.
pub(crate) fn packed(weight: &FlexTensor, k: usize, n: usize, engine: Engine) -> Arc<PackedRhs> {
    let at = key(weight);
    let lookup = |cache: &[Entry]| {
        cache.iter().find(|e| key(&e.weight) == at && e.packed.dims() == (k, n) && e.packed.engine() == engine).map(|e| e.packed.clone())
    };
    if let Some(hit) = lookup(&CACHE.lock().unwrap_or_else(|e| e.into_inner())) {
        return hit;
    }
    let values = &weight.storage::<f32>()[..k * n];
    // SAFETY: `values` is a contiguous k × n matrix.
    let packed = Arc::new(unsafe { PackedRhs::new(engine, values.as_ptr(), [n, 1], k, n) });
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(hit) = lookup(&cache) {
        return hit; // another thread packed it meanwhile
    }
    // Weights only the cache still holds belong to dropped models; one entry per buffer (a
    // view of it with other dims, or packed for another engine, replaces it), so no two
    // entries keep a buffer alive.
    cache.retain(|e| !e.weight.is_unique() && key(&e.weight) != at);
    cache.push(Entry { weight: weight.clone(), packed: packed.clone() });
    packed
}

/// Drops every packed weight (when products go back to f32).
pub(crate) fn clear() {
    CACHE.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// Bytes of packed weights held (for tests and diagnostics).
#[cfg(test)]
pub(crate) fn held_bytes() -> usize {
    CACHE.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|e| e.packed.bytes()).sum()
}

#[cfg(test)]
mod tests {
    use burn::tensor::TensorData;

    use super::*;

    fn weight(k: usize, n: usize, seed: f32) -> FlexTensor {
        FlexTensor::from_data(TensorData::new((0..k * n).map(|i| (i as f32 * seed).sin()).collect::<Vec<f32>>(), [k, n]))
    }

    #[test]
    fn a_weight_is_packed_once_and_let_go_with_its_model() {
        let (k, n) = (96, 80);
        let engine = Engine::best();
        let w = weight(k, n, 0.37);
        let first = packed(&w, k, n, engine);
        assert!(Arc::ptr_eq(&first, &packed(&w, k, n, engine)), "the second call packs again");
        assert!(Arc::ptr_eq(&first, &packed(&w.clone(), k, n, engine)), "a clone shares the buffer, so the entry");
        let before = held_bytes();
        assert!(before >= first.bytes());
        // The model lets go of its weight: the next miss removes the entry.
        drop(w);
        let other = weight(k, n, 0.11);
        let second = packed(&other, k, n, engine);
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(held_bytes(), before - first.bytes() + second.bytes());
        // Another precision packs anew and replaces the entry: never a bf16 copy for f16.
        let f16 = packed(&other, k, n, Engine::RoundedF16);
        assert_eq!(f16.engine(), Engine::RoundedF16);
        assert!(Arc::ptr_eq(&f16, &packed(&other, k, n, Engine::RoundedF16)));
        assert_eq!(held_bytes(), before - first.bytes() + f16.bytes());
    }
}
