//! Opening a data set from a path: [`Format`], [`Split`] and the detection
//! rules (see the crate documentation).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::cifar_bin::open_cifar_bin;
use crate::cifar_py::open_cifar_py;
use crate::classes::{restrict, Classes};
use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::folder::ImageFolder;
use crate::idx::{idx_labels_path, open_idx};
use crate::npy::{npy_labels_path, open_npy};
use crate::source::ImageSource;
use crate::tiny_imagenet::{is_tiny_imagenet, TinyImagenet};
use crate::transform::Transform;
use crate::util::file_name;

/// How to read a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Decide from the path (see the crate documentation).
    #[default]
    Auto,
    /// CIFAR-10/100 binary batches (`*.bin`).
    CifarBin,
    /// CIFAR-10/100 python (pickle) batches.
    CifarPy,
    /// `root/<class>/<image>` folders of JPEG/PNG files.
    ImageFolder,
    /// Tiny-ImageNet's native layout (`wnids.txt`, `train/`, `val/`).
    TinyImagenet,
    /// MNIST-style IDX images + labels, optionally gzipped.
    Idx,
    /// `.npy` images + labels.
    Npy,
}

impl Format {
    /// The names [`Format::from_str`] accepts, for help texts.
    pub const NAMES: [&'static str; 7] = [
        "auto",
        "cifar-bin",
        "cifar-py",
        "image-folder",
        "tiny-imagenet",
        "idx",
        "npy",
    ];
}

impl FromStr for Format {
    type Err = DataError;

    /// One of [`Format::NAMES`] (`folder`/`imagefolder` also mean
    /// `image-folder`, `tinyimagenet` `tiny-imagenet`; `_` may replace `-`;
    /// any case).
    fn from_str(s: &str) -> Result<Self> {
        Ok(
            match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
                "auto" => Format::Auto,
                "cifar-bin" => Format::CifarBin,
                "cifar-py" => Format::CifarPy,
                "image-folder" | "imagefolder" | "folder" => Format::ImageFolder,
                "tiny-imagenet" | "tinyimagenet" => Format::TinyImagenet,
                "idx" => Format::Idx,
                "npy" => Format::Npy,
                _ => {
                    return Err(DataError::Option(format!(
                        "unknown data format {s:?}; use one of {}",
                        Format::NAMES.join(", ")
                    )))
                }
            },
        )
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = [
            Format::Auto,
            Format::CifarBin,
            Format::CifarPy,
            Format::ImageFolder,
            Format::TinyImagenet,
            Format::Idx,
            Format::Npy,
        ]
        .iter()
        .position(|x| x == self)
        .unwrap_or(0);
        f.write_str(Format::NAMES[i])
    }
}

/// Which split to read when a path is a folder holding both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Split {
    /// The training split.
    Train,
    /// The test split (the default); for Tiny-ImageNet, whose test images
    /// have no labels, the labelled validation images.
    #[default]
    Test,
}

impl FromStr for Split {
    type Err = DataError;

    /// `train` or `test`.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "train" => Ok(Split::Train),
            "test" => Ok(Split::Test),
            _ => Err(DataError::Option(format!(
                "unknown split {s:?}; use train or test"
            ))),
        }
    }
}

impl Split {
    fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// The files a path resolved to; see [`resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// CIFAR binary batches, read in this order.
    CifarBin(Vec<PathBuf>),
    /// CIFAR python batches and the meta file with the class names, if any.
    CifarPy {
        /// Batch files in order.
        batches: Vec<PathBuf>,
        /// `batches.meta` (CIFAR-10) or `meta` (CIFAR-100).
        meta: Option<PathBuf>,
    },
    /// An image folder root.
    ImageFolder(PathBuf),
    /// A Tiny-ImageNet root and the split to read.
    TinyImagenet {
        /// The folder holding `wnids.txt`.
        root: PathBuf,
        /// `Train`: `train/`; `Test`: the labelled `val/` images.
        split: Split,
    },
    /// IDX images and labels.
    Idx {
        /// `*-idx3-ubyte[.gz]`.
        images: PathBuf,
        /// `*-idx1-ubyte[.gz]`.
        labels: PathBuf,
    },
    /// npy images and labels.
    Npy {
        /// Images array.
        images: PathBuf,
        /// Labels array.
        labels: PathBuf,
    },
}

impl Resolved {
    /// Open the files as an [`ImageSource`].
    pub fn open(&self) -> Result<Box<dyn ImageSource>> {
        self.open_classes(&Classes::All)
    }

    /// Open the files as an [`ImageSource`] of the chosen classes only
    /// (relabelled `0..K-1` in the selection's order; see [`Classes`]).
    /// Image folders and Tiny-ImageNet do not list the folders of classes
    /// left out; the other formats are read whole, then filtered.
    pub fn open_classes(&self, classes: &Classes) -> Result<Box<dyn ImageSource>> {
        let source = match self {
            Resolved::ImageFolder(root) => {
                return Ok(Box::new(ImageFolder::open_classes(root, classes)?))
            }
            Resolved::TinyImagenet { root, split } => {
                return Ok(Box::new(
                    TinyImagenet::open(root, *split, classes)?.into_source(),
                ))
            }
            Resolved::CifarBin(files) => open_cifar_bin(files)?,
            Resolved::CifarPy { batches, meta } => open_cifar_py(batches, meta.as_deref())?,
            Resolved::Idx { images, labels } => open_idx(images, labels)?,
            Resolved::Npy { images, labels } => open_npy(images, labels)?,
        };
        restrict(source, classes, self.main_path())
    }

    /// The file or folder that names the data in messages.
    fn main_path(&self) -> &Path {
        match self {
            Resolved::CifarBin(files) => files.first().map_or(Path::new(""), |p| p.as_path()),
            Resolved::CifarPy { batches, .. } => {
                batches.first().map_or(Path::new(""), |p| p.as_path())
            }
            Resolved::ImageFolder(root) | Resolved::TinyImagenet { root, .. } => root,
            Resolved::Idx { images, .. } | Resolved::Npy { images, .. } => images,
        }
    }
}

impl Dataset {
    /// Open `path` (test split for folders holding both splits); see
    /// [`Dataset::open_split`].
    pub fn open(path: &Path, format: Format, transform: Transform) -> Result<Dataset> {
        Dataset::open_split(path, format, Split::Test, transform)
    }

    /// Open `path` as `format` (see the crate documentation for the detection
    /// rules); `split` picks the files when `path` is a folder holding both
    /// splits and is ignored when `path` names files.
    pub fn open_split(
        path: &Path,
        format: Format,
        split: Split,
        transform: Transform,
    ) -> Result<Dataset> {
        Dataset::open_classes(path, format, split, &Classes::All, transform)
    }

    /// [`Dataset::open_split`] restricted to some classes (see [`Classes`]).
    pub fn open_classes(
        path: &Path,
        format: Format,
        split: Split,
        classes: &Classes,
        transform: Transform,
    ) -> Result<Dataset> {
        let source = resolve(path, format, split)?.open_classes(classes)?;
        let data = Dataset::new(source, transform);
        data.require_images(path)?;
        Ok(data)
    }
}

/// How to open a data set, as the user wrote it (command-line options, and
/// what a manifest records): each field is parsed when [`DataOptions::open`]
/// is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataOptions {
    /// A [`Format`] name, e.g. `auto`.
    pub format: String,
    /// A [`Split`] name: `train` or `test`.
    pub split: String,
    /// A [`Normalize`](crate::Normalize): `imagenet`, `cifar10`, `none`, or
    /// `M1,M2,M3:S1,S2,S3`.
    pub normalize: String,
    /// Image folders: resize the shorter side to this many pixels.
    pub resize: Option<usize>,
    /// Image folders: centre-crop to SIZE x SIZE.
    pub crop: Option<usize>,
    /// Replicate a greyscale channel to this many channels.
    pub channels: Option<usize>,
    /// A [`Classes`] selection: `all`, `N` (the first N classes of the
    /// data set's class list) or the path of a file naming one class per
    /// line. For Tiny-ImageNet, `200` gives the standard 200 classes from a
    /// copy whose `wnids.txt` lists more.
    pub classes: String,
}

impl Default for DataOptions {
    /// Auto-detected format, the test split, no normalisation or resizing,
    /// every class.
    fn default() -> Self {
        Self {
            format: "auto".into(),
            split: "test".into(),
            normalize: "none".into(),
            resize: None,
            crop: None,
            channels: None,
            classes: "all".into(),
        }
    }
}

impl DataOptions {
    /// Open `path` with these options ([`Dataset::open_split`]).
    pub fn open(&self, path: &Path) -> Result<Dataset> {
        let transform = Transform {
            resize: self.resize,
            center_crop: self.crop.map(|c| (c, c)),
            channels: self.channels,
            normalize: self.normalize.parse()?,
        };
        Dataset::open_classes(
            path,
            self.format.parse()?,
            self.split.parse()?,
            &self.classes.parse()?,
            transform,
        )
    }
}

/// Work out which files `path` means (see the crate documentation).
pub fn resolve(path: &Path, format: Format, split: Split) -> Result<Resolved> {
    if path.is_dir() {
        resolve_dir(path, format, split)
    } else if path.is_file() {
        resolve_file(path, format)
    } else if let Some((images, labels)) = split_pair(path) {
        resolve_pair(images, labels, format)
    } else {
        Err(DataError::invalid(path, "no such file or folder"))
    }
}

/// `IMAGES:LABELS` when the images file exists.
fn split_pair(path: &Path) -> Option<(PathBuf, PathBuf)> {
    let text = path.to_str()?;
    let (a, b) = text.rsplit_once(':')?;
    let (a, b) = (PathBuf::from(a), PathBuf::from(b));
    (a.is_file() && !b.as_os_str().is_empty()).then_some((a, b))
}

fn resolve_pair(images: PathBuf, labels: PathBuf, format: Format) -> Result<Resolved> {
    let format = match format {
        Format::Auto => detect_file(&images)?,
        f => f,
    };
    match format {
        Format::Idx => Ok(Resolved::Idx { images, labels }),
        Format::Npy => Ok(Resolved::Npy { images, labels }),
        f => Err(DataError::Option(format!(
            "IMAGES:LABELS paths are for idx and npy data, not {f}"
        ))),
    }
}

fn resolve_file(path: &Path, format: Format) -> Result<Resolved> {
    let format = match format {
        Format::Auto => detect_file(path)?,
        f => f,
    };
    let path = path.to_path_buf();
    match format {
        Format::CifarBin => Ok(Resolved::CifarBin(vec![path])),
        Format::CifarPy => {
            let meta = ["batches.meta", "meta"]
                .iter()
                .map(|m| path.with_file_name(m))
                .find(|p| p.is_file());
            Ok(Resolved::CifarPy {
                batches: vec![path],
                meta,
            })
        }
        Format::Idx => {
            let labels = idx_labels_path(&path)
                .ok_or_else(|| missing_labels(&path, "t10k-labels-idx1-ubyte.gz"))?;
            Ok(Resolved::Idx {
                images: path,
                labels,
            })
        }
        Format::Npy => {
            let labels = npy_labels_path(&path)
                .filter(|p| p.is_file())
                .ok_or_else(|| missing_labels(&path, "labels.npy"))?;
            Ok(Resolved::Npy {
                images: path,
                labels,
            })
        }
        Format::TinyImagenet => Err(DataError::invalid(
            &path,
            "is a file; the tiny-imagenet format needs the folder that holds wnids.txt, train/ and val/",
        )),
        Format::ImageFolder | Format::Auto => Err(DataError::invalid(
            &path,
            "is a file; the image-folder format needs a folder ROOT/<class>/<image>",
        )),
    }
}

fn missing_labels(images: &Path, example: &str) -> DataError {
    DataError::invalid(
        images,
        format!("cannot find the labels file for these images; pass both as IMAGES:LABELS, e.g. {}:{example}", images.display()),
    )
}

/// The format of a single file, from its name and then its first bytes.
fn detect_file(path: &Path) -> Result<Format> {
    let name = file_name(path).to_lowercase();
    if name.ends_with(".npy") {
        return Ok(Format::Npy);
    }
    if name.contains("idx3") || name.contains("idx1") {
        return Ok(Format::Idx);
    }
    if name.ends_with(".bin") {
        return Ok(Format::CifarBin);
    }
    let head = read_head(path)?;
    if head.starts_with(b"\x93NUMPY") {
        Ok(Format::Npy)
    } else if head.first() == Some(&0x80) {
        Ok(Format::CifarPy)
    } else if head.starts_with(&[0, 0, 8]) {
        Ok(Format::Idx)
    } else {
        Err(DataError::invalid(
            path,
            format!(
                "cannot tell the data format from the name or the first bytes; pass --format ({})",
                Format::NAMES[1..].join(", ")
            ),
        ))
    }
}

fn read_head(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::with_capacity(8);
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    file.take(8)
        .read_to_end(&mut head)
        .map_err(|e| DataError::io(path, e))?;
    Ok(head)
}

/// The formats tried, in order, for a folder with `--format auto`.
const FOLDER_ORDER: [Format; 6] = [
    Format::CifarBin,
    Format::CifarPy,
    Format::Idx,
    Format::Npy,
    Format::TinyImagenet,
    Format::ImageFolder,
];

fn resolve_dir(dir: &Path, format: Format, split: Split) -> Result<Resolved> {
    if format == Format::TinyImagenet {
        // Asked for explicitly: opening names what is missing.
        return Ok(Resolved::TinyImagenet {
            root: dir.to_path_buf(),
            split,
        });
    }
    let formats: &[Format] = match format {
        Format::Auto => &FOLDER_ORDER,
        f => std::slice::from_ref(
            FOLDER_ORDER
                .iter()
                .find(|&&x| x == f)
                .unwrap_or(&Format::ImageFolder),
        ),
    };
    let names = dir_file_names(dir)?;
    for &f in formats {
        if let Some(found) = find_in_dir(dir, &names, f, split)? {
            return Ok(found);
        }
    }
    Err(DataError::invalid(
        dir,
        format!(
            "found no {} data for the {} split here; {}",
            if format == Format::Auto {
                "known".to_string()
            } else {
                format.to_string()
            },
            split.name(),
            FOLDER_HELP
        ),
    ))
}

const FOLDER_HELP: &str = "expected CIFAR batches (data_batch_1..5[.bin], test_batch[.bin], or CIFAR-100 train[.bin]/test[.bin]), \
IDX files (train-images-idx3-ubyte[.gz], t10k-images-idx3-ubyte[.gz]), npy files (<split>_images.npy or images.npy, with the matching labels), \
a Tiny-ImageNet root (wnids.txt with train/ or val/val_annotations.txt), class folders ROOT/<class>/<image>, or train/ and test/ folders holding class folders";

/// Names of the plain files in `dir`, sorted.
fn dir_file_names(dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut names = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        if path.is_file() {
            names.push(file_name(&path));
        }
    }
    names.sort();
    Ok(names)
}

fn find_in_dir(
    dir: &Path,
    names: &[String],
    format: Format,
    split: Split,
) -> Result<Option<Resolved>> {
    let has = |n: &str| names.iter().any(|x| x == n);
    let found = match format {
        Format::CifarBin => {
            cifar_batches(names, split, ".bin").map(|b| Resolved::CifarBin(join(dir, b)))
        }
        Format::CifarPy => cifar_batches(names, split, "").map(|b| Resolved::CifarPy {
            batches: join(dir, b),
            meta: ["batches.meta", "meta"]
                .into_iter()
                .find(|m| has(m))
                .map(|m| dir.join(m)),
        }),
        Format::Idx => idx_in_dir(dir, names, split),
        Format::Npy => npy_in_dir(dir, split, &has),
        Format::TinyImagenet => is_tiny_imagenet(dir).then(|| Resolved::TinyImagenet {
            root: dir.to_path_buf(),
            split,
        }),
        Format::ImageFolder | Format::Auto => return image_folder_in_dir(dir, split),
    };
    Ok(found)
}

fn join(dir: &Path, names: Vec<String>) -> Vec<PathBuf> {
    names.into_iter().map(|n| dir.join(n)).collect()
}

/// CIFAR batch names for `split` with extension `ext` (`".bin"` or `""`):
/// train: `data_batch_<n>` in numeric order, else `train`; test: `test_batch`,
/// else `test`.
fn cifar_batches(names: &[String], split: Split, ext: &str) -> Option<Vec<String>> {
    let (batch_stem, single) = match split {
        Split::Train => ("data_batch_", "train"),
        Split::Test => ("test_batch", "test"),
    };
    let mut batches: Vec<(u64, &String)> = names
        .iter()
        .filter_map(|n| {
            let stem = n.strip_suffix(ext)?.strip_prefix(batch_stem)?;
            let number = if stem.is_empty() {
                Some(0)
            } else {
                stem.parse().ok()
            };
            number.map(|k| (k, n))
        })
        .collect();
    batches.sort();
    if batches.is_empty() {
        let single = format!("{single}{ext}");
        return names.contains(&single).then(|| vec![single]);
    }
    Some(batches.into_iter().map(|(_, n)| n.clone()).collect())
}

/// `train-images-idx3-ubyte[.gz]` or `t10k-images-idx3-ubyte[.gz]` (any
/// name starting with `train`/`t10k`/`test` and containing `idx3`) with its
/// labels file.
fn idx_in_dir(dir: &Path, names: &[String], split: Split) -> Option<Resolved> {
    let prefixes: &[&str] = match split {
        Split::Train => &["train"],
        Split::Test => &["t10k", "test"],
    };
    names
        .iter()
        .filter(|n| n.contains("idx3") && prefixes.iter().any(|p| n.starts_with(p)))
        .find_map(|n| {
            let images = dir.join(n);
            idx_labels_path(&images).map(|labels| Resolved::Idx { images, labels })
        })
}

/// `<split>_images.npy` + `<split>_labels.npy`, else `images.npy` +
/// `labels.npy`.
fn npy_in_dir(dir: &Path, split: Split, has: &dyn Fn(&str) -> bool) -> Option<Resolved> {
    let split_names = (
        format!("{}_images.npy", split.name()),
        format!("{}_labels.npy", split.name()),
    );
    let plain = ("images.npy".to_string(), "labels.npy".to_string());
    [split_names, plain]
        .into_iter()
        .find(|(i, l)| has(i) && has(l))
        .map(|(i, l)| Resolved::Npy {
            images: dir.join(i),
            labels: dir.join(l),
        })
}

/// Folder names that mark a folder of splits rather than of classes.
const SPLIT_FOLDERS: [&str; 5] = ["train", "test", "val", "valid", "validation"];

/// `dir/<split>` when every sub-folder of `dir` is a split name, else `dir`
/// when it has sub-folders.
fn image_folder_in_dir(dir: &Path, split: Split) -> Result<Option<Resolved>> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut subdirs = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        if path.is_dir() {
            subdirs.push(file_name(&path));
        }
    }
    if subdirs.is_empty() {
        return Ok(None);
    }
    if subdirs.iter().all(|s| SPLIT_FOLDERS.contains(&s.as_str())) {
        let chosen = dir.join(split.name());
        return Ok(chosen.is_dir().then_some(Resolved::ImageFolder(chosen)));
    }
    Ok(Some(Resolved::ImageFolder(dir.to_path_buf())))
}
