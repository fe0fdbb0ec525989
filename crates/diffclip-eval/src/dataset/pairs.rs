//! `PairSet`: MMVP-VLM style pairs of images with a pair of statements (layouts in docs/eval.md).

use std::path::{Path, PathBuf};

use diffclip_data::datasets::CsvTable;

use crate::EvalError;

/// Two images that differ in one detail, and one statement true of each.
#[derive(Debug, Clone, PartialEq)]
pub struct PairItem {
    /// Category (MMVP's `Type`, e.g. "Orientation and Direction").
    pub category: String,
    /// The two images.
    pub images: [PathBuf; 2],
    /// `statements[i]` describes `images[i]`.
    pub statements: [String; 2],
    /// The CSV line the pair was read from.
    pub line: usize,
}

/// A list of pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct PairSet {
    /// The CSV file.
    pub source: PathBuf,
    /// The pairs, in file order.
    pub pairs: Vec<PairItem>,
}

impl PairSet {
    /// Read `ROOT/pairs.csv` (columns `category,image1,image2,statement1,statement2`, images
    /// relative to ROOT, statements used verbatim), or else the MMVP-VLM release layout
    /// `ROOT/Questions.csv` (`Question ID,Type,Statement`; consecutive rows form a pair; images
    /// `ROOT/MLLM_VLM Images/<Type>/<Question ID>.jpg`; statements prefixed with "a photo of ",
    /// as MMVP's evaluation script does; its header is read by name). `root` may also be the CSV
    /// file itself; a root holding both files is refused, and so is a pair of one image file or
    /// of one statement twice (no model can tell it apart).
    pub fn open(root: &Path) -> Result<Self, EvalError> {
        let (dir, file) = if root.is_file() {
            (
                root.parent().unwrap_or(Path::new(".")).to_path_buf(),
                Some(root.to_path_buf()),
            )
        } else {
            (root.to_path_buf(), None)
        };
        let generic = file.clone().unwrap_or_else(|| dir.join("pairs.csv"));
        let mmvp = file.unwrap_or_else(|| dir.join("Questions.csv"));
        if generic != mmvp && generic.is_file() && mmvp.is_file() {
            return Err(EvalError::dataset(root, "holds both pairs.csv and Questions.csv: give the one to evaluate as the data"));
        }
        if generic.is_file() && generic.file_name() != Some("Questions.csv".as_ref()) {
            Self::open_generic(&generic, &dir)
        } else if mmvp.is_file() {
            Self::open_mmvp(&mmvp, &dir)
        } else {
            Err(EvalError::dataset(
                root,
                "no pairs.csv or Questions.csv (see docs/eval.md)",
            ))
        }
    }

    fn open_generic(path: &Path, dir: &Path) -> Result<Self, EvalError> {
        let csv = CsvTable::read(path, b',')?;
        let cols = ["category", "image1", "image2", "statement1", "statement2"]
            .map(|c| csv.column(c))
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        let mut pairs = Vec::new();
        for r in csv.records() {
            let f = |i: usize| csv.field(r, cols[i]).map(|s| s.trim().to_string());
            let (category, s1, s2) = (f(0)?, f(3)?, f(4)?);
            if s1.is_empty() || s2.is_empty() {
                return Err(csv.error(r.line, "empty statement").into());
            }
            let images = [
                image_at(&csv, r.line, dir.join(f(1)?))?,
                image_at(&csv, r.line, dir.join(f(2)?))?,
            ];
            pairs.push(PairItem {
                category,
                images,
                statements: [s1, s2],
                line: r.line as usize,
            });
        }
        Self::finish(path, pairs)
    }

    fn open_mmvp(path: &Path, dir: &Path) -> Result<Self, EvalError> {
        let csv = CsvTable::read(path, b',')?;
        // The release's header, by name: a file without it would lose its first question to
        // the header and read its columns by guess.
        if csv.header().first().is_some_and(|h| h.trim().parse::<u64>().is_ok()) {
            return Err(EvalError::dataset(path, "the first line is a question, not the header `Question ID,Type,Statement`"));
        }
        let (qid_col, type_col, st_col) = (csv.column("question id")?, csv.column("type")?, csv.column("statement")?);
        let image_dir = dir.join("MLLM_VLM Images");
        let records = csv.records();
        if records.len() % 2 != 0 {
            return Err(EvalError::dataset(
                path,
                format!("{} rows: pairs need an even number", records.len()),
            ));
        }
        let mut pairs = Vec::new();
        for rows in records.chunks_exact(2) {
            let mut images = Vec::new();
            let mut statements = Vec::new();
            let category = csv.field(&rows[0], type_col)?.trim().to_string();
            for r in rows {
                let qid = csv.field(r, qid_col)?.trim();
                if qid.parse::<u64>().is_err() {
                    return Err(csv
                        .error(r.line, format!("question id '{qid}' is not a number"))
                        .into());
                }
                if csv.field(r, type_col)?.trim() != category {
                    return Err(csv
                        .error(r.line, "the two rows of a pair have different types")
                        .into());
                }
                let base = image_dir.join(&category).join(qid);
                let found = ["jpg", "jpeg", "png"]
                    .iter()
                    .map(|e| base.with_extension(e))
                    .find(|p| p.is_file());
                let Some(img) = found else {
                    return Err(csv
                        .error(r.line, format!("no image {}.jpg", base.display()))
                        .into());
                };
                images.push(img);
                statements.push(format!("a photo of {}", csv.field(r, st_col)?.trim()));
            }
            let (i1, i0) = (
                images.pop().unwrap_or_default(),
                images.pop().unwrap_or_default(),
            );
            let (s1, s0) = (
                statements.pop().unwrap_or_default(),
                statements.pop().unwrap_or_default(),
            );
            pairs.push(PairItem {
                category,
                images: [i0, i1],
                statements: [s0, s1],
                line: rows[0].line as usize,
            });
        }
        Self::finish(path, pairs)
    }

    fn finish(path: &Path, pairs: Vec<PairItem>) -> Result<Self, EvalError> {
        if pairs.is_empty() {
            return Err(EvalError::dataset(path, "no pairs"));
        }
        // A pair no model can tell apart would count as a miss whatever the model.
        let same_file = |[a, b]: &[PathBuf; 2]| a == b || std::fs::canonicalize(a).ok().is_some_and(|a| std::fs::canonicalize(b).ok() == Some(a));
        for pair in &pairs {
            let why = if same_file(&pair.images) {
                "its two images are the same file"
            } else if pair.statements[0] == pair.statements[1] {
                "its two statements are the same"
            } else {
                continue;
            };
            return Err(EvalError::dataset(path, format!("the pair on line {}: {why}, so no model can tell them apart", pair.line)));
        }
        Ok(Self {
            source: path.to_path_buf(),
            pairs,
        })
    }

    /// Images in order `pair 0 image 1, pair 0 image 2, pair 1 image 1, ...`.
    pub fn image_paths(&self) -> Vec<PathBuf> {
        self.pairs
            .iter()
            .flat_map(|p| p.images.iter().cloned())
            .collect()
    }

    /// Statements in the same order.
    pub fn statements(&self) -> Vec<String> {
        self.pairs
            .iter()
            .flat_map(|p| p.statements.iter().cloned())
            .collect()
    }

    /// The category of each pair.
    pub fn categories(&self) -> Vec<String> {
        self.pairs.iter().map(|p| p.category.clone()).collect()
    }
}

/// `path`, named on `line` of `csv`, if it is a file; else an error on that line saying what
/// it is (missing, a folder, a device).
pub(super) fn image_at(csv: &CsvTable, line: u64, path: PathBuf) -> Result<PathBuf, EvalError> {
    let what = match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => return Ok(path),
        Ok(m) if m.is_dir() => "is a folder, not an image file",
        Ok(_) => "is not a regular file",
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist",
        Err(_) => "cannot be read",
    };
    Err(csv.error(line, format!("image {} {what}", path.display())).into())
}
