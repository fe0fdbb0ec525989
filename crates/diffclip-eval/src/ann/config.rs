//! The parameters of the HNSW graph, saved in the index's manifest.

use serde::{Deserialize, Serialize};

use super::IndexError;

/// How the approximate index is built and searched. The defaults give recall@10 above 0.95 on
/// clustered CLIP-like embeddings (the test suite checks 5,000 × 64); raise `ef_search` first
/// when recall is too low (it costs query time only), then `m` and `ef_construction` (they
/// cost build time and index size).
///
/// ```
/// use diffclip_eval::ann::AnnConfig;
/// let c: AnnConfig = serde_json::from_str(r#"{"ef_search": 128}"#).unwrap();
/// assert_eq!((c.m, c.ef_search), (AnnConfig::default().m, 128));
/// assert!(c.check().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnnConfig {
    /// Links kept per row and layer (HNSW's M; layer 0 keeps up to 2·M), 2..=255. Default 16.
    pub m: usize,
    /// Candidates examined when linking a new row (ef_construction), at least `m`. Default 200.
    pub ef_construction: usize,
    /// Candidates examined per query (ef_search; at least `k` are). Default 64.
    pub ef_search: usize,
    /// Stored rows used as queries to measure recall@10 against exact search after a build
    /// (0: do not measure). Default 200.
    pub recall_queries: usize,
}

impl Default for AnnConfig {
    fn default() -> Self {
        Self { m: 16, ef_construction: 200, ef_search: 64, recall_queries: 200 }
    }
}

impl AnnConfig {
    /// Checks the ranges: `m` in 2..=255 (the graph file stores it in one byte),
    /// `ef_construction` in `m..=100_000`, `ef_search` in 1..=100_000.
    pub fn check(&self) -> Result<(), IndexError> {
        let bad = |m: String| Err(IndexError::Invalid(m));
        if !(2..=255).contains(&self.m) {
            return bad(format!("HNSW M = {} is outside 2..=255", self.m));
        }
        if !(self.m..=100_000).contains(&self.ef_construction) {
            return bad(format!("ef_construction = {} is outside M..=100000 (M = {})", self.ef_construction, self.m));
        }
        if !(1..=100_000).contains(&self.ef_search) {
            return bad(format!("ef_search = {} is outside 1..=100000", self.ef_search));
        }
        Ok(())
    }
}
