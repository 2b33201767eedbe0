//! [`Dataset`]: an [`ImageSource`] plus a [`Transform`].

use crate::error::{check_finite, DataError, Result};
use crate::source::ImageSource;
use crate::transform::Transform;

/// One transformed image and its label.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// CHW values after the transform.
    pub image: Vec<f32>,
    /// `[channels, height, width]` of `image`.
    pub shape: [usize; 3],
    /// Class index.
    pub label: usize,
}

/// A labelled image source whose images are transformed on [`Dataset::get`].
/// `Dataset` is `Send + Sync`: call `get` from several threads at once.
pub struct Dataset {
    source: Box<dyn ImageSource>,
    transform: Transform,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("len", &self.len())
            .field("classes", &self.class_names())
            .field("transform", &self.transform)
            .finish()
    }
}

impl Dataset {
    /// Wrap a source.
    pub fn new(source: Box<dyn ImageSource>, transform: Transform) -> Self {
        Dataset { source, transform }
    }

    /// Error naming `path` when the data set holds no image.
    pub fn require_images(&self, path: &std::path::Path) -> Result<()> {
        if self.is_empty() {
            return Err(DataError::invalid(
                path,
                "holds no images; check the path, the --split and the --format",
            ));
        }
        Ok(())
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.source.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.source.is_empty()
    }

    /// Every image's label, in order.
    pub fn labels(&self) -> Vec<usize> {
        (0..self.len()).map(|i| self.source.label(i)).collect()
    }

    /// Class names in label order.
    pub fn class_names(&self) -> &[String] {
        self.source.class_names()
    }

    /// The untransformed source.
    pub fn source(&self) -> &dyn ImageSource {
        self.source.as_ref()
    }

    /// The transform applied by [`Dataset::get`].
    pub fn transform(&self) -> &Transform {
        &self.transform
    }

    /// Replace the transform.
    pub fn set_transform(&mut self, transform: Transform) {
        self.transform = transform;
    }

    /// Where image `i` comes from (see [`ImageSource::describe`]).
    pub fn describe(&self, i: usize) -> String {
        self.source.describe(i)
    }

    /// Load, decode and transform image `i`. Errors name the image; an image
    /// with a NaN or infinite value (read from a float file, or made by the
    /// normalisation) is an error, never a sample.
    pub fn get(&self, i: usize) -> Result<Sample> {
        if i >= self.len() {
            return Err(DataError::OutOfRange {
                index: i,
                len: self.len(),
            });
        }
        let raw = self.source.load(i)?;
        let image = self.transform.apply(raw).map_err(|e| match e {
            DataError::Option(msg) => DataError::Option(format!("{}: {msg}", self.describe(i))),
            other => other,
        })?;
        check_finite(&image.pixels, || self.describe(i))?;
        Ok(Sample {
            shape: image.shape(),
            image: image.pixels,
            label: self.source.label(i),
        })
    }
}
