//! Container detection by structure: safetensors whose first bytes look like a pickle or a
//! zip are still read as safetensors, and real pickles and zips as PyTorch files.

use super::*;

/// The fixture with its metadata padded so that the header length is `want` modulo `modulus`
/// (headers are padded to 8 bytes, so a pad of `d` characters adds exactly `d` when `d` is a
/// multiple of 8). Returns the file's bytes.
fn padded_fixture(path: &Path, want: u64, modulus: u64) -> Vec<u8> {
    let meta = |pad: usize| Some(HashMap::from([("format".to_string(), "pt".to_string()), ("pad".to_string(), "x".repeat(pad))]));
    let base = reencode(path, |_| Dtype::F32, meta(0));
    let n = u64::from_le_bytes(base[..8].try_into().unwrap());
    let pad = (want + modulus - n % modulus) % modulus;
    let bytes = reencode(path, |_| Dtype::F32, meta(pad as usize));
    assert_eq!(u64::from_le_bytes(bytes[..8].try_into().unwrap()) % modulus, want);
    bytes
}

#[test]
fn safetensors_whose_header_length_starts_with_0x80_is_read_as_safetensors() {
    let want = reference();
    let path = tmp("low-byte-0x80.safetensors");
    let bytes = padded_fixture(&path, 0x80, 0x100);
    assert_eq!(bytes[0], 0x80);
    assert_eq!(tiny_loaded(&path).unwrap(), want);
    assert_eq!(read_state_dict(&path).unwrap(), read_state_dict(fixture("diffclip_tiny/model.safetensors")).unwrap());
}

#[test]
fn safetensors_that_opens_like_a_protocol_2_pickle_is_read_as_safetensors() {
    // Header length 0x1_0280: the file opens with 0x80 0x02, exactly a pickle's PROTO 2.
    let path = tmp("pickle-lookalike.safetensors");
    let bytes = padded_fixture(&path, 0x0280, 0x1_0000);
    assert_eq!(&bytes[..2], &[0x80, 0x02]);
    assert_eq!(tiny_loaded(&path).unwrap(), reference());
}

#[test]
fn a_safetensors_header_longer_than_the_file_is_an_error() {
    let mut bytes = std::fs::read(fixture("diffclip_tiny/model.safetensors")).unwrap();
    for claimed in [bytes.len() as u64, 1 << 40, u64::MAX, 0x80] {
        bytes[..8].copy_from_slice(&claimed.to_le_bytes());
        let path = tmp("long-header.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        let err = read_state_dict(&path).unwrap_err();
        assert!(err.to_string().contains("long-header.safetensors"), "{err}");
        assert!(tiny_loaded(&path).is_err());
    }
}

#[test]
fn real_pickles_and_zips_are_still_pytorch() {
    // The authors' checkpoints (zip) still load.
    let want = reference();
    assert_eq!(tiny_loaded(&fixture("diffclip_tiny/checkpoint.pt")).unwrap(), want);
    assert_eq!(tiny_loaded(&fixture("diffclip_tiny/checkpoint_full.pt")).unwrap(), want);
    // A legacy (non-zip) pickle is detected as PyTorch: the error comes from the pickle reader.
    let path = tmp("legacy.pt");
    let mut legacy = vec![0x80, 0x02, 0x8a, 0x0a];
    legacy.extend([0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, b'.']);
    std::fs::write(&path, legacy).unwrap();
    let err = read_state_dict(&path).unwrap_err();
    assert!(!matches!(err, CheckpointError::UnknownContainer { .. }), "{err}");
    // Something that is none of them.
    std::fs::write(&path, b"\x80\x09 not a pickle protocol").unwrap();
    assert!(matches!(read_state_dict(&path).unwrap_err(), CheckpointError::UnknownContainer { .. }));
}
