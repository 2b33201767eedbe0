//! torchvision-style `ImageFolder`: `root/<class>/**/<image>`.

use std::path::{Path, PathBuf};

use crate::classes::Classes;
use crate::error::{DataError, Result};
use crate::source::{ImageSource, RawImage};
use crate::util::read_file;

/// File extensions read as images (compared case-insensitively). torchvision
/// accepts more (bmp, ppm, tif, webp, ...); those are not decoded here.
pub const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// Images in class folders, listed at open time and decoded on
/// [`ImageSource::load`].
///
/// As in torchvision: every sub-folder of the root is a class, classes are
/// sorted by name and numbered from 0; each class folder is walked
/// recursively, folders in name order and files in name order inside each.
/// Images are converted to RGB (greyscale replicated, alpha dropped), like
/// `PIL.Image.convert("RGB")` in torchvision's default loader.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    pub(crate) files: Vec<PathBuf>,
    pub(crate) labels: Vec<usize>,
    pub(crate) class_names: Vec<String>,
}

impl ImageFolder {
    /// List the images under `root`. Errors when `root` has no class folders
    /// or a class folder holds no image (torchvision refuses both too).
    pub fn open(root: &Path) -> Result<Self> {
        Self::open_classes(root, &Classes::All)
    }

    /// List the images of the chosen class folders under `root` (classes
    /// named by their folder names; labels follow the selection, see
    /// [`Classes`]). Folders left out are not read.
    pub fn open_classes(root: &Path, classes: &Classes) -> Result<Self> {
        let class_dirs = sorted_subdirs(root)?;
        if class_dirs.is_empty() {
            return Err(DataError::invalid(
                root,
                "has no class folders; ImageFolder expects ROOT/<class>/<image>.jpg",
            ));
        }
        let names: Vec<String> = class_dirs
            .iter()
            .map(|d| crate::util::file_name(d))
            .collect();
        let chosen = classes.select(&names, &names, root)?;
        let mut folder = ImageFolder {
            files: Vec::new(),
            labels: Vec::new(),
            class_names: Vec::new(),
        };
        for (label, dir) in chosen.iter().map(|&k| &class_dirs[k]).enumerate() {
            let files = class_files(dir)?;
            if files.is_empty() {
                return Err(DataError::invalid(
                    dir,
                    "class folder has no .jpg/.jpeg/.png file; remove it or add its images",
                ));
            }
            folder
                .labels
                .extend(std::iter::repeat_n(label, files.len()));
            folder.files.extend(files);
            folder.class_names.push(crate::util::file_name(dir));
        }
        Ok(folder)
    }

    /// The image files in data set order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

/// Sub-folders of `dir` (symbolic links followed), sorted by name.
fn sorted_subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = list(dir)?.into_iter().filter(|p| p.is_dir()).collect();
    dirs.sort_by_key(|p| p.to_string_lossy().into_owned());
    Ok(dirs)
}

/// Entries of `dir`.
fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    entries
        .map(|e| e.map(|e| e.path()).map_err(|err| DataError::io(dir, err)))
        .collect()
}

/// Whether `path` has one of [`IMAGE_EXTENSIONS`].
pub fn is_image_file(path: &Path) -> bool {
    let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase());
    ext.is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str())) && path.is_file()
}

/// Image files under `dir`, in the order of Python's `sorted(os.walk(dir))`:
/// folders by path, files by name within each folder.
pub(crate) fn class_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut folders = vec![dir.to_path_buf()];
    let mut seen = std::collections::HashSet::new();
    let mut next = 0;
    while next < folders.len() {
        let subdirs = sorted_subdirs(&folders[next])?;
        // Skip folders already visited through a symbolic-link cycle.
        folders.extend(
            subdirs
                .into_iter()
                .filter(|d| seen.insert(std::fs::canonicalize(d).unwrap_or_else(|_| d.clone()))),
        );
        next += 1;
    }
    folders.sort_by_key(|p| p.to_string_lossy().into_owned());
    let mut files = Vec::new();
    for folder in &folders {
        let mut here: Vec<PathBuf> = list(folder)?
            .into_iter()
            .filter(|p| is_image_file(p))
            .collect();
        here.sort_by_key(|p| p.to_string_lossy().into_owned());
        files.extend(here);
    }
    Ok(files)
}

/// Largest image side decoded, in pixels (larger headers are refused before
/// any pixel buffer is allocated).
pub const MAX_IMAGE_SIDE: u32 = 16_384;

/// Largest buffer the decoder may allocate, in bytes.
pub const MAX_DECODE_BYTES: u64 = 256 << 20;

/// Read and decode an image file to RGB CHW values in `[0, 1]`.
pub fn load_rgb(path: &Path) -> Result<RawImage> {
    decode_rgb(&read_file(path)?, path)
}

/// Decode image bytes (format sniffed from them; `path` names the file in
/// errors) to RGB CHW values in `[0, 1]`. Images larger than
/// [`MAX_IMAGE_SIDE`] on a side, or whose decoding would allocate more than
/// [`MAX_DECODE_BYTES`], are refused.
pub fn decode_rgb(bytes: &[u8], path: &Path) -> Result<RawImage> {
    let decode_err = |source| DataError::Decode {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let rgb = reader.decode().map_err(decode_err)?.to_rgb8();
    let (width, height) = (rgb.width() as usize, rgb.height() as usize);
    if width == 0 || height == 0 {
        return Err(DataError::invalid(
            path,
            format!("image is {width}x{height} pixels: it has no pixels"),
        ));
    }
    let plane = width * height;
    let mut pixels = vec![0.0; 3 * plane];
    for (k, px) in rgb.pixels().enumerate() {
        for c in 0..3 {
            pixels[c * plane + k] = f32::from(px.0[c]) / 255.0;
        }
    }
    Ok(RawImage {
        channels: 3,
        height,
        width,
        pixels,
    })
}

impl ImageSource for ImageFolder {
    fn len(&self) -> usize {
        self.files.len()
    }

    fn label(&self, i: usize) -> usize {
        self.labels[i]
    }

    fn class_names(&self) -> &[String] {
        &self.class_names
    }

    fn load(&self, i: usize) -> Result<RawImage> {
        let path = self.files.get(i).ok_or(DataError::OutOfRange {
            index: i,
            len: self.len(),
        })?;
        load_rgb(path)
    }

    fn describe(&self, i: usize) -> String {
        self.files
            .get(i)
            .map_or_else(|| format!("image #{i}"), |p| p.display().to_string())
    }
}
