//! Acceptance: the pretrained CIFAR-10 ResNet20 on the 10,000 shared JPEG test
//! images with ImageNet normalisation. A PyTorch evaluation of the same files
//! with PIL decoding gives 81.03 % top-1 and mean loss 0.879; JPEG decoders
//! differ slightly, so the tolerance is 0.5 percentage points and 0.01 nats.

mod common;

use candle_core::DType;
use common::shared;
use resnet_stiffness::{eval, model};
use stiffness_data::{Dataset, Format, Normalize, Split, Transform};

#[test]
fn resnet20_scores_like_pytorch_on_cifar10_jpeg_test() {
    let Some(shared) = shared() else { return };
    let net = model::load(
        &shared.join("models/cifar10-resnet-akamaster/resnet20-12fca82f.th"),
        None,
        DType::F32,
    )
    .unwrap()
    .model;
    let transform = Transform::normalize(Normalize::imagenet());
    let data = Dataset::open_split(
        &shared.join("data/cifar10-jpg/test"),
        Format::Auto,
        Split::Test,
        transform,
    )
    .unwrap();
    let indices: Vec<usize> = (0..data.len()).collect();
    let outcomes = eval::evaluate(&net, &data, &indices, &|_| {}).unwrap();
    let s = eval::summarize(&outcomes, data.class_names());
    assert_eq!(s.count, 10_000);
    assert!(
        (s.accuracy - 0.8103).abs() <= 0.005,
        "accuracy {}",
        s.accuracy
    );
    assert!((s.loss - 0.879).abs() <= 0.01, "loss {}", s.loss);
    for c in &s.per_class {
        assert_eq!(c.count, 1000, "{}", c.name);
        assert!(
            c.accuracy > 0.6 && c.accuracy < 0.97,
            "{}: {}",
            c.name,
            c.accuracy
        );
    }
}
