//! Writing safetensors files and reading them back.
mod common;

use std::collections::BTreeMap;
use stiffness_checkpoint::safetensors::{save_safetensors, SaveDType};
use stiffness_checkpoint::{load_state_dict, Format, Scalar, SourceDType, StateDict, Tensor};

fn sample_state() -> StateDict {
    let mut state = StateDict::new();
    let w: Vec<f32> = (0..24).map(|i| (i as f32 - 11.5) / 7.0).collect();
    state.insert("conv1.weight", Tensor::new(vec![2, 3, 2, 2], w).unwrap());
    state.insert(
        "bn1.bias",
        Tensor::new(vec![2], vec![0.1, -70000.0]).unwrap(),
    );
    let tracked = Tensor {
        shape: vec![],
        values: vec![123.0],
        source_dtype: SourceDType::I64,
    };
    state.insert("bn1.num_batches_tracked", tracked);
    state
}

#[test]
fn float32_round_trip_is_exact() {
    let dir = common::temp_dir("st-f32");
    let path = dir.join("model.safetensors");
    let meta: BTreeMap<String, String> = [("arch".to_string(), "resnet18".to_string())].into();
    let state = sample_state();
    save_safetensors(&path, &state, SaveDType::F32, &meta).unwrap();
    let loaded = load_state_dict(&path).unwrap();
    assert_eq!(loaded.format, Format::Safetensors);
    assert_eq!(
        loaded.metadata.get("arch"),
        Some(&Scalar::Str("resnet18".into()))
    );
    for (name, tensor) in state.iter() {
        assert_eq!(loaded.state.get(name), Some(tensor), "{name}");
    }
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "no temporary file is left"
    );
}

#[test]
fn float16_rounds_and_keeps_integers() {
    let dir = common::temp_dir("st-f16");
    let path = dir.join("model.safetensors");
    let state = sample_state();
    save_safetensors(&path, &state, SaveDType::F16, &BTreeMap::new()).unwrap();
    let loaded = load_state_dict(&path).unwrap().state;
    let w = loaded.get("conv1.weight").unwrap();
    assert_eq!(w.source_dtype, SourceDType::F16);
    let original = &state.get("conv1.weight").unwrap().values;
    for (a, b) in w.values.iter().zip(original) {
        assert_eq!(*a, half::f16::from_f32(*b).to_f32());
    }
    assert_eq!(loaded.get("bn1.bias").unwrap().values[1], f32::NEG_INFINITY);
    let tracked = loaded.get("bn1.num_batches_tracked").unwrap();
    assert_eq!(
        (tracked.source_dtype, tracked.values.as_slice()),
        (SourceDType::I64, &[123.0][..])
    );
}

#[test]
fn inconsistent_tensor_is_refused() {
    let dir = common::temp_dir("st-bad");
    let path = dir.join("bad.safetensors");
    let mut state = StateDict::new();
    state.insert(
        "x",
        Tensor {
            shape: vec![3],
            values: vec![1.0],
            source_dtype: SourceDType::F32,
        },
    );
    let msg = save_safetensors(&path, &state, SaveDType::F32, &BTreeMap::new())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("bad.safetensors: cannot write: tensor 'x' has shape [3] but 1 values"),
        "{msg}"
    );
    assert!(!path.exists());
}
