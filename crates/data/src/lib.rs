//! Image data sets for stiffness analysis: CIFAR-10/100 (binary and python
//! batches), torchvision-style image folders, Tiny-ImageNet, MNIST-style IDX
//! files and `.npy` arrays, with torchvision-style transforms.
//!
//! Every reader yields an [`ImageSource`]: labels and class names are known
//! at open time, images are decoded one at a time by [`ImageSource::load`]
//! (an image folder of 50,000 JPEGs is only listed when opened). Sources are
//! `Send + Sync`, so callers may load in parallel. A [`Dataset`] pairs a
//! source with a [`Transform`].
//!
//! ```no_run
//! use std::path::Path;
//! use stiffness_data::{Dataset, Format, Normalize, Split, Transform};
//!
//! let transform = Transform::normalize("cifar10".parse::<Normalize>()?);
//! let data = Dataset::open_split(Path::new("cifar-10-batches-bin"), Format::Auto, Split::Test, transform)?;
//! let sample = data.get(0)?;
//! assert_eq!(sample.shape, [3, 32, 32]);
//! # Ok::<(), stiffness_data::DataError>(())
//! ```
//!
//! # Choosing files: paths, formats and splits
//!
//! [`Dataset::open_split`] takes a path, a [`Format`] (`Auto` to detect) and
//! a [`Split`] (`Test` unless asked; [`Dataset::open`] always uses `Test`).
//! The split only matters when the path is a folder holding both splits; a
//! path naming a file reads that file.
//!
//! A **file** is read by its name, then by its first bytes:
//! * `*.npy` -> npy images; the labels file is found by replacing the last
//!   `images` in the name with `labels` (`test_images.npy` ->
//!   `test_labels.npy`) or a leading `x_`/`X_` with `y_`;
//! * a name containing `idx3` -> IDX images; the labels file has `idx1` for
//!   `idx3` and `labels` for `images` (`t10k-images-idx3-ubyte.gz` ->
//!   `t10k-labels-idx1-ubyte.gz`), with or without `.gz`;
//! * `*.bin` -> CIFAR binary batch; CIFAR-10 (3073-byte records) or
//!   CIFAR-100 (3074-byte records) by which record size divides the file
//!   size, by name when both do (`train.bin`/`test.bin` are CIFAR-100);
//! * otherwise the first bytes: `\x93NUMPY` npy, `0x80` pickle (CIFAR python
//!   batch), `00 00 08` IDX.
//!
//! **Images and labels given explicitly**: `IMAGES:LABELS` (e.g.
//! `x.npy:y.npy`, `imgs-idx3-ubyte:labs-idx1-ubyte`) for npy and IDX data,
//! used when the path as a whole does not exist.
//!
//! A **folder** is searched for, in this order (with `Auto`; an explicit
//! format searches only for itself):
//! 1. CIFAR binary: train `data_batch_<n>.bin` (all, numeric order) else
//!    `train.bin`; test `test_batch.bin` else `test.bin` (CIFAR-100). Names
//!    from `batches.meta.txt` / `fine_label_names.txt` when present.
//! 2. CIFAR python: the same names without `.bin`; names from `batches.meta`
//!    (`label_names`) or `meta` (`fine_label_names`).
//! 3. IDX: a file starting with `train` (test: `t10k` or `test`) containing
//!    `idx3`, and its labels file.
//! 4. npy: `<split>_images.npy` + `<split>_labels.npy`, else `images.npy` +
//!    `labels.npy`.
//! 5. Tiny-ImageNet ([`TinyImagenet`]): `wnids.txt` and `train/` or
//!    `val/val_annotations.txt`; the train split is `train/<wnid>/images`,
//!    the test split the labelled `val/images` (Tiny-ImageNet's `test/` has
//!    no labels). Checked before image folders, which would otherwise read
//!    the root as a folder of `train`/`val`/`test` splits.
//! 6. Image folder: when every sub-folder is named `train`, `test`, `val`,
//!    `valid` or `validation`, the `<split>` sub-folder; otherwise the folder
//!    itself, whose sub-folders are the classes.
//!
//! # Choosing classes
//! [`Classes`] (`--classes`: `all`, `N` or a file naming one class per line)
//! keeps the images of some classes only and renumbers their labels
//! `0..K-1` in the selection's order; it works for every format (image
//! folders and Tiny-ImageNet do not list the folders left out).
//! `--classes 200` reads the standard 200 classes of a Tiny-ImageNet copy
//! whose `wnids.txt` lists more.
//!
//! # Pixel values
//! Readers return CHW `f32` values in `[0, 1]` (`ToTensor`): bytes are
//! divided by 255; float npy data are taken as they are. Image folders
//! and Tiny-ImageNet always give 3 channels; IDX gives 1; CIFAR 3; npy what
//! the array holds.

mod cifar_bin;
mod cifar_py;
mod classes;
mod dataset;
mod error;
mod folder;
#[doc(hidden)]
pub mod fuzzing;
mod idx;
mod npy;
mod open;
mod source;
mod tiny_imagenet;
mod transform;
mod util;

pub use cifar_bin::{
    detect_variant, open_cifar_bin, parse_cifar_bin, CifarVariant, CIFAR10_CLASSES, CIFAR_PIXELS,
};
pub use cifar_py::{open_cifar_py, parse_cifar_py};
pub use classes::Classes;
pub use dataset::{Dataset, Sample};
pub use error::{check_finite, DataError, Result};
pub use folder::{
    decode_rgb, is_image_file, load_rgb, ImageFolder, IMAGE_EXTENSIONS, MAX_DECODE_BYTES,
    MAX_IMAGE_SIDE,
};
pub use idx::{idx_labels_path, open_idx, parse_idx_pair, FASHION_MNIST_CLASSES};
pub use npy::{npy_labels_path, open_npy, parse_npy_pair};
pub use open::{resolve, DataOptions, Format, Resolved, Split};
pub use source::{ImageSource, RawImage};
pub use tiny_imagenet::{is_tiny_imagenet, TinyImagenet, VAL_ANNOTATIONS, WNIDS_FILE, WORDS_FILE};
pub use transform::{
    center_crop, center_crop_offset, replicate_channels, resize_output_size, resize_shorter,
    Normalize, Transform,
};
