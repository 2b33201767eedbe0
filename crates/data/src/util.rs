//! Small file helpers shared by the readers.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// Read a whole file.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| DataError::io(path, e))
}

/// Whether `bytes` start with the gzip magic `1f 8b`.
pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// A reader over `bytes`, gunzipping them when they start with the gzip magic.
pub(crate) fn maybe_gunzip(bytes: &[u8]) -> Box<dyn Read + '_> {
    if is_gzip(bytes) {
        Box::new(flate2::read::MultiGzDecoder::new(bytes))
    } else {
        Box::new(bytes)
    }
}

/// Read up to `n` bytes from `reader` (fewer only at the end of the data);
/// memory grows with the bytes actually read, never with `n` alone, so a
/// lying header cannot make us allocate more than the data holds.
pub(crate) fn read_prefix(reader: &mut dyn Read, n: usize, path: &Path) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(n.min(1 << 20));
    let cap = u64::try_from(n).unwrap_or(u64::MAX);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| gzip_error(path, &e))?;
    Ok(out)
}

/// Whether `reader` has no more data.
pub(crate) fn at_end(reader: &mut dyn Read, path: &Path) -> Result<bool> {
    Ok(read_prefix(reader, 1, path)?.is_empty())
}

fn gzip_error(path: &Path, e: &std::io::Error) -> DataError {
    DataError::invalid(
        path,
        format!("cannot decompress: {e}; the gzip file is corrupt or truncated, download it again"),
    )
}

/// The file name of `path` as text ("" when it has none).
pub(crate) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `path` with its file name replaced by `name`.
pub(crate) fn sibling(path: &Path, name: &str) -> PathBuf {
    path.with_file_name(name)
}

/// Text lines of a names file (trimmed, blank lines dropped).
pub(crate) fn read_names(path: &Path) -> Result<Vec<String>> {
    let bytes = read_file(path)?;
    Ok(String::from_utf8_lossy(&bytes)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}
