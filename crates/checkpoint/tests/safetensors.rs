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

/// Equal inputs give equal files: the header's keys (metadata included) are
/// written sorted, and the `safetensors` crate itself accepts the layout.
#[test]
fn files_are_byte_reproducible_and_valid() {
    let dir = common::temp_dir("st-repro");
    let meta: BTreeMap<String, String> = (0..12)
        .map(|i| (format!("key{i}"), format!("value {i}")))
        .collect();
    let state = sample_state();
    let (a, b) = (dir.join("a.safetensors"), dir.join("b.safetensors"));
    save_safetensors(&a, &state, SaveDType::F32, &meta).unwrap();
    save_safetensors(&b, &state, SaveDType::F32, &meta).unwrap();
    let bytes = std::fs::read(&a).unwrap();
    assert_eq!(bytes, std::fs::read(&b).unwrap());
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(header_len % 8, 0);
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(metadata.metadata().as_ref().unwrap().len(), 12);
    let parsed = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(parsed.len(), 3);
    let conv = parsed.tensor("conv1.weight").unwrap();
    assert_eq!(conv.shape(), &[2, 3, 2, 2]);
    assert_eq!(&conv.data()[..4], &(-11.5f32 / 7.0).to_le_bytes());
}
