//! `CaptionSet`: images with any number of captions, from `ROOT/captions.csv` (or a
//! Karpathy-split JSON).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use diffclip_data::datasets::CsvTable;

use crate::EvalError;

/// A retrieval set. `captions.csv` has a header with the columns `image` and `caption` (read by
/// [`CsvTable`]: RFC 4180 quoting, names matched ignoring case); each
/// row pairs an image (path relative to the CSV's folder) with one caption, so an image with
/// five captions has five rows. A row with an empty caption lists an image without captions
/// (it counts as a miss in image→text recall). Images keep the order of first appearance. A
/// `.json` file is read as a Karpathy-split JSON (Flickr30k, COCO): its `test` split, images
/// beside it.
///
/// ```
/// use diffclip_eval::dataset::CaptionSet;
/// let tmp = tempfile::tempdir().unwrap();
/// let dir = tmp.path();
/// std::fs::write(dir.join("a.png"), b"").unwrap();
/// std::fs::write(dir.join("captions.csv"), "image,caption\na.png,a dog\n./a.png,\"a dog, running\"\n").unwrap();
/// let set = CaptionSet::open(&dir.join("captions.csv")).unwrap();
/// assert_eq!((set.images.len(), set.captions.len()), (1, 2));
/// assert_eq!(set.text_to_image, [0, 0]);
/// std::fs::write(dir.join("val.tsv"), "image\tcaption\na.png\ta dog, running\n").unwrap();
/// assert_eq!(CaptionSet::open(&dir.join("val.tsv")).unwrap().captions, ["a dog, running"]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionSet {
    /// The CSV file.
    pub source: PathBuf,
    /// Image paths (resolved).
    pub images: Vec<PathBuf>,
    /// Every caption.
    pub captions: Vec<String>,
    /// Image index of every caption.
    pub text_to_image: Vec<usize>,
}

impl CaptionSet {
    /// Read a caption CSV (tab-separated when its name ends in `.tsv`; a `.json` file is read as
    /// a Karpathy split, its `test` split); `path` may also be the folder holding
    /// `captions.csv`. Errors name the file and line (missing column, missing image file, too
    /// few fields).
    pub fn open(path: &Path) -> Result<Self, EvalError> {
        let csv_path = if path.is_dir() {
            path.join("captions.csv")
        } else {
            path.to_path_buf()
        };
        if csv_path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
            return Self::open_karpathy(&csv_path);
        }
        // A caption file named `.tsv` is tab-separated (a comma would read each row as one field).
        let tab = csv_path.extension().is_some_and(|e| e.eq_ignore_ascii_case("tsv"));
        let csv = CsvTable::read(&csv_path, if tab { b'\t' } else { b',' })?;
        let root = csv_path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let (image_col, caption_col) = (csv.column("image")?, csv.column("caption")?);
        let mut set = CaptionSet {
            source: csv_path.clone(),
            images: vec![],
            captions: vec![],
            text_to_image: vec![],
        };
        // Keyed by the canonical path, so that `a.jpg`, `./a.jpg`, `x/../a.jpg`, an absolute
        // spelling or a link are one image: a gallery holding one image twice would make each
        // copy a wrong answer for the other's captions.
        let mut index: HashMap<PathBuf, usize> = HashMap::new();
        // Rows repeat an image by the same spelling (five captions each): resolved once.
        let mut by_name: HashMap<String, usize> = HashMap::new();
        for record in csv.records() {
            let name = csv.field(record, image_col)?.trim();
            let caption = csv.field(record, caption_col)?.trim();
            if name.is_empty() {
                return Err(csv.error(record.line, "empty image path").into());
            }
            let i = match by_name.get(name) {
                Some(&i) => i,
                None => {
                    let file = root.join(name);
                    let key = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
                    let i = match index.get(&key) {
                        Some(&i) => i,
                        None => {
                            set.images.push(super::pairs::image_at(&csv, record.line, file)?);
                            index.insert(key, set.images.len() - 1);
                            set.images.len() - 1
                        }
                    };
                    by_name.insert(name.to_string(), i);
                    i
                }
            };
            if !caption.is_empty() {
                set.captions.push(caption.to_string());
                set.text_to_image.push(i);
            }
        }
        if set.images.is_empty() || set.captions.is_empty() {
            return Err(EvalError::dataset(&csv_path, "no images or no captions"));
        }
        Ok(set)
    }

    /// A Karpathy-split JSON (`dataset_flickr30k.json`, `dataset_coco.json`): its `test` split,
    /// images at `[filepath/]filename` beside the JSON, every sentence a caption. An entry
    /// without captions or a file name, or whose image is missing, is an error naming it.
    fn open_karpathy(path: &Path) -> Result<Self, EvalError> {
        use diffclip_data::datasets::{BadSamplePolicy, ImageLoader, KarpathyConfig, KarpathyDataset, RetrievalDataset};
        // The loader is never used: only the paths and captions are taken.
        let loader = ImageLoader::new(diffclip_data::Pipeline::from_name("openai", 224)?).with_policy(BadSamplePolicy::Fail);
        let ds = KarpathyDataset::open(path, &KarpathyConfig::default(), loader)?;
        if let Some(missing) = ds.images().iter().find(|p| !p.is_file()) {
            return Err(EvalError::dataset(path, format!("image {} is not a file", missing.display())));
        }
        let set = CaptionSet { source: path.to_path_buf(), images: ds.images().to_vec(), captions: ds.captions().to_vec(), text_to_image: ds.caption_to_image().to_vec() };
        if set.images.is_empty() {
            return Err(EvalError::dataset(path, "no entries of the test split"));
        }
        Ok(set)
    }
}
