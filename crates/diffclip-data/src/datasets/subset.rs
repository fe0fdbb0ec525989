//! Label subsets: datasets whose classes are a subset of a larger label space
//! (ImageNet-A/-R/-O use 200 of ImageNet's 1000 classes).

use std::path::Path;

use super::error::DataError;
use crate::metadata::ZeroShotMetadata;

/// The classes of a subset as indices into a full label space. Local class `i` is full class
/// `indices()[i]`.
///
/// ```
/// use diffclip_data::datasets::LabelSubset;
/// let s = LabelSubset::new(vec![6, 11, 13], 1000).unwrap();
/// assert_eq!(s.to_full(1), Some(11));
/// assert_eq!(s.to_local(13), Some(2));
/// assert_eq!(s.to_local(7), None);
/// let names: Vec<String> = (0..1000).map(|i| format!("class {i}")).collect();
/// assert_eq!(s.select(&names).unwrap(), ["class 6", "class 11", "class 13"]);
/// assert_eq!(s.restrict(&[0.0; 1000]).unwrap().len(), 3);
/// assert!(s.restrict(&[0.0; 14]).is_err(), "a row of another label space");
/// assert!(LabelSubset::new(vec![1000], 1000).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSubset {
    indices: Vec<usize>,
    full_size: usize,
    inverse: Vec<Option<usize>>,
}

impl LabelSubset {
    /// A subset from its full-space indices; they must be distinct and `< full_size`.
    pub fn new(indices: Vec<usize>, full_size: usize) -> Result<Self, DataError> {
        let mut inverse = vec![None; full_size];
        for (local, &full) in indices.iter().enumerate() {
            let slot = inverse.get_mut(full).ok_or_else(|| {
                DataError::Config(format!(
                    "subset index {full} out of range for {full_size} classes"
                ))
            })?;
            if slot.is_some() {
                return Err(DataError::Config(format!(
                    "subset index {full} appears twice"
                )));
            }
            *slot = Some(local);
        }
        Ok(Self {
            indices,
            full_size,
            inverse,
        })
    }

    /// The subset whose classes are `ids` (e.g. folder names), found in the full list `full_ids`
    /// (e.g. ImageNet's 1000 WordNet ids).
    ///
    /// ```
    /// use diffclip_data::datasets::LabelSubset;
    /// let full = ["n01", "n02", "n03"];
    /// assert_eq!(LabelSubset::from_ids(&["n03", "n01"], &full).unwrap().indices(), [2, 0]);
    /// assert!(LabelSubset::from_ids(&["n09"], &full).unwrap_err().to_string().contains("n09"));
    /// ```
    pub fn from_ids<A: AsRef<str>, B: AsRef<str>>(
        ids: &[A],
        full_ids: &[B],
    ) -> Result<Self, DataError> {
        let indices = ids
            .iter()
            .map(|id| {
                let id = id.as_ref();
                full_ids
                    .iter()
                    .position(|f| f.as_ref() == id)
                    .ok_or_else(|| {
                        DataError::Config(format!("class {id:?} is not in the full label space"))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(indices, full_ids.len())
    }

    /// A subset listed in `zeroshot_metadata.json`'s `imagenet1k` object: `name` is
    /// `imagenet_a`, `imagenet_r` or `imagenet_o` (`-` or the full key `imagenet_a_class_indices`
    /// also work); the full space is ImageNet's `classnames`.
    ///
    /// ```no_run
    /// use diffclip_data::datasets::LabelSubset;
    /// let a = LabelSubset::from_metadata_file("../shared/data/zeroshot_metadata.json", "imagenet-a")?;
    /// assert_eq!((a.len(), a.full_size()), (200, 1000));
    /// # Ok::<(), diffclip_data::datasets::DataError>(())
    /// ```
    pub fn from_metadata_file(path: impl AsRef<Path>, name: &str) -> Result<Self, DataError> {
        let path = path.as_ref();
        let meta = ZeroShotMetadata::from_file(path)?;
        Self::from_parsed_metadata(&meta, name).map_err(|e| DataError::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// [`from_metadata_file`](Self::from_metadata_file) on JSON already read (parsed as a
    /// [`ZeroShotMetadata`]).
    ///
    /// ```
    /// use diffclip_data::datasets::LabelSubset;
    /// let meta = serde_json::json!({"imagenet1k": {"classnames": ["a", "b", "c"], "imagenet_r_class_indices": [0, 2]}});
    /// assert_eq!(LabelSubset::from_metadata(&meta, "imagenet_r").unwrap().indices(), [0, 2]);
    /// ```
    pub fn from_metadata(json: &serde_json::Value, name: &str) -> Result<Self, DataError> {
        use serde::Deserialize;
        let meta = ZeroShotMetadata::deserialize(json)
            .map_err(|e| DataError::Config(format!("metadata: {e}")))?;
        Self::from_parsed_metadata(&meta, name)
    }

    /// [`from_metadata_file`](Self::from_metadata_file) on parsed metadata. The full space is
    /// ImageNet's `classnames` (1000 classes when the file lists none).
    pub fn from_parsed_metadata(meta: &ZeroShotMetadata, name: &str) -> Result<Self, DataError> {
        let inet = &meta.imagenet1k;
        let indices = inet.subset(name).map_err(DataError::Config)?.to_vec();
        let full_size = match inet.classnames.len() {
            0 => 1000,
            n => n,
        };
        Self::new(indices, full_size)
    }

    /// Number of classes in the subset.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the subset is empty.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Number of classes of the full label space.
    pub fn full_size(&self) -> usize {
        self.full_size
    }

    /// Full-space index of each local class.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// The full-space index of local class `local`.
    pub fn to_full(&self, local: usize) -> Option<usize> {
        self.indices.get(local).copied()
    }

    /// The local class of full-space class `full`, if it is in the subset.
    pub fn to_local(&self, full: usize) -> Option<usize> {
        self.inverse.get(full).copied().flatten()
    }

    /// The subset's entries of a full-space list (class names, classifier rows, ...). A list
    /// of another length than the full space is an error: a shorter one would shift every
    /// later entry onto the wrong class.
    pub fn select<T: Clone>(&self, full: &[T]) -> Result<Vec<T>, DataError> {
        if full.len() != self.full_size {
            return Err(DataError::Config(format!(
                "a list of {} entries for a label space of {}",
                full.len(),
                self.full_size
            )));
        }
        Ok(self.indices.iter().map(|&i| full[i].clone()).collect())
    }

    /// One full-space score row restricted to the subset (CLIP_benchmark's ImageNet-A/-R
    /// evaluation: argmax over the subset's logits only).
    pub fn restrict(&self, full_scores: &[f32]) -> Result<Vec<f32>, DataError> {
        self.select(full_scores)
    }
}
