//! Images and labels in NumPy `.npy` files.
//!
//! Images: shape `(N, C, H, W)` or `(N, H, W, C)` with `C` 1 or 3, or
//! `(N, H, W)` for one channel. For 4-d arrays the layout is decided by which
//! of axis 1 and axis 3 is 1 or 3: axis 1 only -> NCHW, axis 3 only -> NHWC;
//! both (e.g. `(N, 3, 8, 3)`) or neither is an error. `uint8` data are
//! divided by 255; float data (`f2`, `f4`, `f8`) are taken as already in
//! `[0, 1]`. Labels: a 1-d integer array (`u1`, `i4`, `i8`) of length `N`,
//! values from 0; class names are `"0".."K-1"` for the largest label `K-1`.

use std::path::{Path, PathBuf};

use stiffness_checkpoint::npy::{parse_npy, NpyArray, NpyData};

use crate::error::{DataError, Result};
use crate::source::{numeric_names, ArraySource, ImageSource, Layout, Pixels};
use crate::util::{file_name, read_file};

/// The image layout of a shape, or an error naming `path`.
fn layout_of(shape: &[usize], path: &Path) -> Result<Layout> {
    let rgb = |c: usize| c == 1 || c == 3;
    let layout = |channels, height, width, channels_last| {
        Ok(Layout {
            channels,
            height,
            width,
            channels_last,
        })
    };
    match *shape {
        [_, h, w] => layout(1, h, w, false),
        [_, a, h, w] if rgb(a) && !rgb(w) => layout(a, h, w, false),
        [_, h, w, c] if rgb(c) && !rgb(h) => layout(c, h, w, true),
        [_, a, _, c] if rgb(a) && rgb(c) => Err(DataError::invalid(
            path,
            format!("image shape {shape:?} is ambiguous: axis 1 and axis 3 could both be channels; save the array as (N, C, H, W) with H, W not 1 or 3, or as (N, H, W, C)"),
        )),
        _ => Err(DataError::invalid(
            path,
            format!("image shape {shape:?} is not (N, C, H, W), (N, H, W, C) with C = 1 or 3, or (N, H, W)"),
        )),
    }
}

/// Image values as [`Pixels`].
fn pixels_of(data: NpyData, path: &Path) -> Result<Pixels> {
    match data {
        NpyData::U8(v) => Ok(Pixels::U8(v)),
        NpyData::F32(v) => Ok(Pixels::F32(v)),
        d @ (NpyData::F64(_) | NpyData::F16(_)) => Ok(Pixels::F32(
            d.into_f32()
                .map_err(|e| DataError::invalid(path, e.to_string()))?,
        )),
        other => Err(DataError::invalid(
            path,
            format!(
                "image dtype '{}' is not supported; use uint8 (0..255) or float (0..1)",
                other.descr()
            ),
        )),
    }
}

/// Labels as class indices.
fn labels_of(array: NpyArray, n: usize, path: &Path) -> Result<Vec<usize>> {
    if array.shape != [n] {
        return Err(DataError::invalid(
            path,
            format!(
                "labels have shape {:?}; expected ({n},), one label per image",
                array.shape
            ),
        ));
    }
    let values = array
        .into_i64()
        .map_err(|e| DataError::invalid(path, format!("{e}; labels must be integers")))?;
    values
        .into_iter()
        .map(|v| {
            usize::try_from(v)
                .map_err(|_| DataError::invalid(path, format!("label {v} is negative")))
        })
        .collect()
}

fn parse(bytes: &[u8], path: &Path) -> Result<NpyArray> {
    parse_npy(bytes).map_err(|e| DataError::invalid(path, format!("cannot read npy file: {e}")))
}

/// Parse in-memory images and labels `.npy` files (`origin` and
/// `labels_origin` name them in messages).
pub fn parse_npy_pair(
    images: &[u8],
    labels: &[u8],
    origin: &Path,
    labels_origin: &Path,
) -> Result<Box<dyn ImageSource>> {
    let array = parse(images, origin)?;
    let layout = layout_of(&array.shape, origin)?;
    let labels = labels_of(parse(labels, labels_origin)?, array.shape[0], labels_origin)?;
    let source = ArraySource {
        pixels: pixels_of(array.data, origin)?,
        layout,
        offset: 0,
        stride: layout.size(),
        class_names: numeric_names(&labels, 0, labels_origin)?,
        labels,
        parts: vec![(origin.to_path_buf(), 0)],
    };
    source.validate()?;
    Ok(Box::new(source))
}

/// Open an images `.npy` file and its labels `.npy` file.
pub fn open_npy(images: &Path, labels: &Path) -> Result<Box<dyn ImageSource>> {
    parse_npy_pair(&read_file(images)?, &read_file(labels)?, images, labels)
}

/// The labels file that goes with an images `.npy` file: the last `images`
/// in the file name becomes `labels` (`test_images.npy` ->
/// `test_labels.npy`), or a leading `x_`/`X_` becomes `y_` (`x_test.npy` ->
/// `y_test.npy`). `None` when the name follows neither rule.
pub fn npy_labels_path(images: &Path) -> Option<PathBuf> {
    let name = file_name(images);
    let renamed = if let Some(at) = name.rfind("images") {
        format!("{}labels{}", &name[..at], &name[at + "images".len()..])
    } else if let Some(rest) = name.strip_prefix("x_").or_else(|| name.strip_prefix("X_")) {
        format!("y_{rest}")
    } else {
        return None;
    };
    Some(images.with_file_name(renamed))
}
