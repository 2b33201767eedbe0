//! Batches for training and evaluation, decoded in parallel, with the
//! random-crop and horizontal-flip augmentation.
//!
//! # Augmentation (`crop-flip`)
//! Every image is zero-padded by `pad` pixels on each side and a crop of the
//! original size is taken at a uniformly random offset in 0..=2 pad on each
//! axis (torchvision `RandomCrop(size, padding=pad)`), then flipped
//! left-right with probability 1/2 (`RandomHorizontalFlip`). The padding is
//! 4 pixels for 32x32 images, scaled with the image:
//! pad = max(1, round(min(H, W) / 8)) (28x28 -> 4, 16x16 -> 2, 8x8 -> 1).
//! The offsets and the flip of image i in epoch e are a pure function of
//! (seed, e, i). Flipping suits Fashion-MNIST and CIFAR, not digits; `none`
//! turns augmentation off.

use stiffness_data::Dataset;

use crate::error::{Error, Result};
use crate::eval::decode_batch;
use crate::train::rng::{stream, Purpose};

/// Training-time augmentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Augment {
    /// Random crop with zero padding, then random horizontal flip.
    CropFlip,
    /// The images as they are.
    None,
}

/// The `--augment` value (the inverse of `from_str`).
impl std::fmt::Display for Augment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Augment::CropFlip => "crop-flip",
            Augment::None => "none",
        })
    }
}

impl std::str::FromStr for Augment {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "crop-flip" => Ok(Augment::CropFlip),
            "none" => Ok(Augment::None),
            _ => Err(Error::Usage(format!(
                "--augment {s}: expected crop-flip or none"
            ))),
        }
    }
}

/// The crop padding for an image of `height` x `width` (module docs).
pub fn crop_padding(height: usize, width: usize) -> usize {
    ((height.min(width) + 4) / 8).max(1)
}

/// Random crop (offsets `dy`, `dx` into the padded image) and optional
/// horizontal flip of a CHW image, in place of the original.
pub fn crop_flip(
    image: &[f32],
    [c, h, w]: [usize; 3],
    pad: usize,
    dy: usize,
    dx: usize,
    flip: bool,
) -> Vec<f32> {
    let mut out = vec![0f32; c * h * w];
    for ci in 0..c {
        for y in 0..h {
            let Some(sy) = (y + dy).checked_sub(pad).filter(|&s| s < h) else {
                continue;
            };
            for x in 0..w {
                let xo = if flip { w - 1 - x } else { x };
                if let Some(sx) = (xo + dx).checked_sub(pad).filter(|&s| s < w) {
                    out[(ci * h + y) * w + x] = image[(ci * h + sy) * w + sx];
                }
            }
        }
    }
    out
}

/// One batch: images (B*C*H*W, row-major CHW) and labels.
#[derive(Debug, Clone)]
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
}

/// How to load images: the expected shape and the augmentation of one epoch.
#[derive(Debug, Clone, Copy)]
pub struct Loader {
    pub shape: [usize; 3],
    pub augment: Augment,
    pub seed: u64,
}

impl Loader {
    /// Load images `indices` of `data` (all of the loader's shape) in
    /// parallel; `epoch` selects the augmentation (None: no augmentation).
    pub fn batch(&self, data: &Dataset, indices: &[usize], epoch: Option<usize>) -> Result<Batch> {
        let augment = |i: usize, image: Vec<f32>| match (epoch, self.augment) {
            (Some(e), Augment::CropFlip) => {
                let [_, h, w] = self.shape;
                let pad = crop_padding(h, w);
                let mut rng = stream(self.seed, Purpose::Augment, e as u64, i as u64);
                let dy = rng.below(2 * pad + 1);
                let dx = rng.below(2 * pad + 1);
                let flip = rng.next_u64() >> 63 == 1;
                crop_flip(&image, self.shape, pad, dy, dx, flip)
            }
            _ => image,
        };
        let (images, labels, _) = decode_batch(data, indices, Some(self.shape), &augment)?;
        Ok(Batch {
            images,
            labels: labels.into_iter().map(|l| l as u32).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_scales_with_size() {
        assert_eq!(crop_padding(32, 32), 4);
        assert_eq!(crop_padding(28, 28), 4);
        assert_eq!(crop_padding(16, 16), 2);
        assert_eq!(crop_padding(8, 8), 1);
        assert_eq!(crop_padding(224, 224), 28);
    }

    #[test]
    fn centre_crop_is_identity_and_flip_mirrors() {
        let img: Vec<f32> = (0..12).map(|v| v as f32).collect();
        assert_eq!(crop_flip(&img, [1, 3, 4], 1, 1, 1, false), img);
        let flipped = crop_flip(&img, [1, 3, 4], 1, 1, 1, true);
        assert_eq!(&flipped[..4], &[3.0, 2.0, 1.0, 0.0]);
        let shifted = crop_flip(&img, [1, 3, 4], 1, 0, 0, false);
        assert_eq!(&shifted[..4], &[0.0, 0.0, 0.0, 0.0]);
        assert_eq!(&shifted[4..8], &[0.0, 0.0, 1.0, 2.0]);
    }
}
