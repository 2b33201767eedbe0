//! CIFAR-10 / CIFAR-100 binary batches (`*.bin`).
//!
//! Each record is the label byte(s) followed by 3072 pixel bytes: the red,
//! green and blue 32x32 planes, rows top to bottom. CIFAR-10 has one label
//! byte; CIFAR-100 has two (coarse, fine) and the fine label is used.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::source::{check_labels, index_names, ArraySource, ImageSource, Layout, Pixels};
use crate::util::{file_name, read_file, read_names, sibling};

/// Pixel bytes per CIFAR image (3 x 32 x 32).
pub const CIFAR_PIXELS: usize = 3 * 32 * 32;

/// The CIFAR-10 class names in label order (Krizhevsky 2009,
/// `batches.meta.txt`); used when no names file is found.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Which CIFAR binary record layout a file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CifarVariant {
    /// 1 label byte + 3072 pixel bytes (3073-byte records), 10 classes.
    Cifar10,
    /// 2 label bytes (coarse, fine) + 3072 pixel bytes (3074-byte records),
    /// 100 fine classes.
    Cifar100,
}

impl CifarVariant {
    /// Label bytes per record.
    pub fn label_bytes(self) -> usize {
        match self {
            CifarVariant::Cifar10 => 1,
            CifarVariant::Cifar100 => 2,
        }
    }

    /// Bytes per record.
    pub fn record_size(self) -> usize {
        self.label_bytes() + CIFAR_PIXELS
    }

    /// Number of (fine) classes.
    pub fn classes(self) -> usize {
        match self {
            CifarVariant::Cifar10 => 10,
            CifarVariant::Cifar100 => 100,
        }
    }

    fn name(self) -> &'static str {
        match self {
            CifarVariant::Cifar10 => "CIFAR-10",
            CifarVariant::Cifar100 => "CIFAR-100",
        }
    }

    /// The names file shipped next to the batches.
    fn names_file(self) -> &'static str {
        match self {
            CifarVariant::Cifar10 => "batches.meta.txt",
            CifarVariant::Cifar100 => "fine_label_names.txt",
        }
    }

    /// Guess from a file name: CIFAR-100 ships `train.bin`/`test.bin`,
    /// CIFAR-10 `data_batch_N.bin`/`test_batch.bin`.
    fn from_name(path: &Path) -> Option<Self> {
        let name = file_name(path);
        if name == "train.bin"
            || name == "test.bin"
            || sibling(path, "fine_label_names.txt").is_file()
        {
            Some(CifarVariant::Cifar100)
        } else if name.starts_with("data_batch") || name.starts_with("test_batch") {
            Some(CifarVariant::Cifar10)
        } else {
            None
        }
    }
}

/// Decide the record layout of a `size`-byte file: by size when only one
/// layout divides it, else by file name (CIFAR-10 when the name says nothing).
pub fn detect_variant(size: usize, path: &Path) -> Result<CifarVariant> {
    let fits = |v: CifarVariant| size.checked_rem(v.record_size()) == Some(0);
    let by_name = CifarVariant::from_name(path);
    match (
        size,
        fits(CifarVariant::Cifar10),
        fits(CifarVariant::Cifar100),
    ) {
        (0, ..) => Err(DataError::invalid(
            path,
            "file is empty; expected CIFAR binary records",
        )),
        (_, true, true) => Ok(by_name.unwrap_or(CifarVariant::Cifar10)),
        (_, true, false) => Ok(CifarVariant::Cifar10),
        (_, false, true) => Ok(CifarVariant::Cifar100),
        (_, false, false) => Err(DataError::invalid(path, size_message(size, by_name))),
    }
}

fn size_message(size: usize, by_name: Option<CifarVariant>) -> String {
    let v = by_name.unwrap_or(CifarVariant::Cifar10);
    format!(
        "size {size} is not a multiple of the {}-byte {} record ({} label byte(s) + 3072 pixel bytes), nor of the {}-byte {} record; the file is truncated or not a CIFAR binary batch: download it again, or use --format for another format",
        v.record_size(),
        v.name(),
        v.label_bytes(),
        other(v).record_size(),
        other(v).name(),
    )
}

fn other(v: CifarVariant) -> CifarVariant {
    match v {
        CifarVariant::Cifar10 => CifarVariant::Cifar100,
        CifarVariant::Cifar100 => CifarVariant::Cifar10,
    }
}

/// Labels (fine labels for CIFAR-100) of the records in `bytes`.
fn record_labels(bytes: &[u8], variant: CifarVariant) -> Vec<usize> {
    bytes
        .chunks_exact(variant.record_size())
        .map(|r| usize::from(r[variant.label_bytes() - 1]))
        .collect()
}

/// Parse one in-memory batch (`origin` names it in messages and in
/// [`ImageSource::describe`]). Class names are the standard CIFAR-10 names or
/// `"0".."99"`; no names file is read.
pub fn parse_cifar_bin(bytes: Vec<u8>, origin: &Path) -> Result<Box<dyn ImageSource>> {
    let variant = detect_variant(bytes.len(), origin)?;
    let names = default_names(variant);
    Ok(Box::new(build(
        vec![(origin.to_path_buf(), bytes)],
        variant,
        names,
    )?))
}

/// Open CIFAR binary batch files as one data set, in the order given. All
/// files must use the same record layout. Class names come from
/// `batches.meta.txt` (CIFAR-10) or `fine_label_names.txt` (CIFAR-100) next to
/// the first file when present.
pub fn open_cifar_bin(files: &[PathBuf]) -> Result<Box<dyn ImageSource>> {
    let Some(first) = files.first() else {
        return Err(DataError::Option("no CIFAR batch files given".into()));
    };
    let mut parts = Vec::with_capacity(files.len());
    let mut variant = None;
    for path in files {
        let bytes = read_file(path)?;
        let v = detect_variant(bytes.len(), path)?;
        if variant.is_some_and(|w| w != v) {
            return Err(DataError::invalid(
                path,
                format!(
                    "is a {} batch but {} is not; do not mix the two data sets",
                    v.name(),
                    first.display()
                ),
            ));
        }
        variant = Some(v);
        parts.push((path.clone(), bytes));
    }
    let variant = variant.unwrap_or(CifarVariant::Cifar10);
    let names_path = sibling(first, variant.names_file());
    let names = if names_path.is_file() {
        read_names(&names_path)?
    } else {
        default_names(variant)
    };
    Ok(Box::new(build(parts, variant, names)?))
}

fn default_names(variant: CifarVariant) -> Vec<String> {
    match variant {
        CifarVariant::Cifar10 => CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
        CifarVariant::Cifar100 => index_names(100),
    }
}

fn build(
    files: Vec<(PathBuf, Vec<u8>)>,
    variant: CifarVariant,
    class_names: Vec<String>,
) -> Result<ArraySource> {
    let mut data = Vec::new();
    let mut labels = Vec::new();
    let mut parts = Vec::with_capacity(files.len());
    for (path, bytes) in files {
        let file_labels = record_labels(&bytes, variant);
        check_labels(&path, &file_labels, &class_names)?;
        parts.push((path, labels.len()));
        labels.extend(file_labels);
        if data.is_empty() {
            data = bytes;
        } else {
            data.extend_from_slice(&bytes);
        }
    }
    let source = ArraySource {
        pixels: Pixels::U8(data),
        layout: Layout {
            channels: 3,
            height: 32,
            width: 32,
            channels_last: false,
        },
        offset: variant.label_bytes(),
        stride: variant.record_size(),
        labels,
        class_names,
        parts,
    };
    source.validate()?;
    Ok(source)
}
