//! `.safetensors` files: reading (any float or integer dtype, to `f32`) and
//! atomic writing (float32 or float16).
//!
//! # Format
//!
//! An unsigned little-endian `u64` header length `n`, `n` bytes of JSON
//! mapping each tensor name to `{"dtype", "shape", "data_offsets"}` (plus an
//! optional `"__metadata__"` string map), then the packed little-endian
//! tensor data. Validation is done by the `safetensors` crate.
//!
//! Reading widens `F16`, `BF16` and `F32` exactly and rounds `F64` to `f32`.
//! Integer and bool tensors (`I64`, `I32`, `I16`, `I8`, `U8`, `BOOL`; e.g.
//! `num_batches_tracked`) are kept, converted to `f32`, with their
//! [`SourceDType`] recorded. Other dtypes (`U16`-`U64`, 8-bit and 4/6-bit
//! floats, complex) are an error. Tensors are returned in data-offset order.

use crate::dtype::SourceDType;
use crate::error::{bail, CheckpointError, FormatError};
use crate::fsutil;
use crate::state::{Scalar, StateDict, Tensor};
use ::safetensors::tensor::Metadata;
use ::safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::path::Path;

/// Element type written by [`save_safetensors`] for floating-point tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveDType {
    /// float32 (exact).
    F32,
    /// float16 (rounded to nearest; out-of-range values become infinite).
    F16,
}

/// Whether `bytes` starts like a safetensors file: a header length that fits
/// in the file, followed by `{`.
pub fn looks_like_safetensors(bytes: &[u8]) -> bool {
    match bytes.split_first_chunk::<8>() {
        Some((len, rest)) => {
            u64::from_le_bytes(*len) <= rest.len() as u64 && rest.first() == Some(&b'{')
        }
        None => false,
    }
}

/// Parses a safetensors file into tensors and its `__metadata__` entries
/// (as [`Scalar::Str`]).
pub fn parse_safetensors(
    bytes: &[u8],
) -> Result<(StateDict, BTreeMap<String, Scalar>), FormatError> {
    let (header_len, metadata) = SafeTensors::read_metadata(bytes)
        .map_err(|e| FormatError::new(format!("invalid safetensors header ({e})")))?;
    let data = bytes.get(8 + header_len..).unwrap_or_default();
    let state = metadata
        .offset_keys()
        .into_iter()
        .map(|name| {
            let tensor = read_tensor(&metadata, &name, data)
                .map_err(|e| e.context(format!("tensor '{name}'")))?;
            Ok((name, tensor))
        })
        .collect::<Result<StateDict, FormatError>>()?;
    let extra = metadata
        .metadata()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), Scalar::Str(v.clone())))
        .collect();
    Ok((state, extra))
}

fn read_tensor(metadata: &Metadata, name: &str, data: &[u8]) -> Result<Tensor, FormatError> {
    let info = metadata
        .info(name)
        .ok_or_else(|| FormatError::new("missing from the header"))?;
    let dtype = source_dtype(info.dtype)?;
    let (start, end) = info.data_offsets;
    let bytes = data
        .get(start..end)
        .ok_or_else(|| FormatError::new("data offsets out of range"))?;
    Ok(Tensor {
        shape: info.shape.clone(),
        values: dtype.decode_f32(bytes),
        source_dtype: dtype,
    })
}

fn source_dtype(dtype: Dtype) -> Result<SourceDType, FormatError> {
    Ok(match dtype {
        Dtype::F32 => SourceDType::F32,
        Dtype::F64 => SourceDType::F64,
        Dtype::F16 => SourceDType::F16,
        Dtype::BF16 => SourceDType::BF16,
        Dtype::I64 => SourceDType::I64,
        Dtype::I32 => SourceDType::I32,
        Dtype::I16 => SourceDType::I16,
        Dtype::I8 => SourceDType::I8,
        Dtype::U8 => SourceDType::U8,
        Dtype::BOOL => SourceDType::Bool,
        other => return bail(format!("unsupported dtype {other:?}")),
    })
}

/// One tensor encoded for writing.
struct Encoded {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl Encoded {
    /// The dtype's name in a safetensors header.
    fn dtype_name(&self) -> &'static str {
        match self.dtype {
            Dtype::F16 => "F16",
            Dtype::F32 => "F32",
            _ => "I64",
        }
    }
}

/// The safetensors byte layout: the header length (u64, little-endian), a
/// JSON header (`__metadata__`, then per tensor its dtype, shape and byte
/// range) padded with spaces to a multiple of 8, then the tensors' bytes in
/// the given order. The header's keys are sorted, so equal inputs give equal
/// files (the `safetensors` crate writes metadata in hash order).
fn serialize(encoded: &[(String, Encoded)], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        header.insert("__metadata__".into(), serde_json::json!(metadata));
    }
    let mut offset = 0;
    for (name, e) in encoded {
        let end = offset + e.data.len();
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": e.dtype_name(), "shape": e.shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut text = serde_json::Value::Object(header).to_string().into_bytes();
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut bytes = Vec::with_capacity(8 + text.len() + offset);
    bytes.extend_from_slice(&(text.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&text);
    for (_, e) in encoded {
        bytes.extend_from_slice(&e.data);
    }
    bytes
}

/// Encodes a tensor: floating-point sources as `dtype`, integer and bool
/// sources as `I64` (values rounded to the nearest integer).
fn encode(tensor: &Tensor, dtype: SaveDType) -> Encoded {
    let values = &tensor.values;
    let (dtype, data): (Dtype, Vec<u8>) = match (tensor.source_dtype.is_float(), dtype) {
        (false, _) => (
            Dtype::I64,
            values
                .iter()
                .flat_map(|v| (v.round() as i64).to_le_bytes())
                .collect(),
        ),
        (true, SaveDType::F32) => (
            Dtype::F32,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        (true, SaveDType::F16) => (
            Dtype::F16,
            values
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect(),
        ),
    };
    Encoded {
        dtype,
        shape: tensor.shape.clone(),
        data,
    }
}

/// Writes tensors to a safetensors file atomically (temporary file in the
/// same directory, then rename). Floating-point tensors are stored as
/// `dtype`; integer tensors (e.g. `num_batches_tracked`) as `I64`.
/// `metadata` goes to the `__metadata__` header entry. Names are kept as
/// given (e.g. torchvision state-dict names); the file orders tensors as the
/// `safetensors` crate does (by dtype, then name).
pub fn save_safetensors(
    path: &Path,
    tensors: &StateDict,
    dtype: SaveDType,
    metadata: &BTreeMap<String, String>,
) -> Result<(), CheckpointError> {
    let bad_input = |message: String| CheckpointError::BadInput {
        path: path.to_path_buf(),
        message,
    };
    let mut encoded = Vec::with_capacity(tensors.len());
    for (name, tensor) in tensors.iter() {
        if crate::npy::checked_numel(&tensor.shape).ok() != Some(tensor.values.len()) {
            return Err(bad_input(format!(
                "tensor '{name}' has shape {:?} but {} values",
                tensor.shape,
                tensor.values.len()
            )));
        }
        encoded.push((name.to_string(), encode(tensor, dtype)));
    }
    if tensors.iter().any(|(name, _)| name == "__metadata__") {
        return Err(bad_input("a tensor cannot be named __metadata__".into()));
    }
    let bytes = serialize(&encoded, metadata);
    fsutil::write_atomic(path, &bytes)
}
