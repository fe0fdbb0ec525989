//! Dtypes in safetensors files: f64, bf16 and f16 weights convert; integer and bool weights
//! are refused naming the key; integer index buffers are skipped.

use super::*;

#[test]
fn f64_weights_convert_exactly() {
    let path = tmp("f64.safetensors");
    reencode(&path, |_| Dtype::F64, None);
    assert_eq!(tiny_loaded(&path).unwrap(), reference());
}

#[test]
fn bf16_and_f16_weights_convert() {
    let path = tmp("bf16.safetensors");
    reencode(&path, |_| Dtype::BF16, None);
    let sd = read_state_dict(&path).unwrap();
    let (orig, _) = read_f32(&fixture("diffclip_tiny/model.safetensors"));
    for (k, s, v) in &orig {
        let t = &sd[k];
        assert_eq!(&t.shape, s, "{k}");
        assert_eq!(t.data, v.iter().map(|&x| bf16_value(x)).collect::<Vec<_>>(), "{k}");
    }
    assert!(tiny_loaded(&path).is_ok());

    let path = tmp("f16.safetensors");
    reencode(&path, |_| Dtype::F16, None);
    let sd = read_state_dict(&path).unwrap();
    for (k, _, v) in &orig {
        assert_f16_close(k, &sd[k].data, v);
    }
    assert!(tiny_loaded(&path).is_ok());
}

#[test]
fn exact_f16_values() {
    let path = tmp("f16-exact.safetensors");
    let bits: [u16; 6] = [0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x8000];
    let raw = vec![("w".to_string(), Dtype::F16, vec![6], bits.iter().flat_map(|b| b.to_le_bytes()).collect())];
    write_safetensors(&path, &raw, None);
    let sd = read_state_dict(&path).unwrap();
    assert_eq!(sd["w"].data, vec![1.0, -2.0, 0.5, 65504.0, 2f32.powi(-24), -0.0]);
}

#[test]
fn integer_and_bool_weights_are_refused_naming_the_key() {
    for dtype in [Dtype::I64, Dtype::I32, Dtype::BOOL, Dtype::U8] {
        let path = tmp("int-weight.safetensors");
        reencode(&path, |k| if k == "image_projection" { dtype } else { Dtype::F32 }, None);
        let err = tiny_loaded(&path).unwrap_err();
        let CheckpointError::Dtype { key, dtype: found, .. } = &err else { panic!("{dtype:?}: {err}") };
        assert_eq!(key, "image_projection");
        assert_eq!(found, &format!("{dtype:?}"));
        let msg = err.to_string();
        assert!(msg.contains("int-weight.safetensors") && msg.contains("image_projection"), "{msg}");
    }
}

#[test]
fn integer_index_buffers_are_skipped_not_loaded() {
    // HuggingFace state dicts may carry int64 `position_ids`; they are not weights.
    let (tensors, _) = read_f32(&fixture("hf_tiny/model.safetensors"));
    let mut raw: Vec<Raw> = tensors.iter().map(|(k, s, v)| (k.clone(), Dtype::F32, s.clone(), f32_bytes(v))).collect();
    let ids: Vec<u8> = (0..77i64).flat_map(|i| i.to_le_bytes()).collect();
    raw.push(("text_model.embeddings.position_ids".into(), Dtype::I64, vec![1, 77], ids));
    let path = tmp("hf-with-ids.safetensors");
    write_safetensors(&path, &raw, None);
    let sd = read_state_dict(&path).unwrap();
    assert!(!sd.contains_key("text_model.embeddings.position_ids"));
    assert_eq!(sd, read_state_dict(fixture("hf_tiny/model.safetensors")).unwrap());
}
