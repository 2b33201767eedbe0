//! Element types of stored tensors and their conversion to `f32`.

use std::fmt;

/// The element type a tensor had in the file it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceDType {
    /// float32.
    F32,
    /// float64.
    F64,
    /// IEEE float16.
    F16,
    /// bfloat16.
    BF16,
    /// int64.
    I64,
    /// int32.
    I32,
    /// int16.
    I16,
    /// int8.
    I8,
    /// uint8.
    U8,
    /// bool (one byte, 0 or 1).
    Bool,
}

impl SourceDType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::U8 | Self::I8 | Self::Bool => 1,
            Self::F16 | Self::BF16 | Self::I16 => 2,
            Self::F32 | Self::I32 => 4,
            Self::F64 | Self::I64 => 8,
        }
    }

    /// Whether this is a floating-point type.
    pub fn is_float(self) -> bool {
        matches!(self, Self::F32 | Self::F64 | Self::F16 | Self::BF16)
    }

    /// The lower-case name, e.g. `"float16"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::F64 => "float64",
            Self::F16 => "float16",
            Self::BF16 => "bfloat16",
            Self::I64 => "int64",
            Self::I32 => "int32",
            Self::I16 => "int16",
            Self::I8 => "int8",
            Self::U8 => "uint8",
            Self::Bool => "bool",
        }
    }

    /// Decodes little-endian elements to `f32`: exact for float32, float16,
    /// bfloat16 and integers up to 2^24 in magnitude; float64 and larger
    /// integers are rounded to the nearest `f32`. A trailing partial element
    /// is ignored (callers check lengths first).
    pub(crate) fn decode_f32(self, bytes: &[u8]) -> Vec<f32> {
        let n = self.size();
        let conv: fn(&[u8]) -> f32 = match self {
            Self::F32 => |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            Self::F64 => |b| f64::from_le_bytes(arr8(b)) as f32,
            Self::F16 => |b| half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
            Self::BF16 => |b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
            Self::I64 => |b| i64::from_le_bytes(arr8(b)) as f32,
            Self::I32 => |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
            Self::I16 => |b| f32::from(i16::from_le_bytes([b[0], b[1]])),
            Self::I8 => |b| f32::from(b[0] as i8),
            Self::U8 => |b| f32::from(b[0]),
            Self::Bool => |b| f32::from(u8::from(b[0] != 0)),
        };
        bytes.chunks_exact(n).map(conv).collect()
    }
}

fn arr8(b: &[u8]) -> [u8; 8] {
    [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]
}

impl fmt::Display for SourceDType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
