//! The shared CIFAR-10 JPEG copy (see /work/shared/data/README.md).

mod common;

use stiffness_data::{load_rgb, Dataset, Format, Normalize, Split, Transform, CIFAR10_CLASSES};

#[test]
fn cifar10_jpg_test_split() {
    let Some(shared) = stiffness_testdata::shared("data/cifar10-jpg/test") else {
        return;
    };
    let root = shared.join("data/cifar10-jpg");
    let data = Dataset::open_split(&root, Format::Auto, Split::Test, Transform::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(data.len(), 10_000);
    assert_eq!(data.class_names(), CIFAR10_CLASSES);
    let labels = data.labels();
    for class in 0..10 {
        assert_eq!(labels.iter().filter(|&&l| l == class).count(), 1000);
    }
    let i = 1000 * 3 + 17;
    let sample = data.get(i).unwrap();
    assert_eq!(sample.shape, [3, 32, 32]);
    assert_eq!(sample.label, 3);
    let path = data.describe(i);
    assert!(path.ends_with("test/cat/0017.jpg"), "{path}");
    // Pixel values are the `image` crate's decoding, scaled by 1/255.
    let rgb = image::open(&path).unwrap().to_rgb8();
    for (k, px) in rgb.pixels().enumerate() {
        for c in 0..3 {
            assert_eq!(sample.image[c * 1024 + k], f32::from(px.0[c]) / 255.0);
        }
    }
    assert_eq!(
        load_rgb(std::path::Path::new(&path)).unwrap().pixels,
        sample.image
    );
    let first = data.source().load(0).unwrap();
    let means: Vec<f64> = (0..3)
        .map(|c| {
            first.pixels[c * 1024..(c + 1) * 1024]
                .iter()
                .map(|&v| f64::from(v))
                .sum::<f64>()
                / 1024.0
        })
        .collect();
    println!("{}: per-channel mean after ToTensor = {means:.6?} (compare with numpy.asarray(PIL.Image.open(path).convert('RGB')).mean((0, 1)) / 255)", data.describe(0));
    let normalized = Dataset::open(
        &root.join("test"),
        Format::ImageFolder,
        Transform::normalize(Normalize::cifar10()),
    )
    .unwrap();
    let v = normalized.get(i).unwrap().image[0];
    assert!((v - (sample.image[0] - 0.4914) / 0.2470).abs() < 1e-6);
}
