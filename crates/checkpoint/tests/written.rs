//! Checkpoints written here the way `torch.save` lays them out.
mod common;

use common::pickler::{checkpoint_pickle, zip_file, FakeStorage};
use common::samples::{sample, sample_legacy, sample_zip, strided, tensor};
use stiffness_checkpoint::{load_state_dict, parse_state_dict, Format, Scalar, SourceDType};

fn check_sample(bytes: &[u8], format: Format) {
    let loaded = parse_state_dict(bytes).unwrap();
    assert_eq!(loaded.format, format);
    assert_eq!(loaded.metadata.get("epoch"), Some(&Scalar::Int(7)));
    assert_eq!(
        loaded.metadata.get("arch"),
        Some(&Scalar::Str("resnet".into()))
    );
    let s = &loaded.state;
    let get = |name: &str| s.get(name).unwrap_or_else(|| panic!("missing {name}"));
    assert_eq!(get("conv.weight").values, [0., 1., 2., 3., 4., 5.]);
    assert_eq!(get("conv.weight").shape, [2, 3]);
    assert_eq!(get("conv.weight_t").values, [0., 3., 1., 4., 2., 5.]);
    assert_eq!(get("conv.weight_t").shape, [3, 2]);
    assert_eq!(get("shared.view").values, [6., 10., 7., 11.]);
    assert_eq!(get("bn.bias").values, [0.5, -2.0, 1024.0]);
    assert_eq!(get("bn.bias").source_dtype, SourceDType::F16);
    let tracked = get("bn.num_batches_tracked");
    assert_eq!(
        (tracked.shape.len(), tracked.values.as_slice()),
        (0, &[42.0][..])
    );
    assert_eq!(tracked.source_dtype, SourceDType::I64);
    assert_eq!(get("fc.weight").values, [1.5, 4.75]);
    assert_eq!(get("fc.bias").values, [1.0, -0.5]);
    assert_eq!(get("fc.bias").source_dtype, SourceDType::BF16);
    assert!(get("empty").values.is_empty());
    assert_eq!(get("empty").shape, [0, 5]);
    let names: Vec<&str> = s.names().collect();
    assert_eq!(&names[..3], ["conv.weight", "conv.weight_t", "shared.view"]);
}

#[test]
fn legacy_layout_loads_exactly() {
    let bytes = sample_legacy();
    check_sample(&bytes, Format::TorchLegacy);
    let state = parse_state_dict(&bytes).unwrap().state;
    // Root elements 4..8, then offset 1 within the view: 5, 6.
    assert_eq!(state.get("legacy_view").unwrap().values, [5.0, 6.0]);
}

#[test]
fn zip_layout_loads_exactly() {
    check_sample(&sample_zip(), Format::TorchZip);
}

#[test]
fn loads_from_a_path_whatever_the_extension() {
    let dir = common::temp_dir("written-path");
    let path = dir.join("weights.bin");
    std::fs::write(&path, sample_zip()).unwrap();
    assert_eq!(load_state_dict(&path).unwrap().format, Format::TorchZip);
}

#[test]
fn top_level_state_dict_without_prefix() {
    let mut p = common::pickler::Pickler::new();
    p.ordered_dict().mark().str("w");
    p.tensor(&tensor("FloatStorage", "k", 2), false);
    p.str("module.x")
        .tensor(&tensor("FloatStorage", "k", 2), false);
    p.raw(b"u");
    let storages = [FakeStorage {
        key: "k",
        element_size: 4,
        bytes: [1f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect(),
    }];
    let loaded = parse_state_dict(&zip_file(&p.finish(), &storages)).unwrap();
    // Not every name has the prefix, so none is stripped.
    let names: Vec<&str> = loaded.state.names().collect();
    assert_eq!(names, ["w", "module.x"]);
    assert!(loaded.metadata.is_empty());
}

#[test]
fn missing_state_dict_is_explained() {
    let mut p = common::pickler::Pickler::new();
    p.raw(b"}")
        .mark()
        .str("optimizer")
        .raw(b"}")
        .str("lr")
        .float(0.1)
        .raw(b"u");
    let err = parse_state_dict(&zip_file(&p.finish(), &[])).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("no state dict") && msg.contains("'optimizer'"),
        "{msg}"
    );
}

#[test]
fn storage_too_small_for_a_view_is_an_error() {
    let t = strided(&tensor("FloatStorage", "0", 12), 10, &[2, 2], &[2, 1]);
    let (_, storages) = sample(false);
    let bytes = zip_file(&checkpoint_pickle(&[("a", t)], false), &storages[..1]);
    let msg = parse_state_dict(&bytes).unwrap_err().to_string();
    assert!(msg.contains("does not fit"), "{msg}");
}
