//! Tiny-ImageNet in its native layout (the `tiny-imagenet-200` folder as
//! distributed by Stanford CS231n).
//!
//! ```text
//! ROOT/wnids.txt                       one wnid per line: the class order
//! ROOT/words.txt                       wnid<TAB>readable names (optional)
//! ROOT/train/<wnid>/images/*.JPEG      training images (500 per class)
//! ROOT/train/<wnid>/<wnid>_boxes.txt   bounding boxes (ignored)
//! ROOT/val/images/*.JPEG               validation images (50 per class)
//! ROOT/val/val_annotations.txt         file<TAB>wnid<TAB>x<TAB>y<TAB>w<TAB>h
//! ROOT/test/images/*.JPEG              unlabelled: never read
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::classes::{new_labels, Classes};
use crate::error::{DataError, Result};
use crate::folder::{class_files, ImageFolder};
use crate::open::Split;
#[cfg(doc)]
use crate::source::ImageSource;

/// The file listing the classes, relative to the root.
pub const WNIDS_FILE: &str = "wnids.txt";
/// The file with the readable class names, relative to the root.
pub const WORDS_FILE: &str = "words.txt";
/// The validation labels, relative to the root.
pub const VAL_ANNOTATIONS: &str = "val/val_annotations.txt";

/// Whether `dir` looks like a Tiny-ImageNet root: it holds `wnids.txt` and
/// `train/` or `val/val_annotations.txt`.
pub fn is_tiny_imagenet(dir: &Path) -> bool {
    dir.join(WNIDS_FILE).is_file()
        && (dir.join("train").is_dir() || dir.join(VAL_ANNOTATIONS).is_file())
}

/// Tiny-ImageNet images, listed at open time and decoded on
/// [`ImageSource::load`].
///
/// * **Classes** are the lines of `wnids.txt`, in that order (not sorted, so
///   labels differ from a torchvision `ImageFolder` over `train/`, whose
///   classes are the sorted wnids; a [`Classes`] file in sorted order gives
///   those labels). [`Classes`] restricts and reorders them: the copy of the
///   data set this tool was tried on lists 202 wnids, the standard 200 and
///   two extra classes at the end, so `Classes::First(200)` (`--classes
///   200`) gives the standard data set. The default reads every listed class.
/// * **Class names** are the first comma-separated name of the wnid's line
///   in `words.txt` (`n01443537  goldfish, Carassius auratus` -> `goldfish`),
///   short enough for report tables; when two listed classes share that name
///   both get ` (wnid)` appended. Without `words.txt` or a line for the wnid
///   the name is the wnid. Lines of `words.txt` without a tab are ignored.
/// * [`Split::Train`] is `train/<wnid>/**/*.JPEG` (JPEG/PNG files found under
///   the class folder), class by class, files by name.
/// * [`Split::Test`] is the **labelled validation set** `val/images`, labelled
///   by `val/val_annotations.txt` and in its order: Tiny-ImageNet's own
///   `test/` images have no labels and are never read.
/// * Images are converted to RGB as in [`crate::ImageFolder`] (greyscale
///   replicated to 3 channels).
///
/// Refused with a [`DataError`] naming the file: a missing or empty
/// `wnids.txt`, a wnid listed twice or containing a path separator, a
/// selected class without a training folder or without images, an
/// annotation line without 6 fields, naming a wnid absent from `wnids.txt`,
/// naming an image twice or an image that is missing, and a selected class
/// with no validation image. Annotations of classes left out by [`Classes`]
/// are dropped (their images are not checked).
#[derive(Debug, Clone)]
pub struct TinyImagenet {
    /// The listed images: labelled image files, read like an image folder's.
    images: ImageFolder,
    wnids: Vec<String>,
}

impl TinyImagenet {
    /// List `split` of the Tiny-ImageNet root `root`, restricted to
    /// `classes`.
    pub fn open(root: &Path, split: Split, classes: &Classes) -> Result<Self> {
        let wnids_path = root.join(WNIDS_FILE);
        let all_wnids = read_wnids(&wnids_path)?;
        let all_names = read_words(&root.join(WORDS_FILE), &all_wnids)?;
        let chosen = classes.select(&all_wnids, &all_names, &wnids_path)?;
        let mut data = TinyImagenet {
            images: ImageFolder {
                files: Vec::new(),
                labels: Vec::new(),
                class_names: chosen.iter().map(|&k| all_names[k].clone()).collect(),
            },
            wnids: chosen.iter().map(|&k| all_wnids[k].clone()).collect(),
        };
        match split {
            Split::Train => data.list_train(root)?,
            Split::Test => {
                let map = new_labels(&chosen, all_wnids.len());
                data.list_val(root, &all_wnids, &map)?;
            }
        }
        Ok(data)
    }

    /// The wnid of every class, in label order.
    pub fn wnids(&self) -> &[String] {
        &self.wnids
    }

    /// The image files in data set order.
    pub fn files(&self) -> &[PathBuf] {
        &self.images.files
    }

    /// The images as a source (labelled files, decoded like an image folder's).
    pub fn into_source(self) -> ImageFolder {
        self.images
    }

    fn list_train(&mut self, root: &Path) -> Result<()> {
        let train = root.join("train");
        if !train.is_dir() {
            return Err(DataError::invalid(
                &train,
                "missing: the Tiny-ImageNet training split is ROOT/train/<wnid>/images/*.JPEG; \
                 the copy is incomplete, or use --split test for the validation images",
            ));
        }
        for (label, wnid) in self.wnids.iter().enumerate() {
            let dir = train.join(wnid);
            if !dir.is_dir() {
                return Err(DataError::invalid(
                    &dir,
                    format!(
                        "missing: class {wnid} of {WNIDS_FILE} has no training folder; the copy is incomplete \
                         (extract it again), or leave the class out with --classes"
                    ),
                ));
            }
            let files = class_files(&dir)?;
            if files.is_empty() {
                return Err(DataError::invalid(
                    &dir,
                    format!(
                        "class folder of {wnid} has no .JPEG/.jpg/.png image (expected under images/); \
                         add its images or leave the class out with --classes"
                    ),
                ));
            }
            self.images
                .labels
                .extend(std::iter::repeat_n(label, files.len()));
            self.images.files.extend(files);
        }
        Ok(())
    }

    fn list_val(&mut self, root: &Path, wnids: &[String], map: &[Option<usize>]) -> Result<()> {
        let path = root.join(VAL_ANNOTATIONS);
        if !path.is_file() {
            return Err(DataError::invalid(
                &path,
                "missing: the labelled validation images (Tiny-ImageNet's test split has no labels, \
                 so the validation set is read as the test split) are listed in val/val_annotations.txt; \
                 the copy is incomplete, or use --split train",
            ));
        }
        let images = root.join("val").join("images");
        let index: HashMap<&str, usize> = wnids
            .iter()
            .enumerate()
            .map(|(k, w)| (w.as_str(), k))
            .collect();
        let bytes = crate::util::read_file(&path)?;
        let text = String::from_utf8_lossy(&bytes);
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut per_class = vec![0usize; self.wnids.len()];
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.is_empty() {
                continue;
            }
            if fields.len() != 6 {
                return Err(DataError::invalid(
                    &path,
                    format!(
                        "line {line_no} has {} fields; expected 6 (file, wnid, x, y, w, h) separated by tabs; \
                         the file is damaged, extract it again",
                        fields.len()
                    ),
                ));
            }
            let (file, wnid) = (fields[0], fields[1]);
            if file.contains(['/', '\\']) || file == ".." || file == "." {
                return Err(DataError::invalid(
                    &path,
                    format!("line {line_no}: {file:?} is not a file name in val/images"),
                ));
            }
            let Some(&k) = index.get(wnid) else {
                return Err(DataError::invalid(
                    &path,
                    format!(
                        "line {line_no}: wnid {wnid} is not in {}; the annotations belong to another copy \
                         of the data set (use the wnids.txt that came with them)",
                        root.join(WNIDS_FILE).display()
                    ),
                ));
            };
            if let Some(first) = seen.insert(file.to_owned(), line_no) {
                return Err(DataError::invalid(
                    &path,
                    format!("line {line_no}: {file} is already labelled on line {first}; each image must be listed once"),
                ));
            }
            let Some(label) = map[k] else { continue };
            let image = images.join(file);
            if !image.is_file() {
                return Err(DataError::invalid(
                    &image,
                    format!(
                        "missing, but listed on line {line_no} of {}; the copy is incomplete (extract it again)",
                        path.display()
                    ),
                ));
            }
            per_class[label] += 1;
            self.images.files.push(image);
            self.images.labels.push(label);
        }
        if let Some(label) = per_class.iter().position(|&n| n == 0) {
            return Err(DataError::invalid(
                &path,
                format!(
                    "class {} ({}) has no validation image; leave it out with --classes",
                    self.wnids[label], self.images.class_names[label]
                ),
            ));
        }
        Ok(())
    }
}

/// The wnids of `wnids.txt`, in order (blank lines skipped).
fn read_wnids(path: &Path) -> Result<Vec<String>> {
    if !path.is_file() {
        return Err(DataError::invalid(
            path,
            "missing: a Tiny-ImageNet root holds wnids.txt (one wnid per line, the class order); \
             point --data at the tiny-imagenet-200 folder",
        ));
    }
    let bytes = crate::util::read_file(path)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut wnids = Vec::new();
    let mut line_of: HashMap<String, usize> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let wnid = line.trim();
        if wnid.is_empty() {
            continue;
        }
        let line_no = i + 1;
        if wnid.contains(|c: char| c.is_whitespace() || c == '/' || c == '\\')
            || wnid.starts_with('.')
        {
            return Err(DataError::invalid(
                path,
                format!(
                    "line {line_no}: {wnid:?} is not a wnid (one wnid such as n01443537 per line)"
                ),
            ));
        }
        if let Some(first) = line_of.insert(wnid.to_owned(), line_no) {
            return Err(DataError::invalid(
                path,
                format!("line {line_no}: {wnid} is already listed on line {first}; list every class once"),
            ));
        }
        wnids.push(wnid.to_owned());
    }
    if wnids.is_empty() {
        return Err(DataError::invalid(
            path,
            "lists no class; it needs one wnid per line",
        ));
    }
    Ok(wnids)
}

/// The display name of every wnid (see [`TinyImagenet`]); `path` may be
/// missing.
fn read_words(path: &Path, wnids: &[String]) -> Result<Vec<String>> {
    let mut found: HashMap<&str, String> = HashMap::new();
    if path.is_file() {
        let wanted: std::collections::HashSet<&str> = wnids.iter().map(String::as_str).collect();
        let bytes = crate::util::read_file(path)?;
        for line in String::from_utf8_lossy(&bytes).lines() {
            let Some((wnid, words)) = line.split_once('\t') else {
                continue;
            };
            let Some(&wnid) = wanted.get(wnid.trim()) else {
                continue;
            };
            let first = words.split(',').next().unwrap_or("").trim();
            if !first.is_empty() {
                found.entry(wnid).or_insert_with(|| first.to_owned());
            }
        }
    }
    let names: Vec<String> = wnids
        .iter()
        .map(|w| found.get(w.as_str()).cloned().unwrap_or_else(|| w.clone()))
        .collect();
    let mut count: HashMap<&str, usize> = HashMap::new();
    for n in &names {
        *count.entry(n.as_str()).or_default() += 1;
    }
    Ok(names
        .iter()
        .zip(wnids)
        .map(|(n, w)| {
            if count[n.as_str()] > 1 && n != w {
                format!("{n} ({w})")
            } else {
                n.clone()
            }
        })
        .collect())
}

impl std::ops::Deref for TinyImagenet {
    type Target = ImageFolder;

    /// The listed images ([`ImageSource`] through the image folder's reader).
    fn deref(&self) -> &ImageFolder {
        &self.images
    }
}
