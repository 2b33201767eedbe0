//! The legacy (torch < 1.6) format: a sequence of pickles, then raw storages.

use super::{storage_refs, Storages};
use crate::error::{bail, FormatError};
use crate::pickle::{unpickle_prefix, Value};
use std::borrow::Cow;
use std::collections::HashMap;

/// The magic number, as the little-endian bytes of its `LONG1` encoding.
const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
/// The only legacy protocol version.
const PROTOCOL_VERSION: i64 = 1001;

/// Reads the object and the storage bytes (borrowed from `bytes`).
pub(super) fn read(bytes: &[u8]) -> Result<(Value, Storages<'_>), FormatError> {
    let mut reader = Reader { bytes, pos: 0 };
    check_header(&mut reader)?;
    let object = reader.pickle("the object")?;
    let keys = reader.pickle("the storage key list")?;
    let keys = keys
        .as_items()
        .ok_or_else(|| FormatError::new("the storage key list is not a list"))?;
    let refs = storage_refs(&object)?;
    let mut storages = HashMap::new();
    for key in keys {
        let key = key
            .as_text_bytes()
            .and_then(|k| std::str::from_utf8(k).ok())
            .ok_or_else(|| FormatError::new("a storage key is not a string"))?;
        let (dtype, _) = refs
            .get(key)
            .ok_or_else(|| FormatError::new(format!("storage '{key}' is listed but never used")))?;
        let data = reader
            .storage(dtype.size())
            .map_err(|e| e.context(format!("storage '{key}'")))?;
        storages.insert(key.to_string(), Cow::Borrowed(data));
    }
    Ok((object, storages))
}

/// Checks the magic number, protocol version and system information.
fn check_header(reader: &mut Reader<'_>) -> Result<(), FormatError> {
    if !matches!(reader.pickle("the magic number")?, Value::BigInt(m) if m == MAGIC) {
        return bail(
            "not a PyTorch legacy checkpoint (wrong magic number); if this is a plain \
             pickle, save the weights with torch.save(model.state_dict(), path)",
        );
    }
    let version = reader.pickle("the protocol version")?;
    if version.as_int() != Some(PROTOCOL_VERSION) {
        return bail(format!(
            "unsupported legacy protocol version {version:?}; expected {PROTOCOL_VERSION}"
        ));
    }
    let info = reader.pickle("the system information")?;
    if info
        .get("little_endian")
        .is_some_and(|v| v.as_int() != Some(1))
    {
        return bail("the checkpoint was saved on a big-endian machine, which is not supported");
    }
    Ok(())
}

/// A cursor over the file.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Unpickles the next pickle.
    fn pickle(&mut self, what: &str) -> Result<Value, FormatError> {
        let rest = &self.bytes[self.pos..];
        let (value, used) = unpickle_prefix(rest)
            .map_err(|e| e.context(format!("reading {what} at byte {}", self.pos)))?;
        self.pos += used;
        Ok(value)
    }

    /// Reads an `i64` element count and that many elements of `size` bytes.
    fn storage(&mut self, size: usize) -> Result<&'a [u8], FormatError> {
        let rest = &self.bytes[self.pos..];
        let Some((count, rest)) = rest.split_first_chunk::<8>() else {
            return bail("file ends before the storage size (the file is truncated)");
        };
        let count = i64::from_le_bytes(*count);
        let len = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(size));
        match len {
            Some(len) if len <= rest.len() => {
                self.pos += 8 + len;
                Ok(&rest[..len])
            }
            _ => bail(format!(
                "declares {count} elements of {size} bytes but only {} bytes are left \
                 (the file is truncated)",
                rest.len()
            )),
        }
    }
}
