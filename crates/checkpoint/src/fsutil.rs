//! File helpers: reads and atomic writes with this crate's errors.

use crate::error::CheckpointError;
use std::fs;
use std::path::Path;

/// Reads a whole file.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    fs::read(path).map_err(|e| CheckpointError::io(path, "read the file", e))
}

/// Writes `bytes` to `path` atomically ([`stiffness_fsutil::write_atomic`]).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    stiffness_fsutil::write_atomic(path, bytes)
        .map_err(|e| CheckpointError::io(path, "write the file", e))
}
