//! How close the approximate index comes to exact search: recall@k with stored rows as queries.

use rayon::prelude::*;

use super::distance::{dot, normalized};
use crate::shards::keep_top;
use super::rows::{self, Shard};
use super::{AnnIndex, IndexError};

impl AnnIndex {
    /// Recall@`k` of this index against exact search: `queries` stored rows, evenly spaced over
    /// the collection, are searched both ways; the share of each exact top-`k` the index
    /// returns, averaged. A returned row whose cosine ties the exact `k`-th (within 1e-5)
    /// counts as found, so duplicates do not lower it. Reads the shards twice (one pass for
    /// the queries, one for exact search, all queries at once); they must be the ones indexed.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), diffclip_eval::ann::IndexError> {
    /// let index = diffclip_eval::ann::AnnIndex::open("index/".as_ref(), "image_embed")?;
    /// println!("recall@10 = {:.3}", index.recall_at_k(200, 10)?);
    /// # Ok(()) }
    /// ```
    pub fn recall_at_k(&self, queries: usize, k: usize) -> Result<f64, IndexError> {
        let n = self.rows();
        let q = queries.min(n);
        if q == 0 || k == 0 {
            return Err(IndexError::Invalid(format!("recall with {queries} queries at k = {k}")));
        }
        let ids: Vec<usize> = (0..q).map(|i| i * n / q).collect();
        let mut unit = vec![Vec::new(); q];
        self.each_shard(|base, rows, cols| {
            for (slot, &id) in unit.iter_mut().zip(&ids) {
                if (base..base + rows.len() / cols).contains(&id) {
                    *slot = normalized(&rows[(id - base) * cols..(id - base + 1) * cols]);
                }
            }
        })?;
        let mut exact: Vec<Vec<(f32, usize)>> = vec![Vec::new(); q];
        self.each_shard(|base, rows, cols| {
            let unit_rows: Vec<Vec<f32>> = rows.par_chunks(cols).map(normalized).collect();
            exact.par_iter_mut().zip(&unit).for_each(|(top, query)| {
                top.extend(unit_rows.iter().enumerate().map(|(i, row)| (dot(query, row), base + i)));
                keep_top(top, k, |t| *t);
            });
        })?;
        let total: f64 = unit
            .par_iter()
            .zip(&exact)
            .map(|(query, top)| {
                let kth = top.last().map_or(f32::NEG_INFINITY, |t| t.0);
                let found = self.nearest(query, k).iter().filter(|(id, score)| top.iter().any(|t| t.1 == *id) || *score >= kth - 1e-5).count();
                found.min(top.len()) as f64 / top.len().max(1) as f64
            })
            .sum();
        Ok(total / q as f64)
    }

    /// Calls `f(first row id, rows, columns)` for each shard holding rows, checking that each
    /// is still the one indexed.
    fn each_shard(&self, mut f: impl FnMut(usize, &[f32], usize)) -> Result<(), IndexError> {
        let stale = |message: String| IndexError::Stale { path: self.dir().display().to_string(), message };
        let paths = rows::list(self.dir())?;
        if paths.len() != self.manifest.shards.len() {
            return Err(stale(format!("{} shards now, {} indexed", paths.len(), self.manifest.shards.len())));
        }
        let mut base = 0;
        for (path, indexed) in paths.iter().zip(&self.manifest.shards) {
            let mut shard = Shard::open(path, &self.manifest.tensor)?;
            if &shard.print != indexed {
                return Err(stale(format!("{} changed since it was indexed", indexed.name)));
            }
            if shard.print.rows > 0 {
                f(base, &shard.rows()?, shard.cols);
                base += shard.print.rows;
            }
        }
        Ok(())
    }
}
