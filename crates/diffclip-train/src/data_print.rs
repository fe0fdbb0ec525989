//! What a run's epoch order indexes, said in one line ("CSV of 3000 rows, CRC-32 1a2b3c4d"):
//! stored in its checkpoints, so that a run resumed on data changed since (a CSV edited, images
//! added, shards replaced) is refused instead of picking other samples at its place in the epoch.

use std::path::Path;

/// A kind, a count, and a CRC-32 over the entries in order.
pub(crate) struct DataPrint {
    kind: &'static str,
    unit: &'static str,
    count: usize,
    crc: crc32fast::Hasher,
}

impl DataPrint {
    /// An empty print of data of `kind`, counted in `unit`s.
    pub fn new(kind: &'static str, unit: &'static str) -> Self {
        Self { kind, unit, count: 0, crc: crc32fast::Hasher::new() }
    }

    /// Adds one entry made of `parts` (each after its length, so that `("ab", "c")` and
    /// `("a", "bc")` differ).
    pub fn add(&mut self, parts: &[&[u8]]) {
        for part in parts {
            self.crc.update(&(part.len() as u64).to_le_bytes());
            self.crc.update(part);
        }
        self.count += 1;
    }

    /// `path` relative to `root` where it lies under it (data moved as a whole prints the same).
    pub fn path<'a>(path: &'a Path, root: &Path) -> &'a [u8] {
        path.strip_prefix(root).unwrap_or(path).as_os_str().as_encoded_bytes()
    }

    /// The line stored.
    pub fn finish(self) -> String {
        format!("{} of {} {}, CRC-32 {:08x}", self.kind, self.count, self.unit, self.crc.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::DataPrint;

    #[test]
    fn prints_follow_content_and_order_not_the_root() {
        let print = |rows: &[(&str, &str)], root: &str| {
            let mut p = DataPrint::new("CSV", "rows");
            for (image, caption) in rows {
                p.add(&[DataPrint::path(&std::path::Path::new(root).join(image), root.as_ref()), caption.as_bytes()]);
            }
            p.finish()
        };
        let a = print(&[("a.png", "a cat"), ("b.png", "a dog")], "/data");
        assert!(a.starts_with("CSV of 2 rows, CRC-32 "), "{a}");
        assert_eq!(a, print(&[("a.png", "a cat"), ("b.png", "a dog")], "/moved/data"));
        assert_ne!(a, print(&[("b.png", "a dog"), ("a.png", "a cat")], "/data"), "order");
        assert_ne!(a, print(&[("a.png", "a cat"), ("b.png", "a dog.")], "/data"), "a caption");
        assert_ne!(print(&[("a.png", "b")], "/d"), print(&[("a.pngb", "")], "/d"), "parts kept apart");
    }
}
