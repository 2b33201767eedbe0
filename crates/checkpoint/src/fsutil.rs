//! File helpers: bounded reads and atomic writes.

use crate::error::CheckpointError;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Reads a whole file.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    fs::read(path).map_err(|e| CheckpointError::io(path, "read the file", e))
}

/// Writes `bytes` to `path` atomically: the bytes go to a temporary file in the
/// same directory, which is flushed to disk and then renamed over `path`, so
/// readers see either the old file or the complete new one.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let tmp = temp_path(path);
    let result = write_synced(&tmp, bytes)
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| CheckpointError::io(path, "write the file", e));
    if result.is_err() {
        // Best effort: the temporary file may not exist.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// `<dir>/.<name>.tmp-<pid>`, next to `path`.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}
