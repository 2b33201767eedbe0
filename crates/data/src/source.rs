//! The [`ImageSource`] abstraction and the in-memory array source shared by
//! the CIFAR, IDX and npy readers.

use std::path::PathBuf;

use crate::error::{DataError, Result};

/// One decoded image: `pixels` holds `channels * height * width` values in
/// `[0, 1]`, channel-major (CHW), i.e. what torchvision's `ToTensor` returns.
#[derive(Debug, Clone, PartialEq)]
pub struct RawImage {
    /// Number of channels (1 or 3 for the formats read here).
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// CHW values in `[0, 1]`.
    pub pixels: Vec<f32>,
}

impl RawImage {
    /// `[channels, height, width]`.
    pub fn shape(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }

    /// The value at channel `c`, row `y`, column `x`.
    ///
    /// # Panics
    /// If the position is outside the image.
    pub fn at(&self, c: usize, y: usize, x: usize) -> f32 {
        self.pixels[(c * self.height + y) * self.width + x]
    }
}

/// A labelled collection of images that are decoded one at a time.
///
/// Implementations must be cheap to open (a 50,000-file image folder is only
/// listed, not decoded) and safe to share between threads, so callers can
/// call [`ImageSource::load`] in parallel.
pub trait ImageSource: Send + Sync {
    /// Number of images.
    fn len(&self) -> usize;
    /// Whether there are no images.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Class index of image `i`, below `class_names().len()`.
    ///
    /// # Panics
    /// If `i >= len()`.
    fn label(&self, i: usize) -> usize;
    /// Class names in label order.
    fn class_names(&self) -> &[String];
    /// Decode image `i` into CHW `f32` values in `[0, 1]`.
    fn load(&self, i: usize) -> Result<RawImage>;
    /// Where image `i` comes from, for messages: a file path, or
    /// `"test_batch.bin #17"` for the 17th record of a batch file.
    fn describe(&self, i: usize) -> String;
}

/// Pixel storage of an [`ArraySource`].
#[derive(Debug, Clone)]
pub(crate) enum Pixels {
    /// Bytes, scaled by 1/255 on load.
    U8(Vec<u8>),
    /// Values already in `[0, 1]`.
    F32(Vec<f32>),
}

impl Pixels {
    fn len(&self) -> usize {
        match self {
            Pixels::U8(v) => v.len(),
            Pixels::F32(v) => v.len(),
        }
    }

    fn value(&self, k: usize) -> f32 {
        match self {
            Pixels::U8(v) => f32::from(v[k]) / 255.0,
            Pixels::F32(v) => v[k],
        }
    }
}

/// Memory order of one image inside an [`ArraySource`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// `true` for HWC (channels last), `false` for CHW.
    pub channels_last: bool,
}

impl Layout {
    /// Values per image.
    pub fn size(&self) -> usize {
        self.channels
            .saturating_mul(self.height)
            .saturating_mul(self.width)
    }
}

/// Images stored back to back in one buffer: image `i` starts at
/// `offset + i * stride` (a stride larger than the image size skips per-record
/// headers such as CIFAR's label bytes).
#[derive(Debug, Clone)]
pub(crate) struct ArraySource {
    pub pixels: Pixels,
    pub layout: Layout,
    pub offset: usize,
    pub stride: usize,
    pub labels: Vec<usize>,
    pub class_names: Vec<String>,
    /// Files the images came from, with the index of each file's first image.
    pub parts: Vec<(PathBuf, usize)>,
}

impl ArraySource {
    /// Check that the buffer holds every image and that labels fit the
    /// class names; `path` names the data in the error.
    pub fn validate(&self) -> Result<()> {
        let path = self.parts.first().map(|p| p.0.clone()).unwrap_or_default();
        let n = self.labels.len();
        let need = n.checked_sub(1).map(|last| {
            last.checked_mul(self.stride)
                .and_then(|a| a.checked_add(self.offset))
                .and_then(|a| a.checked_add(self.layout.size()))
        });
        if need.is_some_and(|need| need.is_none_or(|need| need > self.pixels.len())) {
            return Err(DataError::invalid(
                &path,
                "pixel data is shorter than the images its header announces; the file is truncated",
            ));
        }
        check_labels(&path, &self.labels, &self.class_names)?;
        self.check_finite()
    }

    /// Float pixels are refused up front when any is NaN or infinite, naming
    /// the first such image (bytes are always finite).
    fn check_finite(&self) -> Result<()> {
        let Pixels::F32(values) = &self.pixels else {
            return Ok(());
        };
        (0..self.len()).try_for_each(|i| {
            let start = self.offset + i * self.stride;
            let image = &values[start..start + self.layout.size()];
            crate::error::check_finite(image, || self.describe(i))
        })
    }
}

/// Error unless every label is below `names.len()`.
pub(crate) fn check_labels(
    path: &std::path::Path,
    labels: &[usize],
    names: &[String],
) -> Result<()> {
    match labels.iter().position(|&l| l >= names.len()) {
        None => Ok(()),
        Some(i) => Err(DataError::invalid(
            path,
            format!(
                "label {} of image {i} is not below the number of classes ({}); the label data is corrupt or belongs to another data set",
                labels[i],
                names.len()
            ),
        )),
    }
}

/// Largest number of classes accepted when names are made up from labels.
pub const MAX_CLASSES: usize = 100_000;

/// Class names `"0"`, `"1"`, ... for `labels`' largest label (at least `min`
/// names); an error naming `path` when a label is `MAX_CLASSES` or more.
pub(crate) fn numeric_names(
    labels: &[usize],
    min: usize,
    path: &std::path::Path,
) -> Result<Vec<String>> {
    let n = labels
        .iter()
        .map(|&l| l.saturating_add(1))
        .max()
        .unwrap_or(0)
        .max(min);
    if n > MAX_CLASSES {
        let msg = format!("label {} is implausibly large (at most {MAX_CLASSES} classes are supported); the labels are corrupt", n - 1);
        return Err(DataError::invalid(path, msg));
    }
    Ok(index_names(n))
}

/// Class names `"0"` to `"n-1"`.
pub(crate) fn index_names(n: usize) -> Vec<String> {
    (0..n).map(|i| i.to_string()).collect()
}

impl ImageSource for ArraySource {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn label(&self, i: usize) -> usize {
        self.labels[i]
    }

    fn class_names(&self) -> &[String] {
        &self.class_names
    }

    fn load(&self, i: usize) -> Result<RawImage> {
        if i >= self.len() {
            return Err(DataError::OutOfRange {
                index: i,
                len: self.len(),
            });
        }
        let Layout {
            channels,
            height,
            width,
            channels_last,
        } = self.layout;
        let start = self.offset + i * self.stride;
        let plane = height * width;
        let mut pixels = vec![0.0; self.layout.size()];
        for (k, out) in pixels.iter_mut().enumerate() {
            let src = if channels_last {
                (k % plane) * channels + k / plane
            } else {
                k
            };
            *out = self.pixels.value(start + src);
        }
        Ok(RawImage {
            channels,
            height,
            width,
            pixels,
        })
    }

    fn describe(&self, i: usize) -> String {
        let part = self.parts.iter().rev().find(|p| p.1 <= i);
        match part {
            Some((path, first)) => format!("{} #{}", path.display(), i - first),
            None => format!("image #{i}"),
        }
    }
}
