//! PyTorch checkpoints written by `torch.save`.
//!
//! # Zip format (torch >= 1.6)
//!
//! A zip archive whose entries share one top folder `<archive>/`:
//! `<archive>/data.pkl` is the pickled object, `<archive>/data/<key>` holds the
//! raw little-endian bytes of the storage with persistent id
//! `('storage', storage_type, key, location, numel)`, and
//! `<archive>/byteorder` (absent in old files) is `little` or `big`. Only
//! little-endian archives are supported; TorchScript archives (with
//! `<archive>/constants.pkl`) are refused.
//!
//! # Legacy format (torch < 1.6)
//!
//! A sequence of pickles: the magic number `0x1950a86a20f9469cfc6c`, the
//! protocol version `1001`, a system-information dict (must say
//! `little_endian: True`), the object (persistent ids
//! `('storage', storage_type, root_key, location, numel, view_metadata)`), and
//! a list of storage keys. Then, for each key in that order, the element count
//! as a little-endian `i64` followed by the storage's raw little-endian bytes.
//!
//! # Tensors
//!
//! Tensors are views of storages (`offset`, `size`, `stride` in elements);
//! they may be non-contiguous and share storages. Every view is checked to lie
//! inside its storage. Devices (`cuda:0`, ...) are ignored: data is read on
//! the CPU. To bound memory, all tensors read from one file may hold at most
//! `4 * file size + 2^20` elements in total (this only matters for tensors
//! expanded with zero strides).

mod legacy;
mod zip;

use crate::error::{bail, FormatError};
use crate::npy::checked_numel;
use crate::pickle::{StorageRef, TensorRef, Value};
use crate::state::{Format, Scalar, StateDict, Tensor};
use crate::SourceDType;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

/// Keys under which a state dict may be nested in a checkpoint dict.
const NESTED_KEYS: [&str; 3] = ["state_dict", "model", "net"];

/// Raw bytes of each root storage, by key.
type Storages<'a> = HashMap<String, Cow<'a, [u8]>>;

/// The entries of a state dict and the scalar entries around it.
type Selected = (Vec<(Value, Value)>, BTreeMap<String, Scalar>);

/// A parsed PyTorch checkpoint: the unpickled object and its storages.
#[derive(Debug)]
pub struct TorchFile<'a> {
    /// The object passed to `torch.save`.
    pub object: Value,
    /// [`Format::TorchZip`] or [`Format::TorchLegacy`].
    pub format: Format,
    storages: Storages<'a>,
    /// Elements that tensors may still take.
    element_budget: usize,
}

/// Whether `bytes` starts like a zip archive.
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")
}

impl<'a> TorchFile<'a> {
    /// Parses a zip or legacy checkpoint (told apart by the first bytes) and
    /// checks that every storage the object refers to is present and large
    /// enough.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FormatError> {
        let (format, (object, storages)) = if is_zip(bytes) {
            (Format::TorchZip, zip::read(bytes)?)
        } else {
            (Format::TorchLegacy, legacy::read(bytes)?)
        };
        Ok(Self {
            object,
            format,
            storages,
            element_budget: bytes.len().saturating_mul(4).saturating_add(1 << 20),
        })
    }

    /// Reads a tensor's elements (honouring offset and strides) as `f32`.
    pub fn tensor(&mut self, tensor: &TensorRef) -> Result<Tensor, FormatError> {
        let numel = checked_numel(&tensor.size)?;
        self.element_budget = self.element_budget.checked_sub(numel).ok_or_else(|| {
            FormatError::new("tensors hold more elements than the file size allows")
        })?;
        let storage = &tensor.storage;
        let elements = self.storage_elements(storage)?;
        let values = match last_index(tensor)? {
            None => Vec::new(),
            Some(last) => {
                let window = byte_range(storage.dtype, tensor.offset, last - tensor.offset + 1)
                    .and_then(|r| elements.get(r))
                    .ok_or_else(|| {
                        FormatError::new(format!(
                            "tensor of size {:?} at offset {} does not fit in storage '{}'",
                            tensor.size, tensor.offset, storage.key
                        ))
                    })?;
                gather(
                    &storage.dtype.decode_f32(window),
                    &tensor.size,
                    &tensor.stride,
                )?
            }
        };
        Ok(Tensor {
            shape: tensor.size.clone(),
            values,
            source_dtype: storage.dtype,
        })
    }

    /// The bytes of a storage (a slice of its root for legacy views).
    fn storage_elements(&self, storage: &StorageRef) -> Result<&[u8], FormatError> {
        let root = self
            .storages
            .get(&storage.key)
            .ok_or_else(|| FormatError::new(format!("storage '{}' is missing", storage.key)))?;
        let Some(view) = &storage.view else {
            return Ok(root);
        };
        byte_range(storage.dtype, view.offset, view.numel)
            .and_then(|r| root.get(r))
            .ok_or_else(|| {
                FormatError::new(format!(
                    "storage view '{}' exceeds its root storage '{}'",
                    view.key, storage.key
                ))
            })
    }

    /// Selects the state dict (see [`crate::load_state_dict`]) and reads all
    /// its tensors. Non-tensor entries of the state dict are skipped; scalar
    /// entries of an enclosing dict are returned as metadata.
    pub fn into_state_dict(mut self) -> Result<(StateDict, BTreeMap<String, Scalar>), FormatError> {
        let object = std::mem::replace(&mut self.object, Value::None);
        let (entries, metadata) = select_state_dict(object)?;
        let mut dict = StateDict::new();
        for (key, value) in entries {
            if let Value::Tensor(t) = value {
                let name = key_text(&key)?;
                let tensor = self
                    .tensor(&t)
                    .map_err(|e| e.context(format!("tensor '{name}'")))?;
                dict.insert(name, tensor);
            }
        }
        Ok((dict.strip_common_prefix("module."), metadata))
    }
}

/// Byte range of `count` elements of `dtype` from element `start`.
fn byte_range(dtype: SourceDType, start: u64, count: u64) -> Option<std::ops::Range<usize>> {
    let size = dtype.size() as u64;
    let start = usize::try_from(start.checked_mul(size)?).ok()?;
    let len = usize::try_from(count.checked_mul(size)?).ok()?;
    Some(start..start.checked_add(len)?)
}

/// The storage index of a tensor's last element, or `None` if it is empty.
fn last_index(t: &TensorRef) -> Result<Option<u64>, FormatError> {
    if t.size.contains(&0) {
        return Ok(None);
    }
    t.size
        .iter()
        .zip(&t.stride)
        .try_fold(t.offset, |acc, (&n, &s)| {
            (n as u64 - 1)
                .checked_mul(s as u64)
                .and_then(|d| acc.checked_add(d))
        })
        .map(Some)
        .ok_or_else(|| FormatError::new("tensor strides overflow"))
}

/// Reads a strided view of `window` (whose element 0 is the view's first
/// element) in C order.
fn gather(window: &[f32], size: &[usize], stride: &[usize]) -> Result<Vec<f32>, FormatError> {
    let numel = checked_numel(size)?;
    if is_contiguous(size, stride) {
        return window
            .get(..numel)
            .map(<[f32]>::to_vec)
            .ok_or_else(|| FormatError::new("tensor view out of range"));
    }
    let mut out = Vec::with_capacity(numel);
    let mut index = vec![0usize; size.len()];
    let mut pos = 0usize;
    for _ in 0..numel {
        out.push(
            *window
                .get(pos)
                .ok_or_else(|| FormatError::new("tensor view out of range"))?,
        );
        for d in (0..size.len()).rev() {
            index[d] += 1;
            pos += stride[d];
            if index[d] < size[d] {
                break;
            }
            pos -= stride[d] * size[d];
            index[d] = 0;
        }
    }
    Ok(out)
}

/// Whether `stride` is the C-order stride of `size` (ignoring dims of size 1).
fn is_contiguous(size: &[usize], stride: &[usize]) -> bool {
    let mut expected = 1usize;
    for (&n, &s) in size.iter().zip(stride).rev() {
        if n != 1 && s != expected {
            return false;
        }
        expected = expected.saturating_mul(n);
    }
    true
}

/// Finds the dict of tensors: the object itself, or its entry `state_dict`,
/// `model` or `net`. Returns its entries and the scalar entries around it.
fn select_state_dict(object: Value) -> Result<Selected, FormatError> {
    let Value::Dict(mut entries) = object else {
        return bail(format!(
            "the file holds a {}, not a dict of tensors; expected a state dict \
             (torch.save(model.state_dict(), path))",
            object.kind()
        ));
    };
    if has_tensor(&entries) {
        return Ok((entries, BTreeMap::new()));
    }
    let metadata = scalars(&entries);
    for key in NESTED_KEYS {
        let found = entries.iter().position(|(k, v)| {
            k.as_text_bytes() == Some(key.as_bytes()) && v.as_dict().is_some_and(has_tensor)
        });
        if let Some(Value::Dict(inner)) = found.map(|i| entries.swap_remove(i).1) {
            return Ok((inner, metadata));
        }
    }
    let keys: Vec<String> = entries
        .iter()
        .take(10)
        .map(|(k, _)| describe_key(k))
        .collect();
    bail(format!(
        "no state dict found: the top-level dict has keys [{}]; expected tensors at the top \
         level or under 'state_dict', 'model' or 'net'",
        keys.join(", ")
    ))
}

fn has_tensor(entries: &[(Value, Value)]) -> bool {
    entries.iter().any(|(_, v)| matches!(v, Value::Tensor(_)))
}

/// The number, bool and string entries of a dict with text keys.
fn scalars(entries: &[(Value, Value)]) -> BTreeMap<String, Scalar> {
    entries
        .iter()
        .filter_map(|(k, v)| {
            let scalar = match v {
                Value::Bool(b) => Scalar::Bool(*b),
                Value::Int(i) => Scalar::Int(*i),
                Value::Float(f) => Scalar::Float(*f),
                Value::Str(s) => Scalar::Str(s.clone()),
                _ => return None,
            };
            Some((key_text(k).ok()?, scalar))
        })
        .collect()
}

fn key_text(key: &Value) -> Result<String, FormatError> {
    key.as_text_bytes()
        .and_then(|b| std::str::from_utf8(b).ok())
        .map(str::to_string)
        .ok_or_else(|| {
            FormatError::new(format!("state dict key is a {}, not a string", key.kind()))
        })
}

fn describe_key(key: &Value) -> String {
    key_text(key).map_or_else(|_| format!("<{}>", key.kind()), |k| format!("'{k}'"))
}

/// Every storage the object refers to: root key -> (dtype, numel).
fn storage_refs(object: &Value) -> Result<HashMap<String, (SourceDType, u64)>, FormatError> {
    let mut refs = HashMap::new();
    collect_storages(object, &mut refs)?;
    Ok(refs)
}

fn collect_storages(
    value: &Value,
    refs: &mut HashMap<String, (SourceDType, u64)>,
) -> Result<(), FormatError> {
    let storage = match value {
        Value::Storage(s) => s,
        Value::Tensor(t) => &t.storage,
        Value::List(items) | Value::Tuple(items) => {
            return items.iter().try_for_each(|v| collect_storages(v, refs))
        }
        Value::Dict(entries) => {
            return entries
                .iter()
                .try_for_each(|(k, v)| collect_storages(k, refs).and(collect_storages(v, refs)))
        }
        _ => return Ok(()),
    };
    let entry = refs
        .entry(storage.key.clone())
        .or_insert((storage.dtype, storage.numel));
    if entry.0 != storage.dtype {
        return bail(format!(
            "storage '{}' is used as both {} and {}",
            storage.key, entry.0, storage.dtype
        ));
    }
    Ok(())
}
