//! CIFAR-10 / CIFAR-100 python batches: pickled dicts (protocol 2, written
//! by Python 2) with `b'data'`, a uint8 numpy array of shape `(N, 3072)`
//! (red, green, blue 32x32 planes per row), and `b'labels'` (CIFAR-10) or
//! `b'fine_labels'` (CIFAR-100, preferred when present). The meta file
//! (`batches.meta` / `meta`) holds `label_names` / `fine_label_names`.
//! Read with the allow-list unpickler of `stiffness_checkpoint::pickle`,
//! which never runs code.

use std::path::{Path, PathBuf};

use stiffness_checkpoint::pickle::{unpickle, Value};

use crate::cifar_bin::{CIFAR10_CLASSES, CIFAR_PIXELS};
use crate::error::{DataError, Result};
use crate::source::{numeric_names, ArraySource, ImageSource, Layout, Pixels};
use crate::util::read_file;

/// One decoded batch.
struct Batch {
    pixels: Vec<u8>,
    labels: Vec<usize>,
    fine: bool,
}

fn unpickle_at(bytes: &[u8], path: &Path) -> Result<Value> {
    unpickle(bytes).map_err(|e| DataError::invalid(path, format!("cannot read pickle: {e}; is this a CIFAR python batch (cifar-10-batches-py / cifar-100-python)?")))
}

fn parse_batch(bytes: &[u8], path: &Path) -> Result<Batch> {
    let value = unpickle_at(bytes, path)?;
    let missing = |what: &str| {
        DataError::invalid(
            path,
            format!("pickle has no {what} entry; expected a CIFAR python batch dict"),
        )
    };
    let Some(Value::NdArray(data)) = value.get("data") else {
        return Err(missing("'data' numpy array"));
    };
    let pixels = data
        .to_u8()
        .map_err(|e| DataError::invalid(path, format!("'data': {e}")))?;
    let n = data.shape.first().copied().unwrap_or(0);
    if pixels.len() != n.saturating_mul(CIFAR_PIXELS) {
        return Err(DataError::invalid(
            path,
            format!("'data' has shape {:?}; expected (N, 3072)", data.shape),
        ));
    }
    let (labels, fine) = match (value.get("fine_labels"), value.get("labels")) {
        (Some(l), _) => (l, true),
        (None, Some(l)) => (l, false),
        _ => return Err(missing("'labels' or 'fine_labels'")),
    };
    let labels = labels
        .to_i64_vec()
        .map_err(|e| DataError::invalid(path, format!("labels: {e}")))?;
    if labels.len() != n {
        return Err(DataError::invalid(
            path,
            format!(
                "{} labels for {n} images; the batch is corrupt",
                labels.len()
            ),
        ));
    }
    let labels = labels
        .into_iter()
        .map(|l| {
            usize::try_from(l)
                .map_err(|_| DataError::invalid(path, format!("label {l} is negative")))
        })
        .collect::<Result<_>>()?;
    Ok(Batch {
        pixels,
        labels,
        fine,
    })
}

/// Class names from a meta pickle (`fine_label_names`, else `label_names`).
fn parse_meta(bytes: &[u8], path: &Path) -> Result<Vec<String>> {
    let value = unpickle_at(bytes, path)?;
    let names = value
        .get("fine_label_names")
        .or_else(|| value.get("label_names"));
    let items = names.and_then(Value::as_items).ok_or_else(|| {
        DataError::invalid(
            path,
            "meta pickle has no 'label_names' or 'fine_label_names' list",
        )
    })?;
    items
        .iter()
        .map(|v| {
            v.as_text_bytes()
                .map(|b| String::from_utf8_lossy(b).into_owned())
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| DataError::invalid(path, "class names in the meta pickle are not strings"))
}

/// CIFAR-10 names for 10-class labels, else `"0".."K-1"` (at least 100
/// for CIFAR-100 `fine_labels`).
fn default_names(labels: &[usize], fine: bool, path: &Path) -> Result<Vec<String>> {
    if fine {
        numeric_names(labels, 100, path)
    } else if labels.iter().all(|&l| l < 10) {
        Ok(CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect())
    } else {
        numeric_names(labels, 10, path)
    }
}

fn build(
    batches: Vec<(PathBuf, Batch)>,
    names: Option<Vec<String>>,
) -> Result<Box<dyn ImageSource>> {
    let fine = batches.iter().any(|b| b.1.fine);
    let first = batches.first().map(|b| b.0.clone()).unwrap_or_default();
    let (mut pixels, mut labels, mut parts) = (Vec::new(), Vec::new(), Vec::new());
    for (path, batch) in batches {
        parts.push((path, labels.len()));
        labels.extend(batch.labels);
        pixels.extend(batch.pixels);
    }
    let class_names = match names {
        Some(names) => names,
        None => default_names(&labels, fine, &first)?,
    };
    let source = ArraySource {
        pixels: Pixels::U8(pixels),
        layout: Layout {
            channels: 3,
            height: 32,
            width: 32,
            channels_last: false,
        },
        offset: 0,
        stride: CIFAR_PIXELS,
        class_names,
        labels,
        parts,
    };
    source.validate()?;
    Ok(Box::new(source))
}

/// Parse one in-memory python batch and, optionally, its meta pickle
/// (`origin` names the batch in messages). Without meta, class names are the
/// CIFAR-10 names, or `"0".."99"` for CIFAR-100 batches.
pub fn parse_cifar_py(
    batch: &[u8],
    origin: &Path,
    meta: Option<&[u8]>,
) -> Result<Box<dyn ImageSource>> {
    let parsed = parse_batch(batch, origin)?;
    let names = meta.map(|m| parse_meta(m, origin)).transpose()?;
    build(vec![(origin.to_path_buf(), parsed)], names)
}

/// Open python batch files as one data set, in the order given, with class
/// names from `meta` when given.
pub fn open_cifar_py(batches: &[PathBuf], meta: Option<&Path>) -> Result<Box<dyn ImageSource>> {
    let parsed = batches
        .iter()
        .map(|p| Ok((p.clone(), parse_batch(&read_file(p)?, p)?)))
        .collect::<Result<Vec<_>>>()?;
    let names = meta.map(|m| parse_meta(&read_file(m)?, m)).transpose()?;
    build(parsed, names)
}
