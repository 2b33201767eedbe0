//! A minimal reader for 1-D complex128 (`<c16`) .npy files, the format of a
//! record's `eigenvalues_file`.

use crate::error::{Error, Result};
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

/// Reads a C-order, little-endian complex128 array (any shape, flattened) as
/// `[re, im]` pairs.
pub fn read_c16(path: &Path) -> Result<Vec<[f64; 2]>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_c16(&bytes).map_err(|m| Error::parse(path, None, m))
}

/// Parses the bytes of a `<c16` .npy file.
pub fn parse_c16(bytes: &[u8]) -> Result<Vec<[f64; 2]>, String> {
    let (header, data) = split_header(bytes)?;
    let descr = header_value(&header, "descr").ok_or("header has no 'descr'")?;
    if descr.trim_matches(|c| c == '\'' || c == '"') != "<c16" {
        return Err(format!("dtype {descr} is not '<c16' (complex128)"));
    }
    if header_value(&header, "fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err("Fortran-order arrays are not supported".into());
    }
    let count = shape_len(&header)?;
    if data.len() < count * 16 {
        return Err(format!(
            "expected {count} values, file holds {} bytes of data",
            data.len()
        ));
    }
    let f = |c: &[u8]| f64::from_le_bytes(c.try_into().expect("8 bytes"));
    Ok(data[..count * 16]
        .chunks_exact(16)
        .map(|c| [f(&c[..8]), f(&c[8..])])
        .collect())
}

fn split_header(bytes: &[u8]) -> Result<(String, &[u8]), String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a .npy file (bad magic)".into());
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let end = start + len;
    if bytes.len() < end {
        return Err("truncated .npy header".into());
    }
    let header = String::from_utf8_lossy(&bytes[start..end]).into_owned();
    Ok((header, &bytes[end..]))
}

/// The raw text after `'key':` up to the next top-level comma or brace.
fn header_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'"))?;
    let rest = header[at + key.len() + 2..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Some(rest[..end].trim())
}

fn shape_len(header: &str) -> Result<usize, String> {
    let shape = header_value(header, "shape").ok_or("header has no 'shape'")?;
    shape
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .try_fold(1usize, |acc, d| {
            d.parse::<usize>()
                .map(|d| acc * d)
                .map_err(|_| format!("bad shape {shape}"))
        })
}

/// Encodes `values` as a 1-D `<c16` .npy file (for tests and tools).
pub fn encode_c16(values: &[[f64; 2]]) -> Vec<u8> {
    let mut header = format!(
        "{{'descr': '<c16', 'fortran_order': False, 'shape': ({},), }}",
        values.len()
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = MAGIC.to_vec();
    out.extend([1, 0]);
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    for v in values {
        out.extend(v[0].to_le_bytes());
        out.extend(v[1].to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_other_dtypes() {
        let v = vec![[1.0, -2.0], [0.5, 0.0], [f64::INFINITY, 3.0]];
        assert_eq!(parse_c16(&encode_c16(&v)).unwrap(), v);
        let mut bad = encode_c16(&v);
        let at = bad.windows(4).position(|w| w == b"<c16").unwrap();
        bad[at..at + 4].copy_from_slice(b"<f8 ");
        assert!(parse_c16(&bad).unwrap_err().contains("<f8"));
        assert!(parse_c16(b"hello").is_err());
    }
}
