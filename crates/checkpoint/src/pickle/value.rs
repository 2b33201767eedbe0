//! The values an unpickled object is made of.

use super::Global;
use crate::dtype::SourceDType;
use crate::error::{bail, FormatError};
use crate::npy::{checked_numel, NpyArray, NpyData};

/// An unpickled Python object.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer that fits in `i64`.
    Int(i64),
    /// An integer outside `i64`, as the little-endian two's-complement bytes
    /// of `LONG1`/`LONG4` (e.g. PyTorch's legacy magic number).
    BigInt(Vec<u8>),
    /// A float.
    Float(f64),
    /// A Python 3 `str` (Python 2 `unicode`).
    Str(String),
    /// `bytes`, `bytearray` or a Python 2 `str`.
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<Value>),
    /// A tuple (also `torch.Size`).
    Tuple(Vec<Value>),
    /// A dict or `collections.OrderedDict`, entries in insertion order (as
    /// pickled: a malformed pickle may repeat a key; [`Value::get`] then
    /// finds the first).
    Dict(Vec<(Value, Value)>),
    /// A PyTorch storage, given by its persistent id.
    Storage(StorageRef),
    /// A PyTorch tensor or parameter: a view of a storage.
    Tensor(TensorRef),
    /// A numpy array.
    NdArray(NdArray),
    /// A numpy dtype.
    Dtype(NumpyDtype),
    /// An allow-listed class or function that was named but not called, such
    /// as a storage type.
    Global(Global),
}

/// A PyTorch storage, from a persistent id
/// `('storage', storage_type, key, location, numel)` (zip format) or
/// `('storage', storage_type, root_key, location, numel, view_metadata)`
/// (legacy format, `view_metadata = None | (view_key, offset, view_numel)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRef {
    /// Element type, from the storage type (`torch.FloatStorage` -> float32;
    /// `torch.UntypedStorage` -> uint8).
    pub dtype: SourceDType,
    /// The storage's key: its record name in a zip archive, or its root key in
    /// a legacy file.
    pub key: String,
    /// Where it was saved from, e.g. `"cpu"` or `"cuda:0"` (informational: all
    /// data is loaded on the CPU).
    pub location: String,
    /// Number of elements of the (root) storage.
    pub numel: u64,
    /// Legacy format only: this storage is a slice of the root storage.
    pub view: Option<StorageView>,
}

/// A slice of a legacy root storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageView {
    /// The view's own key.
    pub key: String,
    /// First element of the view in the root storage.
    pub offset: u64,
    /// Number of elements of the view.
    pub numel: u64,
}

/// A tensor as pickled by `torch._utils._rebuild_tensor(_v2)`: element
/// `(i0, i1, ...)` is storage element `offset + sum(ik * stride[k])`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRef {
    /// The storage holding the elements.
    pub storage: StorageRef,
    /// Offset of the first element, in elements.
    pub offset: u64,
    /// The shape.
    pub size: Vec<usize>,
    /// Strides in elements, one per dimension.
    pub stride: Vec<usize>,
}

/// A numpy dtype as pickled: `numpy.dtype(kind, align, copy)` and then a
/// `BUILD` whose state carries the byte order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumpyDtype {
    /// Kind and size, e.g. `"f8"` or `"u1"`.
    pub kind: String,
    /// `'<'`, `'>'`, `'|'` (not applicable) or `'='` (native, read as
    /// little-endian).
    pub byteorder: char,
}

impl NumpyDtype {
    /// The numpy type string, e.g. `"<f8"` or `"|u1"` (native order is taken
    /// as little-endian).
    pub fn descr(&self) -> String {
        let order = match self.byteorder {
            '=' => '<',
            other => other,
        };
        format!("{order}{}", self.kind)
    }
}

/// A numpy array as pickled by `numpy.core.multiarray._reconstruct` and
/// `ndarray.__setstate__`: raw bytes plus layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NdArray {
    /// The numpy type string, e.g. `"|u1"` or `"<i8"`.
    pub descr: String,
    /// The dimensions.
    pub shape: Vec<usize>,
    /// Whether the bytes are in Fortran (column-major) order.
    pub fortran_order: bool,
    /// The raw element bytes.
    pub data: Vec<u8>,
}

impl NdArray {
    /// Decodes the elements (same dtypes as [`crate::npy`]); Fortran order
    /// and a byte count that does not match the shape are errors.
    pub fn to_npy(&self) -> Result<NpyArray, FormatError> {
        if self.fortran_order {
            return bail("pickled numpy array is in Fortran order; only C order is supported");
        }
        let data = NpyData::from_le_bytes(&self.descr, &self.data)?;
        if data.len() != checked_numel(&self.shape)? {
            return bail(format!(
                "pickled numpy array of shape {:?} has {} elements of '{}'",
                self.shape,
                data.len(),
                self.descr
            ));
        }
        Ok(NpyArray {
            shape: self.shape.clone(),
            data,
        })
    }

    /// The elements of a `uint8` array.
    pub fn to_u8(&self) -> Result<Vec<u8>, FormatError> {
        match self.to_npy()?.data {
            NpyData::U8(v) => Ok(v),
            other => bail(format!("expected a uint8 array, found '{}'", other.descr())),
        }
    }

    /// The elements of an integer array (`uint8`, `int32`, `int64`) as `i64`.
    pub fn to_i64(&self) -> Result<Vec<i64>, FormatError> {
        self.to_npy()?.into_i64()
    }
}

impl Value {
    /// A short name of the variant for messages, e.g. `"dict"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::None => "None",
            Self::Bool(_) => "bool",
            Self::Int(_) | Self::BigInt(_) => "int",
            Self::Float(_) => "float",
            Self::Str(_) => "str",
            Self::Bytes(_) => "bytes",
            Self::List(_) => "list",
            Self::Tuple(_) => "tuple",
            Self::Dict(_) => "dict",
            Self::Storage(_) => "storage",
            Self::Tensor(_) => "tensor",
            Self::NdArray(_) => "numpy array",
            Self::Dtype(_) => "numpy dtype",
            Self::Global(_) => "class or function",
        }
    }

    /// The string of a `Str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes of a `Str` (UTF-8) or `Bytes`: useful for keys that are
    /// `str` in Python 3 pickles and `bytes` in Python 2 ones.
    pub fn as_text_bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Str(s) => Some(s.as_bytes()),
            Self::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The value of an `Int` (or of a `Bool`, as 0/1).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            Self::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// The value of a `Float` or an `Int` (rounded to `f64`).
    pub fn as_float(&self) -> Option<f64> {
        match self {
            Self::Float(f) => Some(*f),
            Self::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The elements of a `List` or `Tuple`.
    pub fn as_items(&self) -> Option<&[Value]> {
        match self {
            Self::List(v) | Self::Tuple(v) => Some(v),
            _ => None,
        }
    }

    /// The entries of a `Dict`.
    pub fn as_dict(&self) -> Option<&[(Value, Value)]> {
        match self {
            Self::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// Looks up `key` in a `Dict` whose keys are `str` or `bytes`
    /// (`get("labels")` finds both `'labels'` and `b'labels'`).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_dict()?
            .iter()
            .find(|(k, _)| k.as_text_bytes() == Some(key.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The integers of a `List`/`Tuple` of `Int`s or of an integer numpy
    /// array, e.g. CIFAR labels.
    pub fn to_i64_vec(&self) -> Result<Vec<i64>, FormatError> {
        match self {
            Self::NdArray(a) => a.to_i64(),
            Self::List(items) | Self::Tuple(items) => items
                .iter()
                .map(|v| {
                    v.as_int().ok_or_else(|| {
                        FormatError::new(format!("expected integers, found a {}", v.kind()))
                    })
                })
                .collect(),
            other => bail(format!(
                "expected a list of integers, found a {}",
                other.kind()
            )),
        }
    }

    /// Approximate heap and inline size in bytes, used to bound copies.
    pub(crate) fn cost(&self) -> usize {
        let inline = std::mem::size_of::<Value>();
        inline
            + match self {
                Self::BigInt(b) | Self::Bytes(b) => b.len(),
                Self::Str(s) => s.len(),
                Self::List(v) | Self::Tuple(v) => v.iter().map(Value::cost).sum(),
                Self::Dict(d) => d.iter().map(|(k, v)| k.cost() + v.cost()).sum(),
                Self::Storage(s) => s.key.len() + s.location.len() + 64,
                Self::Tensor(t) => t.storage.key.len() + 16 * t.size.len() + 64,
                Self::NdArray(a) => a.data.len() + 8 * a.shape.len() + a.descr.len(),
                Self::Dtype(d) => d.kind.len(),
                _ => 0,
            }
    }
}
