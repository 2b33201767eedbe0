//! Atomic file writes ([`stiffness_fsutil`]) with this crate's errors.

use crate::error::{Error, Result};
use std::fs;
use std::path::Path;

pub use stiffness_fsutil::temp_sibling;

/// Writes `bytes` to `path` atomically (temp file + rename).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    stiffness_fsutil::write_atomic(path, bytes).map_err(|e| Error::io(path, e))
}

/// Renames a finished temporary file onto its final `path`.
pub fn commit(tmp: &Path, path: &Path) -> Result<()> {
    stiffness_fsutil::commit(tmp, path).map_err(|e| Error::io(path, e))
}

/// Creates `dir` and its parents.
pub fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}
