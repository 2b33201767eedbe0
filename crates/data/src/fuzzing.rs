//! Entry points of the fuzz targets in `crates/data/fuzz`, shared with the
//! regression corpus that `cargo test` replays (`tests/fuzz_regressions.rs`).
//! Each parses, then loads every image (at most 64) of what parsed; errors
//! are fine, a panic is a bug.

use std::path::Path;

use crate::source::ImageSource;
use crate::transform::{Normalize, Transform};
use crate::Result;

/// Load every image of a successfully parsed source.
fn exercise(result: Result<Box<dyn ImageSource>>) {
    if let Ok(source) = result {
        for i in 0..source.len().min(64) {
            let _ = source.load(i);
            assert!(source.label(i) < source.class_names().len());
        }
    }
}

/// Split the input in two at a position given by its first byte.
fn split_two(data: &[u8]) -> (&[u8], &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return (&[], &[]);
    };
    let at = (usize::from(first) * rest.len()) / 255;
    rest.split_at(at.min(rest.len()))
}

/// CIFAR-10/100 binary batches.
pub fn cifar_bin(data: &[u8]) {
    exercise(crate::parse_cifar_bin(data.to_vec(), Path::new("fuzz.bin")));
}

/// CIFAR python (pickle) batches, with and without a meta file.
pub fn cifar_py(data: &[u8]) {
    let (batch, meta) = split_two(data);
    let test_batch = Path::new("test_batch");
    exercise(crate::parse_cifar_py(batch, test_batch, Some(meta)));
    exercise(crate::parse_cifar_py(data, test_batch, None));
}

/// IDX images and labels (plain or gzipped).
pub fn idx(data: &[u8]) {
    let (images, labels) = split_two(data);
    exercise(crate::parse_idx_pair(
        images,
        labels,
        Path::new("images-idx3-ubyte"),
        Path::new("labels-idx1-ubyte"),
    ));
}

/// npy images and labels: parsing, layout detection and loading.
pub fn npy_dataset(data: &[u8]) {
    let (images, labels) = split_two(data);
    exercise(crate::parse_npy_pair(
        images,
        labels,
        Path::new("images.npy"),
        Path::new("labels.npy"),
    ));
}

/// An ImageFolder file (JPEG or PNG, format sniffed from the bytes), then
/// `--resize 8 --crop 8 --normalize imagenet`.
pub fn image_decode(data: &[u8]) {
    let Ok(image) = crate::decode_rgb(data, Path::new("fuzz.jpg")) else {
        return;
    };
    let transform = Transform {
        resize: Some(8),
        center_crop: Some((8, 8)),
        channels: None,
        normalize: Normalize::imagenet(),
    };
    let _ = transform.apply(image);
}

/// A Tiny-ImageNet root built from the input: `wnids.txt`, `words.txt` and
/// `val/val_annotations.txt` (the input split in three), with empty
/// `train/` and `val/images/`; opened as both splits, with all classes and
/// with the first one. Files are written to a per-process scratch folder.
pub fn tiny_imagenet(data: &[u8]) {
    use crate::classes::Classes;
    use crate::open::Split;
    let (wnids, rest) = split_two(data);
    let (words, annotations) = split_two(rest);
    let root = std::env::temp_dir().join(format!("stiffness-fuzz-tin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let written = std::fs::create_dir_all(root.join("val/images"))
        .and_then(|_| std::fs::create_dir_all(root.join("train")))
        .and_then(|_| std::fs::write(root.join(crate::WNIDS_FILE), wnids))
        .and_then(|_| std::fs::write(root.join(crate::WORDS_FILE), words))
        .and_then(|_| std::fs::write(root.join(crate::VAL_ANNOTATIONS), annotations));
    if written.is_ok() {
        for split in [Split::Train, Split::Test] {
            for classes in [Classes::All, Classes::First(1)] {
                let opened = crate::TinyImagenet::open(&root, split, &classes);
                exercise(opened.map(|t| Box::new(t.into_source()) as Box<dyn ImageSource>));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// A target: its name and entry point.
pub type Target = (&'static str, fn(&[u8]));

/// Every target by name, for the regression replay.
pub const TARGETS: [Target; 6] = [
    ("cifar_bin", cifar_bin),
    ("cifar_py", cifar_py),
    ("idx", idx),
    ("npy_dataset", npy_dataset),
    ("image_decode", image_decode),
    ("tiny_imagenet", tiny_imagenet),
];
