//! NumPy `.npy` files: reading and atomic writing.
//!
//! # Format
//!
//! A `.npy` file is the magic `\x93NUMPY`, a major and a minor version byte, the
//! header length (little-endian `u16` for version 1.0, `u32` for 2.0 and 3.0),
//! an ASCII (3.0: UTF-8) header holding a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 32, 32), }`, and
//! then the raw array data.
//!
//! Supported here: little-endian, C-ordered arrays with `descr` one of `<f4`,
//! `<f8`, `<c16`, `|u1`, `<i8`, `<i4`, `<f2` (`<u1` is accepted as `|u1`).
//! Fortran order, big-endian and any other dtype (including Python objects)
//! are rejected with an error that says so. The data must have exactly the
//! declared size.
//!
//! The writers produce version 1.0 files (2.0 if the header would not fit)
//! whose header is padded with spaces and ends in `'\n'` so that the data starts
//! at a multiple of 64 bytes, as `numpy.save` does.

use crate::error::{bail, CheckpointError, FormatError};
use crate::fsutil;
use std::path::Path;

/// The `.npy` magic string.
const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Largest header accepted when reading (numpy itself refuses more than 10 000
/// bytes by default).
const MAX_HEADER_LEN: usize = 1 << 20;
/// Largest number of dimensions accepted (numpy's own limit is 64).
const MAX_DIMS: usize = 64;

/// An array read from a `.npy` file (or a pickled numpy array): its shape and
/// its elements in C (row-major) order.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// The dimensions; empty for a 0-d array (one element).
    pub shape: Vec<usize>,
    /// The elements, `shape.iter().product()` of them.
    pub data: NpyData,
}

/// The elements of an [`NpyArray`], by element type.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    /// `<f4`: float32.
    F32(Vec<f32>),
    /// `<f8`: float64.
    F64(Vec<f64>),
    /// `<c16`: complex128, as `[real, imaginary]`.
    C128(Vec<[f64; 2]>),
    /// `|u1`: uint8.
    U8(Vec<u8>),
    /// `<i8`: int64.
    I64(Vec<i64>),
    /// `<i4`: int32.
    I32(Vec<i32>),
    /// `<f2`: float16.
    F16(Vec<half::f16>),
}

/// The element types that `.npy` files may hold here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dtype {
    F32,
    F64,
    C128,
    U8,
    I64,
    I32,
    F16,
}

impl Dtype {
    /// Parses a little-endian numpy type string such as `<f4` or `|u1`.
    fn parse(descr: &str) -> Result<Self, FormatError> {
        Ok(match descr {
            "<f4" => Self::F32,
            "<f8" => Self::F64,
            "<c16" => Self::C128,
            "|u1" | "<u1" => Self::U8,
            "<i8" => Self::I64,
            "<i4" => Self::I32,
            "<f2" => Self::F16,
            d if d.starts_with('>') => {
                return bail(format!(
                    "dtype '{d}' is big-endian; only little-endian data is supported \
                     (convert with arr.astype(arr.dtype.newbyteorder('<')))"
                ))
            }
            d if d.contains('O') => {
                return bail(format!(
                    "dtype '{d}' holds Python objects, which are not supported \
                     (only numeric arrays can be read)"
                ))
            }
            d => {
                return bail(format!(
                    "unsupported dtype '{d}'; supported: <f4 <f8 <c16 |u1 <i8 <i4 <f2"
                ))
            }
        })
    }

    fn size(self) -> usize {
        match self {
            Self::U8 => 1,
            Self::F16 => 2,
            Self::F32 | Self::I32 => 4,
            Self::F64 | Self::I64 => 8,
            Self::C128 => 16,
        }
    }
}

/// Splits `bytes` into `N`-byte chunks (the caller checked the length).
fn chunks<const N: usize>(bytes: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    bytes.chunks_exact(N).map(|c| {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        a
    })
}

impl NpyData {
    /// Decodes little-endian elements of a numpy type string (`<f4`, `|u1`, ...;
    /// see the module documentation). `bytes.len()` must be a multiple of the
    /// element size.
    pub fn from_le_bytes(descr: &str, bytes: &[u8]) -> Result<Self, FormatError> {
        let dtype = Dtype::parse(descr)?;
        if bytes.len() % dtype.size() != 0 {
            return bail(format!(
                "{} bytes is not a whole number of '{descr}' elements",
                bytes.len()
            ));
        }
        Ok(match dtype {
            Dtype::F32 => Self::F32(chunks(bytes).map(f32::from_le_bytes).collect()),
            Dtype::F64 => Self::F64(chunks(bytes).map(f64::from_le_bytes).collect()),
            Dtype::C128 => Self::C128(
                chunks::<16>(bytes)
                    .map(|c| {
                        let (re, im) = c.split_at(8);
                        [le_f64(re), le_f64(im)]
                    })
                    .collect(),
            ),
            Dtype::U8 => Self::U8(bytes.to_vec()),
            Dtype::I64 => Self::I64(chunks(bytes).map(i64::from_le_bytes).collect()),
            Dtype::I32 => Self::I32(chunks(bytes).map(i32::from_le_bytes).collect()),
            Dtype::F16 => Self::F16(chunks(bytes).map(half::f16::from_le_bytes).collect()),
        })
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            Self::F32(v) => v.len(),
            Self::F64(v) => v.len(),
            Self::C128(v) => v.len(),
            Self::U8(v) => v.len(),
            Self::I64(v) => v.len(),
            Self::I32(v) => v.len(),
            Self::F16(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The numpy type string of these elements, e.g. `"<f4"`.
    pub fn descr(&self) -> &'static str {
        match self {
            Self::F32(_) => "<f4",
            Self::F64(_) => "<f8",
            Self::C128(_) => "<c16",
            Self::U8(_) => "|u1",
            Self::I64(_) => "<i8",
            Self::I32(_) => "<i4",
            Self::F16(_) => "<f2",
        }
    }

    /// Converts real elements to `f64` (exact for every type except `i64`
    /// values beyond 2^53, which are rounded). Complex data is an error.
    pub fn into_f64(self) -> Result<Vec<f64>, FormatError> {
        Ok(match self {
            Self::F64(v) => v,
            Self::F32(v) => v.into_iter().map(f64::from).collect(),
            Self::U8(v) => v.into_iter().map(f64::from).collect(),
            Self::I64(v) => v.into_iter().map(|x| x as f64).collect(),
            Self::I32(v) => v.into_iter().map(f64::from).collect(),
            Self::F16(v) => v.into_iter().map(f64::from).collect(),
            Self::C128(_) => return complex_error("f64"),
        })
    }

    /// Converts real elements to `f32`: exact for `f16`, `u8` and `f32`;
    /// `f64`, `i32` and `i64` values are rounded to the nearest `f32`.
    /// Complex data is an error.
    pub fn into_f32(self) -> Result<Vec<f32>, FormatError> {
        Ok(match self {
            Self::F32(v) => v,
            Self::F64(v) => v.into_iter().map(|x| x as f32).collect(),
            Self::U8(v) => v.into_iter().map(f32::from).collect(),
            Self::I64(v) => v.into_iter().map(|x| x as f32).collect(),
            Self::I32(v) => v.into_iter().map(|x| x as f32).collect(),
            Self::F16(v) => v.into_iter().map(f32::from).collect(),
            Self::C128(_) => return complex_error("f32"),
        })
    }

    /// Converts integer elements (`u8`, `i32`, `i64`) to `i64`; floating-point
    /// and complex data is an error.
    pub fn into_i64(self) -> Result<Vec<i64>, FormatError> {
        match self {
            Self::I64(v) => Ok(v),
            Self::I32(v) => Ok(v.into_iter().map(i64::from).collect()),
            Self::U8(v) => Ok(v.into_iter().map(i64::from).collect()),
            other => bail(format!(
                "expected an integer array, found dtype '{}'",
                other.descr()
            )),
        }
    }

    /// Returns complex elements as `[re, im]`; real data is widened to `f64`
    /// with a zero imaginary part.
    pub fn into_c128(self) -> Result<Vec<[f64; 2]>, FormatError> {
        match self {
            Self::C128(v) => Ok(v),
            real => Ok(real.into_f64()?.into_iter().map(|x| [x, 0.0]).collect()),
        }
    }
}

fn le_f64(bytes: &[u8]) -> f64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(bytes);
    f64::from_le_bytes(a)
}

fn complex_error<T>(target: &str) -> Result<T, FormatError> {
    bail(format!(
        "cannot convert complex128 data to {target}; use into_c128()"
    ))
}

impl NpyArray {
    /// The number of elements (the product of the shape).
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The elements as `f32`; see [`NpyData::into_f32`].
    pub fn into_f32(self) -> Result<Vec<f32>, FormatError> {
        self.data.into_f32()
    }

    /// The elements as `f64`; see [`NpyData::into_f64`].
    pub fn into_f64(self) -> Result<Vec<f64>, FormatError> {
        self.data.into_f64()
    }

    /// The elements as `i64`; see [`NpyData::into_i64`].
    pub fn into_i64(self) -> Result<Vec<i64>, FormatError> {
        self.data.into_i64()
    }

    /// The elements as complex `[re, im]`; see [`NpyData::into_c128`].
    pub fn into_c128(self) -> Result<Vec<[f64; 2]>, FormatError> {
        self.data.into_c128()
    }
}

/// The number of elements of `shape`, or an error on overflow.
pub(crate) fn checked_numel(shape: &[usize]) -> Result<usize, FormatError> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| FormatError::new(format!("shape {shape:?} has too many elements")))
}

/// Reads a `.npy` file (see the module documentation for what is supported).
pub fn read_npy(path: &Path) -> Result<NpyArray, CheckpointError> {
    let bytes = fsutil::read(path)?;
    parse_npy(&bytes).map_err(|e| CheckpointError::invalid(path, "npy file", e))
}

/// Parses the bytes of a `.npy` file.
pub fn parse_npy(bytes: &[u8]) -> Result<NpyArray, FormatError> {
    let (header, data) = split_header(bytes)?;
    let header = parse_header(header)?;
    let dtype = Dtype::parse(&header.descr)?;
    if header.fortran_order {
        return bail(
            "array is in Fortran (column-major) order; only C order is supported \
             (save np.ascontiguousarray(arr) instead)",
        );
    }
    let numel = checked_numel(&header.shape)?;
    let expected = numel
        .checked_mul(dtype.size())
        .ok_or_else(|| FormatError::new("array size overflows"))?;
    if data.len() != expected {
        return bail(format!(
            "header declares shape {:?} of '{}' = {expected} bytes but {} bytes follow \
             (the file is truncated or corrupt)",
            header.shape,
            header.descr,
            data.len()
        ));
    }
    Ok(NpyArray {
        shape: header.shape,
        data: NpyData::from_le_bytes(&header.descr, data)?,
    })
}

/// Splits a `.npy` file into its header text and its data.
fn split_header(bytes: &[u8]) -> Result<(&str, &[u8]), FormatError> {
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| FormatError::new("not a .npy file (missing the \\x93NUMPY magic)"))?;
    let (len_size, rest) = match rest {
        [1, _, rest @ ..] => (2, rest),
        [2 | 3, _, rest @ ..] => (4, rest),
        [major, minor, ..] => {
            return bail(format!(
                "unsupported .npy version {major}.{minor}; supported: 1.0, 2.0, 3.0"
            ))
        }
        _ => return bail("file ends inside the .npy preamble"),
    };
    if rest.len() < len_size {
        return bail("file ends inside the .npy preamble");
    }
    let (len_bytes, rest) = rest.split_at(len_size);
    let header_len = len_bytes
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    if header_len > MAX_HEADER_LEN || header_len > rest.len() {
        return bail(format!(
            "header length {header_len} exceeds the {} bytes left in the file",
            rest.len()
        ));
    }
    let (header, data) = rest.split_at(header_len);
    let header = std::str::from_utf8(header)
        .map_err(|_| FormatError::new("the .npy header is not valid text"))?;
    Ok((header, data))
}

/// The fields of a `.npy` header.
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// A value in a `.npy` header dict.
enum Literal {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

/// Parses the header dict literal.
fn parse_header(text: &str) -> Result<Header, FormatError> {
    let fields = HeaderParser { rest: text.trim() }
        .dict()
        .map_err(|e| e.context("malformed .npy header"))?;
    let mut descr = None;
    let mut fortran_order = None;
    let mut shape = None;
    for (key, value) in fields {
        match (key.as_str(), value) {
            ("descr", Literal::Str(s)) => descr = Some(s),
            ("fortran_order", Literal::Bool(b)) => fortran_order = Some(b),
            ("shape", Literal::Tuple(t)) => shape = Some(t),
            (k, _) => return bail(format!("unexpected .npy header entry '{k}'")),
        }
    }
    match (descr, fortran_order, shape) {
        (Some(descr), Some(fortran_order), Some(shape)) => Ok(Header {
            descr,
            fortran_order,
            shape,
        }),
        _ => bail("the .npy header lacks 'descr', 'fortran_order' or 'shape'"),
    }
}

/// A parser for the small subset of Python literals used in `.npy` headers.
struct HeaderParser<'a> {
    rest: &'a str,
}

impl HeaderParser<'_> {
    fn skip_ws(&mut self) {
        self.rest = self.rest.trim_start();
    }

    /// Consumes `token` (after whitespace) if it comes next.
    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        match self.rest.strip_prefix(token) {
            Some(r) => {
                self.rest = r;
                true
            }
            None => false,
        }
    }

    fn expect(&mut self, token: &str) -> Result<(), FormatError> {
        if self.eat(token) {
            Ok(())
        } else {
            bail(format!("expected '{token}' at '{}'", self.excerpt()))
        }
    }

    fn excerpt(&self) -> String {
        self.rest.chars().take(20).collect()
    }

    fn dict(&mut self) -> Result<Vec<(String, Literal)>, FormatError> {
        self.expect("{")?;
        let mut fields = Vec::new();
        while !self.eat("}") {
            let key = self.string()?;
            self.expect(":")?;
            fields.push((key, self.value()?));
            if !self.eat(",") {
                self.expect("}")?;
                break;
            }
        }
        if !self.rest.trim().is_empty() {
            return bail(format!(
                "unexpected text after the dict: '{}'",
                self.excerpt()
            ));
        }
        Ok(fields)
    }

    fn value(&mut self) -> Result<Literal, FormatError> {
        if self.eat("True") {
            Ok(Literal::Bool(true))
        } else if self.eat("False") {
            Ok(Literal::Bool(false))
        } else if self.eat("(") {
            self.tuple().map(Literal::Tuple)
        } else {
            self.string().map(Literal::Str)
        }
    }

    /// Parses the rest of a tuple of integers, after its `(`.
    fn tuple(&mut self) -> Result<Vec<usize>, FormatError> {
        let mut items = Vec::new();
        while !self.eat(")") {
            if items.len() == MAX_DIMS {
                return bail(format!("more than {MAX_DIMS} dimensions"));
            }
            items.push(self.integer()?);
            if !self.eat(",") {
                self.expect(")")?;
                break;
            }
        }
        Ok(items)
    }

    /// Parses a non-negative integer, allowing Python 2's `L` suffix.
    fn integer(&mut self) -> Result<usize, FormatError> {
        self.skip_ws();
        let end = self
            .rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(self.rest.len());
        let value = self.rest[..end]
            .parse()
            .map_err(|_| FormatError::new(format!("bad dimension at '{}'", self.excerpt())))?;
        self.rest = &self.rest[end..];
        self.eat("L");
        Ok(value)
    }

    /// Parses a quoted string without escapes.
    fn string(&mut self) -> Result<String, FormatError> {
        self.skip_ws();
        let quote = match self.rest.chars().next() {
            Some(q @ ('\'' | '"')) => q,
            _ => return bail(format!("expected a string at '{}'", self.excerpt())),
        };
        let body = &self.rest[1..];
        let end = body
            .find(quote)
            .ok_or_else(|| FormatError::new("unterminated string"))?;
        self.rest = &body[end + 1..];
        Ok(body[..end].to_string())
    }
}

/// Encodes an array as `.npy` bytes (version 1.0, or 2.0 for huge headers).
fn encode(shape: &[usize], data: &NpyData) -> Result<Vec<u8>, String> {
    let numel = checked_numel(shape).map_err(|e| e.to_string())?;
    if numel != data.len() {
        return Err(format!(
            "shape {shape:?} holds {numel} elements but {} values were given",
            data.len()
        ));
    }
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape_text = match dims.as_slice() {
        [one] => format!("({one},)"),
        _ => format!("({})", dims.join(", ")),
    };
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape_text}, }}",
        data.descr()
    );
    let mut out = preamble(dict);
    append_le(&mut out, data);
    Ok(out)
}

/// Magic, version, header length and header padded to 64 bytes with `'\n'`.
fn preamble(mut dict: String) -> Vec<u8> {
    let small = dict.len() + 11 < usize::from(u16::MAX);
    let fixed = if small { 10 } else { 12 };
    let total = (fixed + dict.len() + 1).div_ceil(64) * 64;
    dict.push_str(&" ".repeat(total - fixed - dict.len() - 1));
    dict.push('\n');
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    if small {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&[2, 0]);
        out.extend_from_slice(&(dict.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out
}

/// Appends the elements as little-endian bytes.
fn append_le(out: &mut Vec<u8>, data: &NpyData) {
    match data {
        NpyData::F32(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        NpyData::F64(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        NpyData::C128(v) => v.iter().flatten().for_each(|x| out.extend(x.to_le_bytes())),
        NpyData::U8(v) => out.extend_from_slice(v),
        NpyData::I64(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        NpyData::I32(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        NpyData::F16(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
    }
}

/// Writes an array of any supported dtype to `path` atomically (temporary
/// file in the same directory, then rename). The shape must match the number
/// of elements.
pub fn write_npy(path: &Path, array: &NpyArray) -> Result<(), CheckpointError> {
    let bytes = encode(&array.shape, &array.data).map_err(|message| CheckpointError::BadInput {
        path: path.to_path_buf(),
        message,
    })?;
    fsutil::write_atomic(path, &bytes)
}

/// Writes a float32 (`<f4`) array; see [`write_npy`].
pub fn write_npy_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), CheckpointError> {
    write_npy(path, &owned(shape, NpyData::F32(data.to_vec())))
}

/// Writes a float64 (`<f8`) array; see [`write_npy`].
pub fn write_npy_f64(path: &Path, shape: &[usize], data: &[f64]) -> Result<(), CheckpointError> {
    write_npy(path, &owned(shape, NpyData::F64(data.to_vec())))
}

/// Writes a complex128 (`<c16`) array of `[re, im]` pairs; see [`write_npy`].
pub fn write_npy_c128(
    path: &Path,
    shape: &[usize],
    data: &[[f64; 2]],
) -> Result<(), CheckpointError> {
    write_npy(path, &owned(shape, NpyData::C128(data.to_vec())))
}

fn owned(shape: &[usize], data: NpyData) -> NpyArray {
    NpyArray {
        shape: shape.to_vec(),
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_padded_to_64_bytes() {
        let bytes = encode(&[2, 3], &NpyData::F32(vec![0.0; 6])).unwrap();
        let header_len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
        assert_eq!((10 + header_len) % 64, 0);
        assert_eq!(bytes[10 + header_len - 1], b'\n');
        let text = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(text.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
    }

    #[test]
    fn parses_python2_long_dimensions_and_shapes() {
        let h =
            parse_header("{'descr': '<f8', 'fortran_order': False, 'shape': (3L, 2L), }").unwrap();
        assert_eq!(h.shape, vec![3, 2]);
        let h = parse_header("{\"descr\":\"|u1\",\"fortran_order\":False,\"shape\":()}").unwrap();
        assert!(h.shape.is_empty());
        let h = parse_header("{'descr': '<i8', 'fortran_order': True, 'shape': (5,)}").unwrap();
        assert_eq!((h.shape, h.fortran_order), (vec![5], true));
    }

    #[test]
    fn one_dimensional_shape_has_trailing_comma() {
        let bytes = encode(&[4], &NpyData::U8(vec![1, 2, 3, 4])).unwrap();
        assert!(String::from_utf8_lossy(&bytes).contains("'shape': (4,)"));
        assert_eq!(
            parse_npy(&bytes).unwrap().data,
            NpyData::U8(vec![1, 2, 3, 4])
        );
    }
}
