//! torchvision-style transforms on [`RawImage`]s: `Resize(int)`,
//! `CenterCrop`, channel replication and `Normalize` (the `ToTensor` scaling
//! to `[0, 1]` is done by every reader).

use std::str::FromStr;

use crate::error::{DataError, Result};
use crate::source::RawImage;

/// Per-channel `(x - mean) / std`, like `torchvision.transforms.Normalize`.
///
/// With one value it applies to every channel. With more values than a
/// single-channel image has, the first value is used (so `imagenet` can be
/// applied to greyscale data); otherwise the count must equal the channels.
/// An empty `Normalize` (`none`) changes nothing.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Normalize {
    /// Means, one per channel (or one for all).
    pub mean: Vec<f32>,
    /// Standard deviations, same count as `mean`, all positive.
    pub std: Vec<f32>,
}

impl Normalize {
    /// No normalisation.
    pub fn none() -> Self {
        Normalize::default()
    }

    /// ImageNet statistics, as in the torchvision model documentation:
    /// mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225).
    pub fn imagenet() -> Self {
        Normalize {
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
        }
    }

    /// CIFAR-10 statistics: mean (0.4914, 0.4822, 0.4465), std
    /// (0.2470, 0.2435, 0.2616).
    ///
    /// Source: the per-channel mean and standard deviation of all pixels of
    /// the 50,000 CIFAR-10 training images (Krizhevsky 2009), after
    /// `ToTensor` scaling; these are the values most PyTorch CIFAR training
    /// scripts pass to `Normalize`. Some popular code (kuangliu/pytorch-cifar)
    /// uses std (0.2023, 0.1994, 0.2010) instead; check what your model was
    /// trained with and pass explicit values when it differs.
    pub fn cifar10() -> Self {
        Normalize {
            mean: vec![0.4914, 0.4822, 0.4465],
            std: vec![0.2470, 0.2435, 0.2616],
        }
    }

    /// Build from explicit values, checking them.
    pub fn new(mean: Vec<f32>, std: Vec<f32>) -> Result<Self> {
        if mean.len() != std.len() || mean.is_empty() {
            return Err(DataError::Option(format!(
                "normalisation needs as many std values as means (got {} and {})",
                mean.len(),
                std.len()
            )));
        }
        if mean.iter().any(|m| !m.is_finite()) || std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(DataError::Option(
                "normalisation means must be finite and std values finite and positive".into(),
            ));
        }
        Ok(Normalize { mean, std })
    }

    /// Whether this changes nothing.
    pub fn is_none(&self) -> bool {
        self.mean.is_empty()
    }

    /// The (mean, std) used for channel `c` of an image with `channels`
    /// channels (see the type's rules).
    fn for_channel(&self, c: usize, channels: usize) -> Result<(f32, f32)> {
        let n = self.mean.len();
        let k = match (n, channels) {
            (1, _) => 0,
            (_, 1) => 0,
            _ if n == channels => c,
            _ => {
                return Err(DataError::Option(format!(
                    "normalisation has {n} values but the image has {channels} channels; give 1 or {channels} values"
                )))
            }
        };
        Ok((self.mean[k], self.std[k]))
    }

    /// Normalise `image` in place.
    pub fn apply(&self, image: &mut RawImage) -> Result<()> {
        if self.is_none() {
            return Ok(());
        }
        let plane = image.height * image.width;
        for c in 0..image.channels {
            let (m, s) = self.for_channel(c, image.channels)?;
            for v in &mut image.pixels[c * plane..(c + 1) * plane] {
                *v = (*v - m) / s;
            }
        }
        Ok(())
    }
}

impl FromStr for Normalize {
    type Err = DataError;

    /// `imagenet`, `cifar10`, `none`, or explicit `M1,M2,M3:S1,S2,S3`
    /// (any count, e.g. `0.5:0.25` for one channel).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "imagenet" => Ok(Normalize::imagenet()),
            "cifar10" | "cifar-10" => Ok(Normalize::cifar10()),
            "none" => Ok(Normalize::none()),
            _ => parse_explicit(s),
        }
    }
}

fn parse_explicit(s: &str) -> Result<Normalize> {
    let bad = || {
        DataError::Option(format!("cannot read normalisation {s:?}; use imagenet, cifar10, none, or MEANS:STDS such as 0.5,0.5,0.5:0.25,0.25,0.25"))
    };
    let (m, sd) = s.split_once(':').ok_or_else(bad)?;
    let parse = |list: &str| {
        list.split(',')
            .map(|v| v.trim().parse::<f32>())
            .collect::<std::result::Result<Vec<_>, _>>()
    };
    Normalize::new(parse(m).map_err(|_| bad())?, parse(sd).map_err(|_| bad())?)
}

/// The output size of torchvision's `Resize(size)` (an int): the shorter side
/// becomes `size`, the longer `int(size * long / short)`. Returns
/// `(height, width)`.
pub fn resize_output_size(height: usize, width: usize, size: usize) -> (usize, usize) {
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    let new_long = (size as f64 * long as f64 / short.max(1) as f64) as usize;
    if width <= height {
        (new_long, size)
    } else {
        (size, new_long)
    }
}

/// Resize so the shorter side is `size`, with Pillow's bilinear filter (a
/// triangle filter whose support widens with the downscale factor, i.e.
/// antialiased), which torchvision's `Resize` uses on PIL images.
///
/// Computed in `f32`; Pillow rounds to 8 bits after each pass, so values can
/// differ from PIL by about 1/255.
pub fn resize_shorter(image: &RawImage, size: usize) -> Result<RawImage> {
    if size == 0 || image.height == 0 || image.width == 0 {
        return Err(DataError::Option(format!(
            "cannot resize a {}x{} image to {size}",
            image.height, image.width
        )));
    }
    let (h, w) = resize_output_size(image.height, image.width, size);
    if (h, w) == (image.height, image.width) {
        return Ok(image.clone());
    }
    let horizontal = resample_axis(&image.pixels, image.width, w);
    let planes = transpose_rows(&horizontal, image.channels, image.height, w);
    let vertical = resample_axis(&planes, image.height, h);
    let pixels = transpose_rows(&vertical, image.channels, w, h);
    Ok(RawImage {
        channels: image.channels,
        height: h,
        width: w,
        pixels,
    })
}

/// Transpose each of `channels` planes of `rows x cols`.
fn transpose_rows(data: &[f32], channels: usize, rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for c in 0..channels {
        let base = c * rows * cols;
        for r in 0..rows {
            for k in 0..cols {
                out[base + k * rows + r] = data[base + r * cols + k];
            }
        }
    }
    out
}

/// Resample every row of `n_in` values in `data` to `n_out` values.
fn resample_axis(data: &[f32], n_in: usize, n_out: usize) -> Vec<f32> {
    let weights = bilinear_weights(n_in, n_out);
    let mut out = Vec::with_capacity(data.len() / n_in * n_out);
    for line in data.chunks_exact(n_in) {
        for (start, ws) in &weights {
            out.push(ws.iter().zip(&line[*start..]).map(|(w, v)| w * v).sum());
        }
    }
    out
}

/// Pillow's `precompute_coeffs` for the bilinear filter: for each output
/// index, the first input index and the normalised weights.
pub(crate) fn bilinear_weights(n_in: usize, n_out: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = n_in as f64 / n_out as f64;
    let filter_scale = scale.max(1.0);
    let support = filter_scale;
    (0..n_out)
        .map(|i| {
            let center = (i as f64 + 0.5) * scale;
            let lo = ((center - support + 0.5).trunc().max(0.0)) as usize;
            let hi = ((center + support + 0.5).trunc() as usize).min(n_in);
            let raw: Vec<f64> = (lo..hi)
                .map(|x| (1.0 - ((x as f64 - center + 0.5) / filter_scale).abs()).max(0.0))
                .collect();
            let total: f64 = raw.iter().sum();
            let ws = raw
                .iter()
                .map(|w| {
                    if total == 0.0 {
                        0.0
                    } else {
                        (w / total) as f32
                    }
                })
                .collect();
            (lo, ws)
        })
        .collect()
}

/// Row (or column) offset of torchvision's `CenterCrop` along an axis of
/// `size` cropped to `crop`: `int(round((size - crop) / 2))` with Python's
/// round-half-to-even; negative when the crop is larger, where torchvision
/// pads with zeros, `(crop - size) // 2` before.
pub fn center_crop_offset(size: usize, crop: usize) -> isize {
    if crop > size {
        return -(((crop - size) / 2) as isize);
    }
    let d = size - crop;
    let half = d / 2;
    let up = d % 2 == 1 && half % 2 == 1;
    (half + usize::from(up)) as isize
}

/// torchvision's `CenterCrop((height, width))`, zero padding where the crop
/// is larger than the image.
pub fn center_crop(image: &RawImage, height: usize, width: usize) -> Result<RawImage> {
    if height == 0 || width == 0 {
        return Err(DataError::Option(format!(
            "cannot centre-crop to {height}x{width}"
        )));
    }
    let top = center_crop_offset(image.height, height);
    let left = center_crop_offset(image.width, width);
    let mut pixels = vec![0.0; image.channels * height * width];
    for c in 0..image.channels {
        for y in 0..height {
            let Some(sy) = shifted(y, top, image.height) else {
                continue;
            };
            for x in 0..width {
                if let Some(sx) = shifted(x, left, image.width) {
                    pixels[(c * height + y) * width + x] = image.at(c, sy, sx);
                }
            }
        }
    }
    Ok(RawImage {
        channels: image.channels,
        height,
        width,
        pixels,
    })
}

/// `i + offset` when inside `0..len`.
fn shifted(i: usize, offset: isize, len: usize) -> Option<usize> {
    i.checked_add_signed(offset).filter(|&s| s < len)
}

/// Repeat a one-channel image to `channels` channels (e.g. MNIST for a model
/// that wants RGB). An image that already has `channels` channels is
/// returned unchanged; anything else is an error.
pub fn replicate_channels(image: RawImage, channels: usize) -> Result<RawImage> {
    if image.channels == channels {
        return Ok(image);
    }
    if image.channels != 1 {
        return Err(DataError::Option(format!("cannot turn a {}-channel image into {channels} channels; only 1-channel images are replicated", image.channels)));
    }
    let pixels = image.pixels.repeat(channels);
    Ok(RawImage {
        channels,
        pixels,
        ..image
    })
}

/// The transforms applied by [`crate::Dataset::get`], in this order:
/// resize (shorter side), centre crop, channel replication, normalisation.
/// The default does nothing beyond `ToTensor`'s scaling to `[0, 1]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transform {
    /// `Resize(size)`: the shorter side becomes this many pixels.
    pub resize: Option<usize>,
    /// `CenterCrop((height, width))`.
    pub center_crop: Option<(usize, usize)>,
    /// Replicate a 1-channel image to this many channels.
    pub channels: Option<usize>,
    /// `Normalize(mean, std)`.
    pub normalize: Normalize,
}

impl Transform {
    /// Only normalisation.
    pub fn normalize(normalize: Normalize) -> Self {
        Transform {
            normalize,
            ..Transform::default()
        }
    }

    /// Apply the transforms to `image`.
    pub fn apply(&self, mut image: RawImage) -> Result<RawImage> {
        if let Some(size) = self.resize {
            image = resize_shorter(&image, size)?;
        }
        if let Some((h, w)) = self.center_crop {
            image = center_crop(&image, h, w)?;
        }
        if let Some(c) = self.channels {
            image = replicate_channels(image, c)?;
        }
        self.normalize.apply(&mut image)?;
        Ok(image)
    }
}
