//! Output files shared by every crate that writes them.
//!
//! - Atomic writes: the bytes go to a temporary sibling of the target, are
//!   flushed to disk, and the sibling is renamed over the target. Readers,
//!   and a run killed at any moment, see the old file or the complete new
//!   one, never a partial one.
//! - JSON: [`write_json`] (pretty, atomic), [`nonfinite`] (how infinite and
//!   NaN floats are written), [`now_rfc3339`] (timestamps in manifests and
//!   training records).

pub mod nonfinite;

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A temporary sibling of `path`, `dir/.tmp-PID-NAME`: hidden, unique to
/// this process, and with `path`'s extension (plotters' bitmap backend picks
/// the image format from it).
pub fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".tmp-{}-{name}", std::process::id()))
}

/// Write `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_sibling(path);
    let written = fs::File::create(&tmp).and_then(|mut file| file.write_all(bytes));
    match written {
        Ok(()) => commit(&tmp, path),
        Err(e) => {
            // Best effort: the temporary file may not exist.
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Make `path` name the same contents as the existing file `source`,
/// atomically: a hard link (no copy, no extra disk) where the filesystem
/// has them, else a copy. Writers here only ever replace files by rename,
/// so the two names never see each other's later changes.
pub fn link_atomic(source: &Path, path: &Path) -> io::Result<()> {
    let tmp = temp_sibling(path);
    let _ = fs::remove_file(&tmp);
    if let Err(e) = fs::hard_link(source, &tmp).or_else(|_| fs::copy(source, &tmp).map(drop)) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    commit(&tmp, path)
}

/// Flush the finished temporary file `tmp` to disk and rename it onto
/// `path`; on failure remove `tmp`.
pub fn commit(tmp: &Path, path: &Path) -> io::Result<()> {
    let result = fs::File::open(tmp)
        .and_then(|file| file.sync_all())
        .and_then(|()| fs::rename(tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result
}

/// Write `value` as pretty-printed JSON with a final newline, atomically.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    write_atomic(path, format!("{text}\n").as_bytes())
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

/// `secs` after 1970-01-01T00:00:00Z as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("stiffness-fsutil-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A write replaces the file whole and leaves no temporary file behind.
    #[test]
    fn write_replaces_and_cleans_up() {
        let dir = scratch("replace");
        let path = dir.join("a.csv");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new contents").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new contents");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["a.csv"]);
        assert_eq!(temp_sibling(&path).extension().unwrap(), "csv");
    }

    /// A linked file has the source's contents and survives the source's
    /// removal and replacement.
    #[test]
    fn link_survives_replacing_the_source() {
        let dir = scratch("link");
        let (source, link) = (dir.join("epoch-001.bin"), dir.join("model.bin"));
        write_atomic(&source, b"epoch 1").unwrap();
        write_atomic(&link, b"stale").unwrap();
        link_atomic(&source, &link).unwrap();
        write_atomic(&source, b"replaced").unwrap();
        assert_eq!(fs::read(&link).unwrap(), b"epoch 1");
        fs::remove_file(&source).unwrap();
        assert_eq!(fs::read(&link).unwrap(), b"epoch 1");
        assert!(link_atomic(&source, &link).is_err());
        assert_eq!(fs::read(&link).unwrap(), b"epoch 1");
        assert!(!temp_sibling(&link).exists());
    }

    /// Dates against `date -u -d @SECS`: the epoch, a leap day, the turn
    /// of a century that is not a leap year and one that is.
    #[test]
    fn rfc3339_matches_civil_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
    }

    /// A write that cannot complete leaves the old file as it was and no
    /// temporary file.
    #[test]
    fn failed_write_keeps_the_old_file() {
        let dir = scratch("fail");
        let path = dir.join("a.json");
        write_atomic(&path, b"old").unwrap();
        // The rename fails: a directory stands where the file should go.
        let blocked = dir.join("blocked");
        fs::create_dir_all(blocked.join("inside")).unwrap();
        assert!(write_atomic(&blocked, b"x").is_err());
        assert!(!temp_sibling(&blocked).exists());
        assert!(write_atomic(&dir.join("missing").join("a.json"), b"x").is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
    }
}
