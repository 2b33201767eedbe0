//! The loaded result: named `f32` tensors in file order, plus metadata.

use crate::dtype::SourceDType;
use crate::error::{bail, FormatError};
use std::collections::{BTreeMap, HashMap};

/// A dense tensor in C (row-major) order, widened (or rounded) to `f32`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// The dimensions; empty for a scalar.
    pub shape: Vec<usize>,
    /// The `shape.iter().product()` elements.
    pub values: Vec<f32>,
    /// The element type in the file. Integer tensors (e.g. BatchNorm's
    /// `num_batches_tracked`, int64) are kept, converted to `f32`; use
    /// [`SourceDType::is_float`] to skip them.
    pub source_dtype: SourceDType,
}

impl Tensor {
    /// A float32 tensor; errors if `values` does not match `shape`.
    pub fn new(shape: Vec<usize>, values: Vec<f32>) -> Result<Self, FormatError> {
        let numel = crate::npy::checked_numel(&shape)?;
        if numel != values.len() {
            return bail(format!(
                "shape {shape:?} holds {numel} elements but {} values were given",
                values.len()
            ));
        }
        Ok(Self {
            shape,
            values,
            source_dtype: SourceDType::F32,
        })
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.values.len()
    }
}

/// Named tensors in file order, with lookup by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateDict {
    entries: Vec<(String, Tensor)>,
    index: HashMap<String, usize>,
}

impl StateDict {
    /// An empty state dict.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.index.get(name).map(|&i| &self.entries[i].1)
    }

    /// Adds a tensor at the end, or replaces the tensor of that name in
    /// place (returning the old one).
    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor) -> Option<Tensor> {
        let name = name.into();
        match self.index.get(&name) {
            Some(&i) => Some(std::mem::replace(&mut self.entries[i].1, tensor)),
            None => {
                self.index.insert(name.clone(), self.entries.len());
                self.entries.push((name, tensor));
                None
            }
        }
    }

    /// `(name, tensor)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.entries.iter().map(|(n, t)| (n.as_str(), t))
    }

    /// The names in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| n.as_str())
    }

    /// The number of tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes `prefix` from every name if every name starts with it (as
    /// `module.` does in checkpoints saved from `nn.DataParallel`).
    pub(crate) fn strip_common_prefix(self, prefix: &str) -> Self {
        if self.is_empty() || !self.names().all(|n| n.starts_with(prefix)) {
            return self;
        }
        self.entries
            .into_iter()
            .map(|(n, t)| (n[prefix.len()..].to_string(), t))
            .collect()
    }
}

impl FromIterator<(String, Tensor)> for StateDict {
    /// Collects pairs in order; a repeated name replaces the earlier tensor.
    fn from_iter<I: IntoIterator<Item = (String, Tensor)>>(iter: I) -> Self {
        let mut dict = Self::new();
        for (name, tensor) in iter {
            dict.insert(name, tensor);
        }
        dict
    }
}

impl IntoIterator for StateDict {
    type Item = (String, Tensor);
    type IntoIter = std::vec::IntoIter<(String, Tensor)>;

    /// Consumes the dict, yielding `(name, tensor)` pairs in order.
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

/// The container format of a loaded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A `.safetensors` file.
    Safetensors,
    /// A PyTorch zip archive (`torch.save`, torch >= 1.6).
    TorchZip,
    /// A PyTorch legacy file (a sequence of pickles, torch < 1.6).
    TorchLegacy,
}

/// A scalar entry stored alongside the weights (e.g. `best_prec1`, `epoch`,
/// or safetensors `__metadata__` strings).
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
}

impl Scalar {
    /// The value as `f64` (`Int` rounded, `Bool` as 0/1); `None` for `Str`.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Bool(b) => Some(f64::from(u8::from(*b))),
            Self::Int(i) => Some(*i as f64),
            Self::Float(f) => Some(*f),
            Self::Str(_) => None,
        }
    }
}

/// What [`crate::load_state_dict`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedCheckpoint {
    /// The tensors, with any common `module.` prefix removed.
    pub state: StateDict,
    /// The file's format.
    pub format: Format,
    /// Scalar entries found next to the state dict (PyTorch: the top-level
    /// dict's number, bool and string entries; safetensors: `__metadata__`).
    pub metadata: BTreeMap<String, Scalar>,
}
