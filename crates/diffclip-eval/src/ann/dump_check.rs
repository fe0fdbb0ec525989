//! A complete check of the two graph files before `hnsw_rs` reads them. Its reader trusts its
//! input: on a damaged file it panics, exits the process, allocates whatever a count says, or
//! reads a vector of the recorded dimension out of a shorter buffer. So every byte is checked
//! here first, against the manifest: magic numbers, counts, the ids and layer positions of
//! every point and link, link distances, the unit norm of every stored row, the exact file
//! lengths and their SHA-256. Written against the dump format of hnsw_rs 0.3 (description
//! magic `0x002a6779`, full mode, native byte order and `usize`); the save/load tests fail if
//! an upgrade of the crate changes it.

use std::fs::File;
use std::io::{BufReader, Read};
use std::mem::size_of;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::IndexError;
use super::distance::UnitCosine;
use super::manifest::{FilePrint, Manifest};

const MAGIC_DESCR: u32 = 0x002a_6779;
const MAGIC_LAYER: u32 = 0x000a_676f;
const MAGIC_POINT: u32 = 0x000a_678f;
const MAGIC_DATA: u32 = 0xa67f_0000;
/// Layers of every point's link table (`hnsw_rs`'s `NB_LAYER_MAX`).
const LAYERS: u8 = 16;
const USIZE: usize = size_of::<usize>();
/// One link: data id, layer, rank in layer, distance.
const LINK: usize = USIZE + 1 + 4 + 4;

/// Checks `graph` and `data` against `manifest`; the first problem found is the error.
pub(crate) fn check(graph: &Path, data: &Path, manifest: &Manifest) -> Result<(), IndexError> {
    let order = check_graph(Reader::open(graph, &manifest.graph)?, manifest)?;
    check_data(Reader::open(data, &manifest.data)?, manifest, &order)
}

/// The graph file; returns the data ids in file order (the order of the data file).
fn check_graph(mut g: Reader, m: &Manifest) -> Result<Vec<usize>, IndexError> {
    g.expect_u32(MAGIC_DESCR, "description magic")?;
    let (mode, links) = (g.u8()?, g.u8()?);
    g.expect(mode == 1, "not a full-mode dump")?;
    g.expect(usize::from(links) == m.config.m, format!("M is {links}, the manifest says {}", m.config.m))?;
    let (scale, table) = (g.f64()?, g.u8()?);
    g.expect(scale.is_finite() && scale > 0.0, "bad level scale")?;
    g.expect(table == LAYERS, "bad layer count in the description")?;
    let _ef = g.usize()?;
    let (points, dim) = (g.usize()?, g.usize()?);
    g.expect(points == m.rows && dim == m.dim, format!("holds {points} rows of {dim}, the manifest says {} of {}", m.rows, m.dim))?;
    let dist = g.name()?;
    g.expect(dist == std::any::type_name::<UnitCosine>(), format!("distance {dist:?}, expected {:?}", std::any::type_name::<UnitCosine>()))?;
    let t = g.name()?;
    g.expect(t == "f32", "rows are not f32")?;
    let layers = g.u8()?;
    g.expect((1..=LAYERS).contains(&layers), "bad layer count")?;
    let (mut sizes, mut order, mut seen) = (Vec::new(), Vec::with_capacity(points), vec![false; points]);
    let mut max_rank = [None::<usize>; LAYERS as usize];
    for l in 0..layers {
        g.expect_u32(MAGIC_LAYER, "layer magic")?;
        let n = g.usize()?;
        g.expect(n <= points - order.len(), "more points than rows")?;
        for r in 0..n {
            g.expect_u32(MAGIC_POINT, "point magic")?;
            let id = g.usize()?;
            g.expect(id < points && !seen[id], format!("row id {id} out of range or repeated"))?;
            seen[id] = true;
            order.push(id);
            let (layer, rank) = (g.u8()?, g.i32()?);
            g.expect(layer == l && usize::try_from(rank) == Ok(r), "point out of place")?;
            for _ in 0..LAYERS {
                let count = g.usize()?;
                g.expect(count as u64 <= g.left / LINK as u64, "link count past the end")?;
                for _ in 0..count {
                    let b = g.bytes::<LINK>()?;
                    let id = usize::from_ne_bytes(b[..USIZE].try_into().unwrap_or_default());
                    let layer = b[USIZE];
                    let rank = i32::from_ne_bytes(b[USIZE + 1..USIZE + 5].try_into().unwrap_or_default());
                    let d = f32::from_ne_bytes(b[USIZE + 5..].try_into().unwrap_or_default());
                    let ok = id < points && layer < layers && rank >= 0 && d.is_finite() && d >= 0.0;
                    g.expect(ok, "bad link")?;
                    let slot = &mut max_rank[layer as usize];
                    *slot = Some(slot.unwrap_or(0).max(rank as usize));
                }
            }
        }
        sizes.push(n);
    }
    g.expect(order.len() == points, format!("{} points, the manifest says {points} rows", order.len()))?;
    g.expect(max_rank.iter().zip(&sizes).all(|(m, &s)| m.is_none_or(|m| m < s)), "a link to a missing point")?;
    g.expect(max_rank[sizes.len()..].iter().all(Option::is_none), "a link to a missing layer")?;
    let (id, layer, rank) = (g.usize()?, g.u8()?, g.i32()?);
    let at = usize::try_from(rank).ok().filter(|&r| (layer as usize) < sizes.len() && r < sizes[layer as usize]);
    let at = at.map(|r| sizes[..layer as usize].iter().sum::<usize>() + r);
    g.expect(at.is_some_and(|i| order[i] == id), "bad entry point")?;
    g.finish()?;
    Ok(order)
}

/// The data file: every row, in graph order, finite and of unit norm (or zero).
fn check_data(mut d: Reader, m: &Manifest, order: &[usize]) -> Result<(), IndexError> {
    d.expect_u32(MAGIC_DATA, "data magic")?;
    let dim = d.usize()?;
    d.expect(dim == m.dim, "dimension differs from the manifest")?;
    let mut row = vec![0u8; m.dim * 4];
    for &id in order {
        d.expect_u32(MAGIC_DATA, "row magic")?;
        let (at, len) = (d.u64()?, d.u64()?);
        d.expect(at == id as u64 && len == row.len() as u64, "rows out of order or of the wrong length")?;
        d.fill(&mut row)?;
        let norm2: f32 = row.chunks_exact(4).map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]])).map(|v| v * v).sum();
        d.expect(norm2 == 0.0 || (norm2 - 1.0).abs() <= 1e-3, format!("row {id} is not a unit vector"))?;
    }
    d.finish()
}

/// A file read front to back, its length checked before each read and its bytes hashed.
struct Reader {
    path: PathBuf,
    file: BufReader<File>,
    left: u64,
    hash: Sha256,
    expect: FilePrint,
}

impl Reader {
    fn open(path: &Path, expect: &FilePrint) -> Result<Self, IndexError> {
        // Checked before opening: opening a FIFO would block.
        match std::fs::metadata(path) {
            Err(e) => return Err(IndexError::corrupt(path, e.to_string())),
            Ok(m) if !m.is_file() => return Err(IndexError::corrupt(path, "not a regular file")),
            Ok(_) => {}
        }
        let file = File::open(path).map_err(|e| IndexError::io(path, e))?;
        let len = file.metadata().map_err(|e| IndexError::io(path, e))?.len();
        let r = Self { path: path.into(), file: BufReader::new(file), left: len, hash: Sha256::new(), expect: expect.clone() };
        r.expect(len == expect.bytes, format!("{len} bytes, the manifest says {}", expect.bytes))?;
        Ok(r)
    }

    fn expect(&self, ok: bool, what: impl Into<String>) -> Result<(), IndexError> {
        if ok { Ok(()) } else { Err(IndexError::corrupt(&self.path, what)) }
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), IndexError> {
        self.expect(buf.len() as u64 <= self.left, "truncated")?;
        self.file.read_exact(buf).map_err(|e| IndexError::io(&self.path, e))?;
        self.left -= buf.len() as u64;
        self.hash.update(&*buf);
        Ok(())
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], IndexError> {
        let mut b = [0u8; N];
        self.fill(&mut b)?;
        Ok(b)
    }

    fn u8(&mut self) -> Result<u8, IndexError> {
        Ok(self.bytes::<1>()?[0])
    }

    fn i32(&mut self) -> Result<i32, IndexError> {
        self.bytes().map(i32::from_ne_bytes)
    }

    fn u32(&mut self) -> Result<u32, IndexError> {
        self.bytes().map(u32::from_ne_bytes)
    }

    fn u64(&mut self) -> Result<u64, IndexError> {
        self.bytes().map(u64::from_ne_bytes)
    }

    fn usize(&mut self) -> Result<usize, IndexError> {
        self.bytes().map(usize::from_ne_bytes)
    }

    fn f64(&mut self) -> Result<f64, IndexError> {
        self.bytes().map(f64::from_ne_bytes)
    }

    fn expect_u32(&mut self, want: u32, what: &str) -> Result<(), IndexError> {
        let got = self.u32()?;
        self.expect(got == want, format!("bad {what}"))
    }

    /// A length-prefixed name (at most 256 bytes, UTF-8).
    fn name(&mut self) -> Result<String, IndexError> {
        let len = self.usize()?;
        self.expect(len <= 256, "name longer than 256 bytes")?;
        let mut b = vec![0u8; len];
        self.fill(&mut b)?;
        String::from_utf8(b).map_err(|_| IndexError::corrupt(&self.path, "name is not UTF-8"))
    }

    /// At the end of the file, with the recorded checksum.
    fn finish(self) -> Result<(), IndexError> {
        self.expect(self.left == 0, format!("{} bytes after the end", self.left))?;
        let sha: String = self.hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        if sha != self.expect.sha256 {
            return Err(IndexError::corrupt(&self.path, "SHA-256 differs from the manifest's"));
        }
        Ok(())
    }
}

/// Size and SHA-256 of a file just written.
pub(crate) fn print(path: &Path) -> Result<FilePrint, IndexError> {
    let mut file = File::open(path).map_err(|e| IndexError::io(path, e))?;
    let mut hash = Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hash).map_err(|e| IndexError::io(path, e))?;
    Ok(FilePrint { bytes, sha256: hash.finalize().iter().map(|b| format!("{b:02x}")).collect() })
}
