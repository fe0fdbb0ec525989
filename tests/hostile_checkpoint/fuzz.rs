//! Property tests: arbitrary, flipped and truncated bytes give a value or an error, never a
//! panic.

use super::*;

/// Small case counts keep the suite fast; `PROPTEST_CASES` raises them for a longer hunt.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(cases);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Read `bytes` as a checkpoint file: read_state_dict and load_checkpoint may fail, not panic.
fn read_bytes(name: &str, bytes: &[u8], model: Option<&mut Clip>) {
    let path = tmp(name);
    std::fs::write(&path, bytes).unwrap();
    let _ = read_state_dict(&path);
    let _ = diffclip::clip::checkpoint::config_of(&path);
    if let Some(model) = model {
        let _ = load_checkpoint(model, &path);
    }
}

/// Apply `flips` (position, xor mask) within `range` and cut the file at `cut` (a fraction).
fn mutate(mut bytes: Vec<u8>, range: std::ops::Range<usize>, flips: &[(usize, u8)], cut: Option<f64>) -> Vec<u8> {
    let span = range.end.min(bytes.len()).saturating_sub(range.start).max(1);
    for &(pos, mask) in flips {
        let i = range.start + pos % span;
        if i < bytes.len() {
            bytes[i] ^= mask.max(1);
        }
    }
    if let Some(f) = cut {
        bytes.truncate((bytes.len() as f64 * f) as usize);
    }
    bytes
}

fn small_pt() -> Vec<u8> {
    torch_file(
        &[
            contiguous("a.weight", "FloatStorage", &[3, 2], f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])),
            contiguous("a.bias", "HalfStorage", &[2], vec![0, 0x3c, 0, 0xc0]),
            contiguous("ids.position_ids", "LongStorage", &[2], vec![0; 16]),
        ],
        true,
    )
}

fn small_safetensors() -> Vec<u8> {
    let path = tmp("small.safetensors");
    write_safetensors(
        &path,
        &[
            ("w".into(), Dtype::F32, vec![2, 2], f32_bytes(&[1.0, 2.0, 3.0, 4.0])),
            ("b".into(), Dtype::BF16, vec![2], vec![0x80, 0x3f, 0, 0x40]),
        ],
        Some(HashMap::from([("format".into(), "pt".into())])),
    )
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn arbitrary_bytes_are_an_error_or_a_state_dict(
        prefix in prop::sample::select(vec![&b""[..], &b"PK\x03\x04"[..], &b"\x80\x02"[..], &b"\x80\x02\x8a\x0a"[..], &b"NRUB"[..], &b"NRUB\x01\x00"[..], &b"\x40\x00\x00\x00\x00\x00\x00\x00{"[..]]),
        body in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        let bytes = [prefix, &body[..]].concat();
        let (_, device) = devices().remove(0);
        let mut model = ClipConfig::diffclip_tiny().init(&device).unwrap();
        read_bytes("arbitrary.bin", &bytes, Some(&mut model));
    }

    #[test]
    fn flipped_or_cut_small_files_are_an_error_or_a_state_dict(
        which in 0..2usize,
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in prop::option::of(0.0f64..1.0),
    ) {
        let bytes = if which == 0 { small_pt() } else { small_safetensors() };
        let len = bytes.len();
        read_bytes("small-mutated.bin", &mutate(bytes, 0..len, &flips, cut), None);
    }
}

proptest! {
    #![proptest_config(config(16))]

    /// The fixture checkpoints, flipped in their structure (safetensors header, the `.pt`
    /// pickle and zip directory) or cut anywhere, then loaded into a model.
    #[test]
    fn flipped_or_cut_fixtures_are_an_error_or_load(
        which in 0..4usize,
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in prop::option::of(0.0f64..1.0),
    ) {
        let (path, range) = match which {
            0 => (fixture("diffclip_tiny/model.safetensors"), 0..9_800),
            1 => (fixture("diffclip_tiny/checkpoint.pt"), 0..11_400),
            2 => (fixture("diffclip_tiny/checkpoint.pt"), 13_560_000..usize::MAX),
            // Our own burnpack: header and CBOR metadata.
            _ => (burnpack_fixture(), 0..20_000),
        };
        let bytes = std::fs::read(path).unwrap();
        let (_, device) = devices().remove(0);
        let mut model = ClipConfig::diffclip_tiny().init(&device).unwrap();
        let name = ["fixture-mutated.safetensors", "fixture-mutated.pt", "fixture-mutated.pt", "fixture-mutated.bpk"][which];
        read_bytes(name, &mutate(bytes, range, &flips, cut), Some(&mut model));
    }

    /// A training checkpoint with its tensor header or data flipped, or cut anywhere. The
    /// metadata (the embedded config, validated elsewhere) is left alone.
    #[test]
    fn flipped_or_cut_training_checkpoints_are_an_error_or_load(
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in prop::option::of(0.0f64..1.0),
    ) {
        let path = training_fixture();
        let bytes = std::fs::read(&path).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = String::from_utf8_lossy(&bytes[8..8 + n]).into_owned();
        // The tensor entries follow the metadata object.
        let start = header.find("},\"").map_or(8 + n, |i| 8 + i + 2);
        let out = tmp("train-mutated.safetensors");
        std::fs::write(&out, mutate(bytes, start..usize::MAX, &flips, cut)).unwrap();
        let _ = load_training_checkpoint(&out, &ad_device());
    }
}

fn training_fixture() -> PathBuf {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let _serial = serial();
        let path = shared("train-fixture.safetensors");
        training_checkpoint_at(&path);
        path
    })
    .clone()
}

fn burnpack_fixture() -> PathBuf {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let (_, device) = devices().remove(0);
        let mut model = ClipConfig::diffclip_tiny().init(&device).unwrap();
        load_checkpoint(&mut model, fixture("diffclip_tiny/model.safetensors")).unwrap();
        let path = shared("tiny.bpk");
        diffclip::clip::save_burnpack(&model, Some(&ClipConfig::diffclip_tiny()), &path).unwrap();
        path
    })
    .clone()
}
