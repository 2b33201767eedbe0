//! The allow-list of globals, and what calling them (`REDUCE`, `NEWOBJ`) or
//! setting their state (`BUILD`) produces.

use super::value::{NdArray, NumpyDtype, StorageRef, StorageView, TensorRef, Value};
use crate::dtype::SourceDType;
use crate::error::{bail, FormatError};
use crate::npy::NpyData;

/// An allow-listed class or function (the only globals a pickle may name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    /// `collections.OrderedDict`: called with `()` or a list of pairs.
    OrderedDict,
    /// `torch._utils._rebuild_tensor(storage, offset, size, stride)`.
    RebuildTensor,
    /// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
    /// requires_grad, backward_hooks[, metadata])`.
    RebuildTensorV2,
    /// `torch._utils._rebuild_parameter(data, requires_grad, hooks)` and
    /// `_rebuild_parameter_with_state(..., state)`: yields `data`.
    RebuildParameter,
    /// `torch.FloatStorage`, `torch.HalfStorage`, ..., `torch.UntypedStorage`:
    /// only used inside persistent ids.
    StorageType(SourceDType),
    /// `torch.Size(tuple)`: yields the tuple.
    TorchSize,
    /// `numpy.core.multiarray._reconstruct` (also `numpy._core`).
    NumpyReconstruct,
    /// `numpy.ndarray`, the class passed to `_reconstruct`.
    NumpyNdarray,
    /// `numpy.dtype(kind, align, copy)`.
    NumpyDtype,
    /// `numpy.core.multiarray.scalar(dtype, bytes)`: yields an `Int` or `Float`.
    NumpyScalar,
    /// `_codecs.encode(text, 'latin1')`: how Python 3 pickles `bytes` at
    /// protocol 2; yields `Bytes`.
    CodecsEncode,
}

/// Looks up `module.name` in the allow-list.
pub(crate) fn resolve(module: &str, name: &str) -> Result<Global, FormatError> {
    if let ("torch" | "torch.storage", Some(dtype)) = (module, storage_dtype(name)) {
        return Ok(Global::StorageType(dtype));
    }
    let numpy_multiarray = matches!(module, "numpy.core.multiarray" | "numpy._core.multiarray");
    Ok(match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
            Global::RebuildParameter
        }
        ("torch", "Size") => Global::TorchSize,
        (_, "_reconstruct") if numpy_multiarray => Global::NumpyReconstruct,
        (_, "scalar") if numpy_multiarray => Global::NumpyScalar,
        ("numpy", "ndarray") => Global::NumpyNdarray,
        ("numpy", "dtype") => Global::NumpyDtype,
        ("_codecs", "encode") => Global::CodecsEncode,
        _ => {
            return bail(format!(
                "refusing to load global '{module}.{name}': only tensors, storages, numbers, \
                 strings and containers are allowed"
            ))
        }
    })
}

/// The element type of a `torch.<name>` storage class.
fn storage_dtype(name: &str) -> Option<SourceDType> {
    Some(match name {
        "FloatStorage" => SourceDType::F32,
        "DoubleStorage" => SourceDType::F64,
        "HalfStorage" => SourceDType::F16,
        "BFloat16Storage" => SourceDType::BF16,
        "LongStorage" => SourceDType::I64,
        "IntStorage" => SourceDType::I32,
        "ShortStorage" => SourceDType::I16,
        "CharStorage" => SourceDType::I8,
        "ByteStorage" | "UntypedStorage" => SourceDType::U8,
        "BoolStorage" => SourceDType::Bool,
        _ => return None,
    })
}

/// Calls an allow-listed global with positional arguments.
pub(crate) fn call(global: Global, args: Vec<Value>) -> Result<Value, FormatError> {
    match global {
        Global::OrderedDict => ordered_dict(args),
        Global::RebuildTensor | Global::RebuildTensorV2 => rebuild_tensor(args),
        Global::RebuildParameter => match args.into_iter().next() {
            Some(tensor @ Value::Tensor(_)) => Ok(tensor),
            _ => bail("_rebuild_parameter expects a tensor as its first argument"),
        },
        Global::TorchSize => match <[Value; 1]>::try_from(args) {
            Ok([tuple @ Value::Tuple(_)]) => Ok(tuple),
            _ => bail("torch.Size expects one tuple"),
        },
        Global::NumpyReconstruct => reconstruct(args),
        Global::NumpyDtype => numpy_dtype(args),
        Global::NumpyScalar => numpy_scalar(args),
        Global::CodecsEncode => codecs_encode(args),
        Global::StorageType(_) | Global::NumpyNdarray => {
            bail(format!("{global:?} cannot be called in a pickle"))
        }
    }
}

fn ordered_dict(args: Vec<Value>) -> Result<Value, FormatError> {
    let mut args = args.into_iter();
    let entries = match (args.next(), args.next()) {
        (None, _) => Vec::new(),
        (Some(Value::List(pairs) | Value::Tuple(pairs)), None) => {
            pairs.into_iter().map(pair).collect::<Result<_, _>>()?
        }
        _ => return bail("OrderedDict expects no argument or a list of pairs"),
    };
    Ok(Value::Dict(entries))
}

fn pair(item: Value) -> Result<(Value, Value), FormatError> {
    match item {
        Value::List(kv) | Value::Tuple(kv) => match <[Value; 2]>::try_from(kv) {
            Ok([k, v]) => Ok((k, v)),
            Err(_) => bail("OrderedDict item is not a pair"),
        },
        _ => bail("OrderedDict item is not a pair"),
    }
}

/// `(storage, offset, size, stride, ...)` -> tensor.
fn rebuild_tensor(args: Vec<Value>) -> Result<Value, FormatError> {
    let mut args = args.into_iter();
    let (Some(Value::Storage(storage)), Some(offset), Some(size), Some(stride)) =
        (args.next(), args.next(), args.next(), args.next())
    else {
        return bail("_rebuild_tensor expects (storage, offset, size, stride, ...)");
    };
    let size = dims(&size, "size")?;
    let stride = dims(&stride, "stride")?;
    if size.len() != stride.len() {
        return bail(format!(
            "tensor has {} sizes but {} strides",
            size.len(),
            stride.len()
        ));
    }
    Ok(Value::Tensor(TensorRef {
        storage,
        offset: non_negative(&offset, "storage offset")?,
        size,
        stride,
    }))
}

/// A tuple or list of non-negative integers.
fn dims(value: &Value, what: &str) -> Result<Vec<usize>, FormatError> {
    let items = value
        .as_items()
        .ok_or_else(|| FormatError::new(format!("tensor {what} is a {}", value.kind())))?;
    items
        .iter()
        .map(|v| {
            let n = non_negative(v, what)?;
            usize::try_from(n).map_err(|_| FormatError::new(format!("tensor {what} too large")))
        })
        .collect()
}

fn non_negative(value: &Value, what: &str) -> Result<u64, FormatError> {
    value
        .as_int()
        .and_then(|i| u64::try_from(i).ok())
        .ok_or_else(|| FormatError::new(format!("{what} must be a non-negative integer")))
}

/// Parses a PyTorch persistent id (see [`StorageRef`]).
pub(crate) fn storage_from_pid(pid: Value) -> Result<Value, FormatError> {
    let Value::Tuple(items) = pid else {
        return bail(format!(
            "unsupported persistent id (a {}); only PyTorch storages are supported",
            pid.kind()
        ));
    };
    match items.first().and_then(Value::as_text_bytes) {
        Some(b"storage") => {}
        Some(b"module") => {
            return bail(
                "the file pickles a whole nn.Module (with source code), which cannot be \
                 loaded safely; save model.state_dict() instead",
            )
        }
        _ => return bail("unsupported persistent id; only PyTorch storages are supported"),
    }
    let (dtype, key, location, numel) = match items.get(1..5) {
        Some([Value::Global(Global::StorageType(dtype)), key, location, numel]) => (
            *dtype,
            text(key, "storage key")?,
            text(location, "location")?,
            numel,
        ),
        _ => return bail("malformed storage persistent id"),
    };
    let view = match items.get(5) {
        None | Some(Value::None) => None,
        Some(meta) => Some(storage_view(meta)?),
    };
    if items.len() > 6 {
        return bail("malformed storage persistent id");
    }
    Ok(Value::Storage(StorageRef {
        dtype,
        key,
        location,
        numel: non_negative(numel, "storage size")?,
        view,
    }))
}

fn storage_view(meta: &Value) -> Result<StorageView, FormatError> {
    match meta.as_items() {
        Some([key, offset, numel]) => Ok(StorageView {
            key: text(key, "view key")?,
            offset: non_negative(offset, "view offset")?,
            numel: non_negative(numel, "view size")?,
        }),
        _ => bail("malformed storage view metadata"),
    }
}

/// A `str`, or `bytes` holding UTF-8.
fn text(value: &Value, what: &str) -> Result<String, FormatError> {
    value
        .as_text_bytes()
        .and_then(|b| std::str::from_utf8(b).ok())
        .map(str::to_string)
        .ok_or_else(|| FormatError::new(format!("{what} is not a string")))
}

/// `_reconstruct(ndarray, (0,), b'b')`: an empty array whose state comes
/// with `BUILD`.
fn reconstruct(args: Vec<Value>) -> Result<Value, FormatError> {
    match args.first() {
        Some(Value::Global(Global::NumpyNdarray)) => Ok(Value::NdArray(NdArray {
            descr: String::new(),
            shape: vec![0],
            fortran_order: false,
            data: Vec::new(),
        })),
        _ => bail("numpy _reconstruct is only supported for numpy.ndarray"),
    }
}

/// `dtype(kind, align, copy)`; the byte order comes with `BUILD`.
fn numpy_dtype(args: Vec<Value>) -> Result<Value, FormatError> {
    match args.first() {
        Some(kind) => Ok(Value::Dtype(NumpyDtype {
            kind: text(kind, "numpy dtype")?,
            byteorder: '=',
        })),
        None => bail("numpy.dtype expects a type string"),
    }
}

/// `scalar(dtype, bytes)`: one number.
fn numpy_scalar(args: Vec<Value>) -> Result<Value, FormatError> {
    let (Some(Value::Dtype(dtype)), Some(Value::Bytes(bytes))) = (args.first(), args.get(1)) else {
        return bail("numpy scalar expects (dtype, bytes)");
    };
    let data = NpyData::from_le_bytes(&dtype.descr(), bytes)?;
    let is_int = matches!(data, NpyData::U8(_) | NpyData::I32(_) | NpyData::I64(_));
    let value = if is_int {
        data.into_i64()?
            .as_slice()
            .try_into()
            .map(|[i]: [i64; 1]| Value::Int(i))
    } else {
        data.into_f64()?
            .as_slice()
            .try_into()
            .map(|[f]: [f64; 1]| Value::Float(f))
    };
    value.map_err(|_| FormatError::new("numpy scalar does not hold exactly one element"))
}

/// `encode(text, 'latin1')` -> bytes.
fn codecs_encode(args: Vec<Value>) -> Result<Value, FormatError> {
    let (Some(Value::Str(s)), Some(encoding)) = (args.first(), args.get(1)) else {
        return bail("_codecs.encode expects (str, encoding)");
    };
    if !matches!(encoding.as_str(), Some("latin1" | "latin-1")) {
        return bail("_codecs.encode is only supported with the 'latin1' encoding");
    }
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<Vec<u8>>>()
        .map(Value::Bytes)
        .ok_or_else(|| FormatError::new("_codecs.encode: character outside latin1"))
}

/// Applies `BUILD` (`__setstate__`) to `target`.
pub(crate) fn build(target: &mut Value, state: Value) -> Result<(), FormatError> {
    match target {
        // OrderedDict attributes (torch's `_metadata`) and tensor attributes
        // carry nothing that is needed.
        Value::Dict(_) | Value::Tensor(_) => Ok(()),
        Value::Dtype(dtype) => build_dtype(dtype, &state),
        Value::NdArray(array) => build_ndarray(array, state),
        other => bail(format!("BUILD on a {} is not supported", other.kind())),
    }
}

/// dtype state: `(version, byteorder, ...)`.
fn build_dtype(dtype: &mut NumpyDtype, state: &Value) -> Result<(), FormatError> {
    let order = state
        .as_items()
        .and_then(|s| s.get(1))
        .and_then(Value::as_text_bytes);
    match order {
        Some([c @ (b'<' | b'>' | b'|' | b'=')]) => {
            dtype.byteorder = char::from(*c);
            Ok(())
        }
        _ => bail("malformed numpy dtype state"),
    }
}

/// ndarray state: `([version,] shape, dtype, is_fortran, rawdata)`.
fn build_ndarray(array: &mut NdArray, state: Value) -> Result<(), FormatError> {
    let Value::Tuple(mut items) = state else {
        return bail("malformed numpy array state");
    };
    if items.len() == 5 {
        items.remove(0);
    }
    let Ok([shape, Value::Dtype(dtype), fortran, data]) = <[Value; 4]>::try_from(items) else {
        return bail("malformed numpy array state");
    };
    array.shape = dims(&shape, "shape")?;
    array.descr = dtype.descr();
    array.fortran_order = fortran.as_int().is_some_and(|f| f != 0);
    array.data = match data {
        Value::Bytes(b) => b,
        Value::List(_) => return bail("numpy object arrays are not supported"),
        other => return bail(format!("numpy array data is a {}", other.kind())),
    };
    Ok(())
}
