//! The zip (torch >= 1.6) format.

use super::{storage_refs, Storages};
use crate::error::{bail, FormatError};
use crate::pickle::{unpickle, Value};
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Cursor, Read};
use zip::ZipArchive;

type Archive<'a> = ZipArchive<Cursor<&'a [u8]>>;

/// Reads the object and the storages.
pub(super) fn read(bytes: &[u8]) -> Result<(Value, Storages<'_>), FormatError> {
    let mut archive = ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| FormatError::new(format!("not a valid zip archive ({e})")))?;
    let prefix = find_prefix(&archive)?;
    // Decompressed data may total at most this (torch stores entries uncompressed).
    let mut budget = bytes.len().saturating_mul(4).saturating_add(64 << 20);
    check_byteorder(&mut archive, &prefix, &mut budget)?;
    let pickle = read_entry(
        &mut archive,
        &format!("{prefix}data.pkl"),
        usize::MAX,
        &mut budget,
    )?;
    let object = unpickle(&pickle).map_err(|e| e.context("data.pkl"))?;
    let mut storages = HashMap::new();
    for (key, (dtype, numel)) in storage_refs(&object)? {
        let name = format!("{prefix}data/{key}");
        let expected = usize::try_from(numel)
            .ok()
            .and_then(|n| n.checked_mul(dtype.size()))
            .ok_or_else(|| FormatError::new(format!("storage '{key}' is too large")))?;
        let data = read_entry(&mut archive, &name, expected, &mut budget)?;
        if data.len() != expected {
            return bail(format!(
                "record '{name}' has {} bytes but its storage needs {expected} \
                 ({numel} x {dtype})",
                data.len()
            ));
        }
        storages.insert(key, Cow::Owned(data));
    }
    Ok((object, storages))
}

/// The folder that holds `data.pkl`, with its trailing `/`.
fn find_prefix(archive: &Archive<'_>) -> Result<String, FormatError> {
    let pickles: Vec<String> = archive
        .file_names()
        .filter_map(Result::ok)
        .filter(|n| n == "data.pkl" || n.ends_with("/data.pkl"))
        .map(|n| n.into_owned())
        .collect();
    let prefix = match pickles.as_slice() {
        [one] => one.trim_end_matches("data.pkl").to_string(),
        [] => return bail("zip archive has no data.pkl; it is not a PyTorch checkpoint"),
        _ => return bail("zip archive has several data.pkl files"),
    };
    if archive
        .index_for_name(&format!("{prefix}constants.pkl"))
        .is_some()
    {
        return bail(
            "this is a TorchScript archive (torch.jit.save), which is not supported; \
             save the weights with torch.save(model.state_dict(), path)",
        );
    }
    Ok(prefix)
}

fn check_byteorder(
    archive: &mut Archive<'_>,
    prefix: &str,
    budget: &mut usize,
) -> Result<(), FormatError> {
    let name = format!("{prefix}byteorder");
    if archive.index_for_name(&name).is_none() {
        return Ok(());
    }
    match read_entry(archive, &name, 16, budget)?.as_slice() {
        b"little" => Ok(()),
        b"big" => bail("the checkpoint was saved big-endian, which is not supported"),
        _ => bail("unrecognised byteorder record"),
    }
}

/// Reads at most `limit + 1` bytes of an entry (so that a longer entry is
/// detected), charging them to `budget`.
fn read_entry(
    archive: &mut Archive<'_>,
    name: &str,
    limit: usize,
    budget: &mut usize,
) -> Result<Vec<u8>, FormatError> {
    let entry = archive
        .by_name(name)
        .map_err(|e| FormatError::new(format!("cannot open record '{name}' ({e})")))?;
    let cap = limit.saturating_add(1).min(budget.saturating_add(1));
    let mut data = Vec::new();
    entry
        .take(cap as u64)
        .read_to_end(&mut data)
        .map_err(|e| FormatError::new(format!("cannot read record '{name}' ({e})")))?;
    if data.len() > *budget {
        return bail("zip records decompress to more data than the file size allows");
    }
    *budget -= data.len();
    Ok(data)
}
