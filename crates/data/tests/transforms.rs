//! Transform correctness against hand-computed values.

use stiffness_data::{
    center_crop, center_crop_offset, replicate_channels, resize_output_size, resize_shorter,
    Normalize, RawImage, Transform,
};

fn image(channels: usize, height: usize, width: usize, pixels: Vec<f32>) -> RawImage {
    assert_eq!(pixels.len(), channels * height * width);
    RawImage {
        channels,
        height,
        width,
        pixels,
    }
}

fn close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() < 1e-6, "value {i}: {x} vs {y}");
    }
}

#[test]
fn normalize_presets_by_hand() {
    let mut img = image(3, 1, 2, vec![0.5, 1.0, 0.0, 0.25, 0.4465, 1.0]);
    "cifar10"
        .parse::<Normalize>()
        .unwrap()
        .apply(&mut img)
        .unwrap();
    let want = [
        (0.5 - 0.4914) / 0.2470,
        (1.0 - 0.4914) / 0.2470,
        (0.0 - 0.4822) / 0.2435,
        (0.25 - 0.4822) / 0.2435,
        0.0,
        (1.0 - 0.4465) / 0.2616,
    ];
    close(&img.pixels, &want);
    let mut img = image(3, 1, 1, vec![0.485, 0.0, 1.0]);
    Normalize::imagenet().apply(&mut img).unwrap();
    close(&img.pixels, &[0.0, -0.456 / 0.224, (1.0 - 0.406) / 0.225]);
}

#[test]
fn normalize_explicit_and_channel_rules() {
    let n: Normalize = " 0.5, 0.25 ,0 : 0.5,0.25,2 ".parse().unwrap();
    assert_eq!(
        n,
        Normalize {
            mean: vec![0.5, 0.25, 0.0],
            std: vec![0.5, 0.25, 2.0]
        }
    );
    let mut img = image(3, 1, 1, vec![1.0, 1.0, 1.0]);
    n.apply(&mut img).unwrap();
    close(&img.pixels, &[1.0, 3.0, 0.5]);
    // One value applies to every channel.
    let mut img = image(3, 1, 1, vec![0.0, 0.5, 1.0]);
    "0.5:0.5"
        .parse::<Normalize>()
        .unwrap()
        .apply(&mut img)
        .unwrap();
    close(&img.pixels, &[-1.0, 0.0, 1.0]);
    // A single-channel image with three values uses the first.
    let mut grey = image(1, 1, 2, vec![0.485, 1.0]);
    Normalize::imagenet().apply(&mut grey).unwrap();
    close(&grey.pixels, &[0.0, (1.0 - 0.485) / 0.229]);
    // Two values for three channels is an error; none changes nothing.
    let mut img = image(3, 1, 1, vec![0.1, 0.2, 0.3]);
    assert!("0,0:1,1"
        .parse::<Normalize>()
        .unwrap()
        .apply(&mut img)
        .is_err());
    "none"
        .parse::<Normalize>()
        .unwrap()
        .apply(&mut img)
        .unwrap();
    assert_eq!(img.pixels, vec![0.1, 0.2, 0.3]);
    for bad in [
        "",
        "imagenet2",
        "0.5",
        "0.5:0",
        "0.5:-1",
        "a:b",
        "0.5,0.5:0.5",
        "nan:1",
        "0.5:inf",
    ] {
        let err = bad.parse::<Normalize>().unwrap_err().to_string();
        assert!(err.contains("normalisation"), "{bad}: {err}");
    }
}

#[test]
fn center_crop_offsets_follow_torchvision_rounding() {
    // int(round((size - crop) / 2)) with round half to even.
    for (size, crop, want) in [
        (32, 32, 0),
        (32, 28, 2),
        (5, 2, 2),
        (7, 2, 2),
        (9, 2, 4),
        (11, 2, 4),
        (256, 224, 16),
        (4, 1, 2),
    ] {
        assert_eq!(
            center_crop_offset(size, crop),
            want,
            "size {size} crop {crop}"
        );
    }
    // Crop larger than the image: zero padding (crop - size) // 2 before.
    assert_eq!(center_crop_offset(4, 6), -1);
    assert_eq!(center_crop_offset(4, 7), -1);
    assert_eq!(center_crop_offset(1, 4), -1);
}

#[test]
fn center_crop_pixels() {
    let img = image(1, 4, 5, (0..20).map(|v| v as f32).collect());
    let c = center_crop(&img, 2, 3).unwrap();
    assert_eq!(c.shape(), [1, 2, 3]);
    assert_eq!(c.pixels, vec![6.0, 7.0, 8.0, 11.0, 12.0, 13.0]);
    let small = image(2, 2, 2, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    let padded = center_crop(&small, 3, 4).unwrap();
    // top pad (3-2)//2 = 0, left pad (4-2)//2 = 1.
    assert_eq!(
        padded.pixels,
        vec![
            0., 1., 2., 0., 0., 3., 4., 0., 0., 0., 0., 0., 0., 5., 6., 0., 0., 7., 8., 0., 0., 0.,
            0., 0.
        ]
    );
    assert!(center_crop(&small, 0, 1).is_err());
}

#[test]
fn resize_sizes_follow_torchvision() {
    assert_eq!(resize_output_size(32, 48, 16), (16, 24));
    assert_eq!(resize_output_size(33, 50, 10), (10, 15));
    assert_eq!(resize_output_size(500, 375, 256), (341, 256));
    assert_eq!(resize_output_size(32, 32, 224), (224, 224));
}

#[test]
fn resize_matches_pillow_bilinear_weights() {
    // Upscale 1x2 -> 2x4: Pillow's triangle filter gives [a, .75a+.25b, .25a+.75b, b].
    let up = resize_shorter(&image(1, 1, 2, vec![0.0, 1.0]), 2).unwrap();
    assert_eq!(up.shape(), [1, 2, 4]);
    close(&up.pixels, &[0.0, 0.25, 0.75, 1.0, 0.0, 0.25, 0.75, 1.0]);
    // Downscale 2x4 -> 1x2 (antialiased): support 2, weights [3, 3, 1]/7 and [1, 3, 3]/7.
    let row = [0.1, 0.2, 0.3, 0.4];
    let down = resize_shorter(&image(1, 2, 4, [row, row].concat()), 1).unwrap();
    assert_eq!(down.shape(), [1, 1, 2]);
    close(&down.pixels, &[1.2 / 7.0, 2.3 / 7.0]);
    // Same size: unchanged.
    let same = image(3, 2, 2, (0..12).map(|v| v as f32 / 12.0).collect());
    assert_eq!(resize_shorter(&same, 2).unwrap(), same);
    assert!(resize_shorter(&same, 0).is_err());
}

#[test]
fn replicate_and_full_pipeline() {
    let grey = image(1, 1, 2, vec![0.25, 0.5]);
    let rgb = replicate_channels(grey.clone(), 3).unwrap();
    assert_eq!(rgb.pixels, vec![0.25, 0.5, 0.25, 0.5, 0.25, 0.5]);
    assert!(replicate_channels(rgb.clone(), 1).is_err());
    assert_eq!(replicate_channels(rgb.clone(), 3).unwrap(), rgb);
    let t = Transform {
        resize: Some(4),
        center_crop: Some((2, 2)),
        channels: Some(3),
        normalize: "0.5:0.5".parse().unwrap(),
    };
    let out = t.apply(grey).unwrap();
    // 1x2 -> 4x8 -> crop rows 1..3, columns 3..5 -> 3 channels -> (x - .5) / .5.
    assert_eq!(out.shape(), [3, 2, 2]);
    let up = resize_shorter(&image(1, 1, 2, vec![0.25, 0.5]), 4).unwrap();
    let mid: Vec<f32> = [
        up.at(0, 1, 3),
        up.at(0, 1, 4),
        up.at(0, 2, 3),
        up.at(0, 2, 4),
    ]
    .iter()
    .map(|v| (v - 0.5) / 0.5)
    .collect();
    close(&out.pixels, &[mid.clone(), mid.clone(), mid].concat());
}
