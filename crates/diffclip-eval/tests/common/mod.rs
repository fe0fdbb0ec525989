//! Shared test helpers: the metrics fixture (`../shared/fixtures/metrics`).
#![allow(dead_code)]

use std::path::PathBuf;

use diffclip_eval::Matrix;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

pub fn fixture_dir() -> PathBuf {
    PathBuf::from(format!(
        "{}/../../../shared/fixtures/metrics",
        env!("CARGO_MANIFEST_DIR")
    ))
}

/// The fixture's tensors and expectations; panics (fails the test) when missing.
pub struct Fixture {
    bytes: Vec<u8>,
    pub expected: Value,
}

impl Fixture {
    pub fn load() -> Self {
        let dir = fixture_dir();
        let bytes = std::fs::read(dir.join("metrics.safetensors"))
            .unwrap_or_else(|e| panic!("{}: {e} (the fixtures must be present)", dir.display()));
        let json = std::fs::read_to_string(dir.join("expected.json")).expect("expected.json");
        Self {
            bytes,
            expected: serde_json::from_str(&json).expect("expected.json parses"),
        }
    }

    fn view(&self, name: &str) -> (Vec<usize>, Dtype, Vec<u8>) {
        let st = SafeTensors::deserialize(&self.bytes).expect("metrics.safetensors parses");
        let v = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        (v.shape().to_vec(), v.dtype(), v.data().to_vec())
    }

    pub fn matrix(&self, name: &str) -> Matrix {
        let (shape, dtype, data) = self.view(name);
        assert_eq!(dtype, Dtype::F32, "{name}");
        let v = data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        Matrix::new(shape[0], shape[1], v).unwrap()
    }

    pub fn indices(&self, name: &str) -> Vec<usize> {
        let (_, dtype, data) = self.view(name);
        assert_eq!(dtype, Dtype::I64, "{name}");
        data.chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as usize)
            .collect()
    }
}
