//! PyTorch (.pt) files: float storages convert, integer and bool weights are refused naming
//! the key, views claiming more than the file are errors.

use super::*;

#[test]
fn generated_pt_files_match_the_fixture() {
    // The generator itself: F32 storages give exactly the fixture.
    let path = fixture_as_pt("f32.pt", "FloatStorage", f32_bytes);
    assert_eq!(tiny_loaded(&path).unwrap(), reference());
}

#[test]
fn pt_float_storages_convert() {
    let want = reference();
    let path = fixture_as_pt("f64.pt", "DoubleStorage", f64_bytes);
    assert_eq!(tiny_loaded(&path).unwrap(), want);

    let (orig, _) = read_f32(&fixture("diffclip_tiny/model.safetensors"));
    let path = fixture_as_pt("bf16.pt", "BFloat16Storage", bf16_bytes);
    let sd = read_state_dict(&path).unwrap();
    for (k, _, v) in &orig {
        assert_eq!(sd[&format!("module.{k}")].data, v.iter().map(|&x| bf16_value(x)).collect::<Vec<_>>(), "{k}");
    }
    assert!(tiny_loaded(&path).is_ok());

    let path = fixture_as_pt("f16.pt", "HalfStorage", f16_bytes);
    let sd = read_state_dict(&path).unwrap();
    for (k, _, v) in &orig {
        assert_f16_close(k, &sd[&format!("module.{k}")].data, v);
    }
    assert!(tiny_loaded(&path).is_ok());
}

#[test]
fn pt_integer_and_bool_weights_are_refused_naming_the_key() {
    let (tensors, _) = read_f32(&fixture("diffclip_tiny/model.safetensors"));
    for (storage, size) in [("LongStorage", 8), ("IntStorage", 4), ("BoolStorage", 1), ("ByteStorage", 1)] {
        let pts: Vec<PtTensor> = tensors
            .iter()
            .map(|(k, s, v)| {
                if k == "image_projection" {
                    contiguous(&format!("module.{k}"), storage, s, vec![1u8; v.len() * size])
                } else {
                    contiguous(&format!("module.{k}"), "FloatStorage", s, f32_bytes(v))
                }
            })
            .collect();
        let path = write_pt("int-weight.pt", &pts, true);
        let err = tiny_loaded(&path).unwrap_err();
        let CheckpointError::Dtype { key, .. } = &err else { panic!("{storage}: {err}") };
        assert_eq!(key, "module.image_projection");
        assert!(err.to_string().contains("int-weight.pt"), "{err}");
    }
    // An integer index buffer is skipped.
    let mut pts = vec![contiguous("w", "FloatStorage", &[2], f32_bytes(&[1.0, 2.0]))];
    pts.push(contiguous("embeddings.position_ids", "LongStorage", &[1, 3], (0..3i64).flat_map(|i| i.to_le_bytes()).collect()));
    let sd = read_state_dict(write_pt("ids.pt", &pts, false)).unwrap();
    assert_eq!(sd.keys().collect::<Vec<_>>(), ["w"]);
    assert_eq!(sd["w"].data, [1.0, 2.0]);
}

#[test]
fn pt_views_claiming_more_than_the_file_are_errors() {
    // Stride 0 repeats one stored float 2^31 times: 8 GiB from a file of a few hundred bytes.
    let mut t = contiguous("w", "FloatStorage", &[1], f32_bytes(&[1.0]));
    t.shape = vec![1 << 31];
    t.stride = vec![0];
    let err = read_state_dict(write_pt("broadcast.pt", &[t], false)).unwrap_err();
    assert!(err.to_string().contains("broadcast.pt") && err.to_string().contains("'w'"), "{err}");
    // Many views, each within the file, that together claim far more than it holds (a million
    // keys on one storage would be terabytes): refused before they are all read.
    let views = |n: i64| -> Vec<PtTensor> {
        (0..20)
            .map(|i| {
                let mut t = contiguous(&format!("w{i}"), "FloatStorage", &[1], f32_bytes(&[1.0]));
                t.shape = vec![n];
                t.stride = vec![0];
                t
            })
            .collect()
    };
    let len = torch_file(&views(1), false).len() as i64;
    let err = read_state_dict(write_pt("views.pt", &views(len / 8), false)).unwrap_err().to_string();
    assert!(err.contains("more than twice") && err.contains("views.pt"), "{err}");
    // One such view alone, half its file, is read.
    let one = |n: i64| views(n).into_iter().take(1).collect::<Vec<_>>();
    let len = torch_file(&one(1), false).len() as i64;
    assert_eq!(read_state_dict(write_pt("view.pt", &one(len / 8), false)).unwrap()["w0"].data.len(), (len / 8) as usize);
    // A storage that claims terabytes.
    let mut t = contiguous("w", "FloatStorage", &[1], f32_bytes(&[1.0]));
    t.numel = 1 << 40;
    t.shape = vec![1 << 40];
    assert!(read_state_dict(write_pt("huge.pt", &[t], false)).is_err());
    // A storage shorter than its tensor.
    let mut t = contiguous("w", "FloatStorage", &[4], f32_bytes(&[1.0]));
    t.numel = 4;
    assert!(read_state_dict(write_pt("short.pt", &[t], false)).is_err());
    // A pickle string whose length field claims 4 GiB.
    let mut p = vec![0x80, 0x02, b'}', b'X'];
    p.extend(0xffff_fff0u32.to_le_bytes());
    p.extend(b"short");
    let path = tmp("long-string.pt");
    std::fs::write(&path, zip(&[("archive/data.pkl".into(), p)])).unwrap();
    assert!(read_state_dict(&path).is_err());
    // A zip entry whose size field claims 4 GiB.
    let mut bytes = std::fs::read(fixture_as_pt("zip-size.pt", "FloatStorage", f32_bytes)).unwrap();
    let cd = u32::from_le_bytes(bytes[bytes.len() - 6..bytes.len() - 2].try_into().unwrap()) as usize;
    assert_eq!(bytes[cd..cd + 4], 0x0201_4b50u32.to_le_bytes());
    bytes[cd + 20..cd + 28].copy_from_slice(&[0xf0, 0xff, 0xff, 0xff, 0xf0, 0xff, 0xff, 0xff]);
    let path = tmp("zip-size.pt");
    std::fs::write(&path, &bytes).unwrap();
    assert!(read_state_dict(&path).is_err());
}
