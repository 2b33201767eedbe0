//! IDX files (MNIST, Fashion-MNIST): `*-idx3-ubyte` images and
//! `*-idx1-ubyte` labels, plain or gzipped (detected by the magic `1f 8b`).
//!
//! Header: two zero bytes, a type byte (only `0x08`, unsigned byte, is
//! accepted), the number of dimensions, then each dimension as a big-endian
//! u32; the data follow in row-major order.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::source::{numeric_names, ArraySource, ImageSource, Layout, Pixels};
use crate::util::{at_end, maybe_gunzip, read_file, read_prefix};

/// The Fashion-MNIST class names in label order (Xiao et al. 2017).
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// A parsed IDX file: dimensions and the unsigned-byte data.
struct IdxArray {
    dims: Vec<usize>,
    data: Vec<u8>,
}

/// Parse an IDX file (gzipped or not) that must have `ndim` dimensions.
fn parse_idx(bytes: &[u8], ndim: usize, path: &Path) -> Result<IdxArray> {
    let mut reader = maybe_gunzip(bytes);
    let header = read_prefix(&mut reader, 4, path)?;
    if header.len() < 4 || header[..2] != [0, 0] {
        return Err(DataError::invalid(path, "not an IDX file (it does not start with the bytes 00 00); pass an MNIST-style *-idx3-ubyte / *-idx1-ubyte file"));
    }
    if header[2] != 0x08 {
        return Err(DataError::invalid(
            path,
            format!(
                "IDX element type 0x{:02x} is not supported; only unsigned bytes (0x08) are",
                header[2]
            ),
        ));
    }
    if usize::from(header[3]) != ndim {
        return Err(DataError::invalid(
            path,
            format!(
                "IDX file has {} dimensions, expected {ndim} ({})",
                header[3],
                if ndim == 1 {
                    "labels: N"
                } else {
                    "images: N, rows, columns"
                }
            ),
        ));
    }
    let dim_bytes = read_full(&mut reader, 4 * ndim, path)?;
    let dims: Vec<usize> = dim_bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let total = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let total = total.ok_or_else(|| {
        DataError::invalid(path, "IDX dimensions overflow; the header is corrupt")
    })?;
    let data = read_rest(&mut reader, total, path)?;
    Ok(IdxArray { dims, data })
}

/// Read `n` bytes; an error if the data end sooner.
fn read_full(reader: &mut dyn std::io::Read, n: usize, path: &Path) -> Result<Vec<u8>> {
    let data = read_prefix(reader, n, path)?;
    if data.len() < n {
        let msg = format!("IDX data end after {} of the {n} bytes the header announces; the file is truncated, download it again", data.len());
        return Err(DataError::invalid(path, msg));
    }
    Ok(data)
}

/// Read the final `n` bytes and check that nothing follows.
fn read_rest(reader: &mut dyn std::io::Read, n: usize, path: &Path) -> Result<Vec<u8>> {
    let data = read_full(reader, n, path)?;
    if !at_end(reader, path)? {
        return Err(DataError::invalid(path, format!("IDX file has more than the {n} data bytes its header announces; the header is corrupt")));
    }
    Ok(data)
}

/// Parse in-memory IDX images (N, rows, columns) and labels (N), each plain
/// or gzipped. `origin` names the images in messages; class names are the
/// Fashion-MNIST names when `origin` contains "fashion" (any case), else the
/// digits "0".."9".
pub fn parse_idx_pair(
    images: &[u8],
    labels: &[u8],
    origin: &Path,
    labels_origin: &Path,
) -> Result<Box<dyn ImageSource>> {
    let img = parse_idx(images, 3, origin)?;
    let lab = parse_idx(labels, 1, labels_origin)?;
    if img.dims[0] != lab.dims[0] {
        return Err(DataError::invalid(
            labels_origin,
            format!(
                "has {} labels but {} has {} images; pair the files of the same split",
                lab.dims[0],
                origin.display(),
                img.dims[0]
            ),
        ));
    }
    let labels: Vec<usize> = lab.data.iter().map(|&l| usize::from(l)).collect();
    let class_names = if origin.to_string_lossy().to_lowercase().contains("fashion") {
        FASHION_MNIST_CLASSES
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        numeric_names(&labels, 10, labels_origin)?
    };
    let layout = Layout {
        channels: 1,
        height: img.dims[1],
        width: img.dims[2],
        channels_last: false,
    };
    let source = ArraySource {
        pixels: Pixels::U8(img.data),
        layout,
        offset: 0,
        stride: layout.size(),
        labels,
        class_names,
        parts: vec![(origin.to_path_buf(), 0)],
    };
    source.validate()?;
    Ok(Box::new(source))
}

/// Open an IDX images file and its labels file.
pub fn open_idx(images: &Path, labels: &Path) -> Result<Box<dyn ImageSource>> {
    parse_idx_pair(&read_file(images)?, &read_file(labels)?, images, labels)
}

/// The labels file that goes with an IDX images file: `idx3` becomes `idx1`
/// and `images` becomes `labels` in the file name
/// (`t10k-images-idx3-ubyte.gz` -> `t10k-labels-idx1-ubyte.gz`); when that
/// file is missing, the name with `.gz` added or removed is tried.
pub fn idx_labels_path(images: &Path) -> Option<PathBuf> {
    let name = crate::util::file_name(images);
    let renamed = name.replace("idx3", "idx1").replace("images", "labels");
    if renamed == name {
        return None;
    }
    let toggled = match renamed.strip_suffix(".gz") {
        Some(plain) => plain.to_owned(),
        None => format!("{renamed}.gz"),
    };
    [renamed, toggled]
        .into_iter()
        .map(|n| images.with_file_name(n))
        .find(|p| p.is_file())
}
